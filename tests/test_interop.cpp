// Interoperability: safetensors files, HuggingFace EsmForMaskedLM folders in and out, checked against
// `transformers` itself (tests/hf_reference.py, run by PERFORMER_TEST_PYTHON; those tests skip without it).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/alphabet.h"
#include "interop/hf_esm.h"
#include "interop/safetensors.h"
#include "io/hdf5.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

// float32 logits of ours against transformers': the same weights, the rounding of float32 matmuls and
// LayerNorms of width <= 128 done in another order (measured 2e-7 for the imported random model, 1.4e-6
// for the trained and exported one). 1e-4 leaves room for other BLAS kernels and still catches any
// difference of formula (a GELU approximation, a missing scale, eps) by orders of magnitude.
constexpr double kLogitTolerance = 1e-4;

// The Python with transformers and safetensors (ctest sets PERFORMER_TEST_PYTHON), or "".
std::string reference_python() {
  const char* p = std::getenv("PERFORMER_TEST_PYTHON");
  if (!p || !*p || !fs::exists(p)) return "";
  if (run_command(std::string(p) + " -c 'import transformers, safetensors' >/dev/null 2>&1").status != 0) return "";
  return p;
}

#define NEED_TRANSFORMERS(python)                                                                             \
  const std::string python = reference_python();                                                             \
  if (python.empty())                                                                                        \
  GTEST_SKIP() << "no Python with transformers (PERFORMER_TEST_PYTHON; scripts/setup.sh sets it for TORCH=pip)"

CliRun reference(const std::string& python, const std::string& args) {
  return run_command("OMP_NUM_THREADS=2 " + python + " " + project_root() + "/tests/hf_reference.py " + args + " 2>&1");
}

// Our logits and hidden states on the reference's batch, in eval mode.
struct Ours {
  at::Tensor logits;
  std::vector<at::Tensor> states;  // 0 .. layers (the last after the final LayerNorm)
};
Ours run_ours(Encoder& model, const std::map<std::string, at::Tensor>& ref) {
  torch::NoGradGuard g;
  model->eval();
  const at::Tensor ids = ref.at("input_ids"), mask = ref.at("attention_mask").to(at::kBool);
  EncoderImpl::LayerStates states;
  for (int64_t k = 0; k <= model->config().layers; ++k) states.layers.push_back(k);
  const at::Tensor h = model->hidden(ids, mask, nullptr, &states);
  return {model->logits(h), states.states};
}

// Max |a - b| over the real (unpadded) positions.
double max_diff(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor keep = mask.to(at::kBool).unsqueeze(-1);
  return (a - b).abs().masked_fill(~keep, 0).max().item<double>();
}

// A tiny ESM-shaped run (rotary, ESM-2 head, token dropout, exact attention) trained `steps` steps.
RunConfig esm_run(const std::string& dir, int64_t steps) {
  return tiny_run_config(dir, {"model.kind=exact", "model.positions=rotary", "model.lm_head=esm",
                               "model.token_dropout=true", "model.dropout=0", "train.steps=" + std::to_string(steps),
                               "eval.every=0", "output.checkpoint_every=0"});
}

std::map<std::string, at::Tensor> params_of(Encoder& m) {
  std::map<std::string, at::Tensor> out;
  for (auto& p : m->named_parameters()) out[p.key()] = p.value().detach().clone();
  for (auto& b : m->named_buffers()) out[b.key()] = b.value().detach().clone();
  return out;
}

}  // namespace

TEST(Safetensors, EveryDtypeRoundTripsBitwiseAndReadsBackItsHeader) {
  TempDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f64", at::randn({3, 2}, at::kDouble)}, {"f32", at::randn({4, 5})},
      {"f16", at::randn({7}).to(at::kHalf)},  {"bf16", at::randn({2, 3, 2}).to(at::kBFloat16)},
      {"i64", at::arange(-5, 5, at::kLong)},   {"i32", at::arange(9, at::kInt).view({3, 3})},
      {"i8", at::arange(-3, 3, at::kChar)},    {"u8", at::arange(200, 206, at::kLong).to(at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kLong).to(at::kBool)}, {"empty", at::zeros({0, 4})},
      {"scalar", at::tensor(2.5)},
  };
  const std::string path = dir.file("t.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}});
  const auto back = read_safetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(back.at(name).sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(back.at(name), t)) << name;
  }
  const SafetensorsIndex index = read_safetensors_index(path);
  EXPECT_EQ(index.metadata.at("format"), "pt");
  EXPECT_EQ(index.data_start % 8, 0u);
  EXPECT_EQ(index.tensors.at("bf16").dtype, "BF16");
}

