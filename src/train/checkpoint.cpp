#include "train/checkpoint.h"

#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <regex>

#include "io/hdf5.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"
#include "util/text.h"

namespace performer {

namespace {

constexpr int64_t kFormatVersion = 1;

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Tensor -> dataset (float32 for floating tensors, int64 otherwise). Scalars are stored with shape [1].
void write_tensor(hid_t loc, const std::string& name, const at::Tensor& t) {
  at::Tensor c = t.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims;
  for (auto d : c.sizes()) dims.push_back(static_cast<hsize_t>(d));
  if (dims.empty()) dims.push_back(1);
  if (c.is_floating_point()) {
    c = c.to(torch::kFloat);
    h5::write_array<float>(loc, name, dims, c.data_ptr<float>(), /*checksum=*/true);
  } else {
    c = c.to(torch::kLong);
    h5::write_array<int64_t>(loc, name, dims, c.data_ptr<int64_t>(), /*checksum=*/true);
  }
}

// Dataset -> into an existing tensor (shape checked), in place, keeping its dtype and device.
void read_into(hid_t loc, const std::string& group, const std::string& name, at::Tensor& target, const std::string& path) {
  const std::string full = group + "/" + name;
  if (!h5::exists(loc, full)) throw Error(path + ": checkpoint has no '" + full + "' (saved from a different model config?)");
  auto dims = h5::dataset_dims(loc, full);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  std::vector<int64_t> want = target.sizes().vec();
  const bool scalar_ok = want.empty() && shape == std::vector<int64_t>{1};
  if (shape != want && !scalar_ok)
    throw Error(path + ": '" + full + "' has shape " + shape_str(shape) + " but the model config expects " + shape_str(want));
  at::Tensor src;
  if (target.is_floating_point()) {
    auto v = h5::read_array<float>(loc, full);
    src = torch::from_blob(v.data(), target.sizes(), torch::kFloat).clone();
    if (!torch::isfinite(src).all().item<bool>())
      throw Error(path + ": '" + full + "' holds NaN or infinite values (a damaged checkpoint)");
  } else {
    auto v = h5::read_array<int64_t>(loc, full);
    src = torch::from_blob(v.data(), target.sizes(), torch::kLong).clone();
  }
  torch::NoGradGuard g;
  target.copy_(src);
}

}  // namespace

void save_checkpoint(const std::string& path, Encoder& model, Optimizer* optimizer, const TrainState& state) {
  AtomicFile out(path);  // a crash never leaves a half-written checkpoint under a checkpoint's name
  {
    {
      h5::Handle f = h5::create_file(out.temporary());
      h5::write_attr(f, "format", "performer-checkpoint");
      h5::write_attr(f, "format_version", kFormatVersion);
      h5::write_attr(f, "step", state.step);
      h5::write_attr(f, "tokens_seen", state.tokens_seen);
      h5::write_attr(f, "data_epoch", state.data.epoch);
      h5::write_attr(f, "data_index", state.data.index);
      h5::write_attr(f, "best_valid_loss", state.best_valid_loss);
      h5::write_attr(f, "bad_steps", state.bad_steps);
      if (state.planned_steps > 0) h5::write_attr(f, "planned_steps", state.planned_steps);
      h5::write_attr(f, "config", state.config_yaml);
      if (!state.corpus_fingerprint.empty()) {
        h5::write_attr(f, "corpus_fingerprint", state.corpus_fingerprint);
        h5::write_attr(f, "corpus", state.corpus_description);
      }
      h5::write_attr(f, "libtorch_version", TORCH_VERSION);
      h5::write_attr(f, "created", now_iso8601());
      {
        h5::Handle g = h5::create_group(f, "model");
        for (auto& p : model->named_parameters()) write_tensor(g, p.key(), p.value());
      }
      {
        h5::Handle g = h5::create_group(f, "buffers");
        for (auto& b : model->named_buffers()) write_tensor(g, b.key(), b.value());
      }
      if (optimizer) {
        h5::Handle g = h5::create_group(f, "optimizer");
        h5::write_attr(g, "step", optimizer->step_count());
        h5::Handle m = h5::create_group(g, "exp_avg");
        h5::Handle v = h5::create_group(g, "exp_avg_sq");
        for (auto& [name, t] : optimizer->exp_avg()) write_tensor(m, name, t);
        for (auto& [name, t] : optimizer->exp_avg_sq()) write_tensor(v, name, t);
      }
      {
        h5::Handle g = h5::create_group(f, "rng");
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        at::Tensor s;
        {
          std::lock_guard<std::mutex> lock(gen.mutex());
          s = gen.get_state();
        }
        h5::write_array<uint8_t>(g, "torch_cpu", {static_cast<hsize_t>(s.numel())}, s.data_ptr<uint8_t>(), true);
      }
      h5::flush_file(f);
    }
    out.commit();
  }
}

namespace {

// The CPU generator state of the checkpoint, whose size is checked before it is read (a crafted or damaged
// file may declare a dataset of any size).
at::Tensor read_rng_state(hid_t f, const std::string& path, int64_t expected_bytes) {
  const std::string name = "rng/torch_cpu";
  if (!h5::exists(f, name)) throw Error(path + ": checkpoint has no '" + name + "' (a damaged checkpoint)");
  const auto dims = h5::dataset_dims(f, name);
  if (dims.size() != 1 || static_cast<int64_t>(dims[0]) != expected_bytes)
    throw Error(path + ": '" + name + "' has shape " + shape_str({dims.begin(), dims.end()}) + " but this LibTorch's " +
                "generator state has " + std::to_string(expected_bytes) + " bytes (a damaged checkpoint)");
  auto bytes = h5::read_array<uint8_t>(f, name);
  return torch::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, torch::kUInt8).clone();
}

TrainState load_state(const std::string& path, Encoder& model, Optimizer* optimizer, bool restore_rng) {
  h5::Handle f = h5::open_file(path);
  if (!h5::has_attr(f, "format") || h5::read_attr_string(f, "format") != "performer-checkpoint")
    throw Error(path + ": not a performer checkpoint");
  const int64_t version = h5::read_attr_int(f, "format_version");
  if (version != kFormatVersion)
    throw Error(path + ": checkpoint format version " + std::to_string(version) + " is not supported (expected " +
                std::to_string(kFormatVersion) + ")");
  TrainState s;
  s.step = h5::read_attr_int(f, "step");
  s.tokens_seen = h5::read_attr_int(f, "tokens_seen");
  s.data.epoch = h5::read_attr_int(f, "data_epoch");
  s.data.index = h5::read_attr_int(f, "data_index");
  s.best_valid_loss = h5::read_attr_double(f, "best_valid_loss");
  s.bad_steps = h5::read_attr_int(f, "bad_steps");
  if (h5::has_attr(f, "planned_steps")) s.planned_steps = h5::read_attr_int(f, "planned_steps");
  s.config_yaml = h5::read_attr_string(f, "config");
  if (h5::has_attr(f, "corpus_fingerprint")) s.corpus_fingerprint = h5::read_attr_string(f, "corpus_fingerprint");
  if (h5::has_attr(f, "corpus")) s.corpus_description = h5::read_attr_string(f, "corpus");
  for (auto& p : model->named_parameters()) read_into(f, "model", p.key(), p.value(), path);
  for (auto& b : model->named_buffers()) read_into(f, "buffers", b.key(), b.value(), path);
  if (optimizer) {
    if (!h5::exists(f, "optimizer"))
      throw Error(path + ": checkpoint has no optimizer state, so no run to resume (an imported model?): start a new "
                  "run from its weights with train --init");
    h5::Handle g = h5::open_group(f, "optimizer");
    optimizer->set_step_count(h5::read_attr_int(g, "step"));
    for (auto& [name, t] : optimizer->exp_avg()) read_into(f, "optimizer/exp_avg", name, t, path);
    for (auto& [name, t] : optimizer->exp_avg_sq()) read_into(f, "optimizer/exp_avg_sq", name, t, path);
  }
  if (restore_rng) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    const at::Tensor st = read_rng_state(f, path, gen.get_state().numel());
    gen.set_state(st);
  }
  return s;
}

}  // namespace

