// No lost work, no garbage accepted, second probe: inputs protected from outputs, a resumed run on its own
// corpus, bounded memory for hostile inputs, alignments recognized, and hints that exist (issue cases
// reproduced as tests; each failed before the fix).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/corpus.h"
#include "io/hdf5.h"
#include "test_util.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

std::string tiny_train(const std::string& dir, const std::string& extra = "") {
  return "train --config " + project_root() + "/configs/tiny.yaml --set output.dir=" + dir +
         " --set train.steps=6 --set eval.every=0 --set output.checkpoint_every=0 --set runtime.threads=1 " + extra;
}

void expect_one_line_error(const CliRun& r, const std::string& fragment) {
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
}

std::string prepare(const std::string& input, const std::string& out, const std::string& extra = "") {
  return "prepare -q --input " + input + " --out " + out + " " + extra;
}

// A checkpoint of the tiny model, trained a step on the excerpt, in dir/run.
std::string tiny_checkpoint(const TempDir& d) {
  const CliRun r = run_performer(tiny_train(d.file("run"), "--set data.train=" + data_path("real_excerpt.fasta") +
                                                            " --set train.steps=1"));
  EXPECT_EQ(r.status, 0) << r.out;
  return d.file("run/best.h5");
}

}  // namespace

TEST(ReliabilityInputs, ResumeRefusesACorpusReplacedSinceTheCheckpoint) {
  TempDir d;
  const std::string corpus = d.file("corpus.h5"), run = d.file("run");
  ASSERT_EQ(run_performer(prepare(data_path("trembl_600.fasta.gz"), corpus, "--valid-frac 0.1")).status, 0);
  const std::string train = tiny_train(run, "--set data.train=" + corpus);
  ASSERT_EQ(run_performer(train + " --stop-after 2").status, 0);
  // The same sequences prepared again (a new file, a new time): the same content, so it resumes.
  ASSERT_EQ(run_performer(prepare(data_path("trembl_600.fasta.gz"), corpus, "--valid-frac 0.1")).status, 0);
  CliRun same = run_performer(train + " --resume auto --stop-after 1");
  ASSERT_EQ(same.status, 0) << same.out;
  EXPECT_NE(same.out.find("resumed from"), std::string::npos) << same.out;
  // Other proteins under the same path: refused, naming both corpora; the run folder is left as it was.
  ASSERT_EQ(run_performer(prepare(data_path("real_excerpt.fasta"), corpus, "--valid-frac 0.1")).status, 0);
  const std::string metrics = read_text(run + "/metrics.csv");
  CliRun other = run_performer(train + " --resume auto");
  expect_one_line_error(other, "was trained on another corpus");
  EXPECT_NE(other.out.find("--allow-corpus-change"), std::string::npos) << other.out;
  EXPECT_EQ(read_text(run + "/metrics.csv"), metrics);
  // Asked for on purpose, it continues (with a warning).
  CliRun allowed = run_performer(train + " --resume auto --allow-corpus-change");
  ASSERT_EQ(allowed.status, 0) << allowed.out;
  EXPECT_NE(allowed.out.find("warning: "), std::string::npos) << allowed.out;
  // The fingerprint is of the content: a corpus built in memory from the same sequences has the stored one.
  const Corpus loaded = Corpus::load(corpus);
  std::vector<std::string> seqs;
  std::vector<Split> splits;
  for (size_t i = 0; i < loaded.size(); ++i) {
    seqs.push_back(Alphabet::decode(loaded.residues(i).data(), static_cast<size_t>(loaded.length(i)), true));
    splits.push_back(loaded.split(i));
  }
  EXPECT_EQ(Corpus::from_sequences(seqs, splits).fingerprint(), loaded.fingerprint());
  seqs[3][0] = seqs[3][0] == 'A' ? 'C' : 'A';
  EXPECT_NE(Corpus::from_sequences(seqs, splits).fingerprint(), loaded.fingerprint()) << "one residue changed";
}

