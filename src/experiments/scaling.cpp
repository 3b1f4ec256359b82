#include "experiments/scaling.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/scaling_fit.h"
#include "data/corpus_cache.h"
#include "experiments/eval_job.h"
#include "io/csv.h"
#include "io/plot.h"
#include "model/encoder.h"
#include "train/flops.h"
#include "train/trainer.h"
#include "util/clock.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/precision.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;

// ---- published reference points ----
// Cheng et al. (2024), "Training compute-optimal protein language models": MLM validation loss (nats per
// masked token, UniMeta200B held-out split) against compute C in FLOPs, L(C) = 2.1261 (C / 8.64e19)^-0.02873
// (8.64e19 FLOPs = one PF-day), as fitted in the authors' public analysis notebook; it gives 2.42 nats at
// 1e18 FLOPs, where the paper reads 2.40. Fitted on 1e17-1e21 FLOPs: below that it is an extrapolation.
constexpr double kChengLossAtPfDay = 2.12612386, kChengExponent = -0.02872987, kPfDayFlops = 8.64e19;
// nanoprot esm2-XS: an ESM-2-style 7.42 M model trained on 89.1 M UniRef50 residues, 5.0e15 FLOPs, validation
// masked cross-entropy 3.7476 bits (mean of 3 seeds) = 2.598 nats, perplexity 13.43.
constexpr double kNanoprotFlops = 5.0015e15, kNanoprotLoss = 3.7476 * 0.69314718055994531;

double published_mlm_loss(double flops) { return kChengLossAtPfDay * std::pow(flops / kPfDayFlops, kChengExponent); }

// ---- shapes, names, options ----

std::string ScalingShape::name() const { return std::to_string(layers) + "x" + std::to_string(d_model); }

std::vector<ScalingShape> parse_shapes(const std::string& text, const std::string& what) {
  std::vector<ScalingShape> shapes;
  for (const std::string& item : split_list(text)) {
    const size_t x = item.find('x');
    if (x == std::string::npos) throw Error(what + ": '" + item + "' is not LAYERSxD_MODEL (e.g. 4x128)");
    try {
      const auto layers = parse_int_list(item.substr(0, x), what, 1), d = parse_int_list(item.substr(x + 1), what, 1);
      if (layers.size() != 1 || d.size() != 1) throw Error("");
      shapes.push_back({layers[0], d[0]});
    } catch (const Error&) {
      throw Error(what + ": '" + item + "' is not LAYERSxD_MODEL with positive whole numbers (e.g. 4x128)");
    }
  }
  if (shapes.empty()) throw Error(what + ": no shapes given");
  return shapes;
}

std::vector<double> parse_number_list(const std::string& text, const std::string& what) {
  std::vector<double> values;
  for (const std::string& item : split_list(text)) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || !std::isfinite(v) || v <= 0)
      throw Error(what + ": '" + item + "' is not a positive number");
    values.push_back(v);
  }
  if (values.empty()) throw Error(what + ": no values given");
  return values;
}

std::string ScalingRun::name() const {
  std::ostringstream s;
  s << "C" << budget << "-" << shape.name() << "-lr" << lr;
  return s.str();
}

RunConfig scaling_run_config(const RunConfig& base, double budget, const ScalingShape& shape, double lr,
                             const std::string& dir) {
  RunConfig c = base;
  const int64_t d_head = base.model.d_model / base.model.heads;
  if (shape.d_model % d_head != 0)
    throw Error("scaling: shape " + shape.name() + ": d_model " + std::to_string(shape.d_model) +
                " is not a multiple of the base config's head width " + std::to_string(d_head));
  c.model.layers = shape.layers;
  c.model.d_model = shape.d_model;
  c.model.heads = shape.d_model / d_head;
  c.model.d_ff = shape.d_model * base.model.d_ff / base.model.d_model;
  c.model.validate();
  // Tokens per optimizer step: train.tokens_per_step with gradient accumulation, else one batch.
  const int64_t tokens = c.train.tokens_per_step > 0 ? c.train.tokens_per_step : c.data.tokens_per_batch;
  const double per_step = training_flops_per_token(c.model, c.data.max_len) * static_cast<double>(tokens);
  c.train.steps = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(budget / per_step)));
  c.train.warmup_steps = std::min(base.train.warmup_steps, c.train.steps / 10);
  c.train.lr = lr;
  c.train.max_minutes = 0;
  c.train.budget_minutes = 0;  // a run's length is its FLOP budget, not a time
  c.eval.every = 0;  // once, at the end
  c.output.checkpoint_every = 0;
  c.output.keep_last = 1;
  c.output.dir = dir;
  return c;
}

