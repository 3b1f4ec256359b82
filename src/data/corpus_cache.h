// The corpus a run trains on: the source itself when it is a prepared corpus, else a cache prepared from
// the sequence file once and reused while the file (path, size, modification time), the cluster file (the
// same) and the split settings are unchanged; an unreadable or stale cache is prepared again.
#pragma once
#include <string>

namespace performer {

struct CorpusSource {
  std::string source;      // prepared corpus (.h5) or FASTA/UniProt file
  std::string cache;       // where a sequence file is prepared to ("<run>/corpus.h5")
  double valid_frac = 0, test_frac = 0;
  bool dedup = false;
  std::string clusters;    // cluster TSV keying the split of a sequence file (prepare --clusters); "" = none
};

// Throws Error unless the training data `source` exists (named, with where the real data comes from).
void require_training_data(const std::string& source);

// The path of the prepared corpus (source or cache); prepares the cache when needed (a line on stdout).
std::string prepared_corpus(const CorpusSource& s);

}  // namespace performer
