// A checkpoint of a model at initialization, for the tests of commands that read one (attention, contacts).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "model/encoder.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optimizer.h"

namespace performer::testing {

// Writes the model of `config` at initialization, with a fresh optimizer, to `path`; returns `path`.
inline std::string save_untrained_checkpoint(const RunConfig& config, const std::string& path) {
  Encoder model(config.model);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
  Optimizer opt(params, OptimizerOptions{});
  TrainState st;
  st.config_yaml = config_to_yaml(config);
  save_checkpoint(path, model, &opt, st);
  return path;
}

}  // namespace performer::testing
