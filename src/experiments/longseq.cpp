#include "experiments/longseq.h"

#include <torch/torch.h>
#include <torch/version.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "io/plot.h"
#include "train/memory.h"
#include "train/trainer.h"
#include "util/device.h"
#include "util/error.h"
#include "util/process.h"
#include "util/progress.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

int64_t rows_for(const RunConfig& c) { return std::max<int64_t>(1, c.data.tokens_per_batch / c.data.max_len); }

std::string cell_name(int64_t L, const std::string& kind) { return "L" + std::to_string(L) + "-" + kind; }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Keeps a note CSV- and line-safe.
std::string clean(std::string s) {
  for (auto& c : s)
    if (c == '"' || c == '\n' || c == '\r' || c == '\t') c = '\'';
  return s;
}


}  // namespace

RunConfig longseq_cell_config(const RunConfig& base, int64_t L, const std::string& kind, int64_t steps,
                              int64_t eval_tokens, const std::string& cell_dir) {
  RunConfig c = base;
  c.data.concat = true;
  c.data.max_len = L;
  c.data.tokens_per_batch = std::max(c.data.tokens_per_batch, L);  // at least one full row
  c.model.max_len = L;
  c.model.kind = parse_attention_kind(kind);
  if (steps > 0) c.train.steps = steps;
  c.train.warmup_steps = std::min(c.train.warmup_steps, std::max<int64_t>(0, c.train.steps - 1));
  c.train.max_minutes = 0;
  c.eval.max_sequences = std::max<int64_t>(1, (eval_tokens + L - 1) / L);
  if (c.eval.every >= c.train.steps) c.eval.every = 0;
  c.output.dir = cell_dir;
  c.output.checkpoint_every = 0;  // one checkpoint, at the end
  c.output.keep_last = 1;
  c.model.validate();
  return c;
}

std::string format_cell_line(const LongseqCell& r) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "longseq-cell %s %.6g %.6g %.6g %.6g %.6g %.6g %.6g %.6g %lld %lld %s\n",
                r.status.c_str(), r.tokens_per_second, r.peak_bytes, r.start_bytes, r.final_loss, r.valid_perplexity,
                r.valid_accuracy, r.strict_perplexity, r.strict_accuracy, static_cast<long long>(r.rows),
                static_cast<long long>(r.steps), r.note.empty() ? "-" : clean(r.note).c_str());
  return buf;
}

bool parse_cell_line(const std::string& output, LongseqCell& r) {
  const auto pos = output.rfind("longseq-cell ");
  if (pos == std::string::npos) return false;
  std::istringstream in(output.substr(pos + 13));
  long long rows = 0, steps = 0;
  // Numbers are read as words and converted with strtod, which (unlike operator>>) reads "nan": a causal
  // cell has no all-masked figures.
  std::string words[8];
  if (!(in >> r.status >> words[0] >> words[1] >> words[2] >> words[3] >> words[4] >> words[5] >> words[6] >> words[7] >>
        rows >> steps))
    return false;
  double* nums[] = {&r.tokens_per_second, &r.peak_bytes,     &r.start_bytes,       &r.final_loss,
                    &r.valid_perplexity,  &r.valid_accuracy, &r.strict_perplexity, &r.strict_accuracy};
  for (size_t k = 0; k < 8; ++k) {
    char* end = nullptr;
    *nums[k] = std::strtod(words[k].c_str(), &end);
    if (end == words[k].c_str() || *end != '\0') return false;
  }
  r.rows = rows;
  r.steps = steps;
  std::getline(in, r.note);
  r.note = r.note.size() > 1 ? r.note.substr(1) : "";
  if (r.note == "-") r.note.clear();
  return r.status == "ok" || r.status == "OOM" || r.status == "error";
}