TEST(ReliabilityInputs, NoCommandWritesOverOneOfItsInputs) {
  TempDir d;
  // prepare: --clusters is an input too, with or without --force.
  const std::string clusters = d.file("c.tsv");
  fs::copy_file(data_path("trembl_600.clusters50.tsv"), clusters);
  const std::string tsv = read_text(clusters);
  expect_one_line_error(run_performer(prepare(data_path("trembl_600.fasta.gz"), clusters, "--clusters " + clusters + " --force")),
                        "is also an input (--clusters");
  EXPECT_EQ(read_text(clusters), tsv);
  // embed: --out equal to the input FASTA or to the checkpoint.
  const std::string ckpt = tiny_checkpoint(d);
  const std::string fasta = d.file("in.fasta");
  fs::copy_file(data_path("real_excerpt.fasta"), fasta);
  const std::string fasta_text = read_text(fasta), ckpt_bytes = read_text(ckpt);
  const std::string embed = "embed -q --checkpoint " + ckpt + " --input " + fasta + " --out ";
  expect_one_line_error(run_performer(embed + fasta), "is also an input (--input");
  expect_one_line_error(run_performer(embed + ckpt), "is also an input (--checkpoint");
  fs::create_symlink(fasta, d.file("link.h5"));
  expect_one_line_error(run_performer(embed + d.file("link.h5")), "is also an input (--input");
  // eval and attention write into a folder: a folder named like an input file is refused too.
  expect_one_line_error(run_performer("eval --checkpoint " + ckpt + " --input " + fasta + " --out " + fasta),
                        "is also an input (--input");
  expect_one_line_error(run_performer("attention --checkpoint " + ckpt + " --input " + fasta + " --blosum " +
                                      project_root() + "/data/BLOSUM62 --out " + ckpt),
                        "is also an input (--checkpoint");
  // longseq's folder, and train's run folder, hold no input either.
  expect_one_line_error(run_performer("longseq --config " + project_root() + "/configs/longseq.yaml --set data.train=" +
                                      fasta + " --lengths 64 --kinds exact --steps 1 --out " + fasta),
                        "is also an input (data.train");
  fs::create_directories(d.file("run2"));
  fs::copy_file(fasta, d.file("run2/metrics.csv"));
  expect_one_line_error(run_performer(tiny_train(d.file("run2"), "--set data.train=" + d.file("run2/metrics.csv"))),
                        "is also an input (data.train");
  EXPECT_EQ(read_text(fasta), fasta_text);
  EXPECT_EQ(read_text(ckpt), ckpt_bytes);
  EXPECT_EQ(read_text(d.file("run2/metrics.csv")), fasta_text);
}

TEST(ReliabilityInputs, EmptyRecordHintsNameOptionsThatExist) {
  TempDir d;
  const std::string ckpt = tiny_checkpoint(d);
  const std::string fasta = d.file("gap.fasta");
  write_file(fasta, ">P1\nMKTAYIAKQRQISFVKSHFSRQ\n>EMPTY\n>P3\nMSDNELKQAAE\n");
  for (const std::string& cmd : {"embed -q --checkpoint " + ckpt + " --input " + fasta + " --out " + d.file("e.h5"),
                                 "eval --checkpoint " + ckpt + " --input " + fasta}) {
    expect_one_line_error(run_performer(cmd), "record 2 (EMPTY) has no sequence (--empty skip skips such records)");
    CliRun ok = run_performer(cmd + " --empty skip");
    EXPECT_EQ(ok.status, 0) << cmd << "\n" << ok.out;
  }
  h5::Handle f = h5::open_file(d.file("e.h5"));
  EXPECT_EQ(h5::read_strings(f, "proteins/accessions"), (std::vector<std::string>{"P1", "P3"}));
  // train reads data.train with the default policies and has no such option: the hint says how instead.
  CliRun t = run_performer(tiny_train(d.file("t"), "--set data.train=" + fasta));
  expect_one_line_error(t, "`performer prepare --empty skip` (then set data.train to the corpus it writes)");
}

