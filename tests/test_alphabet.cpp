#include <gtest/gtest.h>

#include "data/alphabet.h"

using namespace performer;

TEST(Alphabet, MatchesEsmOrder) {
  auto names = Alphabet::names();
  ASSERT_EQ(names.size(), 33u);
  const std::vector<std::string> esm = {"<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R",
                                        "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C",
                                        "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"};
  EXPECT_EQ(names, esm);
  EXPECT_EQ(Alphabet::residue_id('X'), Alphabet::kX);
  EXPECT_EQ(Alphabet::residue_id('J'), -1);
  EXPECT_EQ(Alphabet::residue_id('a'), -1);  // the reader upper-cases before lookup
}

TEST(Alphabet, EncodeDecodeRoundTrip) {
  const std::string seq = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWUOBZX.-";
  auto ids = Alphabet::encode(seq);
  ASSERT_EQ(ids.size(), seq.size() + 2);
  EXPECT_EQ(ids.front(), Alphabet::kCls);
  EXPECT_EQ(ids.back(), Alphabet::kEos);
  EXPECT_EQ(Alphabet::decode(ids.data(), ids.size(), true), seq);
  EXPECT_EQ(Alphabet::decode(ids.data(), ids.size(), false), "<cls>" + seq + "<eos>");
  for (size_t i = 1; i + 1 < ids.size(); ++i) EXPECT_TRUE(Alphabet::is_residue(ids[i]));
}
