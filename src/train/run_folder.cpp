#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

#include "util/error.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

bool is_run_file(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name == "metrics.csv" || name == "eval.csv" || name == "best.h5" || name == "config.yaml" || name == "train.log")
    return true;
  return name.rfind("ckpt-", 0) == 0 && p.extension() == ".h5";
}

bool is_result_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return is_run_file(p) && name != "config.yaml" && name != "train.log";
}

}  // namespace

std::string run_config_path(const std::string& dir) { return (fs::path(dir) / "config.yaml").string(); }

RunFolderLock::RunFolderLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot open the run folder's lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    std::ifstream(path) >> holder;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(dir + ": another training is running in this folder (pid " + (holder.empty() ? "unknown" : holder) +
                  "); wait for it, stop it, or choose another output.dir");
    throw Error(path + ": cannot lock the run folder: " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock holds without the pid; only the message of a second training would lack it.
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
}

bool holds_run(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && is_result_file(e.path())) return true;
  return false;
}

std::string move_run_aside(const std::string& dir) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  fs::path target = fs::path(dir) / (std::string("previous-") + stamp);
  for (int n = 2; fs::exists(target); ++n) target = fs::path(dir) / (std::string("previous-") + stamp + "-" + std::to_string(n));
  fs::create_directory(target);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_run_file(e.path())) files.push_back(e.path());
  for (const auto& f : files) {
    std::error_code ec;
    fs::rename(f, target / f.filename(), ec);
    if (ec) throw Error(f.string() + ": cannot move it aside to " + target.string() + ": " + ec.message());
  }
  return target.string();
}

}  // namespace performer
