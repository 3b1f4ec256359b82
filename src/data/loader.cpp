#include "data/loader.h"

#include "util/error.h"
#include "util/hash.h"

namespace performer {

namespace {
constexpr uint64_t kMaskStream = 7;
}

std::vector<DataPosition> step_batches(const BatchSource& source, DataPosition from, int64_t tokens_per_step) {
  std::vector<DataPosition> out;
  int64_t tokens = 0;
  DataPosition pos = from;
  do {
    int64_t guard = 0;  // an epoch without batches cannot be: the split is never empty
    while (pos.index >= source.num_batches(pos.epoch)) {
      ++pos.epoch;
      pos.index = 0;
      if (++guard > 2) throw Error("data loader: epoch " + std::to_string(pos.epoch) + " has no batches");
    }
    out.push_back(pos);
    tokens += source.shape(pos.epoch, pos.index).real_tokens;
    ++pos.index;
  } while (tokens_per_step > 0 && tokens < tokens_per_step);
  return out;
}

DataLoader::DataLoader(std::shared_ptr<const BatchSource> source, LoaderOptions options, DataPosition start)
    : source_(std::move(source)), options_(options), consumer_(start), producer_(start) {
  if (options_.shard_count < 1 || options_.shard_rank < 0 || options_.shard_rank >= options_.shard_count)
    throw Error("data loader: shard " + std::to_string(options_.shard_rank) + " of " +
                std::to_string(options_.shard_count) + " does not exist");
  start_worker();
}

DataLoader::~DataLoader() { stop_worker(); }

bool DataLoader::make(DataPosition& pos, Batch& out) const {
  for (;;) {
    if (options_.max_epochs >= 0 && pos.epoch >= options_.max_epochs) return false;
    if (pos.index < source_->num_batches(pos.epoch)) break;
    ++pos.epoch;
    pos.index = 0;
  }
  if (pos.index % options_.shard_count != options_.shard_rank) {  // another rank's batch
    out = Batch{};
    out.epoch = pos.epoch;
    out.index = pos.index;
    out.real_tokens = source_->shape(pos.epoch, pos.index).real_tokens;
    out.local = false;
    ++pos.index;
    return true;
  }
  out = source_->batch(pos.epoch, pos.index);
  if (options_.mask && options_.objective == Objective::kNextToken) {
    MaskedTokens m = next_token_targets(out.tokens, /*include_eos=*/true, out.cut_start, out.cut_end);
    out.inputs = m.inputs;
    out.labels = m.labels;
  } else if (options_.mask) {
    MaskedTokens m = mask_tokens(out.tokens, options_.masking,
                                 derive_seed(options_.mask_seed, kMaskStream, static_cast<uint64_t>(pos.epoch),
                                             static_cast<uint64_t>(pos.index)));
    out.inputs = m.inputs;
    out.labels = m.labels;
  }
  ++pos.index;
  return true;
}

void DataLoader::start_worker() {
  if (options_.prefetch <= 0) return;
  stop_ = false;
  worker_ = std::thread([this] { worker_loop(); });
}

void DataLoader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  source_->interrupt(true);  // a table build the worker waits on stops now, not after a pass over the corpus
  worker_.join();
  source_->interrupt(false);
  queue_.clear();
  error_ = nullptr;
}

void DataLoader::worker_loop() {
  DataPosition pos;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pos = producer_;
  }
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Other ranks' batches cost nothing to hold: `prefetch` of this rank's own are kept ready.
      cv_.wait(lock, [&] { return stop_ || static_cast<int64_t>(queue_.size()) < options_.prefetch * options_.shard_count; });
      if (stop_) return;
    }
    Batch b;
    bool ok = false;
    try {
      ok = make(pos, b);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      queue_.emplace_back(false, Batch{});
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(ok, std::move(b));
    }
    cv_.notify_all();
    if (!ok) return;
  }
}

bool DataLoader::next(Batch& out) {
  if (options_.prefetch <= 0) {
    bool ok = make(consumer_, out);
    return ok;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty(); });
  auto item = std::move(queue_.front());
  queue_.pop_front();
  if (!item.first) {
    queue_.emplace_front(false, Batch{});  // stays at the end
    if (error_) std::rethrow_exception(error_);
    return false;
  }
  lock.unlock();
  cv_.notify_all();
  out = std::move(item.second);
  consumer_ = DataPosition{out.epoch, out.index + 1};
  return true;
}

void DataLoader::seek(DataPosition pos) {
  stop_worker();
  consumer_ = producer_ = pos;
  start_worker();
}

}  // namespace performer