TEST(ReliabilityInputs, AHostileRecordOrLineIsRefusedInBoundedMemory) {
  TempDir d;
  // 120 MB of 'A' in 60-column lines behind one header, gzip'ed to about 0.2 MB: one endless record.
  const std::string bomb = d.file("bomb.fasta.gz");
  ASSERT_EQ(std::system(("bash -c '{ echo \">BOMB\"; yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | "
                         "head -c 120000000; echo; echo \">P2\"; echo MKTAYIAKQRQISFVKSHFSRQ; } | gzip -1 > " + bomb + "'").c_str()),
            0);
  CliRun r = run_performer(prepare(bomb, d.file("a.h5")));
  expect_one_line_error(r, "record 1 (BOMB, from line 1) has more than 10000000 residues");
  // --max-len is applied while reading: the record is read to its end, dropped and counted, in bounded
  // memory; the next record is kept.
  CliRun cut = run_performer(prepare(bomb, d.file("b.h5"), "--max-len 1000"));
  ASSERT_EQ(cut.status, 0) << cut.out;
  EXPECT_NE(cut.out.find("peak RSS"), std::string::npos) << cut.out;
  const Corpus c = Corpus::load(d.file("b.h5"));
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.stats().dropped_long, 1);
  // The peak RSS printed by prepare stays near that of a tiny input (the binary and LibTorch alone take
  // ~175 MB), far from the record's 120 MB.
  auto peak_mb = [](const std::string& out) {
    const auto at = out.find("peak RSS ");
    if (at == std::string::npos) return -1.0;
    const std::string figure = out.substr(at + 9, out.find('\n', at) - at - 9);
    return std::stod(figure) * (figure.find("GB") != std::string::npos ? 1000.0 : 1.0);
  };
  const CliRun tiny = run_performer(prepare(data_path("real_excerpt.fasta"), d.file("t.h5")));
  ASSERT_EQ(tiny.status, 0) << tiny.out;
  EXPECT_LT(peak_mb(cut.out), peak_mb(tiny.out) + 60) << cut.out << tiny.out;
  // One endless line (no line break): refused once it passes the line reader's cap.
  const std::string line = d.file("line.fasta.gz");
  ASSERT_EQ(std::system(("bash -c '{ echo \">LINE\"; head -c 40000000 /dev/zero | tr \"\\\\0\" A; } | gzip -1 > " + line + "'").c_str()), 0);
  expect_one_line_error(run_performer(prepare(line, d.file("c.h5"))), "line.fasta.gz:2: a line longer than 32 MiB");
  EXPECT_FALSE(fs::exists(d.file("c.h5")));
}

TEST(ReliabilityInputs, AlignedFastaAndA3mGapsAreRecognized) {
  TempDir d;
  const std::string aln = d.file("aln.a3m");
  write_file(aln, ">Q1 query\nMK--VL..AA-GH\n>H1 a homolog with insertions\nMKqrVLTTAA-GH\n>GAPS only gaps\n----..--\n");
  // Default: gaps removed (each record its protein's own residues), counted in one warning; the gap-only
  // record is an empty one, refused by default with what it held.
  CliRun r = run_performer(prepare(aln, d.file("a.h5")));
  expect_one_line_error(r, "record 3 (GAPS) has no sequence (only gaps)");
  CliRun ok = run_performer(prepare(aln, d.file("a.h5"), "--empty skip --valid-frac 0 --test-frac 0"));
  ASSERT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("warning: " + aln + ": 3 records hold gap characters ('-' or '.'; 14 in all)"), std::string::npos)
      << ok.out;
  const Corpus c = Corpus::load(d.file("a.h5"));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(Alphabet::decode(c.residues(0).data(), static_cast<size_t>(c.length(0)), true), "MKVLAAGH");
  EXPECT_EQ(Alphabet::decode(c.residues(1).data(), static_cast<size_t>(c.length(1)), true), "MKQRVLTTAAGH");
  // --gaps error refuses the alignment at its first gap; --gaps keep stores them as gap tokens.
  expect_one_line_error(run_performer(prepare(aln, d.file("b.h5"), "--gaps error")),
                        "aln.a3m:2: gap character '-' in record 1 (Q1)");
  ASSERT_EQ(run_performer(prepare(aln, d.file("k.h5"), "--gaps keep --valid-frac 0 --test-frac 0")).status, 0);
  const Corpus k = Corpus::load(d.file("k.h5"));
  EXPECT_EQ(Alphabet::decode(k.residues(0).data(), static_cast<size_t>(k.length(0)), true), "MK--VL..AA-GH");
  // A wrong policy name is one line naming the choices.
  expect_one_line_error(run_performer(prepare(aln, d.file("x.h5"), "--gaps maybe")), "gap policy 'maybe'");
}
