#include "interop/hf_esm.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/alphabet.h"
#include "interop/safetensors.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace performer {

namespace {

constexpr double kEsmLayerNormEps = 1e-5;  // torch::nn::LayerNorm's default, which our model uses
constexpr double kRotaryBase = 10000.0;
// A stored inv_freq must be the float32 formula (to its rounding): our rotary computes that formula, so a
// different one (another base, or one saved in half precision, which transformers would use as stored)
// would give other angles at long positions.
constexpr double kInvFreqRelTol = 1e-6;
// What a config value is quoted as in a message: its JSON, cut short.
std::string quote(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}
const char* const kPrefix = "esm.encoder.layer.";

// One tensor of an ESM-shaped model: our name, HuggingFace's (hub form), and its shape.
struct MappedTensor {
  std::string ours, theirs;
  std::vector<int64_t> shape;
};
constexpr int64_t kTensorsPerLayer = 16;

// Every tensor of an ESM-shaped model of this config.
std::vector<MappedTensor> key_map(const EncoderConfig& c) {
  const int64_t D = c.d_model, F = c.d_ff, V = Alphabet::kSize;
  std::vector<MappedTensor> m = {
      {"embed.weight", "esm.embeddings.word_embeddings.weight", {V, D}},
      {"final_norm.weight", "esm.encoder.emb_layer_norm_after.weight", {D}},
      {"final_norm.bias", "esm.encoder.emb_layer_norm_after.bias", {D}},
      {"lm_head.dense.weight", "lm_head.dense.weight", {D, D}},
      {"lm_head.dense.bias", "lm_head.dense.bias", {D}},
      {"lm_head.norm.weight", "lm_head.layer_norm.weight", {D}},
      {"lm_head.norm.bias", "lm_head.layer_norm.bias", {D}},
      {"lm_bias", "lm_head.bias", {V}},
      {"contact_regression_weight", "esm.contact_head.regression.weight", {1, c.layers * c.heads}},
      {"contact_regression_bias", "esm.contact_head.regression.bias", {1}},
  };
  struct PerLayer {
    const char *ours, *theirs;
    int64_t out, in;  // weight [out, in] (in 0: a LayerNorm, weight [out]); bias [out]
  };
  const PerLayer per_layer[] = {
      {"norm1", "attention.LayerNorm", D, 0},          {"attn.q_proj", "attention.self.query", D, D},
      {"attn.k_proj", "attention.self.key", D, D},     {"attn.v_proj", "attention.self.value", D, D},
      {"attn.out_proj", "attention.output.dense", D, D}, {"norm2", "LayerNorm", D, 0},
      {"ff1", "intermediate.dense", F, D},             {"ff2", "output.dense", D, F},
  };
  for (int64_t i = 0; i < c.layers; ++i)
    for (const PerLayer& t : per_layer) {
      const std::string ours = "layers." + std::to_string(i) + "." + t.ours, theirs = kPrefix + std::to_string(i) + "." + t.theirs;
      m.push_back({ours + ".weight", theirs + ".weight", t.in ? std::vector<int64_t>{t.out, t.in} : std::vector<int64_t>{t.out}});
      m.push_back({ours + ".bias", theirs + ".bias", {t.out}});
    }
  return m;
}

std::string shape_text(c10::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

// inv_freq of rotary positions over a head of d: 1 / base^(2j / d), j = 0 .. d/2 - 1, as float32 (the way
// transformers computes it).
at::Tensor rotary_inv_freq(int64_t d_head) {
  return 1.0 / at::pow(kRotaryBase, at::arange(0, d_head, 2, at::kLong).to(at::kFloat) / static_cast<double>(d_head));
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// transformers 5.x writes LayerNorms' parameters as gamma / beta: back to weight / bias.
std::string hub_name(const std::string& name) {
  if (ends_with(name, ".gamma")) return name.substr(0, name.size() - 6) + ".weight";
  if (ends_with(name, ".beta")) return name.substr(0, name.size() - 5) + ".bias";
  return name;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

// config.json -> our model's shape; refusals name the key.
EncoderConfig model_from_config(const json& c, const std::string& path) {
  auto fail = [&](const std::string& key, const std::string& what) { throw Error(path + ": " + key + ": " + what); };
  auto get_int = [&](const char* key, int64_t fallback, bool required) -> int64_t {
    if (!c.contains(key)) {
      if (required) fail(key, "missing");
      return fallback;
    }
    if (!c[key].is_number_integer() || c[key].get<int64_t>() < 1) fail(key, "expected a positive integer, got " + quote(c[key]));
    return c[key].get<int64_t>();
  };
  auto get_string = [&](const char* key, const std::string& fallback) {
    if (!c.contains(key) || c[key].is_null()) return fallback;
    if (!c[key].is_string()) fail(key, "expected a string, got " + quote(c[key]));
    return c[key].get<std::string>();
  };
  auto get_bool = [&](const char* key, bool fallback) {
    if (!c.contains(key) || c[key].is_null()) return fallback;
    if (!c[key].is_boolean()) fail(key, "expected true or false, got " + quote(c[key]));
    return c[key].get<bool>();
  };
  if (!c.is_object()) throw Error(path + ": not a JSON object");
  if (get_string("model_type", "") != "esm") fail("model_type", "'" + get_string("model_type", "") + "' is not esm");
  if (c.contains("architectures") && c["architectures"].is_array()) {
    bool mlm = false;
    for (const auto& a : c["architectures"]) mlm = mlm || (a.is_string() && a.get<std::string>() == "EsmForMaskedLM");
    if (!mlm) fail("architectures", quote(c["architectures"]) + ": import needs EsmForMaskedLM (a model with its LM head)");
  }
  if (get_bool("is_folding_model", false)) fail("is_folding_model", "ESMFold is not supported");
  if (get_bool("is_decoder", false) || get_bool("add_cross_attention", false))
    fail("is_decoder", "a decoder or cross-attention ESM is not supported");
  if (get_int("vocab_size", 33, true) != Alphabet::kSize)
    fail("vocab_size", std::to_string(c["vocab_size"].get<int64_t>()) + ": only ESM-2's 33-token vocabulary is supported");
  for (auto [key, want] : {std::pair<const char*, int64_t>{"pad_token_id", Alphabet::kPad}, {"mask_token_id", Alphabet::kMask}})
    if (c.contains(key) && !c[key].is_null() && c[key] != want)
      fail(key, quote(c[key]) + ": ESM-2's vocabulary has it at " + std::to_string(want));
  const std::string positions = get_string("position_embedding_type", "absolute");
  if (positions != "rotary")
    fail("position_embedding_type", "'" + positions + "' is not supported: only rotary positions (ESM-2)");
  if (get_bool("emb_layer_norm_before", false))
    fail("emb_layer_norm_before", "true (ESM-1b's LayerNorm on the embeddings) is not supported");
  // hidden_act is not read: transformers' ESM applies the erf GELU whatever it says, and so do we.
  if (!c.contains("layer_norm_eps"))
    fail("layer_norm_eps", "missing (transformers would take 1e-12); only 1e-05, ESM-2's, is supported");
  if (!c["layer_norm_eps"].is_number() || std::abs(c["layer_norm_eps"].get<double>() - kEsmLayerNormEps) > 1e-12)
    fail("layer_norm_eps", quote(c["layer_norm_eps"]) + ": only 1e-05 (ESM-2's) is supported");
  if (c.contains("rope_theta") && !c["rope_theta"].is_null() &&
      (!c["rope_theta"].is_number() || c["rope_theta"].get<double>() != kRotaryBase))
    fail("rope_theta", quote(c["rope_theta"]) + ": only ESM-2's rotary base 10000 is supported");
  if (!get_bool("tie_word_embeddings", true))
    fail("tie_word_embeddings", "false: only a decoder tied to the word embeddings (ESM-2's) is supported");
  EncoderConfig m;
  m.kind = AttentionKind::kExact;
  m.positions = PositionKind::kRotary;
  m.lm_head = LmHead::kEsm;
  m.token_dropout = get_bool("token_dropout", false);
  m.layers = get_int("num_hidden_layers", 0, true);
  m.d_model = get_int("hidden_size", 0, true);
  m.heads = get_int("num_attention_heads", 0, true);
  m.d_ff = get_int("intermediate_size", 0, true);
  m.max_len = get_int("max_position_embeddings", 1026, false);
  if (m.d_model % m.heads != 0 || (m.d_model / m.heads) % 2 != 0)
    fail("num_attention_heads", "hidden_size " + std::to_string(m.d_model) + " / " + std::to_string(m.heads) +
                                    " heads is not an even head size (rotary needs one)");
  if (c.contains("hidden_dropout_prob") && c["hidden_dropout_prob"].is_number()) {
    const double p = c["hidden_dropout_prob"].get<double>();
    if (p < 0 || p >= 1) fail("hidden_dropout_prob", quote(c["hidden_dropout_prob"]) + ": expected [0, 1)");
    m.dropout = p;
  }
  return m;
}

// Every tensor of the folder's safetensors file(s), by its name in the file.
std::map<std::string, at::Tensor> read_weights(const std::string& dir) {
  const fs::path d(dir);
  const fs::path single = d / "model.safetensors", index = d / "model.safetensors.index.json";
  if (fs::exists(single)) return read_safetensors(single.string());
  if (fs::exists(index)) {
    const json j = read_json(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": weight_map: missing or not an object");
    std::map<std::string, std::set<std::string>> by_file;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw Error(index.string() + ": weight_map: '" + name + "' does not name a file");
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw Error(index.string() + ": weight_map: '" + name + "' names a file outside the folder: " + f);
      by_file[f].insert(name);
    }
    std::map<std::string, at::Tensor> all;
    for (const auto& [file, names] : by_file) {
      const std::string path = (d / file).string();
      if (!fs::exists(path)) throw Error(index.string() + ": shard " + file + " is missing");
      for (auto& [name, t] : read_safetensors(path)) {
        if (!names.count(name)) throw Error(path + ": tensor '" + name + "' is not listed for this shard in " + index.filename().string());
        if (!all.emplace(name, t).second) throw Error(path + ": tensor '" + name + "' is in two shards");
      }
      for (const auto& name : names)
        if (!all.count(name)) throw Error(index.string() + ": tensor '" + name + "' is listed in " + file + " but not there");
    }
    return all;
  }
  for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json"})
    if (fs::exists(d / pickle))
      throw Error(dir + ": has " + pickle + " only, a Python pickle that performer does not read; convert it to "
                  "safetensors first: python -c \"from transformers import AutoModelForMaskedLM as M; "
                  "M.from_pretrained('" + dir + "').save_pretrained('" + dir + "-safetensors')\"");
  throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
}

}  // namespace

HfEsmFolder read_hf_esm(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a folder (expected a HuggingFace model folder)");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) throw Error(dir + ": no config.json (expected a HuggingFace model folder)");
  HfEsmFolder out;
  out.model = model_from_config(read_json(config_path), config_path);
  std::map<std::string, at::Tensor> stored = read_weights(dir);
  const std::string where = dir + ": ";
  // Names to the hub form; float tensors widened to float32.
  std::map<std::string, std::pair<std::string, at::Tensor>> hub;  // hub name -> (name in the file, tensor)
  std::set<std::string> narrow;
  for (auto& [name, t] : stored) {
    if (t.is_floating_point() && t.scalar_type() != at::kFloat) narrow.insert(std::string(c10::toString(t.scalar_type())));
    if (!hub.emplace(hub_name(name), std::make_pair(name, t)).second)
      throw Error(where + "tensor '" + name + "' is stored under two names");
  }
  if (!narrow.empty()) {
    std::string types;
    for (const auto& n : narrow) types += (types.empty() ? "" : ", ") + n;
    out.notes.push_back("weights stored in " + types + ", widened to float32");
  }
  auto take = [&](const std::string& name) -> at::Tensor {
    auto it = hub.find(name);
    if (it == hub.end()) return {};
    at::Tensor t = it->second.second;
    hub.erase(it);
    return t;
  };
  // Each layer has 16 tensors: a config asking for more layers than the files hold is refused before the
  // map of names is built (a crafted num_hidden_layers must not cost memory or time).
  if (out.model.layers > static_cast<int64_t>(stored.size()) / kTensorsPerLayer)
    throw Error(config_path + ": num_hidden_layers " + std::to_string(out.model.layers) + ", but the weights hold " +
                std::to_string(stored.size()) + " tensors");
  // Every shape is checked against config.json here, before a model of that config is built.
  for (const MappedTensor& m : key_map(out.model)) {
    at::Tensor t = take(m.theirs);
    if (!t.defined()) throw Error(where + "tensor '" + m.theirs + "' is missing");
    if (!t.is_floating_point()) throw Error(where + "tensor '" + m.theirs + "' is not floating point");
    if (t.sizes() != c10::IntArrayRef(m.shape))
      throw Error(where + "tensor '" + m.theirs + "' has shape " + shape_text(t.sizes()) + " but config.json says " +
                  shape_text(m.shape));
    out.weights[m.ours] = t.to(at::kFloat);
  }
  // The tied decoder, when stored, must be the embedding.
  if (at::Tensor dec = take("lm_head.decoder.weight"); dec.defined()) {
    const at::Tensor& e = out.weights["embed.weight"];
    if (dec.sizes() != e.sizes() || !at::equal(dec.to(at::kFloat), e))
      throw Error(where + "tensor 'lm_head.decoder.weight' differs from the word embeddings: only a decoder tied to "
                  "them (ESM-2's) is supported");
  }
  take("esm.embeddings.position_ids");  // a buffer older transformers saved; positions are rotary here
  // Rotary inv_freq, wherever this folder keeps it: it must equal the formula we compute it with.
  const int64_t d_head = out.model.d_model / out.model.heads;
  const at::Tensor want = rotary_inv_freq(d_head);
  std::vector<std::string> inv;
  for (const auto& [name, entry] : hub)
    if (ends_with(name, "rotary_embeddings.inv_freq")) inv.push_back(name);
  for (const auto& name : inv) {
    const at::Tensor t = take(name).to(at::kFloat);
    if (t.sizes() != want.sizes() || !at::allclose(t, want, kInvFreqRelTol, 0))
      throw Error(where + "tensor '" + name + "' is not 1 / 10000^(2j / " + std::to_string(d_head) +
                  ") in float32: a rotary base other than ESM-2's, or one stored in half precision, is not supported");
  }
  if (inv.empty()) out.notes.push_back("no rotary inv_freq stored: computed as 1 / 10000^(2j / d_head)");
  if (!hub.empty()) {
    const std::string name = hub.begin()->second.first;
    throw Error(where + "tensor '" + name + "' has no place in an ESM-2 EsmForMaskedLM of " +
                std::to_string(out.model.layers) + " layers" +
                (hub.size() > 1 ? " (and " + std::to_string(hub.size() - 1) + " more)" : ""));
  }
  return out;
}

void load_hf_weights(Encoder& model, const std::map<std::string, at::Tensor>& weights, const std::string& origin) {
  torch::NoGradGuard g;
  std::set<std::string> used;
  auto copy = [&](const std::string& name, at::Tensor& target) {
    auto it = weights.find(name);
    if (it == weights.end()) throw Error(origin + ": no tensor for '" + name + "'");
    if (it->second.sizes() != target.sizes()) {
      std::ostringstream o;
      o << origin << ": '" << name << "' has shape " << it->second.sizes() << " but the model expects " << target.sizes();
      throw Error(o.str());
    }
    target.copy_(it->second);
    used.insert(name);
  };
  for (auto& p : model->named_parameters()) copy(p.key(), p.value());
  for (auto& b : model->named_buffers())
    if (weights.count(b.key()) || b.key().rfind("contact_regression_", 0) == 0) copy(b.key(), b.value());
  for (const auto& [name, t] : weights)
    if (!used.count(name)) throw Error(origin + ": tensor '" + name + "' has no place in this model");
}

std::string hf_export_blocker(const EncoderConfig& c) {
  if (c.lm_head != LmHead::kEsm)
    return "model.lm_head is " + lm_head_name(c.lm_head) +
           ": EsmForMaskedLM has ESM-2's LM head (dense, GELU, LayerNorm); train with model.lm_head: esm";
  if (c.positions != PositionKind::kRotary)
    return "model.positions is " + position_kind_name(c.positions) +
           ": ESM-2's EsmForMaskedLM uses rotary positions; train with model.positions: rotary";
  if (c.causal) return "model.causal is true: EsmForMaskedLM is a bidirectional masked language model";
  if (c.local_kernel > 0)
    return "model.local_kernel is " + std::to_string(c.local_kernel) +
           ": EsmForMaskedLM has no convolution beside attention";
  if (c.activation != Activation::kGelu)
    return "model.activation is " + activation_name(c.activation) + ": EsmForMaskedLM's feed-forward uses GELU";
  return "";
}

std::vector<std::pair<std::string, at::Tensor>> hf_tensors(Encoder& model) {
  const EncoderConfig& c = model->config();
  std::map<std::string, at::Tensor> ours;
  for (auto& p : model->named_parameters()) ours[p.key()] = p.value();
  for (auto& b : model->named_buffers()) ours[b.key()] = b.value();
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const MappedTensor& m : key_map(c)) {
    auto it = ours.find(m.ours);
    if (it == ours.end()) throw Error("the model has no '" + m.ours + "' (not ESM-shaped)");
    out.emplace_back(m.theirs, it->second.detach().to(at::kCPU, at::kFloat).contiguous());
  }
  const at::Tensor inv = rotary_inv_freq(c.d_model / c.heads);
  for (int64_t i = 0; i < c.layers; ++i)
    out.emplace_back(kPrefix + std::to_string(i) + ".attention.self.rotary_embeddings.inv_freq", inv.clone());
  return out;
}

namespace {

std::string model_card(const EncoderConfig& c, const std::string& source) {
  std::ostringstream o;
  o << "---\nlibrary_name: transformers\ntags:\n- protein\n- esm\n- performer\n---\n\n"
    << "# ESM-2-shaped protein language model trained with performer\n\n"
    << "Exported from `" << source << "` by `performer export --format hf`.\n\n"
    << "- Shape: " << c.layers << " layers, hidden size " << c.d_model << ", " << c.heads << " heads, intermediate size "
    << c.d_ff << ", rotary positions, ESM-2's LM head" << (c.token_dropout ? " and token dropout" : "") << ".\n"
    << "- Vocabulary: ESM-2's 33 tokens (`vocab.txt`), so `EsmTokenizer` produces the ids it was trained on.\n"
    << "- Attention it was trained with: **" << attention_kind_name(c.kind) << "**";
  if (c.kind != AttentionKind::kExact) o << " (m = " << c.features << " random features per head)";
  o << ".\n\n";
  if (c.kind == AttentionKind::kFavorSoftmax)
    o << "`transformers` runs exact softmax attention, which FAVOR+ softmax features estimate without bias: the "
         "logits there differ from performer's by the estimator's error. `config.json`'s `performer` entry records "
         "the attention settings; `performer import --hf` of this folder with `--set model.kind=favor-softmax` (and "
         "those settings) runs it as trained.\n";
  else if (c.kind == AttentionKind::kFavorRelu)
    o << "`transformers` runs exact softmax attention, a different kernel from the ReLU features this model was "
         "trained with: expect different (worse) predictions there. `config.json`'s `performer` entry records the "
         "attention settings; `performer import --hf` with `--set model.kind=favor-relu` runs it as trained.\n";
  else
    o << "Exact softmax attention, as `transformers` computes it: the logits agree to float32 rounding.\n";
  return o.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) throw Error(path.string() + ": cannot write (disk full?)");
}

}  // namespace