LongseqCell run_longseq_cell(const RunConfig& c, uint64_t limit, int64_t timing_warmup) {
  LongseqCell r;
  r.length = c.data.max_len;
  r.kind = attention_kind_name(c.model.kind);
  r.rows = rows_for(c);
  r.tokens_per_step = r.rows * c.data.max_len;
  const torch::Device device = resolve_device(c.runtime.device);
  if (limit > 0) {
    if (device.is_cuda()) {
#ifdef PERFORMER_CUDA
      const int index = device.has_index() ? device.index() : 0;
      const double total = static_cast<double>(device_memory_bytes(device));
      if (total > 0)
        c10::cuda::CUDACachingAllocator::setMemoryFraction(std::min(1.0, static_cast<double>(limit) / total), index);
#endif
    } else {
      // The limit counts what is resident at start-up (binary, libraries): allow the rest on top of the
      // address space mapped now.
      const uint64_t resident = current_rss_bytes();
      limit_address_space_above_now(limit > resident + (64u << 20) ? limit - resident : (64u << 20));
    }
  }
  TrainOptions opt;
  opt.progress_bar = false;
  opt.check_memory = false;  // the sweep predicted this cell against its own limit, enforced above
  opt.timing_warmup = timing_warmup;
  opt.overwrite = true;  // a cell run again (new settings) starts over; the old files are kept aside
  try {
    TrainResult t = train(c, opt);
    r.steps = t.step;
    r.tokens_per_second = t.steady_tokens_per_second > 0 ? t.steady_tokens_per_second : t.tokens_per_second;
    r.peak_bytes = t.peak_bytes;
    r.start_bytes = t.start_bytes;
    r.final_loss = t.train_loss;
    r.valid_perplexity = t.valid_perplexity;
    r.valid_accuracy = t.valid_accuracy;
    r.strict_perplexity = t.strict_perplexity;
    r.strict_accuracy = t.strict_accuracy;
    if (t.stop_reason != "completed") {
      r.status = "error";
      r.note = "training stopped: " + t.stop_reason;
    }
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    r.status = is_out_of_memory_message(msg) ? "OOM" : "error";
    r.note = first_line(msg);
  } catch (const std::bad_alloc&) {
    r.status = "OOM";
    r.note = "allocation failed (std::bad_alloc)";
  } catch (const std::exception& e) {
    r.status = is_out_of_memory_message(e.what()) ? "OOM" : "error";
    r.note = first_line(e.what());
  }
  if (r.status != "ok") r.peak_bytes = peak_memory(device);
  return r;
}

void write_longseq_csv(const std::string& path, const std::vector<LongseqCell>& cells, const std::string& device) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) throw Error(path + ": cannot write");
    out << "device,kind,length,rows,tokens_per_step,steps,status,tokens_per_second,peak_bytes,start_bytes,"
           "predicted_bytes,final_loss,valid_perplexity,valid_accuracy,strict_perplexity,strict_accuracy,seconds,note\n";
    for (const auto& r : cells)
      out << device << ',' << r.kind << ',' << r.length << ',' << r.rows << ',' << r.tokens_per_step << ',' << r.steps
          << ',' << r.status << ',' << r.tokens_per_second << ',' << r.peak_bytes << ',' << r.start_bytes << ','
          << r.predicted_bytes << ',' << r.final_loss << ',' << r.valid_perplexity << ',' << r.valid_accuracy << ','
          << r.strict_perplexity << ',' << r.strict_accuracy << ',' << r.seconds << ",\"" << clean(r.note) << "\"\n";
    if (!out.flush()) throw Error(path + ": write failed");
  }
  fs::rename(tmp, path);
}

std::vector<LongseqCell> read_longseq_csv(const std::string& path) {
  std::vector<LongseqCell> cells;
  std::ifstream in(path);
  if (!in) return cells;
  std::string line;
  std::getline(in, line);
  int64_t row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::string cur;
    bool quoted = false;
    for (char ch : line) {
      if (ch == '"')
        quoted = !quoted;
      else if (ch == ',' && !quoted) {
        f.push_back(cur);
        cur.clear();
      } else
        cur += ch;
    }
    f.push_back(cur);
    if (f.size() != 18) throw Error(path + ":" + std::to_string(row) + ": expected 18 columns, found " + std::to_string(f.size()));
    LongseqCell r;
    try {
      r.kind = f[1];
      r.length = std::stoll(f[2]);
      r.rows = std::stoll(f[3]);
      r.tokens_per_step = std::stoll(f[4]);
      r.steps = std::stoll(f[5]);
      r.status = f[6];
      double* nums[] = {&r.tokens_per_second, &r.peak_bytes, &r.start_bytes, &r.predicted_bytes, &r.final_loss,
                        &r.valid_perplexity, &r.valid_accuracy, &r.strict_perplexity, &r.strict_accuracy, &r.seconds};
      for (size_t k = 0; k < 10; ++k) *nums[k] = std::stod(f[7 + k]);
    } catch (const std::exception&) {
      throw Error(path + ":" + std::to_string(row) + ": not a results.csv row of performer longseq");
    }
    r.note = f[17];
    cells.push_back(r);
  }
  return cells;
}

