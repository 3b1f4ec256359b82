#include "util/error.h"

namespace performer {

std::string where(const std::string& path, long long line) {
  return line > 0 ? path + ":" + std::to_string(line) : path;
}

}  // namespace performer