// ---- the child: train, then evaluate ----

namespace {

// The summary.json figures of `performer eval --out dir`: perplexity, interval, all-masked perplexity.
void read_summary(const std::string& dir, double& perplexity, double& low, double& high, double& all_masked) {
  const std::string path = (fs::path(dir) / "summary.json").string();
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot be read");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("masked") || !j.contains("masked_all"))
    throw Error(path + ": not an eval summary with masked and masked_all figures");
  perplexity = j["masked"]["perplexity"].get<double>();
  low = j["masked"]["ci95"][0].get<double>();
  high = j["masked"]["ci95"][1].get<double>();
  all_masked = j["masked_all"]["perplexity"].get<double>();
}

}  // namespace

CellReport run_scaling_child(const RunConfig& c, const std::string& query) {
  CellReport report;
  TrainOptions opt;
  opt.progress_bar = false;
  opt.overwrite = true;  // a run started again starts over
  const TrainResult t = train(c, opt);
  if (t.stop_reason != StopReason::kCompleted) {
    report.status = CellStatus::kError;
    report.note = "training stopped: " + stop_reason_name(t.stop_reason);
    return report;
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto& f = report.figures;
  f["parameters"] = static_cast<double>(Encoder(c.model)->num_parameters());
  f["steps"] = static_cast<double>(t.step);
  f["tokens"] = static_cast<double>(t.tokens_seen);
  f["flops"] = training_flops_per_token(c.model, c.data.max_len) * static_cast<double>(t.tokens_seen);
  f["tokens_per_second"] = t.tokens_per_second;
  f["seconds"] = t.tokens_per_second > 0 ? static_cast<double>(t.tokens_seen) / t.tokens_per_second : nan;
  EvalJob valid;
  valid.checkpoint = t.checkpoint;
  valid.corpus = c.data.train;  // the prepared corpus (the sweep passes it)
  valid.split = "valid";
  valid.device = c.runtime.device;
  valid.out = (fs::path(c.output.dir) / "valid").string();
  run_eval_job(valid);
  read_summary(valid.out, f["valid_perplexity"], f["valid_low"], f["valid_high"], f["valid_all_masked"]);
  f["query_perplexity"] = f["query_low"] = f["query_high"] = f["query_all_masked"] = nan;
  if (!query.empty()) {
    EvalJob q = valid;
    q.corpus.clear();
    q.inputs = {query};
    q.train_corpus = c.data.train;
    q.out = (fs::path(c.output.dir) / "query").string();
    run_eval_job(q);
    read_summary(q.out, f["query_perplexity"], f["query_low"], f["query_high"], f["query_all_masked"]);
  }
  return report;
}

// ---- the parent: the sweep ----

namespace {

// The figures of a run, by their names in the child's report and in results.csv.
const std::vector<std::pair<const char*, double ScalingRun::*>>& run_figures() {
  static const std::vector<std::pair<const char*, double ScalingRun::*>> figures{
      {"flops", &ScalingRun::flops},
      {"seconds", &ScalingRun::seconds},
      {"tokens_per_second", &ScalingRun::tokens_per_second},
      {"valid_perplexity", &ScalingRun::valid_perplexity},
      {"valid_low", &ScalingRun::valid_low},
      {"valid_high", &ScalingRun::valid_high},
      {"valid_all_masked", &ScalingRun::valid_all_masked},
      {"query_perplexity", &ScalingRun::query_perplexity},
      {"query_low", &ScalingRun::query_low},
      {"query_high", &ScalingRun::query_high},
      {"query_all_masked", &ScalingRun::query_all_masked}};
  return figures;
}

void apply_report(const CellReport& report, ScalingRun& r) {
  r.status = report.status;
  r.note = report.note;
  if (r.status != CellStatus::kOk) return;
  r.parameters = static_cast<int64_t>(report.figure("parameters"));
  r.steps = static_cast<int64_t>(report.figure("steps"));
  r.tokens = static_cast<int64_t>(report.figure("tokens"));
  for (const auto& [name, field] : run_figures()) r.*field = report.figure(name);
}

std::vector<std::string> csv_columns() {
  std::vector<std::string> c{"budget", "layers", "d_model", "lr", "status", "parameters", "steps", "tokens"};
  for (const auto& f : run_figures()) c.emplace_back(f.first);
  c.insert(c.end(), {"precision", "note"});
  return c;
}

void write_csv(const std::string& path, const std::vector<ScalingRun>& runs) {
  AtomicFile file(path);
  {
    CsvWriter out(file.temporary(), csv_columns());
    for (const auto& r : runs) {
      CsvRow row;
      row << r.budget << r.shape.layers << r.shape.d_model << r.lr << cell_status_name(r.status) << r.parameters
          << r.steps << r.tokens;
      for (const auto& f : run_figures()) row << r.*(f.second);
      row << r.precision << first_line(r.note);
      out.write(row);
    }
  }
  file.commit();
}

std::vector<ScalingRun> read_csv(const std::string& path) {
  std::vector<ScalingRun> runs;
  if (!fs::exists(path)) return runs;
  const CsvTable t = CsvTable::read(path);
  for (size_t i = 0; i < t.rows(); ++i) {
    ScalingRun r;
    r.budget = t.number(i, "budget");
    r.shape = {t.integer(i, "layers"), t.integer(i, "d_model")};
    r.lr = t.number(i, "lr");
    try {
      r.status = parse_cell_status(t.text(i, "status"));
    } catch (const Error& e) {
      throw Error(path + ": row " + std::to_string(i + 1) + ": " + e.what());
    }
    r.parameters = t.integer(i, "parameters");
    r.steps = t.integer(i, "steps");
    r.tokens = t.integer(i, "tokens");
    for (const auto& [name, field] : run_figures()) r.*field = t.number(i, name);
    r.precision = t.text(i, "precision");
    r.note = t.text(i, "note");
    runs.push_back(r);
  }
  return runs;
}

bool same_run(const ScalingRun& a, const ScalingRun& b) {
  auto close = [](double x, double y) { return std::abs(x - y) <= 1e-9 * std::max(std::abs(x), std::abs(y)); };
  return close(a.budget, b.budget) && a.shape.layers == b.shape.layers && a.shape.d_model == b.shape.d_model &&
         close(a.lr, b.lr);
}

struct Study {
  RunConfig base;  // precision resolved, data.train = the prepared corpus
  ScalingOptions options;
  std::vector<ScalingRun> earlier;  // --resume: results.csv as found
  std::vector<ScalingRun> runs;     // this sweep's, in order
  std::string csv;
  std::chrono::steady_clock::time_point start;
};

void save(const Study& s) {
  std::vector<ScalingRun> all = s.runs;  // this sweep's runs, then earlier ones outside it
  for (const auto& e : s.earlier)
    if (std::none_of(all.begin(), all.end(), [&](const ScalingRun& r) { return same_run(r, e); })) all.push_back(e);
  write_csv(s.csv, all);
}

// One run: kept from results.csv (--resume: ok with the same steps and precision) or trained in a child.
ScalingRun do_run(Study& s, double budget, const ScalingShape& shape, double lr) {
  ScalingRun r;
  r.budget = budget;
  r.shape = shape;
  r.lr = lr;
  r.dir = (fs::path(s.options.out) / r.name()).string();
  const RunConfig c = scaling_run_config(s.base, budget, shape, lr, r.dir);
  r.precision = precision_name(c.runtime.precision);
  std::printf("[%s] %s: ", human_duration(seconds_since(s.start)).c_str(), r.name().c_str());
  for (const auto& e : s.earlier)
    if (same_run(e, r) && e.status == CellStatus::kOk && e.steps == c.train.steps && e.precision == r.precision) {
      std::printf("done earlier (%s), kept\n", s.csv.c_str());
      ScalingRun kept = e;
      kept.dir = r.dir;
      s.runs.push_back(kept);
      return kept;
    }
  std::printf("%lld steps ... ", static_cast<long long>(c.train.steps));
  std::fflush(stdout);
  fs::create_directories(r.dir);
  const std::string yaml = (fs::path(r.dir) / "run.yaml").string();
  write_text_file(yaml, config_to_yaml(c));
  CellCommand command;
  command.argv = {s.options.executable, "--threads", std::to_string(torch::get_num_threads()), "scaling-run",
                  "--config", yaml};
  if (!s.options.query.empty()) command.argv.insert(command.argv.end(), {"--query", s.options.query});
  command.report_path = (fs::path(r.dir) / "result.yaml").string();
  command.timeout_seconds = s.options.run_timeout;
  const CellOutcome outcome = run_cell(command);
  write_text_file((fs::path(r.dir) / "cell.log").string(), outcome.child.output);
  try {
    apply_report(outcome.report, r);
  } catch (const Error& e) {
    r.status = CellStatus::kError;
    r.note = command.report_path + ": " + e.what();
  }
  if (!outcome.reported) r.note += ", see " + r.dir + "/cell.log";
  char query[48] = "";
  if (!s.options.query.empty()) std::snprintf(query, sizeof query, ", QUERY %.3f", r.query_perplexity);
  if (r.status == CellStatus::kOk)
    std::printf("%.2e FLOPs, %s, valid perplexity %.3f (%.3f-%.3f)%s\n", r.flops, human_duration(r.seconds).c_str(),
                r.valid_perplexity, r.valid_low, r.valid_high, query);
  else
    std::printf("%s: %s\n", cell_status_name(r.status).c_str(), r.note.c_str());
  std::fflush(stdout);
  s.runs.push_back(r);
  save(s);
  return r;
}

// The ok runs of one budget.
std::vector<ScalingRun> at_budget(const std::vector<ScalingRun>& runs, double budget) {
  std::vector<ScalingRun> out;
  for (const auto& r : runs)
    if (r.status == CellStatus::kOk && std::abs(r.budget - budget) <= 1e-9 * budget) out.push_back(r);
  return out;
}

// Per shape, the lowest-valid-perplexity run of a budget (over learning rates).
std::vector<ScalingRun> best_per_shape(const std::vector<ScalingRun>& runs) {
  std::map<std::pair<int64_t, int64_t>, ScalingRun> best;
  for (const auto& r : runs) {
    const auto key = std::make_pair(r.shape.layers, r.shape.d_model);
    auto it = best.find(key);
    if (it == best.end() || r.valid_perplexity < it->second.valid_perplexity) best[key] = r;
  }
  std::vector<ScalingRun> out;
  for (const auto& kv : best) out.push_back(kv.second);
  std::sort(out.begin(), out.end(), [](const ScalingRun& a, const ScalingRun& b) { return a.parameters < b.parameters; });
  return out;
}

void print_table(const std::vector<ScalingRun>& runs) {
  std::printf("\n%-8s %-7s %-8s %9s %7s %11s %9s %9s %9s  %-21s %-21s\n", "budget", "shape", "lr", "params", "steps",
              "tokens", "FLOPs", "wall", "tokens/s", "valid ppl (95%)", "QUERY ppl (95%)");
  for (const auto& r : runs) {
    if (r.status != CellStatus::kOk) {
      std::printf("%-8.1e %-7s %-8.2g %s: %s\n", r.budget, r.shape.name().c_str(), r.lr,
                  cell_status_name(r.status).c_str(), r.note.c_str());
      continue;
    }
    std::printf("%-8.1e %-7s %-8.2g %9lld %7lld %11lld %9.2e %9s %9.0f  %6.3f (%6.3f-%6.3f) %6.3f (%6.3f-%6.3f)\n",
                r.budget, r.shape.name().c_str(), r.lr, static_cast<long long>(r.parameters),
                static_cast<long long>(r.steps), static_cast<long long>(r.tokens), r.flops,
                human_duration(r.seconds).c_str(), r.tokens_per_second, r.valid_perplexity, r.valid_low, r.valid_high,
                r.query_perplexity, r.query_low, r.query_high);
  }
}

// fit.txt: the frontier's law, N* per budget and its law in C; printed too.
std::string fit_text(const std::vector<ScalingRun>& runs, const std::vector<double>& budgets) {
  std::ostringstream out;
  std::vector<double> c, loss, c_opt, n_opt;
  for (double b : budgets) {
    const std::vector<ScalingRun> best = best_per_shape(at_budget(runs, b));
    if (best.empty()) continue;
    std::vector<double> sizes, losses;
    for (const auto& r : best) {
      sizes.push_back(static_cast<double>(r.parameters));
      losses.push_back(std::log(r.valid_perplexity));
    }
    const IsoFlopMinimum m = isoflop_minimum(sizes, losses);
    const auto lowest = std::min_element(best.begin(), best.end(), [](const ScalingRun& a, const ScalingRun& b2) {
      return a.valid_perplexity < b2.valid_perplexity;
    });
    c.push_back(lowest->flops);
    loss.push_back(std::log(lowest->valid_perplexity));
    out << "budget " << b << " FLOPs: best run " << lowest->shape.name() << " (" << lowest->parameters
        << " parameters, lr " << lowest->lr << "), valid loss " << std::log(lowest->valid_perplexity)
        << " nats (perplexity " << lowest->valid_perplexity << "); N* " << m.size
        << (m.interpolated ? " (vertex of the isoFLOP parabola in log N)" : " (best size tried: no interior minimum)")
        << ", predicted loss there " << m.loss << "\n";
    c_opt.push_back(b);
    n_opt.push_back(m.size);
  }
  if (c.size() >= 2) {
    const PowerLaw frontier = fit_power_law(c, loss, "frontier");
    const PowerLaw size = fit_power_law(c_opt, n_opt, "compute-optimal size");
    out << "frontier: valid loss = " << frontier.a << " x C^" << frontier.b << " (nats; C in FLOPs)\n";
    out << "compute-optimal size: N* = " << size.a << " x C^" << size.b << "\n";
    for (double target : {1e15, 4e15, 1e16})
      out << "at " << target << " FLOPs: N* " << size.at(target) << " parameters, predicted valid loss "
          << frontier.at(target) << " nats (perplexity " << std::exp(frontier.at(target)) << ")\n";
  } else {
    out << "fewer than two budgets with finished runs: no power law fitted\n";
  }
  return out.str();
}

void write_plot(const std::string& path, const std::vector<ScalingRun>& runs, const std::vector<double>& budgets,
                const std::string& device) {
  std::vector<PlotSeries> series;
  std::map<std::string, PlotSeries> per_shape;
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const auto& r : runs) {
    if (r.status != CellStatus::kOk) continue;
    PlotSeries& p = per_shape[r.shape.name()];
    p.name = r.shape.name() + " (" + tick_label(static_cast<double>(r.parameters)) + ")";
    p.x.push_back(r.flops);
    p.y.push_back(std::log(r.valid_perplexity));
    lo = std::min(lo, r.flops);
    hi = std::max(hi, r.flops);
  }
  for (auto& kv : per_shape) {  // points in FLOPs order, one per budget (the best lr)
    PlotSeries& p = kv.second;
    std::map<double, double> best;
    for (size_t i = 0; i < p.x.size(); ++i) {
      auto it = std::find_if(best.begin(), best.end(), [&](const auto& e) { return std::abs(e.first - p.x[i]) < 0.2 * p.x[i]; });
      if (it == best.end()) best[p.x[i]] = p.y[i];
      else if (p.y[i] < it->second) it->second = p.y[i];
    }
    p.x.clear();
    p.y.clear();
    for (const auto& [x, y] : best) {
      p.x.push_back(x);
      p.y.push_back(y);
    }
    series.push_back(p);
  }
  if (series.empty()) return;
  PlotSeries frontier{"frontier", {}, {}, {}};
  for (double b : budgets) {
    const auto at = at_budget(runs, b);
    if (at.empty()) continue;
    const auto best = std::min_element(at.begin(), at.end(), [](const ScalingRun& a, const ScalingRun& c) {
      return a.valid_perplexity < c.valid_perplexity;
    });
    frontier.x.push_back(best->flops);
    frontier.y.push_back(std::log(best->valid_perplexity));
  }
  series.push_back(frontier);
  lo = std::min(lo, kNanoprotFlops);
  hi = std::max(hi, kNanoprotFlops);
  PlotSeries cheng{"Cheng 2024 fit", {}, {}, {}};
  for (int i = 0; i <= 20; ++i) {
    const double x = lo * std::pow(hi / lo, i / 20.0);
    cheng.x.push_back(x);
    cheng.y.push_back(published_mlm_loss(x));
  }
  series.push_back(cheng);
  series.push_back({"nanoprot XS", {kNanoprotFlops}, {kNanoprotLoss}, {}});
  PlotOptions po;
  po.title = "Held-out masked loss vs training FLOPs, " + device + " (validation sets differ by source)";
  po.x_label = "training FLOPs (model, src/train/flops.h)";
  po.y_label = "valid loss (nats per masked residue)";
  po.log_x = true;
  po.width = 800;
  po.height = 520;
  write_png(path, line_plot(series, po));
}

}  // namespace

