// performer embed --checkpoint CKPT --input FILE... --out embeddings.h5 [--layers -1,0,...] [--per-residue]
//                 [--pool mean|cls|both] [--tokens-per-batch N] [--chunk N] [--device ...] [--resume]
//                 [--stop-after N] [--unknown ...] [--empty ...] [--gaps ...]
// The options and one call (experiments/embed_job.h, which has the output's layout and the rules of
// --resume). SIGINT/SIGTERM/SIGHUP stop at the last commit; a second one ends the process at once.
#include <atomic>
#include <csignal>

#include "cli/commands.h"
#include "experiments/embed_job.h"
#include "util/signals.h"

namespace performer::cli {

namespace {

std::atomic<bool> g_stop_embed{false};
// The first stop signal asks for a stop at the last commit; a second one ends the process at once.
void on_signal(int sig) {
  if (g_stop_embed.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

void add_embed(CLI::App& app, Action& run) {
  auto a = std::make_shared<EmbedJob>();
  auto pool = std::make_shared<std::string>("mean");
  auto reader = std::make_shared<ReaderFlags>();
  auto* cmd = app.add_subcommand("embed", "Per-protein (and per-residue) embeddings of FASTA/UniProt proteins to HDF5");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint (.h5) written by performer train")->required();
  cmd->add_option("-i,--input", a->inputs, "FASTA or UniProt files (plain or gzip)")->required();
  cmd->add_option("--out", a->out, "output HDF5 file")->required();
  cmd->add_option("--layers", a->layers, "comma-separated layers: 0 = embeddings, -1 = last (after the final norm)")
      ->capture_default_str();
  cmd->add_flag("--per-residue", a->per_residue, "also write every residue's vector (/per_residue)");
  cmd->add_option("--pool", *pool, "per-protein vector: mean over residues, the <cls> vector, or both")
      ->check(CLI::IsMember(pooling_names()))
      ->capture_default_str();
  cmd->add_option("--tokens-per-batch", a->tokens_per_batch, "token budget per forward pass")->capture_default_str();
  cmd->add_option("--chunk", a->chunk, "proteins read, embedded and written together")->capture_default_str();
  add_device_option(cmd, a->device);
  add_precision_option(cmd, a->precision);
  cmd->add_flag("--resume", a->resume, "continue <out>.partial, left by an interrupted run of the same command");
  cmd->add_option("--stop-after", a->stop_after,
                  "stop (resumable, exit 130) once this invocation has embedded N proteins (whole chunks): for job time "
                  "slices");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  add_reader_options(cmd, *reader);
  cmd->callback([&run, a, pool, reader] {
    run = [a, pool, reader] {
      a->pool = parse_pooling(*pool);
      a->reader = reader->options();
      a->reader_flags = "--unknown " + reader->unknown + " --empty " + reader->empty + " --gaps " + reader->gaps;
      g_stop_embed.store(false);
      const StopSignals signals(on_signal);
      return run_embed_job(*a, &g_stop_embed);
    };
  });
}

}  // namespace performer::cli
