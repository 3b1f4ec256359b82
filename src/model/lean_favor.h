// Bidirectional FAVOR attention that stores nothing of size L x m: features are made chunk by chunk and
// recomputed in the backward pass, so the attention core's memory is O(L d + m d) per head instead of
// O(L m), and every [chunk, m] block stays in cache while it is used.
//
// Shapes: q, k, v [B, H, L, d], W [m, d], key_mask [B, L] (true = real token) or undefined -> [B, H, L, d].
//
// The result equals linear_attention(features(q, k)) (linear_attention.h with kernels.h's feature maps) up
// to rounding; the formulas, with phi the feature map and [v, 1] the values with a column of ones:
//
//   forward, pass over key chunks:     KV = sum_j phi(k_j) [v_j, 1]^T            [m, d+1]
//   forward, pass over query chunks:   [num_i, D_i] = phi(q_i)^T KV,  out_i = num_i / D_i
//   backward, with G_i = dLoss/dout_i and g_i = [G_i, -G_i . out_i] / D_i        [d+1]:
//     pass over query chunks:   dphi(q_i) = KV g_i,   dKV = sum_i phi(q_i) g_i^T
//     pass over key chunks:     dphi(k_j) = dKV [v_j, 1],   dv_j = dKV[:, :d]^T phi(k_j)
//   and through the feature maps (x' = x d^-1/4, a = W x' - |x'|^2/2, phi = exp(a - shift)):
//     softmax:   da = dphi * phi,   dx = d^-1/4 (W^T da - x' sum_r da_r)
//     ReLU:      phi = ReLU(W x) / sqrt(m) + eps,   dx = W^T (dphi * [W x > 0]) / sqrt(m)
//                (without projection phi = ReLU(x) + eps, dx = dphi * [x > 0])
//   A query's -|x'|^2/2 multiplies all its features by one constant, which cancels in num_i / D_i like its
//   shift t_i: query features leave it out, and its gradient term (x' sum_r da_r = x' (g_i . [num_i, D_i])
//   = 0) is dropped.
// Saved for backward: q, k, v (the [L, d] inputs, the same size as what the stored-feature path keeps of
// them), KV, the key shift s [m], and per query the shift t_i, D_i and out_i: O(L d) in all. The cost is one more pass of feature logits per side in
// backward (12 L m d multiply-adds per head in all instead of 10).
//
// Chunk length: smaller chunks pay per-call overhead, larger ones leave the cache, so the automatic chunk
// holds a fixed number of feature values, 2^19 (2 MB in float32). Measured on a 2-core x86 CPU with
// LibTorch 2.11, forward + backward, B 1, H 8: d 64, m 256, L 16384, softmax features, chunks of 128 / 256 /
// 512 / 1024 positions took 446 / 441 / 465 / 503 ms (auto: 256); d 16, m 64, L 65536 (the longseq model),
// 256 / 1024 / 4096 took 418 / 389 / 458 ms (auto: 1024).
//
// The grouped path. Float32 on the CPU with the automatic chunk, a projection W (softmax features, or ReLU
// features with one) whose m is a multiple of 16, and one (sequence, head) pair's L m feature values within
// kAutoChunkValues (L <= 8192 at m 64) run another loop: the B H pairs go in groups of kAutoChunkValues /
// (L m), each holding all L positions, so every product spans whole sequences (phi(K)^T [V, 1] sums L terms
// in one GEMM instead of a chunk's 16-64) and the softmax key shift s is known before any exp (no rescaling
// of KV). The features themselves are made by fused loops (model/feature_rows.h: logits, shifts and exp, or
// ReLU and eps, in one pass over each row, instead of up to six LibTorch passes). Same formulas, same saved
// tensors, except that the grouped path saves its contiguous copies of q and k and [V, 1] [B H, L, d+1] in
// place of the inputs, so the backward does not copy them again. Measured on a 2-core AMX Xeon with LibTorch 2.11 (`bench train`, docs/benchmarks.md): the ESM-2
// 8M shape (softmax, d 16, m 64) trains 10-13% faster in float32 and 16-17% in bf16, its core taking 0.69 s of a
// bf16 step instead of 1.02 s; the quickstart (ReLU, d 32, m 64) 1-4% and 3-5%. An explicit chunk
// (model.favor_chunk), float64, CUDA, ReLU without projection and longer sequences take the chunked loop.
//
// Softmax stabilizers as in kernels.h: the key shift s_r = max over real keys of a(k_j)_r, found as the
// key pass goes (KV is rescaled by exp(s_old - s_new) <= 1 when the maximum grows, as a streaming
// log-sum-exp does), and the query shift t_i = max_r (a(q_i)_r + s_r). The 1/sqrt(m) of the softmax
// features cancels between numerator and normalizer and is left out (so D_i here is m times the D_i of
// linear_attention.h). The normalizer is floored at the dtype's smallest normal number, as there; that
// only happens to a query without any real key (or with all its ReLU features 0), whose output is then 0
// whatever q, k, v are, and which passes no gradient. W is a constant (a
// buffer): no gradient flows to it. Differentiable once: a double backward (create_graph) is refused.
// Runs in the dtype of q (float32 or float64); callers cast and keep autocast off (model/attention.cpp).
//
// Mixed precision (options.products = bf16, what the model asks for under bf16 autocast for heads of 64 or
// more, model/attention.cpp): the four large
// products of each pass (phi(K)^T [V, 1], phi(Q) KV, and in backward g KV^T, phi(Q)^T g, [v, 1] dKV^T,
// phi(K) dKV) take bf16 operands and accumulate in float32 inside the GEMM; their results come back as
// bf16 and are added to float32 sums (KV, dKV) or divided in float32 (num / D). Everything else stays in
// q's dtype: the projections W x' and their gradients (rounding W x' by 2^-9 before exp costs 1-5% per
// feature at |W x'| = 8-45), the stabilizers s and t, exp, the normalizer's floor and division.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace performer {

enum class FeatureKernel { kSoftmax, kRelu };

struct LeanFavorOptions {
  FeatureKernel kernel = FeatureKernel::kSoftmax;
  double relu_eps = 1e-3;  // ReLU kernel: the constant added to every feature
  int64_t chunk = 0;       // positions per chunk (a chunk >= L is one pass); 0 = auto_favor_chunk
  // The operand dtype of the large products: q's own (Undefined: the default), or BFloat16 (float32 q only).
  at::ScalarType products = at::ScalarType::Undefined;
};

// The automatic chunk: about kAutoChunkValues feature values per [B, H, chunk, m] block (B H m chunk
// ~ 2^19), at least 16 positions and at most L. On CUDA 2^24 (64 MB in float32), so that a chunk's
// kernels are large enough to hide their launch cost; not measured on a GPU yet (scripts/gpu-check.sh).
constexpr int64_t kAutoChunkValues = int64_t{1} << 19;
constexpr int64_t kAutoChunkValuesCuda = int64_t{1} << 24;
int64_t auto_favor_chunk(int64_t B, int64_t H, int64_t L, int64_t m, bool cuda = false);

// W: [m, d] for softmax and projected ReLU features; undefined for the deterministic ReLU(x) features.
at::Tensor lean_favor_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& W,
                                const at::Tensor& key_mask, const LeanFavorOptions& options);

}  // namespace performer
