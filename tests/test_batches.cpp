#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "data/batches.h"
#include "data/loader.h"
#include "data/masking.h"
#include "test_util.h"
#include "util/hash.h"

using namespace performer;
using namespace performer::testing;

TEST(SequenceBatches, RespectBudgetAndCoverEverySequenceOncePerEpoch) {
  Corpus corpus = excerpt_corpus();
  BatchOptions o;
  o.tokens_per_batch = 2048;
  o.max_len = 512;
  o.bucket_window = 64;
  SequenceBatches batches(corpus, Split::kTrain, o);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int64_t> seen;
    for (int64_t i = 0; i < batches.num_batches(epoch); ++i) {
      Batch b = batches.batch(epoch, i);
      EXPECT_LE(b.tokens.numel(), o.tokens_per_batch);
      EXPECT_LE(b.tokens.size(1), o.max_len);
      for (int64_t r = 0; r < b.tokens.size(0); ++r) {
        auto row = b.tokens[r];
        EXPECT_EQ(row[0].item<int64_t>(), Alphabet::kCls);
        int64_t n = b.padding_mask[r].sum().item<int64_t>();
        EXPECT_EQ(row[n - 1].item<int64_t>(), Alphabet::kEos);
        if (n < row.size(0)) {
          EXPECT_TRUE((row.slice(0, n) == Alphabet::kPad).all().item<bool>());
        }
        const auto id = static_cast<size_t>(b.sequence_ids[static_cast<size_t>(r)]);
        EXPECT_EQ(n, std::min<int64_t>(corpus.length(id) + 2, o.max_len));
        // The row's residues are a contiguous window of the protein.
        std::string full = Alphabet::decode(corpus.residues(id).data(), static_cast<size_t>(corpus.length(id)), true);
        std::vector<Token> ids(static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) ids[static_cast<size_t>(k)] = static_cast<Token>(row[k].item<int64_t>());
        EXPECT_NE(full.find(Alphabet::decode(ids.data(), ids.size(), true)), std::string::npos);
        seen.insert(b.sequence_ids[static_cast<size_t>(r)]);
      }
    }
    auto train = corpus.indices(Split::kTrain);
    EXPECT_EQ(seen.size(), train.size());
    for (size_t id : train) EXPECT_EQ(seen.count(static_cast<int64_t>(id)), 1u);
  }
  // Different epochs order differently; the same epoch is reproducible.
  EXPECT_NE(batches.plan(0), batches.plan(1));
  SequenceBatches again(corpus, Split::kTrain, o);
  EXPECT_EQ(again.plan(1), batches.plan(1));
  EXPECT_TRUE(torch::equal(again.batch(1, 3).tokens, batches.batch(1, 3).tokens));
}

TEST(ConcatBatches, ChunksOfExactlyLWithSeparatorsUsingEveryResidueOnce) {
  Corpus corpus = excerpt_corpus(1);
  BatchOptions o;
  o.max_len = 256;
  o.tokens_per_batch = 1024;
  ConcatBatches batches(corpus, Split::kTrain, o);
  EXPECT_EQ(batches.rows_per_batch(), 4);
  auto train = corpus.indices(Split::kTrain);
  int64_t residues = 0;
  for (size_t id : train) residues += corpus.length(id);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> stream;
    int64_t padded_rows = 0;
    for (int64_t i = 0; i < batches.num_batches(epoch); ++i) {
      Batch b = batches.batch(epoch, i);
      ASSERT_EQ(b.tokens.size(1), o.max_len);
      for (int64_t r = 0; r < b.tokens.size(0); ++r) {
        int64_t n = b.padding_mask[r].sum().item<int64_t>();
        if (n < o.max_len) ++padded_rows;
        for (int64_t k = 0; k < n; ++k) stream.push_back(b.tokens[r][k].item<int64_t>());
      }
    }
    EXPECT_LE(padded_rows, 1);  // only the epoch's last chunk may be short
    EXPECT_EQ(static_cast<int64_t>(stream.size()), residues + static_cast<int64_t>(train.size()));
    // Split the stream at <eos>: exactly the train proteins, each once.
    std::multiset<std::string> got, want;
    std::vector<Token> cur;
    for (int64_t t : stream) {
      if (t == Alphabet::kEos) {
        got.insert(Alphabet::decode(cur.data(), cur.size(), false));
        cur.clear();
      } else {
        ASSERT_TRUE(Alphabet::is_residue(static_cast<Token>(t)));
        cur.push_back(static_cast<Token>(t));
      }
    }
    EXPECT_TRUE(cur.empty());
    for (size_t id : train) want.insert(Alphabet::decode(corpus.residues(id).data(), static_cast<size_t>(corpus.length(id))));
    EXPECT_EQ(got, want);
  }
}