std::vector<std::pair<int64_t, double>> read_eval_curve(const std::string& dir) {
  std::vector<std::pair<int64_t, double>> out;
  std::ifstream in((fs::path(dir) / "eval.csv").string());
  std::string line;
  if (!std::getline(in, line)) return out;
  while (std::getline(in, line)) {
    long long step = 0;
    double loss = 0, ppl = 0;
    if (std::sscanf(line.c_str(), "%lld,%lf,%lf", &step, &loss, &ppl) == 3) out.emplace_back(step, ppl);
  }
  return out;
}

namespace {

void write_plots(const std::string& out, const std::vector<LongseqCell>& cells, const LongseqOptions& o,
                 double limit, const std::string& device) {
  std::vector<double> xt(o.lengths.begin(), o.lengths.end());
  std::vector<PlotSeries> speed, memory;
  for (const auto& kind : o.kinds) {
    PlotSeries s{kind, {}, {}, {}}, m{kind, {}, {}, {}};
    for (const auto& r : cells) {
      if (r.kind != kind) continue;
      const double L = static_cast<double>(r.length);
      if (r.status == "ok") {
        s.x.push_back(L);
        s.y.push_back(r.tokens_per_second);
        m.x.push_back(L);
        m.y.push_back(r.peak_bytes);
      } else {
        s.failed_x.push_back(L);
        m.failed_x.push_back(L);
      }
    }
    speed.push_back(s);
    memory.push_back(m);
  }
  PlotOptions po;
  po.log_x = po.log_y = true;
  po.x_ticks = xt;
  po.x_label = "SEQUENCE LENGTH L (TOKENS)";
  po.title = "TRAINING TOKENS/S VS L (" + device + ")";
  po.y_label = "TOKENS/S";
  write_png((fs::path(out) / "tokens_per_second.png").string(), line_plot(speed, po));
  po.title = "PEAK MEMORY VS L (" + device + (device == "cpu" ? ", PEAK RSS OF THE CELL)" : ", MAX ALLOCATED)");
  po.y_label = "BYTES";
  po.references = {PlotReference{limit, "LIMIT " + human_bytes(limit)}};
  write_png((fs::path(out) / "peak_memory.png").string(), line_plot(memory, po));

  // Perplexity vs steps at the longest length, and at the longest length where every kind ran.
  std::vector<int64_t> plot_lengths;
  if (!o.lengths.empty()) plot_lengths.push_back(*std::max_element(o.lengths.begin(), o.lengths.end()));
  int64_t all_ok = 0;
  for (int64_t L : o.lengths) {
    bool ok = true;
    for (const auto& r : cells)
      if (r.length == L && r.status != "ok") ok = false;
    if (ok) all_ok = std::max(all_ok, L);
  }
  if (all_ok > 0 && (plot_lengths.empty() || all_ok != plot_lengths[0])) plot_lengths.push_back(all_ok);
  for (int64_t L : plot_lengths) {
    std::vector<PlotSeries> curves;
    for (const auto& kind : o.kinds) {
      PlotSeries s{kind, {}, {}, {}};
      for (const auto& r : cells)
        if (r.length == L && r.kind == kind) {
          if (r.status != "ok") s.name += " (" + r.status + ")";
          for (auto& [step, ppl] : read_eval_curve(r.dir)) {
            s.x.push_back(static_cast<double>(step));
            s.y.push_back(ppl);
          }
        }
      curves.push_back(s);
    }
    PlotOptions pp;
    pp.title = "VALID PERPLEXITY VS STEPS, L = " + std::to_string(L) + " (" + device + ")";
    pp.x_label = "TRAINING STEP";
    pp.y_label = "MASKED PERPLEXITY";
    write_png((fs::path(out) / ("perplexity_L" + std::to_string(L) + ".png")).string(), line_plot(curves, pp));
  }
}

void print_table(const std::vector<LongseqCell>& cells, const LongseqOptions& o) {
  std::printf("\n%7s %-14s %5s %-6s %10s %10s %10s %10s %9s %9s %9s\n", "L", "kind", "rows", "status", "tokens/s",
              "peak mem", "predicted", "final loss", "valid ppl", "valid acc", "all-mask");
  for (int64_t L : o.lengths)
    for (const auto& kind : o.kinds)
      for (const auto& r : cells) {
        if (r.length != L || r.kind != kind) continue;
        if (r.status == "ok")
          std::printf("%7lld %-14s %5lld %-6s %10.0f %10s %10s %10.4f %9.3f %9.4f %9.3f\n", static_cast<long long>(L),
                      kind.c_str(), static_cast<long long>(r.rows), "ok", r.tokens_per_second,
                      human_bytes(r.peak_bytes).c_str(), human_bytes(r.predicted_bytes).c_str(), r.final_loss,
                      r.valid_perplexity, r.valid_accuracy, r.strict_perplexity);
        else
          std::printf("%7lld %-14s %5lld %-6s %10s %10s %10s  %s\n", static_cast<long long>(L), kind.c_str(),
                      static_cast<long long>(r.rows), r.status.c_str(), "-",
                      r.peak_bytes > 0 ? human_bytes(r.peak_bytes).c_str() : "-",
                      human_bytes(r.predicted_bytes).c_str(), r.note.c_str());
      }
  // Ratios against exact attention, per length.
  for (int64_t L : o.lengths) {
    const LongseqCell* ex = nullptr;
    for (const auto& r : cells)
      if (r.length == L && r.kind == "exact") ex = &r;
    if (!ex) continue;
    for (const auto& r : cells) {
      if (r.length != L || r.kind == "exact" || r.status != "ok") continue;
      if (ex->status == "ok")
        std::printf("L=%lld %s vs exact: %.2fx tokens/s, %.2fx peak memory, valid perplexity %+.1f%%\n",
                    static_cast<long long>(L), r.kind.c_str(), r.tokens_per_second / ex->tokens_per_second,
                    r.peak_bytes / ex->peak_bytes, 100.0 * (r.valid_perplexity / ex->valid_perplexity - 1.0));
      else
        std::printf("L=%lld %s runs (%.0f tokens/s, %s); exact is %s (predicted %s)\n", static_cast<long long>(L),
                    r.kind.c_str(), r.tokens_per_second, human_bytes(r.peak_bytes).c_str(), ex->status.c_str(),
                    human_bytes(ex->predicted_bytes).c_str());
    }
  }
}

}  // namespace

