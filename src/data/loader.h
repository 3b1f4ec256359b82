// Iterates a BatchSource epoch after epoch, makes the targets of the objective (MLM masking, or next-token
// labels for causal models), and prefetches on a background thread
// so the trainer never waits on batch assembly. Masks are seeded by (mask_seed, epoch, index), so the
// stream of batches is identical with or without prefetching, and after seek() to a saved position.
//
// Data-parallel ranks (shard_count > 1) all walk the same global stream, so every rank knows where each
// optimizer step's batches begin and end, but a rank builds (and masks) only the batches whose index is
// its own, index % shard_count == shard_rank; the others come back with local = false and their real-token
// count alone. The position is the global one: the same for every rank and for a single process, so a
// checkpoint does not depend on the number of ranks.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/batches.h"
#include "data/masking.h"

namespace performer {

struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;  // next batch to be returned within the epoch
  bool operator==(const DataPosition& o) const { return epoch == o.epoch && index == o.index; }
};

struct LoaderOptions {
  bool mask = true;          // false: batches without inputs/labels (clean tokens only)
  Objective objective = Objective::kMaskedLm;
  MaskingOptions masking;
  uint64_t mask_seed = 0;
  int prefetch = 4;          // batches prepared ahead (0: no background thread)
  int64_t max_epochs = -1;   // stop after this many epochs (-1: endless)
  int64_t shard_rank = 0;    // this rank, of shard_count data-parallel ranks
  int64_t shard_count = 1;
};

// The batches of one optimizer step, starting at `from`: consecutive batches (across epoch ends) until
// their real tokens reach tokens_per_step, or one batch when tokens_per_step is 0. Computed from the
// batch shapes alone, so every data-parallel rank finds the same ones without building them.
std::vector<DataPosition> step_batches(const BatchSource& source, DataPosition from, int64_t tokens_per_step);

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const BatchSource> source, LoaderOptions options, DataPosition start = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Next batch; false when max_epochs are exhausted.
  bool next(Batch& out);
  // Position of the batch the next call to next() returns: save it with a checkpoint.
  DataPosition position() const { return consumer_; }
  // Restart from a saved position (drops prefetched batches).
  void seek(DataPosition pos);

 private:
  // The batch at pos (masked if configured); advances pos. False when past max_epochs.
  bool make(DataPosition& pos, Batch& out) const;
  void start_worker();
  void stop_worker();
  void worker_loop();

  std::shared_ptr<const BatchSource> source_;
  LoaderOptions options_;
  DataPosition consumer_;
  DataPosition producer_;
  std::thread worker_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<bool, Batch>> queue_;  // (valid, batch); invalid marks the end
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace performer