TEST(Masking, RatesWithinToleranceAndNeverOnSpecials) {
  // 100k+ residue positions with specials and padding mixed in.
  const int64_t B = 64, L = 2000;
  auto tokens = torch::empty({B, L}, torch::kLong);
  Rng rng(5);
  auto* t = tokens.data_ptr<int64_t>();
  for (int64_t i = 0; i < B * L; ++i) {
    const int64_t col = i % L;
    t[i] = col == 0 ? Alphabet::kCls : col == L - 1 ? Alphabet::kEos : col > L - 50 ? Alphabet::kPad
         : static_cast<int64_t>(Alphabet::kFirstResidue + rng.below(25));
  }
  MaskingOptions o;
  MaskedTokens m = mask_tokens(tokens, o, 42);
  auto residue = (tokens >= Alphabet::kFirstResidue) & (tokens < Alphabet::kFirstResidue + 27);
  auto selected = m.labels != kIgnoreIndex;
  const double n_res = residue.sum().item<double>();
  const double n_sel = selected.sum().item<double>();
  ASSERT_GT(n_res, 100000);
  EXPECT_EQ((selected & ~residue).sum().item<int64_t>(), 0);  // never specials or padding
  EXPECT_TRUE(torch::equal(m.labels.masked_select(selected), tokens.masked_select(selected)));
  EXPECT_TRUE(torch::equal(m.inputs.masked_select(~selected), tokens.masked_select(~selected)));
  // Binomial tolerances: 5 standard deviations.
  auto within = [](double count, double n, double p) { return std::abs(count - n * p) < 5 * std::sqrt(n * p * (1 - p)); };
  EXPECT_TRUE(within(n_sel, n_res, 0.15)) << n_sel / n_res;
  const double n_mask = (selected & (m.inputs == Alphabet::kMask)).sum().item<double>();
  const double n_same = (selected & (m.inputs == tokens)).sum().item<double>();
  EXPECT_TRUE(within(n_mask, n_sel, 0.8)) << n_mask / n_sel;
  // Kept = 10% plus random draws that hit the original letter (~0.1 x 1/20 when it is standard).
  EXPECT_NEAR(n_same / n_sel, 0.1, 0.015);
  auto random = selected & (m.inputs != Alphabet::kMask) & (m.inputs != tokens);
  EXPECT_TRUE(((m.inputs.masked_select(random) >= Alphabet::kFirstResidue) &
               (m.inputs.masked_select(random) < Alphabet::kFirstResidue + 20)).all().item<bool>());
  // Same seed, same mask; another seed, another mask.
  EXPECT_TRUE(torch::equal(mask_tokens(tokens, o, 42).inputs, m.inputs));
  EXPECT_FALSE(torch::equal(mask_tokens(tokens, o, 43).labels, m.labels));
}

TEST(DataLoader, ResumeFromSavedPositionGivesTheSameBatches) {
  Corpus corpus = excerpt_corpus();
  BatchOptions bo;
  bo.tokens_per_batch = 4096;
  bo.max_len = 300;
  auto source = std::make_shared<SequenceBatches>(corpus, Split::kTrain, bo);
  LoaderOptions lo;
  lo.mask_seed = 9;
  lo.max_epochs = 3;
  const int64_t per_epoch = source->num_batches(0);
  // Reference: one uninterrupted pass without prefetching.
  lo.prefetch = 0;
  DataLoader ref(source, lo);
  std::vector<Batch> all;
  Batch b;
  while (ref.next(b)) all.push_back(b);
  int64_t expected = 0;
  for (int64_t e = 0; e < 3; ++e) expected += source->num_batches(e);
  ASSERT_EQ(static_cast<int64_t>(all.size()), expected);
  // With prefetching: stop in the middle of epoch 1, save the position, resume in a new loader.
  lo.prefetch = 3;
  DataPosition saved;
  {
    DataLoader first(source, lo);
    for (int64_t i = 0; i < per_epoch + 2; ++i) {
      ASSERT_TRUE(first.next(b));
      EXPECT_TRUE(torch::equal(b.inputs, all[static_cast<size_t>(i)].inputs));
    }
    saved = first.position();
  }
  EXPECT_EQ(saved, (DataPosition{1, 2}));
  DataLoader resumed(source, lo, saved);
  size_t k = static_cast<size_t>(per_epoch + 2);
  while (resumed.next(b)) {
    ASSERT_LT(k, all.size());
    EXPECT_TRUE(torch::equal(b.inputs, all[k].inputs));
    EXPECT_TRUE(torch::equal(b.labels, all[k].labels));
    ++k;
  }
  EXPECT_EQ(k, all.size());
  // seek() on a running loader behaves the same.
  resumed.seek(DataPosition{2, 0});
  ASSERT_TRUE(resumed.next(b));
  EXPECT_TRUE(torch::equal(b.inputs, all[static_cast<size_t>(source->num_batches(0) + source->num_batches(1))].inputs));
}

