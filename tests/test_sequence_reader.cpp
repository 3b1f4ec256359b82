#include <gtest/gtest.h>
#include <zlib.h>

#include "data/alphabet.h"
#include "data/sequence_reader.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

// Expects an Error whose message contains every fragment.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    FAIL() << "expected an error containing '" << fragments.front() << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "message: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error must be one line: " << msg;
  }
}

}  // namespace

TEST(SequenceReader, ParsesAccessions) {
  EXPECT_EQ(parse_accession("sp|P69905|HBA_HUMAN Hemoglobin subunit alpha"), "P69905");
  EXPECT_EQ(parse_accession("tr|A0A024R161|A0A024R161_HUMAN Guanine"), "A0A024R161");
  EXPECT_EQ(parse_accession("UPI0001|extra stuff"), "UPI0001");
  EXPECT_EQ(parse_accession("  plain_word rest of header"), "plain_word");
  EXPECT_EQ(parse_accession("lonely"), "lonely");
}

TEST(SequenceReader, RealExcerptPlainAndGzipAgree) {
  auto plain = read_all(data_path("real_excerpt.fasta"));
  auto gz = read_all(data_path("real_excerpt.fasta.gz"));
  ASSERT_EQ(plain.size(), 60u);
  ASSERT_EQ(gz.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i].accession, gz[i].accession);
    EXPECT_EQ(plain[i].residues, gz[i].residues);
    EXPECT_EQ(plain[i].index, static_cast<long long>(i + 1));
    EXPECT_FALSE(plain[i].residues.empty());
    for (char c : plain[i].residues) EXPECT_GE(Alphabet::residue_id(c), 0);
  }
}

TEST(SequenceReader, GzipDetectedByMagicNotName) {
  TempDir dir;
  // A gzip file without .gz, and a plain file named .gz.
  std::string text = ">sp|Q1|X desc\nMKV\nLLA\n>tr|Q2|Y\nACDE\n";
  std::string gz_named_plain = dir.file("looks_plain.fasta");
  gzFile g = gzopen(gz_named_plain.c_str(), "wb");
  gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
  gzclose(g);
  write_file(dir.file("plain.fasta.gz"), text);
  for (auto& p : {gz_named_plain, dir.file("plain.fasta.gz")}) {
    auto recs = read_all(p);
    ASSERT_EQ(recs.size(), 2u) << p;
    EXPECT_EQ(recs[0].accession, "Q1");
    EXPECT_EQ(recs[0].residues, "MKVLLA");
    EXPECT_EQ(recs[0].description, "desc");
    EXPECT_EQ(recs[1].residues, "ACDE");
  }
  EXPECT_TRUE(SequenceReader(gz_named_plain).lines().gzip());
  EXPECT_FALSE(SequenceReader(dir.file("plain.fasta.gz")).lines().gzip());
}

TEST(SequenceReader, UniProtFlatFileMatchesFasta) {
  auto dat = read_all(data_path("real_excerpt.dat"));
  auto fasta = read_all(data_path("real_excerpt.fasta"));
  ASSERT_EQ(dat.size(), 5u);
  SequenceReader r(data_path("real_excerpt.dat"));
  EXPECT_EQ(r.format(), SequenceFormat::kUniProt);
  for (auto& d : dat) {
    auto it = std::find_if(fasta.begin(), fasta.end(), [&](auto& f) { return f.accession == d.accession; });
    ASSERT_NE(it, fasta.end()) << d.accession;
    EXPECT_EQ(it->residues, d.residues) << d.accession;
    EXPECT_FALSE(d.description.empty());
  }
}

