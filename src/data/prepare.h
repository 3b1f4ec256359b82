// `performer prepare`: FASTA / UniProt files -> tokenized corpus (corpus.h), in one streaming pass.
// Memory stays bounded whatever the input size (one record, write buffers, a length histogram, and
// 16 bytes per sequence when --dedup is on). Written to "<out>.tmp-<pid>" and renamed at the end: an
// error or an interrupt leaves no half corpus at <out>. The output may never be one of the inputs (also
// through links), and an existing output that is not a performer corpus is replaced only with `force`.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/sequence_reader.h"

namespace performer {

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out;
  double valid_frac = 0.01;
  double test_frac = 0.01;
  uint64_t split_seed = 0;
  int64_t min_len = 1;   // shorter sequences are dropped (counted)
  int64_t max_len = 0;   // longer sequences are dropped (counted); 0 = no limit
  bool dedup = false;    // drop exact duplicate sequences; the split is then keyed by the sequence
  ReaderOptions reader;
  bool progress = true;
  std::string cache_key;  // stored as attribute "cache_key" when set (training's prepared-corpus cache)
  bool force = false;     // replace an existing --out that is not a performer corpus
  std::string clusters;   // cluster TSV (data/clusters.h): the split is keyed by cluster; "" = by accession
};

struct PrepareResult {
  CorpusStats stats;
  double seconds = 0;
  uint64_t input_bytes = 0;  // bytes of the input files as stored (compressed for gzip)
};

// Set from a signal handler to stop a running prepare cleanly (it then throws Error("interrupted")).
extern std::atomic<bool> g_prepare_interrupted;

PrepareResult prepare_corpus(const PrepareOptions& options);

}  // namespace performer
