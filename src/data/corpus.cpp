#include "data/corpus.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "io/hdf5.h"
#include "util/error.h"
#include "util/names.h"
#include "util/hash.h"

namespace performer {

const std::vector<std::string>& split_names() {
  static const std::vector<std::string> names{"train", "valid", "test"};
  return names;
}

std::string split_name(Split s) { return name_of(s, split_names()); }

Split parse_split(const std::string& s) { return parse_name<Split>(s, split_names(), "split"); }

Split assign_split(const std::string& key, double valid_frac, double test_frac, uint64_t seed) {
  double u = static_cast<double>(hash64(key, seed) >> 11) * 0x1.0p-53;
  if (u < valid_frac) return Split::kValid;
  if (u < valid_frac + test_frac) return Split::kTest;
  return Split::kTrain;
}

std::array<double, Alphabet::kSize> CorpusStats::train_frequencies() const {
  std::array<double, Alphabet::kSize> f{};
  double total = 0;
  for (int t = 0; t < Alphabet::kSize; ++t) {
    if (!Alphabet::is_residue(static_cast<Token>(t))) continue;
    f[t] = static_cast<double>(residue_counts[0][t]) + 1.0;
    total += f[t];
  }
  for (auto& v : f) v /= total;
  return f;
}

double CorpusStats::unigram_perplexity(Split s) const {
  auto f = train_frequencies();
  const auto& c = residue_counts[static_cast<int>(s)];
  double nll = 0, n = 0;
  for (int t = 0; t < Alphabet::kSize; ++t) {
    if (c[t] == 0) continue;
    nll -= static_cast<double>(c[t]) * std::log(f[t]);
    n += static_cast<double>(c[t]);
  }
  return n > 0 ? std::exp(nll / n) : std::nan("");
}

std::string CorpusStats::summary() const {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(2);
  o << "sequences: " << total_sequences() << " (train " << sequences[0] << ", valid " << sequences[1] << ", test "
    << sequences[2] << ")\n";
  o << "residues:  " << total_residues() << " (train " << residues[0] << ", valid " << residues[1] << ", test "
    << residues[2] << ")\n";
  o << "input: " << records_read << " records read";
  if (dropped_duplicate) o << ", " << dropped_duplicate << " exact duplicates dropped";
  if (dropped_short) o << ", " << dropped_short << " shorter than min-len dropped";
  if (dropped_long) o << ", " << dropped_long << " longer than max-len dropped";
  if (skipped_empty) o << ", " << skipped_empty << " empty records skipped";
  if (skipped_unknown) o << ", " << skipped_unknown << " records with unknown letters skipped";
  if (mapped_to_x) o << ", " << mapped_to_x << " unknown letters replaced by X";
  o << "\n";
  if (clusters >= 0) {
    o << "clusters: " << clusters << " (split by cluster";
    if (split_clusters[0] >= 0)
      o << "; train " << split_clusters[0] << ", valid " << split_clusters[1] << ", test " << split_clusters[2];
    o << "); " << unclustered
      << " proteins not in the cluster file (each its own cluster); " << cluster_members_absent
      << " cluster members not among the kept proteins (absent from the input, or dropped as duplicates or by "
         "length)\n";
  }
  o << "length: min " << min_length << ", mean " << mean_length << ", max " << max_length << "; percentiles";
  for (size_t i = 0; i < kPercentiles.size() && i < length_percentiles.size(); ++i)
    o << " p" << static_cast<int>(kPercentiles[i]) << "=" << static_cast<int64_t>(length_percentiles[i]);
  o << "\n";
  auto f = train_frequencies();
  o << "train amino-acid frequencies (%):";
  for (int t = Alphabet::kFirstResidue; t < Alphabet::kFirstResidue + Alphabet::kStandardAminoAcids; ++t)
    o << " " << Alphabet::token_name(static_cast<Token>(t)) << "=" << 100.0 * f[t];
  o << "\n";
  o << "unigram perplexity (train frequencies): valid " << unigram_perplexity_valid << ", test "
    << unigram_perplexity_test << "; uniform over 20 amino acids: " << kUniformPerplexity << "\n";
  return o.str();
}

void write_stats(int64_t group_id, const CorpusStats& s) {
  hid_t g = static_cast<hid_t>(group_id);
  auto vec = [](const std::array<int64_t, kNumSplits>& a) { return std::vector<int64_t>(a.begin(), a.end()); };
  h5::write_attr(g, "sequences", vec(s.sequences));
  h5::write_attr(g, "residues", vec(s.residues));
  h5::write_attr(g, "min_length", s.min_length);
  h5::write_attr(g, "max_length", s.max_length);
  h5::write_attr(g, "mean_length", s.mean_length);
  h5::write_attr(g, "length_percentile_levels",
                 std::vector<double>(CorpusStats::kPercentiles.begin(), CorpusStats::kPercentiles.end()));
  h5::write_attr(g, "length_percentiles", s.length_percentiles);
  h5::write_attr(g, "unigram_perplexity_valid", s.unigram_perplexity_valid);
  h5::write_attr(g, "unigram_perplexity_test", s.unigram_perplexity_test);
  h5::write_attr(g, "uniform_perplexity", CorpusStats::kUniformPerplexity);
  h5::write_attr(g, "records_read", s.records_read);
  h5::write_attr(g, "dropped_short", s.dropped_short);
  h5::write_attr(g, "dropped_long", s.dropped_long);
  h5::write_attr(g, "dropped_duplicate", s.dropped_duplicate);
  h5::write_attr(g, "skipped_empty", s.skipped_empty);
  h5::write_attr(g, "skipped_unknown", s.skipped_unknown);
  h5::write_attr(g, "mapped_to_x", s.mapped_to_x);
  h5::write_attr(g, "clusters", s.clusters);
  h5::write_attr(g, "unclustered", s.unclustered);
  h5::write_attr(g, "cluster_members_absent", s.cluster_members_absent);
  h5::write_attr(g, "split_clusters", vec(s.split_clusters));
  std::vector<int64_t> counts;
  for (auto& row : s.residue_counts) counts.insert(counts.end(), row.begin(), row.end());
  h5::write_array<int64_t>(g, "residue_counts", {kNumSplits, Alphabet::kSize}, counts.data());
  auto f = s.train_frequencies();
  h5::write_array<double>(g, "train_frequencies", {Alphabet::kSize}, f.data());
}

CorpusStats read_stats(int64_t group_id) {
  hid_t g = static_cast<hid_t>(group_id);
  CorpusStats s;
  auto per_split = [&](const char* name, std::array<int64_t, kNumSplits>& out) {
    auto v = h5::read_attr_ints(g, name);
    if (v.size() != kNumSplits) throw Error(h5::file_name(g) + ": /stats attribute '" + name + "' is not of length 3");
    std::copy(v.begin(), v.end(), out.begin());
  };
  per_split("sequences", s.sequences);
  per_split("residues", s.residues);
  s.min_length = h5::read_attr_int(g, "min_length");
  s.max_length = h5::read_attr_int(g, "max_length");
  s.mean_length = h5::read_attr_double(g, "mean_length");
  s.length_percentiles = h5::read_attr_doubles(g, "length_percentiles");
  s.unigram_perplexity_valid = h5::read_attr_double(g, "unigram_perplexity_valid");
  s.unigram_perplexity_test = h5::read_attr_double(g, "unigram_perplexity_test");
  s.records_read = h5::read_attr_int(g, "records_read");
  s.dropped_short = h5::read_attr_int(g, "dropped_short");
  s.dropped_long = h5::read_attr_int(g, "dropped_long");
  s.dropped_duplicate = h5::read_attr_int(g, "dropped_duplicate");
  s.skipped_empty = h5::read_attr_int(g, "skipped_empty");
  s.skipped_unknown = h5::read_attr_int(g, "skipped_unknown");
  s.mapped_to_x = h5::read_attr_int(g, "mapped_to_x");
  if (h5::has_attr(g, "clusters")) {  // corpora from before cluster splits have none
    s.clusters = h5::read_attr_int(g, "clusters");
    s.unclustered = h5::read_attr_int(g, "unclustered");
    s.cluster_members_absent = h5::read_attr_int(g, "cluster_members_absent");
  }
  if (h5::has_attr(g, "split_clusters")) per_split("split_clusters", s.split_clusters);
  auto counts = h5::read_array<int64_t>(g, "residue_counts");
  if (counts.size() != static_cast<size_t>(kNumSplits * Alphabet::kSize))
    throw Error(h5::file_name(g) + ": /stats/residue_counts has the wrong shape");
  for (int sp = 0; sp < kNumSplits; ++sp)
    for (int t = 0; t < Alphabet::kSize; ++t) s.residue_counts[sp][t] = counts[sp * Alphabet::kSize + t];
  return s;
}

bool Corpus::is_corpus_file(const std::string& path) {
  if (!h5::is_hdf5(path)) return false;
  try {
    h5::Handle f = h5::open_file(path);
    return h5::has_attr(f, "format") && h5::read_attr_string(f, "format") == "performer-corpus";
  } catch (const Error&) {
    return false;
  }
}

template <class T>
void CorpusColumn<T>::copy(uint64_t first, uint64_t n, T* out) const {
  if (mapped_)
    mapped_->copy(first, n, out);
  else
    std::copy(owned_.begin() + static_cast<std::ptrdiff_t>(first), owned_.begin() + static_cast<std::ptrdiff_t>(first + n), out);
}
template class CorpusColumn<uint8_t>;
template class CorpusColumn<int32_t>;
template class CorpusColumn<int64_t>;

void Corpus::copy_residues(size_t i, int64_t start, int64_t n, Token* out) const {
  tokens_.copy(static_cast<uint64_t>(offsets_[i] + start), static_cast<uint64_t>(n), out);
  if (!tokens_.mapped()) return;  // checked when it was read
  for (int64_t k = 0; k < n; ++k)
    if (!Alphabet::is_residue(out[k]))
      throw Error(path_ + ": corrupt corpus: token id " + std::to_string(out[k]) + " in sequence " + std::to_string(i) +
                  " is not a residue");
}

void Corpus::prefetch(const std::vector<size_t>& ids) const {
  if (!tokens_.mapped()) return;
  for (size_t i : ids) tokens_.prefetch(static_cast<uint64_t>(offsets_[i]), static_cast<uint64_t>(length(i)));
}

std::vector<Token> Corpus::residues(size_t i) const {
  std::vector<Token> out(static_cast<size_t>(length(i)));
  copy_residues(i, 0, length(i), out.data());
  return out;
}

std::string Corpus::storage() const {
  std::string s = mapped() ? "memory-mapped" : "in memory (" + not_mapped_ + ")";
  if (!clusters_in_memory_.empty()) s += "; cluster columns in memory (" + clusters_in_memory_ + ")";
  return s;
}

Corpus Corpus::load(const std::string& path, bool with_accessions, bool map) {
  h5::Handle f = h5::open_file(path);
  if (!h5::has_attr(f, "format") || h5::read_attr_string(f, "format") != "performer-corpus")
    throw Error(path + ": not a performer corpus (run `performer prepare` to make one)");
  int64_t version = h5::read_attr_int(f, "format_version");
  if (version != 1)
    throw Error(path + ": corpus format version " + std::to_string(version) + " is not supported (expected 1)");
  Corpus c;
  c.path_ = path;
  c.not_mapped_ = "asked for";
  std::shared_ptr<const h5::MappedFile> file;  // one mapping of the file, shared by every mapped column
  if (map) {
    file = std::make_shared<const h5::MappedFile>(path);
    auto tokens = h5::MappedArray<uint8_t>::open(file, f, "tokens", c.not_mapped_);
    auto offsets = h5::MappedArray<int64_t>::open(file, f, "offsets", c.not_mapped_);
    auto split = h5::MappedArray<uint8_t>::open(file, f, "split", c.not_mapped_);
    if (tokens && offsets && split) {
      c.tokens_.map(std::move(*tokens));
      c.offsets_.map(std::move(*offsets));
      c.split_.map(std::move(*split));
      // Offsets and split labels (9 bytes per protein) are read whole, in random order, by every epoch's
      // table: have the kernel read them ahead sequentially.
      c.offsets_.prefetch(0, c.offsets_.size());
      c.split_.prefetch(0, c.split_.size());
    }
  }
  if (!c.tokens_.mapped()) {
    c.tokens_.owned() = h5::read_array<uint8_t>(f, "tokens");
    c.offsets_.owned() = h5::read_array<int64_t>(f, "offsets");
    c.split_.owned() = h5::read_array<uint8_t>(f, "split");
    for (auto t : c.tokens_.owned())
      if (!Alphabet::is_residue(t)) throw Error(path + ": corrupt corpus: token id " + std::to_string(t) + " is not a residue");
  }
  // Checked whole in either case: the offsets and split labels (9 bytes per sequence, read once).
  const uint64_t n = c.split_.size();
  if (c.offsets_.size() != n + 1 || c.offsets_[0] != 0 || c.offsets_[n] != static_cast<int64_t>(c.tokens_.size()))
    throw Error(path + ": inconsistent corpus (offsets, split and tokens disagree; file corrupt?)");
  uint64_t layout = 0x1a70;  // the fingerprint of a corpus prepared before fingerprints: lengths and splits
  for (uint64_t i = 0; i < n; ++i) {
    if (c.offsets_[i + 1] < c.offsets_[i]) throw Error(path + ": corrupt corpus: offsets decrease at " + std::to_string(i));
    if (c.split_[i] >= kNumSplits) throw Error(path + ": corrupt corpus: split label " + std::to_string(c.split_[i]));
    layout = mix64(layout ^ static_cast<uint64_t>(c.offsets_[i + 1] - c.offsets_[i]) ^ (uint64_t{c.split_[i]} << 56));
  }
  char hex[32];
  std::snprintf(hex, sizeof hex, "layout-%016llx", static_cast<unsigned long long>(layout));
  c.stored_fingerprint_ = hex;
  c.load_clusters(f, file);
  if (with_accessions) {
    c.accessions_ = h5::read_strings(f, "accessions");
    if (c.accessions_.size() != c.split_.size()) throw Error(path + ": corrupt corpus: accession count differs");
  }
  h5::Handle g = h5::open_group(f, "stats");
  c.stats_ = read_stats(g);
  if (h5::has_attr(f, "fingerprint")) c.stored_fingerprint_ = h5::read_attr_string(f, "fingerprint");  // content
  return c;
}

namespace {

// An optional column: mapped when asked and possible (no read-ahead: it is read only with cluster
// sampling), else read into memory (`why` says why, when mapping was asked for).
template <class T>
void load_column(hid_t f, const std::string& name, bool map, const std::shared_ptr<const h5::MappedFile>& file,
                 CorpusColumn<T>& out, std::string& why) {
  if (map) {
    if (auto a = h5::MappedArray<T>::open(file, f, name, why)) {
      out.map(std::move(*a));
      return;
    }
  }
  out.owned() = h5::read_array<T>(f, name);
}

}  // namespace

void Corpus::load_clusters(int64_t file_id, const std::shared_ptr<const h5::MappedFile>& file) {
  const auto f = static_cast<hid_t>(file_id);
  if (!h5::exists(f, "cluster")) return;  // prepared without --clusters
  if (!h5::exists(f, "cluster_rank") || !h5::exists(f, "cluster_size")) {
    no_clusters_ = "prepared with --clusters before cluster sampling existed (no /cluster_rank); prepare it again";
    return;
  }
  const bool map = file != nullptr;
  std::string why;
  load_column(f, "cluster", map, file, cluster_, why);
  load_column(f, "cluster_rank", map, file, cluster_rank_, why);
  load_column(f, "cluster_size", map, file, cluster_size_, why);
  if (!why.empty()) clusters_in_memory_ = why;
  if (cluster_.size() != size() || cluster_rank_.size() != size())
    throw Error(path_ + ": corrupt corpus: /cluster or /cluster_rank is not one value per sequence");
}

void CorpusFingerprint::add(Split split, const Token* tokens, int64_t n, int64_t cluster, int32_t cluster_rank) {
  h_ = mix64(h_ ^ (static_cast<uint64_t>(split) + 1) ^ (static_cast<uint64_t>(n) << 8));
  h_ = hash64(std::string_view(reinterpret_cast<const char*>(tokens), static_cast<size_t>(n)), h_);
  if (cluster >= 0) h_ = mix64(h_ ^ mix64(static_cast<uint64_t>(cluster)) ^ static_cast<uint64_t>(cluster_rank));
}

std::string CorpusFingerprint::hex() const {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
  return buf;
}

std::string Corpus::fingerprint() const {
  if (!stored_fingerprint_.empty()) return stored_fingerprint_;
  CorpusFingerprint f;
  std::vector<Token> buf;
  for (size_t i = 0; i < size(); ++i) {
    buf.resize(static_cast<size_t>(length(i)));
    copy_residues(i, 0, length(i), buf.data());
    if (has_clusters())
      f.add(split(i), buf.data(), length(i), cluster(i), cluster_rank(i));
    else
      f.add(split(i), buf.data(), length(i));
  }
  return f.hex();
}

std::string Corpus::describe() const {
  return (path_.empty() ? std::string("a corpus built in memory") : path_) + ": " + std::to_string(stats_.sequences[0]) +
         " train / " + std::to_string(stats_.sequences[1]) + " valid / " + std::to_string(stats_.sequences[2]) +
         " test sequences";
}

std::vector<size_t> Corpus::indices(Split s) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < size(); ++i)
    if (split_[i] == static_cast<uint8_t>(s)) out.push_back(i);
  return out;
}

