// performer config --defaults | --check FILE [--set section.key=value]...
//   --defaults  every key with its default, allowed values and meaning
//   --check     loads FILE (and the overrides) with full validation and prints the resolved YAML
#include <cstdio>

#include "cli/commands.h"
#include "train/config.h"
#include "util/error.h"

namespace performer::cli {

void add_config(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand("config", "Show the configuration keys and defaults, or check a config file");
  auto defaults = std::make_shared<bool>(false);
  auto check = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto* defaults_opt = cmd->add_flag("--defaults", *defaults, "print every key with its default and meaning");
  auto* check_opt = cmd->add_option("--check", *check, "YAML config to validate; prints the resolved config");
  cmd->add_option("--set", *sets, "override section.key=value after the file (repeatable)")
      ->allow_extra_args(false)  // one KEY=VALUE per --set, repeated
      ->needs(check_opt);
  defaults_opt->excludes(check_opt);
  cmd->callback([&run, defaults, check, sets] {
    run = [defaults, check, sets] {
      if (*defaults) {
        std::fputs(config_defaults_text().c_str(), stdout);
        return 0;
      }
      if (check->empty()) throw Error("config: give --defaults, or --check FILE [--set section.key=value]...");
      std::fputs(config_to_yaml(load_config(*check, *sets)).c_str(), stdout);
      return 0;
    };
  });
}

}  // namespace performer::cli
