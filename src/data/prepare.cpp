#include "data/prepare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <unordered_set>

#include "data/clusters.h"
#include "io/hdf5.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/text.h"

namespace performer {

std::atomic<bool> g_prepare_interrupted{false};

namespace {

struct PairHash {
  size_t operator()(const std::pair<uint64_t, uint64_t>& p) const { return static_cast<size_t>(p.first ^ mix64(p.second)); }
};

void validate(const PrepareOptions& o) {
  if (o.inputs.empty()) throw Error("prepare: no input files given (--input FILE...)");
  if (o.out.empty()) throw Error("prepare: no output given (--out corpus.h5)");
  // Written as "not inside" so that NaN is refused too.
  if (!(o.valid_frac >= 0 && o.valid_frac < 1)) throw Error("prepare: --valid-frac must be in [0, 1)");
  if (!(o.test_frac >= 0 && o.test_frac < 1)) throw Error("prepare: --test-frac must be in [0, 1)");
  if (o.valid_frac + o.test_frac >= 1) throw Error("prepare: --valid-frac + --test-frac must be below 1");
  if (o.min_len < 1) throw Error("prepare: --min-len must be at least 1");
  if (o.max_len != 0 && o.max_len < o.min_len) throw Error("prepare: --max-len must be 0 (no limit) or >= --min-len");
  namespace fs = std::filesystem;
  fs::path dir = fs::path(o.out).parent_path();
  if (!dir.empty() && !fs::is_directory(dir))
    throw Error(o.out + ": output folder '" + dir.string() + "' does not exist");
  if (fs::is_directory(o.out)) throw Error(o.out + ": is a directory; --out names the corpus file to write");
  std::vector<InputFile> inputs{{"--clusters", o.clusters}};
  for (const auto& in : o.inputs) inputs.push_back({"--input", in});
  refuse_overwriting_inputs("--out", {o.out}, inputs);  // with or without --force
  if (!fs::exists(o.out)) return;
  if (!o.force && !Corpus::is_corpus_file(o.out))
    throw Error(o.out + ": exists and is not a performer corpus; refusing to replace it (choose another --out, or "
                "--force)");
}

// Length percentiles (nearest rank) from a histogram.
std::vector<double> percentiles(const std::map<int64_t, int64_t>& hist, int64_t n) {
  std::vector<double> out;
  for (double p : CorpusStats::kPercentiles) {
    int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(n))));
    int64_t seen = 0;
    double value = 0;
    for (auto& [len, count] : hist) {
      seen += count;
      if (seen >= rank) {
        value = static_cast<double>(len);
        break;
      }
    }
    out.push_back(value);
  }
  return out;
}

uint64_t total_input_bytes(const std::vector<std::string>& inputs) {
  uint64_t total = 0;
  for (auto& in : inputs) {
    std::error_code ec;
    auto size = std::filesystem::file_size(in, ec);
    if (!ec) total += size;
  }
  return total;
}

// Adds one input's reader counts to the corpus statistics.
void add_reader_counts(CorpusStats& st, const ReaderCounts& rc) {
  st.skipped_empty += rc.skipped_empty;
  st.skipped_unknown += rc.skipped_unknown;
  st.mapped_to_x += rc.mapped_to_x;
}

// Streams the records of every input into the corpus datasets of `file`, applying the length filters and
// --dedup, and counting into `st` as it goes.
class CorpusBuilder {
 public:
  CorpusBuilder(const PrepareOptions& o, hid_t file, CorpusStats& st, Progress& progress)
      : o_(o),
        st_(st),
        progress_(progress),
        tokens_(file, "tokens", 1 << 20),
        offsets_(file, "offsets", 1 << 16),
        accessions_(file, "accessions", 1 << 14),
        splits_(file, "split", 1 << 16) {
    offsets_.append(int64_t{0});
    if (!o_.clusters.empty()) {
      clusters_ = Clusters::load(o_.clusters);
      cluster_ids_.emplace(file, "cluster", 1 << 16);
      cluster_ranks_.emplace(file, "cluster_rank", 1 << 16);
      cluster_sizes_.emplace(file, "cluster_size", 1 << 16);
      kept_.assign(static_cast<size_t>(clusters_.clusters()), 0);
      st_.split_clusters = {0, 0, 0};
      seen_members_.reserve(static_cast<size_t>(clusters_.members()));
      st_.clusters = 0;
    }
  }

