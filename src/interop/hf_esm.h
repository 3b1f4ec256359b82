// HuggingFace `transformers` ESM folders (EsmForMaskedLM, ESM-2), read and written.
//
// A folder holds config.json, the weights (model.safetensors, or shards listed by
// model.safetensors.index.json) and, for export, the tokenizer files. Our ESM-shaped model
// (model.lm_head esm, rotary positions, bidirectional) maps one to one onto EsmForMaskedLM:
//
//   ours                          HuggingFace (hub form; "L" = esm.encoder.layer.<i>)
//   embed.weight                  esm.embeddings.word_embeddings.weight   (also the tied lm_head.decoder)
//   layers.<i>.norm1.*            L.attention.LayerNorm.{weight,bias}
//   layers.<i>.attn.q_proj.*      L.attention.self.query.*    (k_proj: key, v_proj: value)
//   layers.<i>.attn.out_proj.*    L.attention.output.dense.*
//   layers.<i>.norm2.*            L.LayerNorm.{weight,bias}
//   layers.<i>.ff1.*, ff2.*       L.intermediate.dense.*, L.output.dense.*
//   final_norm.*                  esm.encoder.emb_layer_norm_after.*
//   lm_head.dense.*, lm_head.norm.*, lm_bias    lm_head.dense.*, lm_head.layer_norm.*, lm_head.bias
//   contact_regression_{weight,bias}            esm.contact_head.regression.{weight,bias}
//   (computed)                    L.attention.self.rotary_embeddings.inv_freq = 1 / 10000^(2j / d_head)
//
// Folders in the wild differ and import takes each form: LayerNorms as .weight/.bias (the hub) or
// .gamma/.beta (transformers 5.x save_pretrained); inv_freq per layer, as one "esm.encoder.layer.*..."
// key, at the model level, or absent (recomputed; a stored one must equal the formula); the tied decoder
// present (it must equal the embedding) or not; esm.embeddings.position_ids ignored. Weights in F16 or
// BF16 are widened to float32. Export writes the hub form.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/encoder.h"

namespace performer {

struct HfEsmFolder {
  EncoderConfig model;                        // the shape of config.json; exact attention, rotary, ESM-2 head
  std::map<std::string, at::Tensor> weights;  // our parameter and buffer names -> float32 CPU tensors
  std::vector<std::string> notes;             // what import accepted and how, one line each (for the log)
};

// Reads config.json and the safetensors weights of `dir`. Every refusal is one Error naming the folder and
// the key or tensor: a config setting without an equivalent here, a missing, extra or mis-shaped tensor,
// pytorch_model.bin alone (a pickle: convert to safetensors first, the message says how).
HfEsmFolder read_hf_esm(const std::string& dir);

// Copies `weights` (names as in HfEsmFolder) into `model`: every parameter, and the contact regression,
// must be there with its shape. The random-feature buffers of FAVOR models stay as drawn. `origin` names
// the source in errors.
void load_hf_weights(Encoder& model, const std::map<std::string, at::Tensor>& weights, const std::string& origin);

// Why a model of this config has no EsmForMaskedLM equivalent (naming the setting), or "" when it has one.
std::string hf_export_blocker(const EncoderConfig& config);

// The hub-form tensors of `model` (names of HuggingFace, float32), in a stable order.
std::vector<std::pair<std::string, at::Tensor>> hf_tensors(Encoder& model);

// Writes config.json, model.safetensors, vocab.txt, tokenizer_config.json, special_tokens_map.json and a
// README.md (model card) into the existing, empty folder `dir`. `source` names where the model came from.
void write_hf_esm(const std::string& dir, Encoder& model, const std::string& source);

}  // namespace performer
