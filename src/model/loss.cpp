#include "model/loss.h"

#include <torch/torch.h>

#include "data/alphabet.h"

namespace performer {

LossSums cross_entropy_sums(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t B = logits.size(0), L = logits.size(1);
  const at::Tensor flat = logits.reshape({B * L, logits.size(-1)}).to(torch::kFloat);  // [B L, V]
  const at::Tensor y = labels.reshape({-1});                                           // [B L]
  namespace F = torch::nn::functional;
  const at::Tensor per_position = F::cross_entropy(
      flat, y, F::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kNone));  // 0 where ignored
  const at::Tensor valid = (y != kIgnoreIndex).reshape({B, L});
  LossSums s;
  s.loss_sum = per_position.sum();
  s.row_loss = per_position.detach().reshape({B, L}).to(torch::kDouble).sum(-1);
  s.row_count = valid.sum(-1);
  s.row_correct = ((flat.argmax(-1).reshape({B, L}) == labels.reshape({B, L})) & valid).sum(-1);
  s.count = s.row_count.sum().item<int64_t>();
  s.correct = s.row_correct.sum().item<int64_t>();
  return s;
}

}  // namespace performer