Corpus Corpus::from_sequences(const std::vector<std::string>& residues, const std::vector<Split>& splits,
                              const std::vector<int64_t>& clusters) {
  if (residues.size() != splits.size()) throw Error("from_sequences: sizes differ");
  if (!clusters.empty() && clusters.size() != residues.size()) throw Error("from_sequences: cluster count differs");
  Corpus c;
  c.not_mapped_ = "built in memory";
  c.offsets_.owned().push_back(0);
  for (size_t i = 0; i < residues.size(); ++i) {
    for (char ch : residues[i]) {
      int id = Alphabet::residue_id(ch);
      if (id < 0) throw Error("from_sequences: letter '" + std::string(1, ch) + "' not in the alphabet");
      c.tokens_.owned().push_back(static_cast<Token>(id));
      c.stats_.residue_counts[static_cast<int>(splits[i])][id]++;
    }
    c.offsets_.owned().push_back(static_cast<int64_t>(c.tokens_.size()));
    c.split_.owned().push_back(static_cast<uint8_t>(splits[i]));
    c.accessions_.push_back("seq" + std::to_string(i + 1));
    c.stats_.sequences[static_cast<int>(splits[i])]++;
    c.stats_.residues[static_cast<int>(splits[i])] += static_cast<int64_t>(residues[i].size());
  }
  if (!clusters.empty()) {  // ranks in corpus order and sizes, as prepare --clusters writes them
    for (int64_t k : clusters) {
      if (k < 0) throw Error("from_sequences: negative cluster index");
      auto& sizes = c.cluster_size_.owned();
      if (static_cast<size_t>(k) >= sizes.size()) sizes.resize(static_cast<size_t>(k) + 1, 0);
      c.cluster_.owned().push_back(k);
      c.cluster_rank_.owned().push_back(sizes[static_cast<size_t>(k)]++);
    }
    c.no_clusters_.clear();
  }
  return c;
}

}  // namespace performer
