// Option values shared by several subcommands.
#include <string>
#include <vector>

#include "cli/commands.h"
#include "util/device.h"
#include "util/error.h"
#include "util/names.h"
#include "util/text.h"

namespace performer::cli {

void add_device_option(CLI::App* cmd, std::string& target) {
  cmd->add_option("--device", target, join_choices(device_choice_names()))
      ->check(CLI::IsMember(device_choice_names()))
      ->capture_default_str();
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
