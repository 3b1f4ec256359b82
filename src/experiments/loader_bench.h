// `performer bench loader` as one call: how fast batches are assembled and masked (what the trainer's prefetch
// thread does for each batch), on one thread, with the page cache warm or, with --cold, emptied of the
// corpus first. Figures: batches/s and residues/s = real tokens of the batches / wall time, and this
// process's anonymous memory (RssAnon) before and after.
#pragma once
#include <cstdint>
#include <string>

namespace performer {

struct LoaderBench {
  std::string corpus;  // a prepared corpus
  int64_t max_len = 1024, tokens_per_batch = 16384, bucket_window = 4096, shuffle_block = 1;  // data.*
  int64_t batches = 200;  // batches to assemble
  bool concat = false;    // data.concat
  bool cold = false;      // drop the corpus from the page cache first
  uint64_t seed = 0;      // order and masking seed
  std::string sample = "proteins";  // data.sample
};

// Assembles the batches and prints the figures; returns 0.
int run_loader_bench(const LoaderBench& bench);

}  // namespace performer