TEST(SequenceReader, MessyButValidFasta) {
  auto recs = read_all(data_path("messy.fasta"));
  ASSERT_EQ(recs.size(), 5u);
  for (auto& r : recs) {
    EXPECT_FALSE(r.residues.empty());
    for (char c : r.residues) {
      EXPECT_TRUE(c >= 'A' && c <= 'Z') << r.accession << " has '" << c << "'";
    }
    EXPECT_EQ(r.accession.find('\r'), std::string::npos);
  }
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"P53508", "MKKTIGLILILASFGSHARTEIATKNFPVSTTISKSFFAPEPQIQPSFGKNVGKEGGLLF"},
      {"A0A0A1XUZ7", "MKITKYRTKKSLGQCFILDPAIAEKIVSYAGCLEQYNVIEVGPGLGIMTQSILNKGVRRLTAIEKDRRLSNIHNKLKEAH"},
      {"XYZ123", "MRKRFFVGIFAINLLVGCQANYIRDVQGGTIAPSSSSKLTGIAVQ"},
      {"plainword", "MAQKSEGFRSKTRYKLKKHPREKGLFPITRALKEYKEGEIVHVIIDPSVQ"},
      {"Q9AR88", "MAARTVAVAAALAVLLIFAASSATVAMAGRPTPTTSLDEEAAQAAAQSEIGGGCKEGEGEEECLARRTLTAHTDYIYTQQHHN"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(recs[i].accession, expected[i].first);
    EXPECT_EQ(recs[i].residues, expected[i].second);
  }
}

TEST(SequenceReader, InlineMessyCases) {
  TempDir dir;
  write_file(dir.file("m.fa"), "\r\n\n>a first\r\nmk tl\r\n\r\n12 AAA 3\r\nGG*\r\n>b\nAC*DE\n>c\n  w y  \n");
  auto recs = read_all(dir.file("m.fa"));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].residues, "MKTLAAAGG");  // lower case, blanks, digits, CRLF, trailing '*'
  EXPECT_EQ(recs[0].line, 3);
  EXPECT_EQ(recs[1].residues, "ACXDE");      // an inner '*' is not a stop: mapped like any unknown letter
  EXPECT_EQ(recs[2].residues, "WY");
}

TEST(SequenceReader, SequenceBeforeHeader) {
  expect_error([] { read_all(data_path("bad_sequence_before_header.fasta")); },
               {"bad_sequence_before_header.fasta:", "before any header"});
}

TEST(SequenceReader, EmptyRecordErrorOrSkip) {
  expect_error([] { read_all(data_path("bad_empty_record.fasta")); },
               {"bad_empty_record.fasta:", "has no sequence"});
  ReaderOptions skip;
  skip.empty = EmptyRecordPolicy::kSkip;
  SequenceReader r(data_path("bad_empty_record.fasta"), skip);
  SequenceRecord rec;
  int n = 0;
  while (r.next(rec)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_EQ(r.counts().skipped_empty, 1);
}

TEST(SequenceReader, UnknownCharacterPolicies) {
  const std::string path = data_path("bad_unknown_chars.fasta");
  ReaderOptions o;
  o.unknown = UnknownResiduePolicy::kError;
  expect_error([&] { read_all(path, o); }, {"bad_unknown_chars.fasta:", "not in the protein alphabet"});

  o.unknown = UnknownResiduePolicy::kMapToX;
  SequenceReader mapped(path, o);
  SequenceRecord rec;
  std::vector<SequenceRecord> recs;
  while (mapped.next(rec)) recs.push_back(rec);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].residues.find('J'), std::string::npos);
  EXPECT_EQ(mapped.counts().mapped_to_x, 2);  // one 'J' and one '#'
  EXPECT_EQ(mapped.counts().records_with_x_mapping, 1);

  o.unknown = UnknownResiduePolicy::kSkipRecord;
  SequenceReader skipped(path, o);
  int n = 0;
  while (skipped.next(rec)) ++n;
  EXPECT_EQ(n, 1);
  EXPECT_EQ(skipped.counts().skipped_unknown, 1);
}

TEST(SequenceReader, BinaryGarbage) {
  expect_error([] { read_all(data_path("bad_binary.fasta")); }, {"bad_binary.fasta:", "binary data"});
  TempDir dir;
  write_file(dir.file("elf.bin"), std::string("\x7f" "ELF\x02\x01\x01\0\0\0", 10));
  expect_error([&] { read_all(dir.file("elf.bin")); }, {"elf.bin:1", "binary data"});
}

TEST(SequenceReader, TruncatedGzip) {
  expect_error([] { read_all(data_path("bad_truncated.fasta.gz")); }, {"bad_truncated.fasta.gz", "truncated"});
}

TEST(SequenceReader, EmptyMissingDirectory) {
  expect_error([] { read_all(data_path("empty.fasta")); }, {"empty.fasta", "empty"});
  expect_error([] { read_all(data_path("does_not_exist.fasta")); }, {"does_not_exist.fasta", "cannot open"});
  expect_error([] { read_all(std::string(PERFORMER_TEST_DATA)); }, {"is a directory"});
  TempDir dir;
  write_file(dir.file("blank.fa"), "\n\n  \n");
  expect_error([&] { read_all(dir.file("blank.fa")); }, {"blank.fa", "no sequence records"});
}

