// A tokenized protein corpus, as written by `performer prepare` into one HDF5 file:
//
//   /tokens      uint8  [total residues]   residue token ids (alphabet.h), all sequences back to back,
//                                          without <cls>/<eos> (the datasets add them)
//   /offsets     int64  [n + 1]            sequence i is tokens[offsets[i] : offsets[i+1]]
//   /accessions  str    [n]                UniProt accession (or first header word)
//   /split       uint8  [n]                0 = train, 1 = valid, 2 = test
//   /cluster     int64  [n]                (prepare --clusters) cluster index; one of its own for a
//                                          protein the cluster file does not list
//   /cluster_rank int32 [n]                (prepare --clusters) the protein's rank among its cluster's
//                                          kept members, in corpus order (data.sample: clusters)
//   /cluster_size int32 [cluster indices]  (prepare --clusters) kept members of each cluster index
//   /stats       group                     see CorpusStats (attributes + /stats/residue_counts [3, 33])
//   attributes of /: format = "performer-corpus", format_version, vocabulary (33 names), sources,
//                    split_key, valid_frac, test_frac, split_seed, dedup, min_len, max_len, created,
//                    fingerprint (CorpusFingerprint of the content; absent in corpora from before it)
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/alphabet.h"
#include "io/mapped_array.h"

namespace performer {

enum class Split : uint8_t { kTrain = 0, kValid = 1, kTest = 2 };
constexpr int kNumSplits = 3;
const std::vector<std::string>& split_names();  // "train", "valid", "test" (the values of /split)
std::string split_name(Split s);
Split parse_split(const std::string& s);

// Which split a sequence belongs to, from a hash of its key (accession, or sequence under dedup): the
// same key lands in the same split whatever the file order, the run or the machine.
Split assign_split(const std::string& key, double valid_frac, double test_frac, uint64_t seed);

struct CorpusStats {
  std::array<int64_t, kNumSplits> sequences{};
  std::array<int64_t, kNumSplits> residues{};
  // residue_counts[split][token id]
  std::array<std::array<int64_t, Alphabet::kSize>, kNumSplits> residue_counts{};
  // Length distribution over all kept sequences.
  int64_t min_length = 0, max_length = 0;
  double mean_length = 0;
  std::vector<double> length_percentiles;     // at kPercentiles
  static constexpr std::array<double, 7> kPercentiles = {1, 5, 25, 50, 75, 95, 99};
  // exp(-mean log p_train(residue)) over the valid split, with add-one smoothing of the train counts;
  // NaN when the valid split is empty. The uniform baseline over the 20 standard amino acids is 20.
  double unigram_perplexity_valid = 0;
  double unigram_perplexity_test = 0;
  static constexpr double kUniformPerplexity = 20.0;

  // Input side: what was read and what was dropped.
  int64_t records_read = 0, dropped_short = 0, dropped_long = 0, dropped_duplicate = 0;
  int64_t skipped_empty = 0, skipped_unknown = 0, mapped_to_x = 0;
  // With a cluster file (prepare --clusters): clusters among the kept proteins, proteins the file does not
  // list (each its own cluster), and members the file lists that were not kept (absent from the input, or
  // dropped as duplicates or by length). clusters = -1: no file. split_clusters: the clusters of each
  // split (a cluster lies in one split); all -1 in corpora prepared before they were counted.
  int64_t clusters = -1, unclustered = 0, cluster_members_absent = 0;
  std::array<int64_t, kNumSplits> split_clusters{-1, -1, -1};

  int64_t total_sequences() const { return sequences[0] + sequences[1] + sequences[2]; }
  int64_t total_residues() const { return residues[0] + residues[1] + residues[2]; }
  // Frequencies of the residue tokens in the train split (add-one smoothed over the 27 residue letters).
  std::array<double, Alphabet::kSize> train_frequencies() const;
  // Perplexity of a split's residues under the train frequencies.
  double unigram_perplexity(Split s) const;
  // A human-readable multi-line summary.
  std::string summary() const;
};

// A fingerprint of a corpus's content, what training reads of it: every sequence's residues and split
// (and cluster and rank within it, with --clusters), in order. Two corpora with the same fingerprint hold
// the same training data whatever their paths, names or times; one changed residue changes it. 16 hex
// digits (a 64-bit hash, util/hash.h).
class CorpusFingerprint {
 public:
  void add(Split split, const Token* tokens, int64_t n, int64_t cluster = -1, int32_t cluster_rank = 0);
  std::string hex() const;