std::vector<LongseqCell> run_longseq(const RunConfig& base_in, const LongseqOptions& o) {
  if (o.out.empty()) throw Error("longseq: --out is required");
  for (const auto& k : o.kinds)
    if (k != "exact" && k != "favor-softmax" && k != "favor-relu")
      throw Error("--kinds: '" + k + "' is not exact, favor-softmax or favor-relu");
  for (int64_t L : o.lengths)
    if (L < 8) throw Error("--lengths: " + std::to_string(L) + " is too short (at least 8 tokens)");
  if (o.lengths.empty() || o.kinds.empty()) throw Error("longseq: nothing to run (empty --lengths or --kinds)");
  RunConfig base = base_in;
  base.output.dir = o.out;
  base.data.concat = true;
  if (!fs::exists(base.data.train))
    throw Error(base.data.train + ": data.train does not exist (run scripts/get-data.sh for the real data sets)");
  const torch::Device device = resolve_device(base.runtime.device);
  const std::string dev = device.is_cuda() ? "cuda" : "cpu";
  // A CPU limit at or below what this process holds right after start-up (the binary and LibTorch; every
  // cell starts the same way) leaves a cell nothing to run with: refused instead of letting cells fail.
  const uint64_t footprint = current_rss_bytes();
  if (!device.is_cuda() && o.memory_limit > 0 && o.memory_limit <= footprint)
    throw Error("--memory-limit " + human_bytes(static_cast<double>(o.memory_limit)) +
                " is below a cell's own start-up footprint (" + human_bytes(static_cast<double>(footprint)) +
                " resident before any work)");
  if (o.cell_timeout < 0) throw Error("--cell-timeout must be positive (seconds), or 0 for none");
  fs::create_directories(o.out);
  double limit = static_cast<double>(o.memory_limit);
  if (limit <= 0) {
    limit = 0.9 * static_cast<double>(device_memory_bytes(device));
  }
  // One prepared corpus for every cell (data.train itself when it is already a prepared corpus).
  const std::string corpus = training_corpus(base);
  base.data.train = corpus;
  const double corpus_bytes = static_cast<double>(fs::file_size(corpus));
  // A cell process starts with about what this one has resident now (binary, LibTorch); predictions add it.
  const double process_bytes = device.is_cuda() ? 0.0 : static_cast<double>(current_rss_bytes());
  const int64_t steps = o.steps > 0 ? o.steps : base.train.steps;
  std::printf("longseq: %zu lengths x %zu kinds, %lld steps per cell, model %s, device %s, %d threads, memory "
              "limit %s per cell, corpus %s, output %s\n",
              o.lengths.size(), o.kinds.size(), static_cast<long long>(steps), base.model.describe().c_str(), dev.c_str(),
              torch::get_num_threads(), human_bytes(limit).c_str(), corpus.c_str(), o.out.c_str());
  std::fflush(stdout);

  std::vector<LongseqCell> cells, earlier;
  const std::string csv = (fs::path(o.out) / "results.csv").string();
  if (o.resume) earlier = read_longseq_csv(csv);
  // Earlier cells outside this sweep stay in results.csv (after this sweep's cells).
  std::vector<LongseqCell> others;
  for (const auto& e : earlier)
    if (std::find(o.lengths.begin(), o.lengths.end(), e.length) == o.lengths.end() ||
        std::find(o.kinds.begin(), o.kinds.end(), e.kind) == o.kinds.end())
      others.push_back(e);
  auto write_csv = [&] {
    std::vector<LongseqCell> all = cells;
    all.insert(all.end(), others.begin(), others.end());
    write_longseq_csv(csv, all, dev);
  };
  const auto sweep_start = std::chrono::steady_clock::now();
  for (int64_t L : o.lengths)
    for (const auto& kind : o.kinds) {
      const std::string dir = (fs::path(o.out) / cell_name(L, kind)).string();
      RunConfig c = longseq_cell_config(base, L, kind, steps, o.eval_tokens, dir);
      LongseqCell r;
      r.length = L;
      r.kind = kind;
      r.dir = dir;
      r.rows = rows_for(c);
      r.tokens_per_step = r.rows * L;
      r.predicted_bytes = predict_training_bytes(c, corpus_bytes, device.is_cuda()) + process_bytes;
      std::printf("[%s] L=%lld %s: ", human_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - sweep_start).count()).c_str(),
                  static_cast<long long>(L), kind.c_str());
      auto done = std::find_if(earlier.begin(), earlier.end(), [&](const LongseqCell& e) {
        return e.length == L && e.kind == kind && (e.status == "OOM" || (e.status == "ok" && e.steps == steps));
      });
      if (done != earlier.end()) {
        r = *done;
        r.dir = dir;
        std::printf("%s earlier (%s), kept\n", r.status.c_str(), csv.c_str());
      } else if (o.predict && r.predicted_bytes > limit) {
        r.status = "OOM";
        r.note = "predicted " + human_bytes(r.predicted_bytes) + " > limit " + human_bytes(limit) + ", not run";
        std::printf("OOM (%s)\n", r.note.c_str());
      } else {
        std::printf("training %lld steps of %lld x %lld tokens (predicted %s) ... ", static_cast<long long>(steps),
                    static_cast<long long>(r.rows), static_cast<long long>(L), human_bytes(r.predicted_bytes).c_str());
        std::fflush(stdout);
        fs::create_directories(dir);
        const std::string cell_yaml = (fs::path(dir) / "cell.yaml").string();
        std::ofstream(cell_yaml) << config_to_yaml(c);
        const auto t0 = std::chrono::steady_clock::now();
        ChildResult child = run_child({o.executable, "--threads", std::to_string(torch::get_num_threads()), "longseq-cell",
                                       "--config", cell_yaml, "--memory-limit", std::to_string(static_cast<uint64_t>(limit)) + "B",
                                       "--timing-warmup", std::to_string(o.timing_warmup)},
                                      0, o.cell_timeout);
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::ofstream(fs::path(dir) / "cell.log") << child.output;
        LongseqCell parsed = r;
        if (child.timed_out) {
          r.status = "TIMEOUT";
          r.note = "no result within " + human_duration(o.cell_timeout) + ", killed (raise --cell-timeout); see " + dir +
                   "/cell.log";
          r.peak_bytes = static_cast<double>(child.peak_rss);
        } else if (parse_cell_line(child.output, parsed)) {
          r = parsed;
        } else {
          r.status = child.signal == 9 ? "OOM" : "error";
          r.note = child.signal ? "killed by signal " + std::to_string(child.signal)
                                : "no result (exit " + std::to_string(child.exit_code) + "), see " + dir + "/cell.log";
          r.peak_bytes = static_cast<double>(child.peak_rss);
        }
        if (r.status == "ok")
          std::printf("%.0f tokens/s, peak %s, valid perplexity %.3f (%s)\n", r.tokens_per_second,
                      human_bytes(r.peak_bytes).c_str(), r.valid_perplexity, human_duration(r.seconds).c_str());
        else
          std::printf("%s: %s\n", r.status.c_str(), r.note.c_str());
      }
      std::fflush(stdout);
      cells.push_back(r);
      write_csv();
    }
  print_table(cells, o);
  write_plots(o.out, cells, o, limit, dev);
  std::printf("wrote %s, %s/tokens_per_second.png, %s/peak_memory.png, %s/perplexity_L*.png (%s in all)\n", csv.c_str(),
              o.out.c_str(), o.out.c_str(), o.out.c_str(),
              human_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - sweep_start).count()).c_str());
  return cells;
}

}  // namespace performer
