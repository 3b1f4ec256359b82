#include "data/corpus_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "data/prepare.h"
#include "io/hdf5.h"
#include "util/error.h"

namespace performer {

namespace fs = std::filesystem;

void require_training_data(const std::string& source) {
  if (!fs::exists(source))
    throw Error(source + ": data.train does not exist (run scripts/get-data.sh for the real data sets)");
}

std::string prepared_corpus(const CorpusSource& s) {
  require_training_data(s.source);
  if (h5::is_hdf5(s.source)) {  // a prepared corpus (checked when loaded)
    if (!s.clusters.empty())
      throw Error(s.source + ": data.clusters applies to a sequence file, and this is a prepared corpus (its split is "
                  "fixed; prepare it with --clusters " + s.clusters + " instead)");
    return s.source;
  }
  if (!s.clusters.empty() && !fs::exists(s.clusters)) throw Error(s.clusters + ": data.clusters does not exist");
  // A file's identity for the cache: absolute path, size and modification time (to the nanosecond, so an
  // edit within the same second is seen).
  auto identity = [](const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    std::ostringstream o;
    o << fs::absolute(path).string() << "|" << st.st_size << "|" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    return o.str();
  };
  std::ostringstream key;
  // "reader 2": corpora from readers before gaps were removed are prepared again.
  key << "reader 2|" << identity(s.source) << "|" << s.valid_frac << "|" << s.test_frac << "|" << s.dedup;
  if (!s.clusters.empty()) key << "|clusters:" << identity(s.clusters);
  if (h5::is_hdf5(s.cache)) {
    try {
      h5::Handle f = h5::open_file(s.cache);
      if (h5::has_attr(f, "cache_key") && h5::read_attr_string(f, "cache_key") == key.str()) return s.cache;
    } catch (const Error&) {
      // unreadable cache: rebuilt below
    }
  }
  PrepareOptions po;
  po.inputs = {s.source};
  po.out = s.cache;
  po.valid_frac = s.valid_frac;
  po.test_frac = s.test_frac;
  po.dedup = s.dedup;
  po.clusters = s.clusters;
  po.reader.policies_are_options = false;  // a hint names `performer prepare`, not a train option
  po.cache_key = key.str();
  po.force = true;  // our own cache file, rebuilt when unreadable
  po.progress = isatty(STDERR_FILENO) != 0;
  const PrepareResult r = prepare_corpus(po);
  std::printf("prepared %s -> %s: %lld sequences, %lld residues in %.1fs\n", s.source.c_str(), s.cache.c_str(),
              static_cast<long long>(r.stats.total_sequences()), static_cast<long long>(r.stats.total_residues()),
              r.seconds);
  std::fflush(stdout);
  return s.cache;
}

}  // namespace performer
