// The fixed 33-token vocabulary, in the order of ESM's alphabet so token ids, embeddings and logits line
// up with ESM tooling:
//
//   0 <cls>   1 <pad>   2 <eos>   3 <unk>
//   4 L   5 A   6 G   7 V   8 S   9 E  10 R  11 T  12 I  13 D      (ids 4-23: the 20 standard
//  14 P  15 K  16 Q  17 N  18 F  19 Y  20 M  21 H  22 W  23 C       amino acids)
//  24 X  25 B  26 U  27 Z  28 O  29 .  30 -                          (unknown, ambiguous, rare, gaps)
//  31 <null_1> (padding of the table to a multiple of 8; never produced)   32 <mask>
//
// A sequence is encoded as <cls> residues... <eos>. Residue letters outside this table are handled by
// the reader's policy (default: replaced by X and counted), so the tokenizer only sees valid letters.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace performer {

// The label of a position that is not predicted (no token has this id; LibTorch's cross-entropy default).
constexpr int64_t kIgnoreIndex = -100;

using Token = uint8_t;

struct Alphabet {
  static constexpr int kSize = 33;
  static constexpr Token kCls = 0, kPad = 1, kEos = 2, kUnk = 3;
  static constexpr Token kFirstResidue = 4;  // 'L'
  static constexpr Token kNull1 = 31, kMask = 32;
  // Residue letters in id order, starting at id 4. The first 20 are the standard amino acids.
  static constexpr std::string_view kResidues = "LAGVSERTIDPKQNFYMHWCXBUZO.-";
  static constexpr int kStandardAminoAcids = 20;  // ids 4..23
  static constexpr Token kX = 24;                 // unknown / any amino acid

  // Token id of an (upper-case) residue letter, or -1 when the letter is not in the alphabet.
  static int residue_id(char c) { return table()[static_cast<unsigned char>(c)]; }
  static bool is_residue(Token t) { return t >= kFirstResidue && t < kFirstResidue + kResidues.size(); }
  static bool is_standard(Token t) { return t >= kFirstResidue && t < kFirstResidue + kStandardAminoAcids; }

  // Printable form of one token: the residue letter, or the bracketed name of a special token.
  static std::string token_name(Token t);
  // All 33 names in id order.
  static std::vector<std::string> names();

  // Residues (already validated letters) -> <cls> ids <eos>.
  static std::vector<Token> encode(std::string_view residues);
  // Ids -> text; residues as letters, specials as <name>. With strip_specials only residues are kept.
  static std::string decode(const Token* ids, size_t n, bool strip_specials = false);

 private:
  static const std::array<int8_t, 256>& table();
};

}  // namespace performer
