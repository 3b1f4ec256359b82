#include "experiments/cell.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "util/error.h"
#include "util/files.h"
#include "util/names.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

// A report path of this process that no other run shares: <tmp>/performer-cell-<pid>-<n>.yaml.
std::string temporary_report_path() {
  static std::atomic<int> counter{0};
  const std::string name = "performer-cell-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".yaml";
  return (fs::temp_directory_path() / name).string();
}

// The child's report at `path`: false when it left none; a malformed one is an Error naming the path.
bool read_report(const std::string& path, CellReport& report) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  report = parse_cell_report(text.str(), path);
  return true;
}

// The verdict on a child that left no report: how it ended.
CellReport verdict(const ChildResult& child, double timeout_seconds, uint64_t memory_limit) {
  if (child.timed_out) return {CellStatus::kTimeout, "no result within " + human_duration(timeout_seconds) + ", killed", {}};
  if (child.over_memory)
    return {CellStatus::kOom, "resident memory passed the limit of " + human_bytes(static_cast<double>(memory_limit)) +
                                  ", killed", {}};
  // SIGKILL without a deadline: the kernel's OOM killer (or a limit enforced from outside).
  if (child.signal != 0)
    return {child.signal == SIGKILL ? CellStatus::kOom : CellStatus::kError, "killed by signal " + std::to_string(child.signal), {}};
  return {CellStatus::kError, "no result (exit " + std::to_string(child.exit_code) + ")", {}};
}

}  // namespace

const std::vector<std::string>& cell_status_names() {
  static const std::vector<std::string> names{"ok", "OOM", "TIMEOUT", "error"};
  return names;
}

std::string cell_status_name(CellStatus status) { return name_of(status, cell_status_names()); }

CellStatus parse_cell_status(const std::string& name) { return parse_name<CellStatus>(name, cell_status_names(), "cell status"); }

double CellReport::figure(const std::string& name) const {
  const auto it = figures.find(name);
  if (it == figures.end()) throw Error("cell report: no figure '" + name + "'");
  return it->second;
}

std::string format_cell_report(const CellReport& report) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "status" << YAML::Value << cell_status_name(report.status);
  out << YAML::Key << "note" << YAML::Value << YAML::DoubleQuoted << report.note;
  out << YAML::Key << "figures" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, value] : report.figures) out << YAML::Key << name << YAML::Value << value;  // NaN: .nan
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

CellReport parse_cell_report(const std::string& yaml_text, const std::string& where) {
  YAML::Node loaded;
  try {
    loaded = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error(where + ": not a cell report (" + e.msg + ")");
  }
  const YAML::Node& doc = loaded;  // const: looking a key up never adds it
  if (!doc.IsMap() || !doc["status"] || !doc["status"].IsScalar())
    throw Error(where + ": not a cell report (no status)");
  CellReport report;
  try {
    report.status = parse_cell_status(doc["status"].as<std::string>());
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  if (doc["note"]) report.note = doc["note"].as<std::string>("");
  const YAML::Node figures = doc["figures"];
  if (!figures) return report;
  if (!figures.IsMap()) throw Error(where + ": figures is not a map of names to numbers");
  for (const auto& f : figures) {
    const std::string name = f.first.as<std::string>("");
    try {
      report.figures[name] = f.second.as<double>();  // yaml-cpp reads .nan and .inf
    } catch (const YAML::Exception&) {
      throw Error(where + ": figure '" + name + "' is not a number");
    }
  }
  return report;
}

void write_cell_report(const std::string& path, const CellReport& report) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temporary());
    out << format_cell_report(report);
    if (!out.flush()) throw Error(path + ": cannot write the cell report");
  }
  file.commit();
}

CellOutcome run_cell(const CellCommand& command) {
  const std::string report_path = command.report_path.empty() ? temporary_report_path() : command.report_path;
  std::error_code ec;
  fs::remove(report_path, ec);  // an earlier run's report must not stand in for this one
  std::vector<std::string> argv = command.argv;
  argv.insert(argv.end(), {"--report", report_path});
  CellOutcome outcome;
  outcome.child = run_child(argv, command.address_space_limit, command.timeout_seconds, command.memory_limit);
  try {
    // Past its deadline or its memory a child is TIMEOUT or OOM whatever it wrote: it was killed, its
    // figures are not final.
    const bool killed = outcome.child.timed_out || outcome.child.over_memory;
    outcome.reported = !killed && read_report(report_path, outcome.report);
    if (!outcome.reported) outcome.report = verdict(outcome.child, command.timeout_seconds, command.memory_limit);
  } catch (const Error& e) {
    outcome.report = CellReport{CellStatus::kError, e.what(), {}};
  }
  if (command.report_path.empty()) fs::remove(report_path, ec);
  return outcome;
}

}  // namespace performer
