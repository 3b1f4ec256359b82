// Training runs of the tiny config as the tests of data-parallel jobs start and compare them: the command
// line, and the differences of two runs' parameters and losses against the float noise of this machine.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <torch/torch.h>

#include "model/encoder.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/config.h"

namespace performer::testing {

// The tiny config (dropout 0.1, feature redraws every 5 steps), one thread per process, gradient
// accumulation over several batches so both ranks have work every step.
inline std::string tiny_config() { return project_root() + "/configs/tiny.yaml"; }
inline std::string tiny_sets(const std::string& dir, const std::string& extra = "") {
  return "--set output.dir=" + dir + " --set data.train=" + data_path("real_excerpt.fasta") +
         " --set train.tokens_per_step=4096 --set runtime.threads=1 --set runtime.timeout_s=60 "
         "--set eval.every=0 --set output.checkpoint_every=0 " + extra;
}
inline std::string tiny_args(const std::string& dir, const std::string& extra = "") {
  return "train -c " + tiny_config() + " " + tiny_sets(dir, extra);
}

inline std::map<std::string, at::Tensor> parameters(const std::string& checkpoint) {
  RunConfig c = parse_config(checkpoint_config(checkpoint), checkpoint);
  Encoder m(c.model);
  load_checkpoint(checkpoint, m, nullptr, false);
  std::map<std::string, at::Tensor> out;
  for (auto& p : m->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

// The relative difference ||a - b|| / ||a|| of all the parameters of two checkpoints.
inline double parameter_difference(const std::string& a, const std::string& b) {
  auto pa = parameters(a), pb = parameters(b);
  double diff = 0, norm = 0;
  for (auto& [name, t] : pa) {
    const double d = (t - pb.at(name)).norm().item<double>(), n = t.norm().item<double>();
    diff += d * d;
    norm += n * n;
  }
  const double rel = std::sqrt(diff / norm);
  std::printf("relative parameter difference %s vs %s: %.3g\n", a.c_str(), b.c_str(), rel);
  return rel;
}

// The largest relative difference of the per-step losses of two runs.
inline double loss_difference(const std::string& a, const std::string& b) {
  const auto la = csv_column(a, 2), lb = csv_column(b, 2);
  if (la.size() != lb.size()) return 1.0;
  double worst = 0;
  for (size_t i = 0; i < la.size(); ++i) worst = std::max(worst, std::abs(la[i] - lb[i]) / std::abs(la[i]));
  return worst;
}

inline std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Data rows of a CSV file (-1 when it does not exist).
inline int rows(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  int n = -1;
  while (std::getline(in, line)) ++n;
  return n;
}

// Kills, when it goes out of scope, the processes it holds and every process below them: a test that
// fails half-way leaves no training job (or torchrun agent's workers) running.
class ChildGuard {
 public:
  ChildGuard() = default;
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  int hold(int pid) {
    pids_.push_back(pid);
    return pid;
  }
  ~ChildGuard() {
    for (int pid : pids_) {
      std::vector<int> all{pid}, todo{pid};
      while (!todo.empty()) {
        const int p = todo.back();
        todo.pop_back();
        for (int c : children_of(p)) {
          all.push_back(c);
          todo.push_back(c);
        }
      }
      for (int p : all) ::kill(p, SIGKILL);
      ::waitpid(pid, nullptr, WNOHANG);
    }
  }

 private:
  std::vector<int> pids_;
};

// How far two runs may differ and still be the same run: 20 times the float noise of this machine,
// measured by the caller (the same one-process run with 2 threads instead of 1 adds its sums in another
// order, as data-parallel ranks do), with a floor of `steps` steps' worth of float32 epsilon for a
// machine whose thread count changes nothing.
struct Bounds {
  double parameters = 0, losses = 0;
};
inline Bounds noise_bounds(const std::string& one, const std::string& threads, int64_t steps) {
  const double floor = static_cast<double>(steps) * 1.19e-7;
  const double param_noise = std::max(parameter_difference(checkpoint_path(one, steps), checkpoint_path(threads, steps)), floor);
  const double loss_noise = std::max(loss_difference(one + "/metrics.csv", threads + "/metrics.csv"), floor);
  std::printf("float noise (1 vs 2 threads): parameters %.3g, losses %.3g\n", param_noise, loss_noise);
  return {20 * param_noise, 20 * loss_noise};
}

}  // namespace performer::testing
