// Named choices (an attention kind, a position scheme, a stop reason): each enum has one list of names,
// in enum order, and parses and prints through it, so a concept has one parser and one set of spellings.
#pragma once
#include <string>
#include <vector>

#include "util/error.h"

namespace performer {

// "a, b or c".
std::string join_choices(const std::vector<std::string>& names);
// The names with `separator` between them: join({"a", "b"}, ",") = "a,b".
std::string join(const std::vector<std::string>& names, const std::string& separator);

// The enum whose name is `text`; throws Error("<what> '<text>': expected a, b or c").
template <class E>
E parse_name(const std::string& text, const std::vector<std::string>& names, const std::string& what) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == text) return static_cast<E>(i);
  throw Error(what + " '" + text + "': expected " + join_choices(names));
}

template <class E>
const std::string& name_of(E value, const std::vector<std::string>& names) {
  return names.at(static_cast<size_t>(value));
}

}  // namespace performer
