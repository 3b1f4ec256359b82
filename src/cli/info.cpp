// performer info corpus.h5: the statistics stored in a prepared corpus.
#include <cstdio>

#include "cli/commands.h"
#include "data/corpus.h"
#include "io/hdf5.h"

namespace performer::cli {

void add_info(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand("info", "Print the statistics of a prepared corpus");
  auto path = std::make_shared<std::string>();
  cmd->add_option("corpus", *path, "corpus file written by `performer prepare`")->required();
  cmd->callback([&run, path] {
    run = [path] {
      Corpus c = Corpus::load(*path, /*with_accessions=*/false);
      h5::Handle f = h5::open_file(*path);
      std::printf("%s\nsources:", path->c_str());
      for (auto& s : h5::read_attr_strings(f, "sources")) std::printf(" %s", s.c_str());
      std::printf("\nsplit key: %s (valid %.4g, test %.4g)\n%s", h5::read_attr_string(f, "split_key").c_str(),
                  h5::read_attr_double(f, "valid_frac"), h5::read_attr_double(f, "test_frac"),
                  c.stats().summary().c_str());
      return 0;
    };
  });
}

}  // namespace performer::cli
