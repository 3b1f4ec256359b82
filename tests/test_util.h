// Helpers shared by the tests: paths to the committed data, temporary folders, reading whole files.
#pragma once
#include <sys/wait.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/corpus.h"
#include "data/sequence_reader.h"
#include "train/config.h"

namespace performer::testing {

inline std::string data_path(const std::string& name) { return std::string(PERFORMER_TEST_DATA) + "/" + name; }
inline std::string project_root() {
  return std::filesystem::path(PERFORMER_TEST_DATA).parent_path().parent_path().string();
}

// configs/tiny.yaml on the committed excerpt, run into `dir`, with `sets` overrides ("key=value").
inline RunConfig tiny_run_config(const std::string& dir, std::vector<std::string> sets = {}) {
  sets.push_back("output.dir=" + dir);
  sets.push_back("data.train=" + data_path("real_excerpt.fasta"));
  return load_config(project_root() + "/configs/tiny.yaml", sets);
}

// Column `col` of a CSV file with a header line (metrics.csv), as numbers.
inline std::vector<double> csv_column(const std::string& path, size_t col) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<double> out;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    for (size_t i = 0; i <= col; ++i) std::getline(ss, cell, ',');
    out.push_back(std::stod(cell));
  }
  return out;
}

// A fresh temporary folder, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "performer-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : throw std::runtime_error("mkdtemp failed");
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct CliRun {
  int status = -1;  // exit status, -1 if it did not exit normally
  std::string out;
};
// Runs a shell command line; stdout (add 2>&1 for stderr too) and the exit status.
inline CliRun run_command(const std::string& cmd) {
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}
// Runs the `performer` binary with `args` (as a shell command line); stdout and stderr together.
inline CliRun run_performer(const std::string& args) {
  return run_command(std::string(PERFORMER_BINARY) + " " + args + " 2>&1");
}

// Waits up to `seconds` for a child process; its exit status, 128 + signal, or -1 on timeout (then killed).
inline int wait_for(int pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Whether `ready` became true within `seconds` (polled every 20 ms).
inline bool wait_until(const std::function<bool()>& ready, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The whole file (empty when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The pids of the children of `parent` (from /proc/<parent>/task/*/children).
inline std::vector<int> children_of(int parent) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(parent) + "/task", ec)) {
    std::istringstream in(read_text((t.path() / "children").string()));
    int pid = 0;
    while (in >> pid) out.push_back(pid);
  }
  return out;
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline std::vector<SequenceRecord> read_all(const std::string& path, ReaderOptions options = {}) {
  SequenceReader reader(path, options);
  std::vector<SequenceRecord> out;
  SequenceRecord rec;
  while (reader.next(rec)) out.push_back(rec);
  return out;
}

// A corpus of the committed excerpt's proteins, `copies` times over, all in train (varied lengths, some
// longer than a crop), plus one short valid protein.
inline Corpus excerpt_corpus(size_t copies = 3) {
  auto recs = read_all(data_path("real_excerpt.fasta"));
  std::vector<std::string> seqs;
  std::vector<Split> splits;
  for (size_t c = 0; c < copies; ++c)
    for (auto& r : recs) {
      seqs.push_back(r.residues);
      splits.push_back(Split::kTrain);
    }
  seqs.push_back("MKV");
  splits.push_back(Split::kValid);
  return Corpus::from_sequences(seqs, splits);
}

}  // namespace performer::testing
