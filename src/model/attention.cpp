#include "model/attention.h"

#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include <optional>

#include "model/exact_attention.h"
#include "model/lean_favor.h"
#include "model/linear.h"
#include "model/linear_attention.h"
#include "model/rotary.h"
#include "util/error.h"
#include "util/names.h"
#include "util/hash.h"
#include "util/precision.h"

namespace performer {

const std::vector<std::string>& attention_kind_names() {
  static const std::vector<std::string> names{"exact", "favor-softmax", "favor-relu"};
  return names;
}

namespace {
// Under bf16 autocast the lean core's large products run on bf16 operands for heads of at least this size.
// Below it the casts cost more than the bf16 GEMMs save: measured forward + backward of the core alone on
// 2 CPU cores (AVX512_BF16, LibTorch 2.11), bf16 against float32 products: d 64, m 256, L 16384: 1.53x
// (ReLU) and 1.16x (softmax) faster; d 32, m 64, L 256 x 32 rows: 1.13x slower; d 16, m 64, L 512 x 32
// rows: 1.48x slower.
constexpr int64_t kFavorBf16ProductsMinDim = 64;
}  // namespace

AttentionKind parse_attention_kind(const std::string& s) {
  return parse_name<AttentionKind>(s, attention_kind_names(), "attention kind");
}

std::string attention_kind_name(AttentionKind k) { return name_of(k, attention_kind_names()); }

SelfAttentionImpl::SelfAttentionImpl(const AttentionOptions& o) : options_(o) {
  // Precondition, checked where the options come from (the config schema and EncoderConfig::validate):
  // heads >= 1 dividing d_model, features >= 1.
  d_head_ = o.d_model / o.heads;
  q_proj = register_module("q_proj", torch::nn::Linear(o.d_model, o.d_model));
  k_proj = register_module("k_proj", torch::nn::Linear(o.d_model, o.d_model));
  v_proj = register_module("v_proj", torch::nn::Linear(o.d_model, o.d_model));
  out_proj = register_module("out_proj", torch::nn::Linear(o.d_model, o.d_model));
  feature_draw_ = register_buffer("feature_draw", torch::full({}, -1, torch::kLong));
  const bool random = o.kind == AttentionKind::kFavorSoftmax || (o.kind == AttentionKind::kFavorRelu && o.relu_projection);
  projection_ = register_buffer("projection", random ? torch::zeros({o.features, d_head_}) : torch::zeros({0, d_head_}));
  redraw(0);
}

at::Tensor SelfAttentionImpl::draw_matrix(int64_t draw) const {
  const uint64_t seed = derive_seed(options_.seed, 0xfea7, static_cast<uint64_t>(options_.layer), static_cast<uint64_t>(draw));
  return options_.orthogonal ? orthogonal_gaussian_projection(options_.features, d_head_, options_.row_norms, seed)
                             : gaussian_projection(options_.features, d_head_, seed);
}

bool SelfAttentionImpl::redraw(int64_t draw) {
  if (feature_draw_.item<int64_t>() == draw) return false;
  torch::NoGradGuard no_grad;
  if (projection_.numel() > 0) projection_.copy_(draw_matrix(draw));  // in place: same storage, any device
  feature_draw_.fill_(draw);
  return true;
}

void SelfAttentionImpl::project(const at::Tensor& x, at::Tensor& q, at::Tensor& k, at::Tensor& v) {
  const int64_t B = x.size(0), L = x.size(1);
  auto heads = [&](const at::Tensor& t) { return t.view({B, L, options_.heads, d_head_}).transpose(1, 2); };
  // Under autocast x is cast once here, not by each of the three products (autocast casts every
  // non-parameter input per call).
  const std::optional<at::ScalarType> mixed = active_autocast_dtype(x.device().type());
  const at::Tensor xin = mixed && x.is_floating_point() && x.scalar_type() == at::kFloat ? x.to(*mixed) : x;
  q = heads(linear(q_proj, xin));  // [B,H,L,d]
  k = heads(linear(k_proj, xin));
  v = heads(linear(v_proj, xin));
  if (options_.rotary) {
    q = apply_rotary(q);
    k = apply_rotary(k);
  }
}

at::Tensor favor_core(const AttentionOptions& o, const at::Tensor& W, const at::Tensor& q, const at::Tensor& k,
                      const at::Tensor& v, const at::Tensor& key_mask, at::Tensor* weights) {
  // Under mixed-precision autocast a matmul would run in bf16/fp16 whatever its inputs are, rounding W x'
  // before exp (1-5% per feature at |W x'| = 8-45). Features, stabilizers and normalizer run with autocast
  // off, in float32 at least. Under bf16 autocast the lean core's large products (phi(K)^T V, phi(Q) KV and
  // their gradients) take bf16 operands on purpose, with float32 accumulation (model/lean_favor.h), for
  // heads of at least kFavorBf16ProductsMinDim.
  RECORD_USER_SCOPE("performer::favor_core");
  const std::optional<at::ScalarType> mixed = active_autocast_dtype(q.device().type());
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const auto compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const bool softmax = o.kind == AttentionKind::kFavorSoftmax;
  const at::Tensor projection = softmax || o.relu_projection ? W : at::Tensor();
  if (!o.causal && o.favor_lean && !weights) {
    LeanFavorOptions lean;
    lean.kernel = softmax ? FeatureKernel::kSoftmax : FeatureKernel::kRelu;
    lean.relu_eps = o.relu_eps;
    lean.chunk = o.favor_chunk;
    if (mixed == at::kBFloat16 && compute == at::kFloat && q.size(3) >= kFavorBf16ProductsMinDim)
      lean.products = at::kBFloat16;
    // A conversion (bf16 projections under autocast) writes q, k, v contiguous: it copies anyway, and the
    // lean core's rows read contiguous [B*H, L, d], so they are not copied a second time.
    const auto dense = [&](const at::Tensor& x) {
      return x.scalar_type() == compute ? x : x.to(x.options().dtype(compute), false, false, at::MemoryFormat::Contiguous);
    };
    return lean_favor_attention(dense(q), dense(k), dense(v), projection, key_mask, lean);
  }
  const at::Tensor qc = q.to(compute), kc = k.to(compute);
  FeatureMaps f = softmax ? softmax_features(qc, kc, projection, key_mask, o.causal, o.causal_chunk)
                          : relu_features(qc, kc, projection, o.relu_eps, key_mask);
  if (weights) *weights = feature_attention_matrix(f.q, f.k, o.causal, f.chunk, f.chunk_log_scale);
  if (!o.causal) return linear_attention(f.q, f.k, v.to(compute));
  return causal_linear_attention(f.q, f.k, v.to(compute), o.causal_chunk, f.chunk_log_scale);
}

at::Tensor SelfAttentionImpl::favor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& key_mask, at::Tensor* weights) const {
  return favor_core(options_, projection_, q, k, v, key_mask, weights);
}

at::Tensor SelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& key_mask, at::Tensor* weights) {
  at::Tensor q, k, v, out;
  project(x, q, k, v);
  if (options_.kind == AttentionKind::kExact) {
    out = exact_attention(q, k, v, key_mask, options_.causal);
    if (weights) *weights = exact_attention_matrix(q, k, key_mask, options_.causal);
  } else {
    out = favor(q, k, v, key_mask, weights);
  }
  const int64_t B = x.size(0), L = x.size(1);
  out = out.transpose(1, 2).reshape({B, L, options_.d_model});
  // Under autocast the product casts its input to the autocast dtype: a bf16 output of exact attention goes
  // in as it is (casting it to x's float32 first, for autocast to cast back, was 2 passes of an `embed`).
  if (!active_autocast_dtype(x.device().type())) out = out.to(x.scalar_type());
  return linear(out_proj, out);
}

at::Tensor SelfAttentionImpl::attention_matrix(const at::Tensor& x, const at::Tensor& key_mask) {
  at::Tensor weights;
  forward(x, key_mask, &weights);
  return weights;
}

}  // namespace performer
