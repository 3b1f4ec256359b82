#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data/alphabet.h"
#include "model/encoder.h"

using namespace performer;

TEST(AttentionMaps, RowsSumToOneAndMatchTheForwardPass) {
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    EncoderConfig c;
    c.kind = kind;
    c.layers = 3;
    c.heads = 2;
    c.d_model = 32;
    c.d_ff = 64;
    c.features = 32;
    c.dropout = 0;
    c.max_len = 64;
    Encoder model(c);
    model->eval();
    torch::NoGradGuard g;
    auto ids = Alphabet::encode("MKTAYIAKQRQISFVKSHFSRQ");
    at::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0);
    at::Tensor mask = torch::ones_like(t, torch::kBool);
    auto maps = model->attention_maps(t, mask, {0, 2});
    ASSERT_EQ(maps.size(), 2u);
    for (auto& m : maps) {
      ASSERT_EQ(m.sizes(), (std::vector<int64_t>{1, 2, t.size(1), t.size(1)}));
      EXPECT_LT((m.sum(-1) - 1).abs().max().item<double>(), 1e-5) << attention_kind_name(kind);
      EXPECT_GE(m.min().item<double>(), 0.0);
    }
    // Layer 0's map applied to its values reproduces the layer's attention output.
    auto layer0 = model->layers[0]->as<EncoderLayer>();
    at::Tensor x = layer0->norm1(model->embed(t) + model->positions(at::arange(t.size(1))).unsqueeze(0));
    at::Tensor v = layer0->attn->v_proj(x).view({1, t.size(1), 2, 16}).transpose(1, 2);
    at::Tensor via = layer0->attn->out_proj(at::matmul(maps[0], v).transpose(1, 2).reshape({1, t.size(1), 32}));
    EXPECT_LT((via - layer0->attn(x, mask)).abs().max().item<double>(), 1e-5) << attention_kind_name(kind);
    EXPECT_THROW(model->attention_maps(t, mask, {3}), std::exception);
  }
}