TEST(Safetensors, DamagedFilesAreOneLineErrorsNamingTheFileAndTensor) {
  TempDir dir;
  const std::string good = dir.file("good.safetensors");
  write_safetensors(good, {{"a", at::randn({4, 4})}, {"b", at::randn({8})}});
  const std::string bytes = read_text(good);
  auto header_of = [&](const std::string& json) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
    return out + json;
  };
  auto expect_error = [&](const std::string& name, const std::string& content, const std::string& words) {
    const std::string path = dir.file(name);
    write_file(path, content);
    try {
      read_safetensors(path);
      ADD_FAILURE() << name << " was read";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(words), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  expect_error("truncated.safetensors", bytes.substr(0, bytes.size() - 10), "outside");
  expect_error("short.safetensors", "abc", "not a safetensors file");
  expect_error("huge-header.safetensors", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "header length");
  expect_error("not-json.safetensors", header_of("{nope"), "not JSON");
  expect_error("dtype.safetensors", header_of(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})") + "x",
               "tensor 'a': dtype F8");
  expect_error("shape.safetensors", header_of(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})") + "12345678",
               "do not hold its shape");
  expect_error("overlap.safetensors",
               header_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})") +
                   "123456789012",
               "overlap");
  expect_error("overflow.safetensors",
               header_of(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})") + "12345678",
               "more bytes than any file");
  // An overflow followed by a 0 must not pass as 0 bytes; nor may a dimension beyond int64.
  expect_error("overflow-then-zero.safetensors",
               header_of(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8,0],"data_offsets":[0,0]}})"),
               "more bytes than any file");
  expect_error("huge-dim.safetensors",
               header_of(R"({"a":{"dtype":"F32","shape":[18446744073709551615,0],"data_offsets":[0,0]}})"),
               "shape holds a dimension");
}

TEST(HfEsm, ImportMatchesTransformersLogitsAndHiddenStates) {
  NEED_TRANSFORMERS(python);
  TempDir dir;
  const std::string hf = dir.file("hf"), ref = dir.file("ref.safetensors"), ckpt = dir.file("imported.h5");
  const CliRun made = reference(python, "make " + hf + " --fasta " + data_path("real_excerpt.fasta") + " --out " + ref);
  ASSERT_EQ(made.status, 0) << made.out;
  // transformers 5.x writes the gamma/beta and one wildcard inv_freq form: the import must take it.
  const CliRun imported = run_performer("import --hf " + hf + " --out " + ckpt);
  ASSERT_EQ(imported.status, 0) << imported.out;
  RunConfig config;
  Encoder model = model_from_checkpoint(ckpt, config, torch::kCPU);
  EXPECT_EQ(config.model.kind, AttentionKind::kExact);
  EXPECT_TRUE(config.model.token_dropout);
  const auto r = read_safetensors(ref);
  const Ours ours = run_ours(model, r);
  const at::Tensor mask = r.at("attention_mask");
  // Proteins of three lengths in one padded batch, <mask> tokens in half of them (token dropout).
  EXPECT_GT(mask.sum(1).max().item<int64_t>(), mask.sum(1).min().item<int64_t>());
  EXPECT_GT((r.at("input_ids") == Alphabet::kMask).sum().item<int64_t>(), 5);
  const double d = max_diff(ours.logits, r.at("logits"), mask);
  std::printf("imported from transformers: max |logit difference| %.3g\n", d);
  EXPECT_LE(d, kLogitTolerance) << "logits";
  EXPECT_GT(r.at("logits").abs().max().item<double>(), 0.5);  // not a vacuous comparison
  for (int64_t k = 0; k < config.model.layers; ++k)
    EXPECT_LE(max_diff(ours.states[static_cast<size_t>(k)], r.at("hidden_" + std::to_string(k)), mask), kLogitTolerance)
        << "hidden state " << k;
  EXPECT_LE(max_diff(ours.states.back(), r.at("last_hidden_state"), mask), kLogitTolerance) << "last hidden state";
  // The same weights under FAVOR-softmax (the attention of the user's choice): an estimate of the same
  // model, so close to but not equal to exact attention's logits.
  const CliRun favor = run_performer("import --hf " + hf + " --out " + dir.file("favor.h5") +
                                     " --set model.kind=favor-softmax --set model.features=256");
  ASSERT_EQ(favor.status, 0) << favor.out;
  RunConfig fc;
  Encoder fm = model_from_checkpoint(dir.file("favor.h5"), fc, torch::kCPU);
  EXPECT_EQ(fc.model.kind, AttentionKind::kFavorSoftmax);
  const double df = max_diff(run_ours(fm, r).logits, r.at("logits"), mask);
  std::printf("the same weights under FAVOR-softmax m 256: max |logit difference| %.3g\n", df);
  EXPECT_GT(df, 10 * std::max(d, 1e-7));  // well above the float noise of the exact comparison
  EXPECT_LT(df, 0.5);
}

