// One exception type for every user-facing failure. The CLI prints what() as a single line and exits
// non-zero, so messages name the file and the place ("reads.fasta:12: ...") and say what to do.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace performer {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// An invalid setting of a configuration, with the key it concerns ("model.d_model"), so that the config
// reader can name the file and line where that key was given.
class SettingError : public Error {
 public:
  SettingError(std::string key, const std::string& message) : Error(message), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// A command stopped by a signal before it had anything to keep: the CLI prints the message and exits 130
// (util/signals.h).
class Interrupted : public Error {
 public:
  explicit Interrupted(const std::string& message) : Error(message) {}
};

// "path:line: message" (line omitted when 0).
std::string where(const std::string& path, long long line = 0);

}  // namespace performer
