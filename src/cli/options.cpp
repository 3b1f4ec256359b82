// Option values shared by several subcommands.
#include <string>
#include <vector>

#include "cli/commands.h"
#include "util/device.h"
#include "util/error.h"
#include "util/names.h"
#include "util/precision.h"
#include "util/text.h"

namespace performer::cli {

void add_device_option(CLI::App* cmd, std::string& target) {
  cmd->add_option("--device", target, join_choices(device_choice_names()))
      ->check(CLI::IsMember(device_choice_names()))
      ->capture_default_str();
}

void add_precision_option(CLI::App* cmd, std::string& target) {
  cmd->add_option("--precision", target,
                  "fp32 | bf16 (autocast: matrix products in bfloat16, features and sums of FAVOR in float32) | auto "
                  "(bf16 where a GEMM probe at start measures it >= 1.5x faster)")
      ->check(CLI::IsMember(precision_names()))
      ->capture_default_str();
}

void add_reader_options(CLI::App* cmd, ReaderFlags& flags) {
  cmd->add_option("--unknown", flags.unknown, "letters outside the alphabet: error | map (to X, counted) | skip (record)")
      ->capture_default_str();
  cmd->add_option("--empty", flags.empty, "records without residues: error | skip (counted)")
      ->capture_default_str();
  cmd->add_option("--gaps", flags.gaps,
                  "alignment gaps '-' and '.' (aligned FASTA, a3m): strip (each record its protein's own residues; "
                  "counted, with a warning) | error | keep (as gap tokens)")
      ->capture_default_str();
}

ReaderOptions ReaderFlags::options() const {
  ReaderOptions o;
  o.unknown = parse_unknown_policy(unknown);
  o.empty = parse_empty_policy(empty);
  o.gaps = parse_gap_policy(gaps);
  return o;
}

std::vector<AttentionKind> parse_kinds_option(const std::string& list) {
  std::vector<AttentionKind> kinds;
  for (const auto& k : split_list(list)) {
    try {
      kinds.push_back(parse_attention_kind(k));
    } catch (const Error& e) {
      throw Error(std::string("--kinds: ") + e.what());
    }
  }
  return kinds;
}

}  // namespace performer::cli