  void read_inputs() {
    uint64_t bytes_before = 0;
    for (auto& path : o_.inputs) {
      // A signal that came before the open (which can wait on a FIFO) is honoured here; one during the
      // wait interrupts it (no SA_RESTART).
      if (g_prepare_interrupted.load()) throw Error("prepare: interrupted; no corpus written");
      SequenceReader reader(path, reader_options());
      SequenceRecord rec;
      while (reader.next(rec)) {
        if (g_prepare_interrupted.load(std::memory_order_relaxed)) throw Error("prepare: interrupted; no corpus written");
        ++st_.records_read;
        progress_.update(bytes_before + reader.lines().bytes_consumed(), st_.records_read);
        add(rec);
      }
      add_reader_counts(st_, reader.counts());
      warn_about(path, reader.counts(), o_.reader.gaps);
      bytes_before += reader.lines().file_size();
    }
  }

  const CorpusFingerprint& fingerprint() const { return fingerprint_; }

  // --max-len is applied while reading: a longer record is read to its end (counted) without keeping more
  // than max_len of its residues, so one record never holds more memory than that.
  ReaderOptions reader_options() const {
    ReaderOptions r = o_.reader;
    if (o_.max_len > 0) {
      r.max_residues = std::min(r.max_residues, o_.max_len);
      r.keep_long_records = true;
    }
    return r;
  }

  // Flushes the datasets and completes the length statistics; throws when no sequence was kept.
  void finish() {
    if (st_.total_sequences() == 0)
      throw Error(o_.out + ": no sequences kept from the input (check --min-len/--max-len and the input files)");
    tokens_.flush();
    offsets_.flush();
    accessions_.flush();
    splits_.flush();
    if (cluster_ids_) {
      cluster_ids_->flush();
      cluster_ranks_->flush();
      // Kept members per cluster index: the file's clusters, then one for each unlisted protein.
      cluster_sizes_->append(kept_.data(), kept_.size());
      for (int64_t k = 0; k < st_.unclustered; ++k) cluster_sizes_->append(int32_t{1});
      cluster_sizes_->flush();
      st_.cluster_members_absent = clusters_.members() - static_cast<int64_t>(seen_members_.size());
    }
    st_.min_length = length_hist_.begin()->first;
    st_.max_length = length_hist_.rbegin()->first;
    st_.mean_length = static_cast<double>(st_.total_residues()) / static_cast<double>(st_.total_sequences());
    st_.length_percentiles = percentiles(length_hist_, st_.total_sequences());
    st_.unigram_perplexity_valid = st_.unigram_perplexity(Split::kValid);
    st_.unigram_perplexity_test = st_.unigram_perplexity(Split::kTest);
  }

 private:
  // The split of a record, or false when a filter drops it (counted).
  bool keep(const SequenceRecord& rec, Split& split) {
    const int64_t len = rec.length;
    if (len < o_.min_len) {
      ++st_.dropped_short;
      return false;
    }
    if (o_.max_len > 0 && len > o_.max_len) {
      ++st_.dropped_long;
      return false;
    }
    if (o_.dedup) {  // identical sequences share a split (no train/test leakage); the first copy is kept
      auto key = std::make_pair(hash64(rec.residues, 1), hash64(rec.residues, 2));
      if (!seen_.insert(key).second) {
        ++st_.dropped_duplicate;
        return false;
      }
    }
    if (cluster_ids_) {  // keyed by cluster: a cluster never straddles two splits
      cluster_ = clusters_.cluster_of(rec.accession);
      if (cluster_ >= 0) {
        seen_members_.insert(rec.accession);
        split = assign_split("cluster:" + clusters_.representative(cluster_), o_.valid_frac, o_.test_frac, o_.split_seed);
        return true;
      }
      ++st_.unclustered;  // its own cluster, keyed as it would be without a cluster file
    }
    split = assign_split(o_.dedup ? rec.residues : rec.accession, o_.valid_frac, o_.test_frac, o_.split_seed);
    return true;
  }