 private:
  uint64_t h_ = 0x5eed;
};

// One column of a corpus (tokens, offsets or split labels): read through a memory map of the file, or held
// in memory (corpora built in memory, and files whose layout cannot be mapped).
template <class T>
class CorpusColumn {
 public:
  uint64_t size() const { return mapped_ ? mapped_->size() : owned_.size(); }
  T operator[](uint64_t i) const { return mapped_ ? (*mapped_)[i] : owned_[i]; }
  void copy(uint64_t first, uint64_t n, T* out) const;
  bool mapped() const { return mapped_.has_value(); }
  std::vector<T>& owned() { return owned_; }
  void map(h5::MappedArray<T> a) { mapped_ = std::move(a); }
  void prefetch(uint64_t first, uint64_t n) const {
    if (mapped_) mapped_->prefetch(first, n);
  }

 private:
  std::optional<h5::MappedArray<T>> mapped_;
  std::vector<T> owned_;
};

// A corpus for training and evaluation. Corpus::load maps the file's /tokens, /offsets and /split into
// memory (h5::MappedArray): the process's own memory does not grow with the corpus, the page cache holds
// what was read. With map = false (or a file whose datasets cannot be mapped: compressed, say) they are
// read into memory (486k proteins: ~180 MB).
class Corpus {
 public:
  static Corpus load(const std::string& path, bool with_accessions = true, bool map = true);
  // True for an HDF5 file that says it is a performer corpus (format attribute); reads nothing else.
  static bool is_corpus_file(const std::string& path);

  size_t size() const { return static_cast<size_t>(split_.size()); }
  int64_t length(size_t i) const { return offsets_[i + 1] - offsets_[i]; }
  Split split(size_t i) const { return static_cast<Split>(split_[i]); }
  // Residues [start, start + n) of sequence i into out. A mapped corpus checks them as it reads (an
  // Error names the file and the sequence when a byte is not a residue token).
  void copy_residues(size_t i, int64_t start, int64_t n, Token* out) const;
  std::vector<Token> residues(size_t i) const;  // the whole sequence
  // A mapped corpus starts reading these sequences from disk in the background (no-op in memory).
  void prefetch(const std::vector<size_t>& ids) const;
  bool mapped() const { return tokens_.mapped(); }
  // Sequence clusters (prepare --clusters): has_clusters() when the file holds /cluster, /cluster_rank and
  // /cluster_size; else no_clusters() says why ("prepared without --clusters", ...).
  bool has_clusters() const { return cluster_rank_.size() > 0; }
  const std::string& no_clusters() const { return no_clusters_; }
  int64_t cluster(size_t i) const { return cluster_[i]; }
  int32_t cluster_rank(size_t i) const { return cluster_rank_[i]; }
  uint64_t cluster_indices() const { return cluster_size_.size(); }
  int32_t cluster_size(uint64_t c) const { return cluster_size_[c]; }
  std::string storage() const;  // "memory-mapped" or "in memory (<why>)"
  const std::string& accession(size_t i) const { return accessions_.at(i); }
  std::vector<size_t> indices(Split s) const;
  const CorpusStats& stats() const { return stats_; }
  const std::string& path() const { return path_; }
  // CorpusFingerprint of the content: the one `prepare` stored, or for a corpus built in memory computed
  // from it. A file prepared before fingerprints gets "layout-<hex>", a hash of its sequences' lengths and
  // splits taken while loading (its tokens are not read again for it; prepare it again for a content
  // fingerprint).
  std::string fingerprint() const;
  // "<path>: N train / M valid / K test sequences", for messages.
  std::string describe() const;

  // For tests and tools that build corpora in memory; `clusters` (optional): each sequence's cluster index.
  static Corpus from_sequences(const std::vector<std::string>& residues, const std::vector<Split>& splits,
                               const std::vector<int64_t>& clusters = {});

 private:
  // The optional cluster columns of an open corpus file, mapped through `file` (null: read into memory).
  void load_clusters(int64_t file_id, const std::shared_ptr<const h5::MappedFile>& file);

  std::string path_;
  CorpusColumn<Token> tokens_;
  CorpusColumn<int64_t> offsets_;
  CorpusColumn<uint8_t> split_;
  CorpusColumn<int64_t> cluster_;
  CorpusColumn<int32_t> cluster_rank_, cluster_size_;
  std::string no_clusters_ = "prepared without --clusters";
  std::string clusters_in_memory_;  // why the cluster columns of a mapped corpus were read into memory
  std::vector<std::string> accessions_;
  CorpusStats stats_;
  std::string not_mapped_;  // why the file was read into memory
  std::string stored_fingerprint_;  // the file's fingerprint attribute, or its layout hash; "" in memory
};

void write_stats(int64_t group_id, const CorpusStats& stats);
CorpusStats read_stats(int64_t group_id);

}  // namespace performer
