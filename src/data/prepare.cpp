#include "data/prepare.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <unordered_set>

#include "io/hdf5.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
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
  if (!fs::exists(o.out)) return;
  std::error_code ec;
  for (const auto& in : o.inputs)
    if (fs::equivalent(in, o.out, ec))
      throw Error(o.out + ": is also an input (" + in + "); refusing to overwrite an input with the corpus");
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

}  // namespace

PrepareResult prepare_corpus(const PrepareOptions& o) {
  validate(o);
  namespace fs = std::filesystem;
  PrepareResult result;
  for (auto& in : o.inputs) {
    std::error_code ec;
    auto size = fs::file_size(in, ec);
    if (!ec) result.input_bytes += size;
  }

  remove_stale_temporaries(fs::path(o.out).parent_path().string());  // left by killed runs
  const std::string tmp = temporary_for(o.out);
  struct Cleanup {
    std::string path;
    bool armed = true;
    ~Cleanup() {
      if (armed) std::remove(path.c_str());
    }
  } cleanup{tmp};

  CorpusStats& st = result.stats;
  std::map<int64_t, int64_t> length_hist;
  std::unordered_set<std::pair<uint64_t, uint64_t>, PairHash> seen;
  Progress progress("prepare", result.input_bytes, o.progress);
  {
    h5::Handle file = h5::create_file(tmp);
    h5::Appender<uint8_t> tokens(file, "tokens", 1 << 20);
    h5::Appender<int64_t> offsets(file, "offsets", 1 << 16);
    h5::StringAppender accessions(file, "accessions", 1 << 14);
    h5::Appender<uint8_t> splits(file, "split", 1 << 16);
    offsets.append(int64_t{0});

    std::vector<Token> ids;
    SequenceRecord rec;
    uint64_t bytes_before = 0;
    int64_t offset = 0;
    for (auto& path : o.inputs) {
      SequenceReader reader(path, o.reader);
      while (reader.next(rec)) {
        if (g_prepare_interrupted.load(std::memory_order_relaxed)) throw Error("prepare: interrupted; no corpus written");
        ++st.records_read;
        progress.update(bytes_before + reader.lines().bytes_consumed(), st.records_read);
        const auto len = static_cast<int64_t>(rec.residues.size());
        if (len < o.min_len) {
          ++st.dropped_short;
          continue;
        }
        if (o.max_len > 0 && len > o.max_len) {
          ++st.dropped_long;
          continue;
        }
        Split split;
        if (o.dedup) {
          // Identical sequences share a split (no train/test leakage) and only the first copy is kept.
          auto key = std::make_pair(hash64(rec.residues, 1), hash64(rec.residues, 2));
          if (!seen.insert(key).second) {
            ++st.dropped_duplicate;
            continue;
          }
          split = assign_split(rec.residues, o.valid_frac, o.test_frac, o.split_seed);
        } else {
          split = assign_split(rec.accession, o.valid_frac, o.test_frac, o.split_seed);
        }
        const int s = static_cast<int>(split);
        ids.resize(static_cast<size_t>(len));
        auto& counts = st.residue_counts[s];
        for (int64_t i = 0; i < len; ++i) {
          auto id = static_cast<Token>(Alphabet::residue_id(rec.residues[static_cast<size_t>(i)]));
          ids[static_cast<size_t>(i)] = id;
          ++counts[id];
        }
        tokens.append(ids.data(), ids.size());
        offset += len;
        offsets.append(offset);
        accessions.append(rec.accession);
        splits.append(static_cast<uint8_t>(split));
        ++st.sequences[s];
        st.residues[s] += len;
        ++length_hist[len];
      }
      const ReaderCounts& rc = reader.counts();
      st.skipped_empty += rc.skipped_empty;
      st.skipped_unknown += rc.skipped_unknown;
      st.mapped_to_x += rc.mapped_to_x;
      if (rc.likely_nucleotide > 0)
        std::fprintf(stderr, "warning: %s: %lld of %lld records are at least 90%% A/C/G/T/U/N: nucleotides, not proteins?\n",
                     path.c_str(), rc.likely_nucleotide, rc.records);
      bytes_before += reader.lines().file_size();
    }
    if (st.total_sequences() == 0)
      throw Error(o.out + ": no sequences kept from the input (check --min-len/--max-len and the input files)");
    tokens.flush();
    offsets.flush();
    accessions.flush();
    splits.flush();

    st.min_length = length_hist.begin()->first;
    st.max_length = length_hist.rbegin()->first;
    st.mean_length = static_cast<double>(st.total_residues()) / static_cast<double>(st.total_sequences());
    st.length_percentiles = percentiles(length_hist, st.total_sequences());
    st.unigram_perplexity_valid = st.unigram_perplexity(Split::kValid);
    st.unigram_perplexity_test = st.unigram_perplexity(Split::kTest);

    h5::write_attr(file, "format", "performer-corpus");
    h5::write_attr(file, "format_version", int64_t{1});
    h5::write_attr(file, "vocabulary", Alphabet::names());
    std::vector<std::string> sources;
    for (auto& p : o.inputs) sources.push_back(fs::absolute(p).string());
    h5::write_attr(file, "sources", sources);
    h5::write_attr(file, "split_key", o.dedup ? "sequence" : "accession");
    h5::write_attr(file, "split_names", std::vector<std::string>{"train", "valid", "test"});
    h5::write_attr(file, "valid_frac", o.valid_frac);
    h5::write_attr(file, "test_frac", o.test_frac);
    h5::write_attr(file, "split_seed", static_cast<int64_t>(o.split_seed));
    h5::write_attr(file, "dedup", int64_t{o.dedup ? 1 : 0});
    h5::write_attr(file, "min_len", o.min_len);
    h5::write_attr(file, "max_len", o.max_len);
    h5::write_attr(file, "created", now_iso8601());
    if (!o.cache_key.empty()) h5::write_attr(file, "cache_key", o.cache_key);
    h5::Handle group = h5::create_group(file, "stats");
    write_stats(group, st);
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) throw Error(tmp + ": cannot flush (disk full?)");
  }  // file closed here
  rename_durably(tmp, o.out);
  cleanup.armed = false;
  result.seconds = progress.elapsed();
  progress.finish(result.input_bytes, st.records_read);
  return result;
}

}  // namespace performer
