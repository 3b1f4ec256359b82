// Option values shared by several subcommands.
#include <string>
#include <vector>

#include "cli/commands.h"
#include "util/error.h"
#include "util/text.h"

namespace performer::cli {

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