TEST(NextTokenTargets, EveryResidueAndEosPredictedFromItsLeftUncorrupted) {
  // Sequence rows: "<cls> r1 .. rn <eos> <pad>..": the label at i is token i+1 for residues and <eos>
  // (training), residues only for evaluation; inputs are the clean tokens.
  Corpus corpus = excerpt_corpus(1);
  BatchOptions bo;
  bo.tokens_per_batch = 4096;
  bo.max_len = 200;
  SequenceBatches source(corpus, Split::kTrain, bo);
  Batch b = source.batch(0, 0);
  for (bool include_eos : {true, false}) {
    MaskedTokens m = next_token_targets(b.tokens, include_eos);
    EXPECT_TRUE(torch::equal(m.inputs, b.tokens));
    const int64_t B = b.tokens.size(0), L = b.tokens.size(1);
    int64_t residues = 0, eos = 0;
    for (int64_t r = 0; r < B; ++r) {
      const int64_t n = b.padding_mask[r].sum().item<int64_t>();  // <cls> + residues + <eos>
      for (int64_t i = 0; i < L; ++i) {
        const int64_t label = m.labels[r][i].item<int64_t>();
        if (i + 1 < n - 1) {
          EXPECT_EQ(label, b.tokens[r][i + 1].item<int64_t>()) << "row " << r << " position " << i;
          ++residues;
        } else if (i + 1 == n - 1) {
          EXPECT_EQ(label, include_eos ? int64_t{Alphabet::kEos} : kIgnoreIndex);
          eos += include_eos;
        } else {
          EXPECT_EQ(label, kIgnoreIndex) << "nothing after <eos> is a target";
        }
      }
    }
    EXPECT_EQ(residues, (b.padding_mask.sum() - 2 * B).item<int64_t>());
    EXPECT_EQ(eos, include_eos ? B : 0);
  }
  // Concatenated rows: after an <eos>, the next protein's first residue is a target too.
  BatchOptions co;
  co.max_len = 64;
  co.tokens_per_batch = 256;
  ConcatBatches concat(corpus, Split::kTrain, co);
  Batch c = concat.batch(0, 0);
  MaskedTokens mc = next_token_targets(c.tokens, true);
  at::Tensor expected = c.tokens.narrow(1, 1, 63);
  EXPECT_TRUE(torch::equal(mc.labels.narrow(1, 0, 63), expected));
  EXPECT_TRUE((mc.labels.select(1, 63) == kIgnoreIndex).all().item<bool>());
}

TEST(DataLoader, CausalObjectiveGivesNextTokenTargets) {
  Corpus corpus = excerpt_corpus(1);
  BatchOptions bo;
  bo.tokens_per_batch = 2048;
  bo.max_len = 128;
  auto source = std::make_shared<SequenceBatches>(corpus, Split::kTrain, bo);
  LoaderOptions lo;
  lo.objective = Objective::kNextToken;
  lo.prefetch = 0;
  DataLoader loader(source, lo);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_TRUE(torch::equal(b.inputs, b.tokens)) << "no corruption";
  EXPECT_FALSE((b.inputs == Alphabet::kMask).any().item<bool>());
  EXPECT_TRUE(torch::equal(b.labels, next_token_targets(b.tokens, true, b.cut_start, b.cut_end).labels));
  // Windows cropped out of longer proteins (max_len 128): their <cls> and <eos> are window edges, not the
  // protein's ends, so the first residue after a cut <cls> and the <eos> after a cut end are no targets.
  int cut_rows = 0, whole_rows = 0;
  do {
    ASSERT_EQ(b.cut_start.size(), static_cast<size_t>(b.tokens.size(0)));
    for (int64_t r = 0; r < b.tokens.size(0); ++r) {
      const auto row = static_cast<size_t>(r);
      const int64_t n = b.padding_mask[r].sum().item<int64_t>();
      const bool cut = b.cut_start[row] || b.cut_end[row];
      EXPECT_EQ((b.labels[r] == Alphabet::kEos).any().item<bool>(), !b.cut_end[row]) << "row " << r;
      const int64_t first_target = b.cut_start[row] ? kIgnoreIndex : b.tokens[r][1].item<int64_t>();
      EXPECT_EQ(b.labels[r][0].item<int64_t>(), first_target) << "row " << r;
      if (!b.cut_end[row]) {
        EXPECT_EQ(b.labels[r][n - 2].item<int64_t>(), int64_t{Alphabet::kEos});
      }
      // A protein that fits is never cut; one that does not is cut at one end at least.
      EXPECT_EQ(corpus.length(static_cast<size_t>(b.sequence_ids[row])) > 126, cut) << "row " << r;
      (cut ? cut_rows : whole_rows)++;
    }
  } while (b.epoch == 0 && loader.next(b) && b.epoch == 0);
  EXPECT_GT(cut_rows, 0);
  EXPECT_GT(whole_rows, 0);
}