void write_hf_esm(const std::string& dir, Encoder& model, const std::string& source) {
  const EncoderConfig& c = model->config();
  if (std::string why = hf_export_blocker(c); !why.empty()) throw Error(source + ": no EsmForMaskedLM equivalent: " + why);
  const fs::path d(dir);
  write_safetensors((d / "model.safetensors").string(), hf_tensors(model), {{"format", "pt"}});
  json performer = {{"attention", attention_kind_name(c.kind)}, {"source_checkpoint", source}};
  if (c.kind != AttentionKind::kExact) {
    performer["features"] = c.features;
    performer["redraw_interval"] = c.redraw_interval;
    performer["orthogonal"] = c.orthogonal;
    performer["row_norms"] = row_norms_name(c.row_norms);
    if (c.kind == AttentionKind::kFavorRelu) performer["relu_projection"] = c.relu_projection;
    performer["note"] = "transformers runs exact softmax attention; FAVOR+ softmax features estimate it";
  }
  const json config = {
      {"architectures", {"EsmForMaskedLM"}},
      {"model_type", "esm"},
      {"vocab_size", Alphabet::kSize},
      {"hidden_size", c.d_model},
      {"num_hidden_layers", c.layers},
      {"num_attention_heads", c.heads},
      {"intermediate_size", c.d_ff},
      {"hidden_act", "gelu"},
      {"hidden_dropout_prob", c.dropout},
      {"attention_probs_dropout_prob", c.dropout},
      {"max_position_embeddings", c.max_len},
      {"position_embedding_type", "rotary"},
      {"layer_norm_eps", kEsmLayerNormEps},
      {"emb_layer_norm_before", false},
      {"token_dropout", c.token_dropout},
      {"pad_token_id", Alphabet::kPad},
      {"mask_token_id", Alphabet::kMask},
      {"cls_token_id", Alphabet::kCls},
      {"eos_token_id", Alphabet::kEos},
      {"initializer_range", 0.02},
      {"is_folding_model", false},
      {"tie_word_embeddings", true},
      {"dtype", "float32"},
      {"performer", performer},
  };
  write_text(d / "config.json", config.dump(2) + "\n");
  std::string vocab;
  for (const auto& name : Alphabet::names()) vocab += name + "\n";
  write_text(d / "vocab.txt", vocab);
  const json special = {{"cls_token", "<cls>"}, {"eos_token", "<eos>"}, {"pad_token", "<pad>"},
                        {"unk_token", "<unk>"}, {"mask_token", "<mask>"}};
  json tokenizer = special;
  tokenizer["tokenizer_class"] = "EsmTokenizer";
  tokenizer["model_max_length"] = c.max_len;
  write_text(d / "tokenizer_config.json", tokenizer.dump(2) + "\n");
  write_text(d / "special_tokens_map.json", special.dump(2) + "\n");
  write_text(d / "README.md", model_card(c, source));
}

}  // namespace performer
