#include "train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "data/batches.h"
#include "model/loss.h"
#include "util/hash.h"

namespace performer {

std::unique_ptr<BatchSource> evaluation_batches(const Corpus& corpus, Split split, const EvalSettings& st) {
  BatchOptions bo;
  bo.max_len = st.max_len;
  bo.tokens_per_batch = st.tokens_per_batch;
  bo.shuffle = false;
  // The first max_sequences proteins of the split in corpus order, length-sorted among themselves for
  // batching: a bucketing window of exactly that many. With a wider window the shortest proteins of a
  // larger prefix would fill the evaluation (on a 8,000-protein valid split: 447 proteins of 77 residues
  // on average, against 388 for the whole split).
  // (Capped at the split's size: a huge max_sequences, meaning "all of it", must not size a window.)
  const int64_t in_split = corpus.stats().sequences[static_cast<size_t>(split)];
  if (st.max_sequences > 0) bo.bucket_window = std::max<int64_t>(1, std::min(st.max_sequences, in_split));
  if (st.concat) return std::make_unique<ConcatBatches>(corpus, split, bo);
  return std::make_unique<SequenceBatches>(corpus, split, bo);
}

EvalResult evaluate(Encoder& model, const Corpus& corpus, Split split, const EvalSettings& st,
                    const torch::Device& device) {
  return evaluate(model, *evaluation_batches(corpus, split, st), st, device);
}

EvalResult evaluate(Encoder& model, const BatchSource& batches, const EvalSettings& st, const torch::Device& device) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  double loss = 0;
  int64_t predicted = 0, correct = 0, sequences = 0, rows_before = 0;
  const int64_t n = batches.num_batches(0);
  for (int64_t i = 0; i < n; ++i) {
    if (st.max_sequences > 0 && rows_before >= st.max_sequences) break;
    rows_before += batches.shape(0, i).rows;
    if (i % st.shard_count != st.shard_rank) continue;
    Batch b = batches.batch(0, i);
    MaskedTokens m = st.objective == Objective::kNextToken
                         ? next_token_targets(b.tokens, /*include_eos=*/false, b.cut_start, b.cut_end)
                         : mask_tokens(b.tokens, st.masking, derive_seed(st.seed, 0xe7a1, static_cast<uint64_t>(i)));
    at::Tensor logits = model(m.inputs.to(device), b.padding_mask.to(device));
    LossSums s = cross_entropy_sums(logits, m.labels.to(device));
    loss += s.loss_sum.item<double>();
    predicted += s.count;
    correct += s.correct;
    sequences += b.tokens.size(0);
  }
  if (was_training) model->train();
  return eval_result(loss, predicted, correct, sequences);
}

EvalResult eval_result(double loss_sum, int64_t predicted, int64_t correct, int64_t sequences) {
  EvalResult r;
  r.loss_sum = loss_sum;
  r.predicted = predicted;
  r.correct = correct;
  r.sequences = sequences;
  r.loss = predicted > 0 ? loss_sum / static_cast<double>(predicted) : std::nan("");
  r.perplexity = std::exp(r.loss);
  r.accuracy = predicted > 0 ? static_cast<double>(correct) / static_cast<double>(predicted) : std::nan("");
  return r;
}

}  // namespace performer
