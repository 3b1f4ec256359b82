// performer: a trainer for protein language models with Performer (FAVOR+) attention.
// Every error reaches the user as one line "error: <file>:<place>: <what>" and a non-zero exit.
#include <hdf5.h>

#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "cli/launch.h"
#include "util/error.h"
#include "util/signals.h"

namespace performer::cli {

void set_threads(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
}

}  // namespace performer::cli

int main(int argc, char** argv) {
  // HDF5 registers an atexit handler that closes whatever files are still open. A file whose close failed
  // (disk full while writing a corpus or checkpoint) stays on its list, and that handler then crashes
  // (exit 139 after the right error message). Every file here is closed by its RAII handle, so the
  // handler has nothing to do: opt out before any other HDF5 call.
  H5dont_atexit();
  performer::cli::set_command_line(argc, argv);
  CLI::App app{"performer: protein language models with Performer (FAVOR+) attention"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "performer 0.1.0 (LibTorch " TORCH_VERSION ")");
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads for LibTorch (0: all cores)")->capture_default_str();
  performer::cli::Action run;
  performer::cli::add_prepare(app, run);
  performer::cli::add_info(app, run);
  performer::cli::add_train(app, run);
  performer::cli::add_config(app, run);
  performer::cli::add_eval(app, run);
  performer::cli::add_embed(app, run);
  performer::cli::add_attention(app, run);
  performer::cli::add_contacts(app, run);
  performer::cli::add_longseq(app, run);
  performer::cli::add_scaling(app, run);
  performer::cli::add_export(app, run);
  performer::cli::add_import(app, run);
  performer::cli::add_bench(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    performer::cli::set_threads(threads);
    return run ? run() : 0;
  } catch (const performer::Interrupted& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return performer::kInterruptedExit;
  } catch (const performer::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