  void add(const SequenceRecord& rec) {
    Split split = Split::kTrain;
    if (!keep(rec, split)) return;
    const auto len = static_cast<int64_t>(rec.residues.size());
    const int s = static_cast<int>(split);
    ids_.resize(static_cast<size_t>(len));
    auto& counts = st_.residue_counts[s];
    for (int64_t i = 0; i < len; ++i) {
      auto id = static_cast<Token>(Alphabet::residue_id(rec.residues[static_cast<size_t>(i)]));
      ids_[static_cast<size_t>(i)] = id;
      ++counts[id];
    }
    tokens_.append(ids_.data(), ids_.size());
    offset_ += len;
    offsets_.append(offset_);
    accessions_.append(rec.accession);
    splits_.append(static_cast<uint8_t>(split));
    if (cluster_ids_) {
      int64_t id = cluster_;
      int32_t rank = 0;
      if (id < 0) {
        id = clusters_.clusters() + st_.unclustered - 1;  // a fresh index past the file's clusters
      } else {
        int32_t& kept = kept_[static_cast<size_t>(id)];
        if (kept == std::numeric_limits<int32_t>::max())
          throw Error(o_.clusters + ": cluster of '" + rec.accession + "' has more than 2^31 - 1 members");
        rank = kept++;
      }
      if (rank == 0) {  // the cluster's first kept member
        ++st_.clusters;
        ++st_.split_clusters[static_cast<size_t>(s)];
      }
      cluster_ids_->append(id);
      cluster_ranks_->append(rank);
      fingerprint_.add(split, ids_.data(), len, id, rank);
    } else {
      fingerprint_.add(split, ids_.data(), len);
    }
    ++st_.sequences[s];
    st_.residues[s] += len;
    ++length_hist_[len];
  }

  const PrepareOptions& o_;
  CorpusStats& st_;
  Progress& progress_;
  h5::Appender<uint8_t> tokens_;
  h5::Appender<int64_t> offsets_;
  h5::StringAppender accessions_;
  h5::Appender<uint8_t> splits_;
  int64_t offset_ = 0;
  std::vector<Token> ids_;
  std::map<int64_t, int64_t> length_hist_;
  std::unordered_set<std::pair<uint64_t, uint64_t>, PairHash> seen_;
  Clusters clusters_;
  std::optional<h5::Appender<int64_t>> cluster_ids_;
  std::optional<h5::Appender<int32_t>> cluster_ranks_, cluster_sizes_;
  std::vector<int32_t> kept_;                        // kept members of each of the file's clusters
  std::unordered_set<std::string> seen_members_;     // listed members found in the input
  int64_t cluster_ = -1;                             // of the record being added
  CorpusFingerprint fingerprint_;                    // of what was kept
};

// The corpus's self-description: format, vocabulary, sources and the options that made it.
void write_attributes(hid_t file, const PrepareOptions& o, const CorpusFingerprint& fingerprint) {
  h5::write_attr(file, "format", "performer-corpus");
  h5::write_attr(file, "format_version", int64_t{1});
  h5::write_attr(file, "vocabulary", Alphabet::names());
  std::vector<std::string> sources;
  for (auto& p : o.inputs) sources.push_back(std::filesystem::absolute(p).string());
  h5::write_attr(file, "sources", sources);
  h5::write_attr(file, "split_key", !o.clusters.empty() ? "cluster" : o.dedup ? "sequence" : "accession");
  if (!o.clusters.empty()) h5::write_attr(file, "clusters_file", std::filesystem::absolute(o.clusters).string());
  h5::write_attr(file, "split_names", split_names());
  h5::write_attr(file, "valid_frac", o.valid_frac);
  h5::write_attr(file, "test_frac", o.test_frac);
  h5::write_attr(file, "split_seed", static_cast<int64_t>(o.split_seed));
  h5::write_attr(file, "dedup", int64_t{o.dedup ? 1 : 0});
  h5::write_attr(file, "min_len", o.min_len);
  h5::write_attr(file, "max_len", o.max_len);
  h5::write_attr(file, "created", now_iso8601());
  h5::write_attr(file, "fingerprint", fingerprint.hex());
  if (!o.cache_key.empty()) h5::write_attr(file, "cache_key", o.cache_key);
}

// Writes the whole corpus into the HDF5 file at `path`, closed again on return (also on an error).
void write_corpus(const PrepareOptions& o, const std::string& path, Progress& progress, CorpusStats& st) {
  h5::Handle file = h5::create_file(path);
  CorpusBuilder builder(o, file, st, progress);
  builder.read_inputs();
  builder.finish();
  write_attributes(file, o, builder.fingerprint());
  h5::Handle group = h5::create_group(file, "stats");
  write_stats(group, st);
  h5::flush_file(file);
}

}  // namespace

PrepareResult prepare_corpus(const PrepareOptions& o) {
  validate(o);
  PrepareResult result;
  result.input_bytes = total_input_bytes(o.inputs);
  remove_stale_temporaries(std::filesystem::path(o.out).parent_path().string());  // left by killed runs
  // Written to "<out>.tmp-<pid>", moved over <out> only when complete; removed on an error or an interrupt.
  AtomicFile out(o.out);
  Progress progress("prepare", result.input_bytes, o.progress);
  write_corpus(o, out.temporary(), progress, result.stats);
  out.commit();
  result.seconds = progress.elapsed();
  progress.finish(result.input_bytes, result.stats.records_read);
  return result;
}

}  // namespace performer
