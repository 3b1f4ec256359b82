// performer prepare --input FILE... --out corpus.h5 [--valid-frac --test-frac --min-len --max-len --dedup]

#include <cstdio>

#include "cli/commands.h"
#include "data/prepare.h"
#include "util/process.h"
#include "util/signals.h"
#include "util/text.h"

namespace performer::cli {

namespace {
void on_signal(int) { g_prepare_interrupted.store(true); }
}  // namespace

void add_prepare(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand("prepare", "Tokenize FASTA/UniProt files (plain or gzip) into an HDF5 corpus");
  auto opts = std::make_shared<PrepareOptions>();
  auto reader = std::make_shared<ReaderFlags>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("-i,--input", opts->inputs, "FASTA or UniProt flat files, plain or gzip ('-': standard input)")
      ->required();
  cmd->add_option("-o,--out", opts->out, "corpus file to write (HDF5)")->required();
  cmd->add_option("--valid-frac", opts->valid_frac, "fraction of sequences in the valid split")->capture_default_str();
  cmd->add_option("--test-frac", opts->test_frac, "fraction of sequences in the test split")->capture_default_str();
  cmd->add_option("--split-seed", opts->split_seed, "salt of the split hash")->capture_default_str();
  cmd->add_option("--min-len", opts->min_len, "drop sequences shorter than this")->capture_default_str();
  cmd->add_option("--max-len", opts->max_len,
                  "drop sequences longer than this, while reading them (0: no limit but the reader's cap of 10 M "
                  "residues per record)")->capture_default_str();
  cmd->add_flag("--dedup", opts->dedup, "drop exact duplicate sequences (split then keyed by sequence)");
  add_reader_options(cmd, *reader);
  cmd->add_flag("-q,--quiet", *quiet, "no progress line");
  cmd->add_flag("--force", opts->force, "replace an existing --out even if it is not a performer corpus");
  cmd->add_option("--clusters", opts->clusters,
                  "cluster TSV (representative<TAB>member, as mmseqs easy-cluster/createtsv write): split by cluster, "
                  "so no cluster straddles train/valid/test");
  cmd->callback([&run, opts, reader, quiet] {
    run = [opts, reader, quiet] {
      opts->reader = reader->options();
      opts->progress = !*quiet;
      PrepareResult r;
      {
        // Without SA_RESTART, so that Ctrl-C also ends a wait in open() on a FIFO that has no writer yet.
        const StopSignals signals(on_signal);
        r = prepare_corpus(*opts);
      }
      std::printf("wrote %s\n%s", opts->out.c_str(), r.stats.summary().c_str());
      const double secs = std::max(r.seconds, 1e-9);
      std::printf("throughput: %.1f MB/s of input, %.2f M residues/s, %.0f sequences/s; %.2f s; peak RSS %s\n",
                  static_cast<double>(r.input_bytes) / secs / 1e6,
                  static_cast<double>(r.stats.total_residues()) / secs / 1e6,
                  static_cast<double>(r.stats.records_read) / secs, r.seconds,
                  human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
      return 0;
    };
  });
}

}  // namespace performer::cli