TrainState load_checkpoint(const std::string& path, Encoder& model, Optimizer* optimizer, bool restore_rng) {
  // Whatever fails while reading is the checkpoint's fault, said as one Error naming it (so that
  // --resume auto skips it and tries the one before).
  try {
    return load_state(path, model, optimizer, restore_rng);
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(path + ": out of memory while reading the checkpoint (a damaged checkpoint declaring huge data?)");
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot load the checkpoint: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Error(path + ": cannot load the checkpoint: " + e.what());
  }
}

int64_t load_model_weights(const std::string& path, Encoder& model) {
  auto feature_buffer = [](const std::string& name) {
    auto ends = [&](const std::string& tail) {
      return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    return ends("attn.projection") || ends("attn.feature_draw");
  };
  try {
    h5::Handle f = h5::open_file(path);
    if (!h5::has_attr(f, "format") || h5::read_attr_string(f, "format") != "performer-checkpoint")
      throw Error(path + ": not a performer checkpoint");
    for (auto& p : model->named_parameters()) read_into(f, "model", p.key(), p.value(), path);
    for (auto& b : model->named_buffers())
      if (!feature_buffer(b.key())) read_into(f, "buffers", b.key(), b.value(), path);
    return h5::read_attr_int(f, "step");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path + ": cannot load the checkpoint's weights: " + e.what());
  }
}

namespace {
h5::Handle open_checkpoint(const std::string& path) {
  h5::Handle f = h5::open_file(path);
  if (!h5::has_attr(f, "format") || h5::read_attr_string(f, "format") != "performer-checkpoint")
    throw Error(path + ": not a performer checkpoint");
  return f;
}
}  // namespace

std::string checkpoint_config(const std::string& path) { return h5::read_attr_string(open_checkpoint(path), "config"); }

int64_t checkpoint_step(const std::string& path) { return h5::read_attr_int(open_checkpoint(path), "step"); }

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%09lld.h5", static_cast<long long>(step));
  return (std::filesystem::path(dir) / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<long long, std::string>> found;
  std::error_code ec;
  static const std::regex re("ckpt-([0-9]+)\\.h5");
  for (auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (e.is_regular_file() && std::regex_match(name, m, re)) found.emplace_back(std::stoll(m[1]), e.path().string());
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string newest_valid_checkpoint(const std::string& dir) {
  for (auto& path : list_checkpoints(dir)) {
    try {
      h5::Handle f = h5::open_file(path);
      if (h5::has_attr(f, "format") && h5::read_attr_string(f, "format") == "performer-checkpoint" &&
          h5::exists(f, "optimizer"))
        return path;
      warn(path + ": not a complete performer checkpoint, skipped");
    } catch (const Error& e) {
      warn(std::string(e.what()) + ", skipped");
    }
  }
  return "";
}

void prune_checkpoints(const std::string& dir, int64_t keep_last, const std::string& keep) {
  auto all = list_checkpoints(dir);
  std::error_code ec;
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep_last, 1)); i < all.size(); ++i)
    if (keep.empty() || !std::filesystem::equivalent(all[i], keep, ec)) std::remove(all[i].c_str());
}

}  // namespace performer