TEST(SequenceReader, UniProtUnterminatedAndLengthMismatch) {
  expect_error([] { read_all(data_path("bad_unterminated.dat")); }, {"bad_unterminated.dat:", "'//'"});
  expect_error([] { read_all(data_path("bad_length_mismatch.dat")); },
               {"bad_length_mismatch.dat:", "SQ line says"});
}

TEST(SequenceReader, LongSingleLineSequence) {
  // A sequence line longer than the 2 MiB read buffer.
  TempDir dir;
  std::string seq(3 << 20, 'A');
  for (size_t i = 0; i < seq.size(); i += 7) seq[i] = 'W';
  write_file(dir.file("long.fa"), ">long\n" + seq + "\n>short\nMK");
  auto recs = read_all(dir.file("long.fa"));
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].residues, seq);
  EXPECT_EQ(recs[1].residues, "MK");  // last line without newline
}

TEST(SequenceReader, ByteOrderMarkIsSkipped) {
  // A UTF-8 BOM written by some editors used to give "sequence data before any header".
  TempDir dir;
  write_file(dir.file("bom2.fa"), "\xEF\xBB\xBF>P1 first\nMKV\n>P2\nACD\n");
  auto recs = read_all(dir.file("bom2.fa"));
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].accession, "P1");
  EXPECT_EQ(recs[0].residues, "MKV");
}

TEST(SequenceReader, HugeSqLengthIsAnErrorNotAnOverflow) {
  TempDir dir;
  write_file(dir.file("huge.dat"),
             "ID   X_HUMAN   Unreviewed;   3 AA.\nAC   P00001;\nSQ   SEQUENCE   99999999999999999999999 AA;  1 MW;\n"
             "     MKV\n//\n");
  expect_error([&] { read_all(dir.file("huge.dat")); }, {"huge.dat:3", "impossible length"});
}

TEST(SequenceReader, ForeignFormatsAreRefusedByName) {
  TempDir dir;
  // PIR/NBRF: the title line would otherwise become sequence.
  write_file(dir.file("x.pir"), ">P1;CRAB_ANAPL\nALPHA CRYSTALLIN B CHAIN (ALPHA(B)-CRYSTALLIN).\n  MDITIHNPLI RRPLFSWLAP*\n");
  expect_error([&] { read_all(dir.file("x.pir")); }, {"x.pir:1", "PIR/NBRF"});
  // EMBL nucleotide entries: length in BP on the ID line, or on the SQ line.
  write_file(dir.file("x.embl"), "ID   X56734; SV 1; linear; mRNA; STD; PLN; 12 BP.\nAC   X56734;\n"
                                 "SQ   Sequence 12 BP; 4 A; 2 C; 3 G; 3 T; 0 other;\n     aaacaaacgg tt\n//\n");
  expect_error([&] { read_all(dir.file("x.embl")); }, {"x.embl:1", "nucleotide entry X56734"});
  write_file(dir.file("y.embl"), "ID   Y1   Unreviewed;   12 AA.\nAC   Y1;\nSQ   Sequence 12 BP; 4 A;\n     aaacaaacgg tt\n//\n");
  expect_error([&] { read_all(dir.file("y.embl")); }, {"y.embl:3", "nucleotide sequence"});
  // FASTA nucleotides are counted (prepare warns): >= 90% A/C/G/T/U/N over >= 20 letters.
  write_file(dir.file("dna.fa"), ">d1\nACGTACGTACGTACGTACGTNNAC\n>p1\nMKVLAAGIVALLLAAGCSSSKEET\n>d2\nACGU\n");
  SequenceReader reader(dir.file("dna.fa"));
  SequenceRecord rec;
  while (reader.next(rec)) {
  }
  EXPECT_EQ(reader.counts().likely_nucleotide, 1) << "d2 is too short to tell";
  CliRun r = run_performer("prepare -q --input " + dir.file("dna.fa") + " --out " + dir.file("c.h5"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("warning: " + dir.file("dna.fa") + ": 1 of 3 records are at least 90% A/C/G/T/U/N"), std::string::npos)
      << r.out;
}
