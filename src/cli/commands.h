// Each subcommand registers itself on the CLI11 app and sets `run` to its action when selected.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "data/sequence_reader.h"
#include "model/attention.h"

namespace performer::cli {

using Action = std::function<int()>;

void add_prepare(CLI::App& app, Action& run);
void add_info(CLI::App& app, Action& run);
void add_bench(CLI::App& app, Action& run);
void add_bench_attention(CLI::App& bench, Action& run);
void add_bench_train(CLI::App& bench, Action& run);
void add_bench_loader(CLI::App& bench, Action& run);
void add_train(CLI::App& app, Action& run);
void add_config(CLI::App& app, Action& run);
void add_eval(CLI::App& app, Action& run);
void add_embed(CLI::App& app, Action& run);
void add_attention(CLI::App& app, Action& run);
void add_longseq(CLI::App& app, Action& run);
void add_scaling(CLI::App& app, Action& run);
void add_export(CLI::App& app, Action& run);
void add_import(CLI::App& app, Action& run);
void add_contacts(CLI::App& app, Action& run);

// Threads for LibTorch and OpenMP: --threads N, 0 = all cores.
void set_threads(int threads);

// --device auto|cpu|cuda into `target` (read later by resolve_device, util/device.h), its default shown.
void add_device_option(CLI::App* cmd, std::string& target);
// --precision fp32|bf16|auto into `target` (read later by parse_precision, util/precision.h).
void add_precision_option(CLI::App* cmd, std::string& target);

// --unknown, --empty and --gaps of a command that reads sequence files: how the reader treats letters
// outside the alphabet, records without residues and alignment gaps (data/sequence_reader.h). The values
// are read (and checked: an Error names a wrong one) by options().
struct ReaderFlags {
  std::string unknown = "map", empty = "error", gaps = "strip";
  ReaderOptions options() const;
};
void add_reader_options(CLI::App* cmd, ReaderFlags& flags);

// --kinds: comma-separated attention kinds, each read by parse_attention_kind (model/attention.h); an unknown
// kind is an Error "--kinds: attention kind 'x': expected ...".
std::vector<AttentionKind> parse_kinds_option(const std::string& list);

}  // namespace performer::cli
