#include "data/alphabet.h"

#include "util/error.h"

namespace performer {

const std::array<int8_t, 256>& Alphabet::table() {
  static const std::array<int8_t, 256> t = [] {
    std::array<int8_t, 256> a{};
    a.fill(-1);
    for (size_t i = 0; i < kResidues.size(); ++i)
      a[static_cast<unsigned char>(kResidues[i])] = static_cast<int8_t>(kFirstResidue + i);
    return a;
  }();
  return t;
}

std::string Alphabet::token_name(Token t) {
  switch (t) {
    case kCls: return "<cls>";
    case kPad: return "<pad>";
    case kEos: return "<eos>";
    case kUnk: return "<unk>";
    case kNull1: return "<null_1>";
    case kMask: return "<mask>";
    default: break;
  }
  if (is_residue(t)) return std::string(1, kResidues[t - kFirstResidue]);
  throw Error("token id " + std::to_string(t) + " is outside the 33-token vocabulary");
}

std::vector<std::string> Alphabet::names() {
  std::vector<std::string> out;
  for (int i = 0; i < kSize; ++i) out.push_back(token_name(static_cast<Token>(i)));
  return out;
}

std::vector<Token> Alphabet::encode(std::string_view residues) {
  std::vector<Token> out;
  out.reserve(residues.size() + 2);
  out.push_back(kCls);
  for (char c : residues) {
    int id = residue_id(c);
    out.push_back(id < 0 ? kUnk : static_cast<Token>(id));
  }
  out.push_back(kEos);
  return out;
}

std::string Alphabet::decode(const Token* ids, size_t n, bool strip_specials) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (is_residue(ids[i]))
      out.push_back(kResidues[ids[i] - kFirstResidue]);
    else if (!strip_specials)
      out += token_name(ids[i]);
  }
  return out;
}

}  // namespace performer