std::vector<ScalingRun> run_scaling(const RunConfig& base_in, const ScalingOptions& o) {
  if (o.out.empty()) throw Error("scaling: --out is required");
  if (o.budgets.empty() || o.shapes.empty()) throw Error("scaling: nothing to run (empty --budgets or --shapes)");
  Study s;
  s.options = o;
  s.base = base_in;
  require_training_data(s.base.data.train);
  if (!o.query.empty() && !fs::exists(o.query)) throw Error("--query " + o.query + ": no such file");
  const fs::path out(o.out);
  refuse_overwriting_inputs("--out", {o.out, (out / "results.csv").string(), (out / "scaling.png").string(),
                                      (out / "fit.txt").string()},
                            {{"data.train", s.base.data.train}, {"--query", o.query}});
  for (const auto& shape : o.shapes) scaling_run_config(base_in, o.budgets.front(), shape, base_in.train.lr, o.out);
  const torch::Device device = resolve_device(s.base.runtime.device);
  s.base.runtime.precision = resolve_precision(s.base.runtime.precision, device);  // once, for every run
  s.base.output.dir = o.out;
  fs::create_directories(o.out);
  s.base.data.train = training_corpus(s.base);  // prepared once (the corpus cache), shared by every run
  s.base.data.clusters.clear();                 // its split is fixed in the prepared corpus
  s.csv = (out / "results.csv").string();
  s.earlier = o.resume ? read_csv(s.csv) : std::vector<ScalingRun>{};
  std::vector<double> budgets = o.budgets;
  std::sort(budgets.begin(), budgets.end());
  const std::vector<double> lrs = o.lrs.empty() ? std::vector<double>{s.base.train.lr} : o.lrs;
  std::printf("scaling: budgets %s FLOPs, shapes %zu, learning rates %zu at the smallest budget, %s, %s, %d threads, "
              "corpus %s, output %s\n",
              [&] {
                std::ostringstream b;
                for (size_t i = 0; i < budgets.size(); ++i) b << (i ? "," : "") << budgets[i];
                return b.str();
              }().c_str(),
              o.shapes.size(), lrs.size(), device_name(device).c_str(), precision_name(s.base.runtime.precision).c_str(),
              torch::get_num_threads(), s.base.data.train.c_str(), o.out.c_str());
  std::fflush(stdout);
  s.start = std::chrono::steady_clock::now();
  // The smallest budget: every shape at every learning rate; each shape keeps its best (on valid).
  std::map<std::string, double> chosen_lr;
  for (const auto& shape : o.shapes) {
    double best = std::numeric_limits<double>::infinity();
    chosen_lr[shape.name()] = lrs.front();
    for (double lr : lrs) {
      const ScalingRun r = do_run(s, budgets.front(), shape, lr);
      if (r.status == CellStatus::kOk && r.valid_perplexity < best) {
        best = r.valid_perplexity;
        chosen_lr[shape.name()] = lr;
      }
    }
  }
  if (std::none_of(s.runs.begin(), s.runs.end(), [](const ScalingRun& r) { return r.status == CellStatus::kOk; }))
    throw Error("scaling: every run at the smallest budget failed (the first: " + s.runs.front().note + ")");
  for (size_t b = 1; b < budgets.size(); ++b)
    for (const auto& shape : o.shapes) do_run(s, budgets[b], shape, chosen_lr[shape.name()]);
  save(s);
  // The table, fit and plot cover every run in results.csv (earlier sweeps' too).
  const std::vector<ScalingRun> all = read_csv(s.csv);
  std::vector<double> all_budgets;
  for (const auto& r : all)
    if (std::none_of(all_budgets.begin(), all_budgets.end(), [&](double b) { return std::abs(b - r.budget) <= 1e-9 * b; }))
      all_budgets.push_back(r.budget);
  std::sort(all_budgets.begin(), all_budgets.end());
  print_table(all);
  const std::string fit = fit_text(all, all_budgets);
  std::printf("\n%s", fit.c_str());
  write_text_file((out / "fit.txt").string(), fit);
  write_plot((out / "scaling.png").string(), all, all_budgets, device_name(device));
  std::printf("wrote %s, %s/fit.txt, %s/scaling.png (%s in all)\n", s.csv.c_str(), o.out.c_str(), o.out.c_str(),
              human_duration(seconds_since(s.start)).c_str());
  return s.runs;
}

}  // namespace performer
