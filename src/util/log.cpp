#include "util/log.h"

#include <cstdio>

namespace performer {

void warn(const std::string& message) { std::fprintf(stderr, "warning: %s\n", message.c_str()); }

}  // namespace performer
