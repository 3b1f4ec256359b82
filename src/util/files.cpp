#include "util/files.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "util/error.h"

namespace performer {

namespace fs = std::filesystem;

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open to sync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw Error(path + ": cannot sync to disk: " + std::strerror(err));  // EINVAL: no fsync here
}

void rename_durably(const std::string& from, const std::string& to) {
  fsync_path(from);
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw Error(to + ": cannot move " + from + " into place: " + ec.message());
  const fs::path dir = fs::path(to).parent_path();
  fsync_path(dir.empty() ? std::string(".") : dir.string());
}

std::string temporary_for(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), temporary_(temporary_for(path_)) {}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temporary_.c_str());
}

void AtomicFile::commit() {
  rename_durably(temporary_, path_);
  committed_ = true;
}

void write_text_file(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temporary(), std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error(file.temporary() + ": cannot write (disk full?)");
  }
  file.commit();
}

bool same_file(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty() || a == "-" || b == "-") return false;
  std::error_code ec;
  if (!fs::exists(a, ec) || !fs::exists(b, ec)) return false;  // a file that is not there is not read nor lost
  const bool same = fs::equivalent(a, b, ec);
  return !ec && same;
}

void refuse_overwriting_inputs(const std::string& option, const std::vector<std::string>& outputs,
                               const std::vector<InputFile>& inputs) {
  for (const std::string& out : outputs)
    for (const InputFile& in : inputs)
      if (same_file(out, in.path))
        throw Error(out + ": is also an input (" + in.option + " " + in.path + "); refusing to overwrite an input " +
                    "with the output (choose another " + option + ")");
}

int remove_stale_temporaries(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir.empty() ? "." : dir, ec)) {
    const std::string name = e.path().filename().string();
    const auto pos = name.rfind(".tmp-");
    if (pos == std::string::npos || !e.is_regular_file()) continue;
    const std::string digits = name.substr(pos + 5);
    char* end = nullptr;
    const long pid = std::strtol(digits.c_str(), &end, 10);
    if (digits.empty() || *end != '\0' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    if (fs::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace performer