TEST(HfEsm, ExportedModelRunsInTransformersWithOurLogitsAndTokenIds) {
  NEED_TRANSFORMERS(python);
  TempDir dir;
  TrainOptions o;
  o.progress_bar = false;
  const RunConfig c = esm_run(dir.path(), 30);
  train(c, o);
  const std::string ckpt = checkpoint_path(dir.path(), 30), hf = dir.file("hf"), ref = dir.file("ref.safetensors");
  const CliRun exported = run_performer("export --checkpoint " + ckpt + " --format hf --out " + hf);
  ASSERT_EQ(exported.status, 0) << exported.out;
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                        "special_tokens_map.json", "README.md"})
    EXPECT_TRUE(fs::exists(hf + "/" + f)) << f;
  // The hub form: per-layer inv_freq, LayerNorm weight/bias.
  const SafetensorsIndex index = read_safetensors_index(hf + "/model.safetensors");
  EXPECT_TRUE(index.tensors.count("esm.encoder.layer.1.attention.self.rotary_embeddings.inv_freq"));
  EXPECT_TRUE(index.tensors.count("esm.encoder.layer.0.LayerNorm.weight"));
  const CliRun scored = reference(python, "score " + hf + " --fasta " + data_path("real_excerpt.fasta") + " --out " + ref);
  ASSERT_EQ(scored.status, 0) << scored.out;
  const auto r = read_safetensors(ref);
  // EsmTokenizer's ids are ours, protein by protein.
  const auto records = read_all(data_path("real_excerpt.fasta"));
  const at::Tensor ids = r.at("input_ids"), mask = r.at("attention_mask");
  for (int64_t b = 0; b < ids.size(0); ++b) {
    const int64_t n = mask[b].sum().item<int64_t>();
    std::vector<Token> theirs;
    for (int64_t i = 0; i < n; ++i) theirs.push_back(static_cast<Token>(ids[b][i].item<int64_t>()));
    EXPECT_EQ(theirs.front(), Alphabet::kCls);
    EXPECT_EQ(theirs.back(), Alphabet::kEos);
    // Unmasked proteins (odd rows) are the cropped FASTA records exactly.
    if (b % 2 == 1) {
      const std::string residues = Alphabet::decode(theirs.data(), theirs.size(), /*strip_specials=*/true);
      EXPECT_EQ(Alphabet::encode(residues), theirs) << "protein " << b;
      EXPECT_EQ(records[static_cast<size_t>(b)].residues.substr(0, residues.size()), residues);
    }
  }
  RunConfig rc;
  Encoder model = model_from_checkpoint(ckpt, rc, torch::kCPU);
  const double d = max_diff(run_ours(model, r).logits, r.at("logits"), mask);
  std::printf("exported to transformers: max |logit difference| %.3g\n", d);
  EXPECT_LE(d, kLogitTolerance);
}

