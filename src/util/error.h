// One exception type for every user-facing failure. The CLI prints what() as a single line and exits
// non-zero, so messages name the file and the place ("reads.fasta:12: ...") and say what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace performer {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "path:line: message" (line omitted when 0).
std::string where(const std::string& path, long long line = 0);

}  // namespace performer