TEST(HfEsm, ExportImportRoundTripIsBitwiseAndShardsImportTheSame) {
  TempDir dir;
  TrainOptions o;
  o.progress_bar = false;
  train(esm_run(dir.path(), 3), o);
  const std::string ckpt = checkpoint_path(dir.path(), 3), hf = dir.file("hf");
  RunConfig c;
  Encoder model = model_from_checkpoint(ckpt, c, torch::kCPU);
  {  // a contact regression that is not all zeros, so that its round trip is seen
    torch::NoGradGuard g;
    model->contact_weight.copy_(at::randn_like(model->contact_weight));
    model->contact_bias.fill_(0.25);
  }
  fs::create_directories(hf);
  write_hf_esm(hf, model, ckpt);
  const HfEsmFolder folder = read_hf_esm(hf);
  Encoder back(folder.model);
  load_hf_weights(back, folder.weights, hf);
  const auto want = params_of(model), got = params_of(back);
  for (const auto& [name, t] : want)
    if (name.find("attn.") == std::string::npos || name.find("proj.") != std::string::npos) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_TRUE(at::equal(got.at(name), t)) << name;
    }
  // The same tensors in two shards with an index, as large hub models are stored.
  const std::string sharded = dir.file("sharded");
  fs::create_directories(sharded);
  fs::copy_file(hf + "/config.json", sharded + "/config.json");
  auto all = read_safetensors(hf + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> a, b;
  nlohmann::json map = nlohmann::json::object();
  size_t i = 0;
  for (auto& [name, t] : all) {
    const bool first = i++ % 2 == 0;
    (first ? a : b).emplace_back(name, t);
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(sharded + "/model-00001-of-00002.safetensors", a);
  write_safetensors(sharded + "/model-00002-of-00002.safetensors", b);
  write_file(sharded + "/model.safetensors.index.json", nlohmann::json{{"metadata", {}}, {"weight_map", map}}.dump());
  const HfEsmFolder from_shards = read_hf_esm(sharded);
  ASSERT_EQ(from_shards.weights.size(), folder.weights.size());
  for (const auto& [name, t] : folder.weights) EXPECT_TRUE(at::equal(from_shards.weights.at(name), t)) << name;
}

TEST(HfEsm, RefusalsAreOneLineErrorsNamingTheKeyAndWriteNothing) {
  TempDir dir;
  TrainOptions o;
  o.progress_bar = false;
  train(esm_run(dir.path(), 2), o);
  const std::string ckpt = checkpoint_path(dir.path(), 2), hf = dir.file("hf");
  ASSERT_EQ(run_performer("export --checkpoint " + ckpt + " --out " + hf).status, 0);
  // A variant of the exported folder with one change; import must refuse it with `words` and write nothing.
  int n = 0;
  auto refused = [&](const std::function<void(const std::string&)>& change, const std::string& words) {
    const std::string variant = dir.file("variant" + std::to_string(n++)), out = variant + ".h5";
    fs::copy(hf, variant, fs::copy_options::recursive);
    change(variant);
    const CliRun r = run_performer("import --hf " + variant + " --out " + out);
    EXPECT_NE(r.status, 0) << words;
    EXPECT_NE(r.out.find(words), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_FALSE(fs::exists(out)) << words;
  };
  auto edit_config = [](const std::string& key, const nlohmann::json& value) {
    return [key, value](const std::string& d) {
      nlohmann::json j = nlohmann::json::parse(read_text(d + "/config.json"));
      j[key] = value;
      write_file(d + "/config.json", j.dump());
    };
  };
  auto edit_tensors = [](const std::function<void(std::map<std::string, at::Tensor>&)>& f) {
    return [f](const std::string& d) {
      auto t = read_safetensors(d + "/model.safetensors");
      f(t);
      write_safetensors(d + "/model.safetensors", {t.begin(), t.end()});
    };
  };
  refused(edit_config("position_embedding_type", "absolute"), "position_embedding_type: 'absolute' is not supported");
  refused(edit_config("emb_layer_norm_before", true), "emb_layer_norm_before");
  refused(edit_config("vocab_size", 64), "vocab_size");
  refused([](const std::string& d) {
            nlohmann::json j = nlohmann::json::parse(read_text(d + "/config.json"));
            j.erase("layer_norm_eps");
            write_file(d + "/config.json", j.dump());
          },
          "layer_norm_eps: missing");
  refused(edit_config("layer_norm_eps", 1e-12), "layer_norm_eps");
  refused(edit_config("is_folding_model", true), "is_folding_model");
  refused(edit_config("rope_theta", 500000.0), "rope_theta");
  refused(edit_config("tie_word_embeddings", false), "tie_word_embeddings");
  refused(edit_config("num_hidden_layers", 1000000000), "num_hidden_layers 1000000000");
  refused(edit_config("hidden_size", 1000000), "has shape [33, 64] but config.json says [33, 1000000]");
  refused(edit_config("architectures", nlohmann::json::array({"EsmModel"})), "architectures");
  refused(edit_tensors([](auto& t) { t.erase("lm_head.dense.weight"); }), "tensor 'lm_head.dense.weight' is missing");
  refused(edit_tensors([](auto& t) { t["esm.pooler.dense.weight"] = at::zeros({2, 2}); }),
          "tensor 'esm.pooler.dense.weight' has no place");
  refused(edit_tensors([](auto& t) { t["esm.encoder.layer.0.intermediate.dense.weight"] = at::zeros({3, 64}); }),
          "'esm.encoder.layer.0.intermediate.dense.weight' has shape [3, 64] but config.json says [128, 64]");
  refused(edit_tensors([](auto& t) {
            auto& inv = t["esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq"];
            inv = inv * 1.5;
          }),
          "rotary base");
  refused(edit_tensors([](auto& t) { t["lm_head.decoder.weight"] = at::zeros_like(t["esm.embeddings.word_embeddings.weight"]); }),
          "lm_head.decoder.weight' differs");
  refused([](const std::string& d) {
            fs::remove(d + "/model.safetensors");
            write_file(d + "/pytorch_model.bin", "pickle");
          },
          "pytorch_model.bin only");
  refused([](const std::string& d) {  // a shard index pointing outside the folder
            fs::rename(d + "/model.safetensors", d + "/shard.safetensors");
            nlohmann::json map = nlohmann::json::object();
            for (const auto& [name, e] : read_safetensors_index(d + "/shard.safetensors").tensors) map[name] = "shard.safetensors";
            map["esm.embeddings.word_embeddings.weight"] = "../elsewhere.safetensors";
            write_file(d + "/model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
          },
          "names a file outside the folder");
  refused([](const std::string& d) {  // a tensor in a shard that the index does not list there
            fs::rename(d + "/model.safetensors", d + "/shard.safetensors");
            nlohmann::json map = nlohmann::json::object();
            for (const auto& [name, e] : read_safetensors_index(d + "/shard.safetensors").tensors) map[name] = "shard.safetensors";
            map.erase("lm_head.bias");
            write_file(d + "/model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
          },
          "tensor 'lm_head.bias' is not listed");
  // Export of a model without an EsmForMaskedLM equivalent: the setting is named, no folder appears.
  TempDir tied;
  train(tiny_run_config(tied.path(), {"train.steps=1", "eval.every=0"}), o);
  const CliRun r = run_performer("export --checkpoint " + checkpoint_path(tied.path(), 1) + " --out " + dir.file("no"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("model.lm_head is tied"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("no")));
  // An existing output is not replaced without --force; with --force, never when it holds the checkpoint.
  const CliRun again = run_performer("export --checkpoint " + ckpt + " --out " + hf);
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
  const CliRun own = run_performer("export --checkpoint " + ckpt + " --out " + dir.path() + "/ --force");
  EXPECT_NE(own.status, 0);
  EXPECT_NE(own.out.find("which --force would delete"), std::string::npos) << own.out;
  EXPECT_TRUE(fs::exists(ckpt));
  const CliRun itself = run_performer("export --checkpoint " + ckpt + " --out " + ckpt + " --force");
  EXPECT_NE(itself.status, 0);
  EXPECT_TRUE(fs::exists(ckpt));
}

TEST(HfEsm, TokenDropoutZeroesMaskEmbeddingsAndRescalesByTheMaskedFraction) {
  // A naive reference of ESM-2's token dropout on the embedding output (hidden state 0), in double.
  EncoderConfig c;
  c.kind = AttentionKind::kExact;
  c.layers = 1, c.heads = 2, c.d_model = 8, c.d_ff = 16, c.dropout = 0;
  c.positions = PositionKind::kRotary, c.lm_head = LmHead::kEsm, c.token_dropout = true;
  Encoder model(c);
  model->eval();
  const at::Tensor tokens = at::tensor({0, 5, 32, 7, 32, 2, 1, 1, 0, 6, 7, 8, 9, 10, 11, 2}, at::kLong).view({2, 8});
  const at::Tensor mask = tokens != static_cast<int64_t>(Alphabet::kPad);
  EncoderImpl::LayerStates states{{0}, {}};
  torch::NoGradGuard g;
  model->hidden(tokens, mask, nullptr, &states);
  const at::Tensor e = model->embed->weight.to(at::kDouble);
  for (int64_t b = 0; b < 2; ++b) {
    const double real = mask[b].sum().item<double>(), masked = (tokens[b] == 32).sum().item<double>();
    const double scale = (1 - 0.15 * 0.8) / (1 - masked / real);
    for (int64_t i = 0; i < 8; ++i) {
      if (!mask[b][i].item<bool>()) continue;
      const int64_t t = tokens[b][i].item<int64_t>();
      const at::Tensor want = t == 32 ? at::zeros({8}, at::kDouble) : e[t] * scale;
      EXPECT_TRUE(at::allclose(states.states[0][b][i].to(at::kDouble), want, 1e-6, 1e-7)) << b << "," << i;
    }
  }
}

TEST(Train, InitStartsANewRunFromACheckpointsWeightsUnderAnotherAttention) {
  // An exact-attention ESM-shaped model fine-tuned with FAVOR-softmax: train --init takes its weights
  // (step 0, a fresh optimizer; the random features drawn anew), and the run trains from there.
  TempDir src, dst;
  TrainOptions o;
  o.progress_bar = false;
  train(esm_run(src.path(), 5), o);
  const std::string ckpt = checkpoint_path(src.path(), 5);
  RunConfig c = esm_run(dst.path(), 4);
  c.model.kind = AttentionKind::kFavorSoftmax;
  c.model.features = 16;
  TrainOptions init = o;
  init.init = ckpt;
  init.stop_after = 0;
  Encoder start(c.model);
  load_model_weights(ckpt, start);
  RunConfig sc;
  Encoder trained = model_from_checkpoint(ckpt, sc, torch::kCPU);
  EXPECT_TRUE(at::equal(start->embed->weight, trained->embed->weight));
  EXPECT_TRUE(at::equal(start->lm_dense->weight, trained->lm_dense->weight));
  const TrainResult r = train(c, init);
  EXPECT_EQ(r.step, 4);
  EXPECT_NE(read_text(dst.file("train.log")).find("initialized from " + ckpt), std::string::npos);
  // A missing --init file is refused before anything starts; so is --init with an explicit --resume.
  TempDir none;
  init.init = none.file("missing.h5");
  EXPECT_THROW(train(esm_run(none.path(), 1), init), Error);
  TrainOptions both = o;
  both.init = ckpt;
  both.resume = ckpt;
  EXPECT_THROW(train(esm_run(none.path(), 1), both), Error);
}

// The contact head of an imported ESM-2 model (`contacts predict --regression checkpoint`) gives the maps
// of transformers' EsmModel.predict_contacts: the same attention, symmetrization, APC and regression.
TEST(HfEsm, ImportedContactHeadPredictsTransformersContacts) {
  NEED_TRANSFORMERS(python);
  TempDir dir;
  const std::string hf = dir.file("hf"), ckpt = dir.file("imported.h5"), fasta = dir.file("p.fasta");
  write_file(fasta, ">a\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEK\n>b\nGSHMSLFDFFKNKGSAA\n"
                    ">c\nMADEEKLPPGWEKRMSRSSGRVYYFNHITNASQWERPSG\n");
  ASSERT_EQ(reference(python, "make " + hf + " --fasta " + fasta + " --out " + dir.file("unused.safetensors")).status, 0);
  const CliRun ref = reference(python, "contacts " + hf + " --fasta " + fasta + " --proteins 3 --out " + dir.file("ref.safetensors"));
  ASSERT_EQ(ref.status, 0) << ref.out;
  ASSERT_EQ(run_performer("import --hf " + hf + " --out " + ckpt).status, 0);
  const CliRun ours = run_performer("contacts predict --checkpoint " + ckpt + " --regression checkpoint --input " + fasta +
                                    " --out " + dir.file("pred.h5") + " --png 0 --device cpu");
  ASSERT_EQ(ours.status, 0) << ours.out;
  const auto r = read_safetensors(dir.file("ref.safetensors"));
  h5::Handle f = h5::open_file(dir.file("pred.h5"));
  int k = 0;
  for (const char* name : {"a", "b", "c"}) {
    const at::Tensor theirs = r.at("contacts_" + std::to_string(k++));
    const std::vector<float> m = h5::read_array<float>(f, std::string("proteins/") + name + "/contacts");
    const at::Tensor mine = torch::tensor(m).view(theirs.sizes());
    const double diff = (mine - theirs).abs().max().item<double>();
    std::printf("%s (%lld residues): max |p_ours - p_transformers| = %.2e\n", name,
                static_cast<long long>(theirs.size(0)), diff);
    EXPECT_LT(diff, 1e-5) << name;
    EXPECT_GT(theirs.std().item<double>(), 1e-3) << "the reference maps should not be constant";
  }
}
