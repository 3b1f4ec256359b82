#include "experiments/embed_job.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "io/hdf5.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/process.h"
#include "util/progress.h"
#include "util/text.h"

namespace performer {

namespace {

// A hash of the model's parameters and buffers (FAVOR's random features included): what a resumed run
// must embed with, whatever the checkpoint file is called or where it was copied.
int64_t weights_hash(Encoder& model) {
  uint64_t h = 0;
  auto add = [&h](const std::string& name, const at::Tensor& t) {
    const at::Tensor c = t.detach().to(torch::kCPU).contiguous();
    h = hash64(name, h);
    h = hash64(std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes()), h);
  };
  for (const auto& p : model->named_parameters()) add(p.key(), p.value());
  for (const auto& b : model->named_buffers()) add(b.key(), b.value());
  return static_cast<int64_t>(h);
}

// The running hash of the proteins read: each one's accession and residues, in order.
uint64_t add_protein(uint64_t h, const std::string& accession, const std::string& residues) {
  return hash64(residues, hash64(accession, h));
}

// What a run embeds: a resumed run must ask for the same (stored as attributes of the output).
struct RunIdentity {
  std::string checkpoint, config, pooling;
  int64_t step = 0, per_residue = 0, weights = 0;
  std::string reader;  // "--unknown map --empty error --gaps strip": which records are read, and how
  std::string precision;  // "fp32" or "bf16", as run (auto resolved)
  std::vector<int64_t> layers, input_bytes;
  std::vector<std::string> inputs;

  void write(hid_t f) const {
    h5::write_attr(f, "checkpoint", checkpoint);
    h5::write_attr(f, "step", step);
    h5::write_attr(f, "config", config);
    h5::write_attr(f, "pooling", pooling);
    h5::write_attr(f, "layers", layers);
    h5::write_attr(f, "inputs", inputs);
    h5::write_attr(f, "input_bytes", input_bytes);
    h5::write_attr(f, "per_residue", per_residue);
    h5::write_attr(f, "weights", weights);
    h5::write_attr(f, "reader", reader);
    h5::write_attr(f, "precision", precision);
  }
  static RunIdentity read(hid_t f) {
    RunIdentity r;
    r.checkpoint = h5::read_attr_string(f, "checkpoint");
    r.step = h5::read_attr_int(f, "step");
    // Compared as the config it describes, not as text (another version may quote a string differently).
    r.config = config_to_yaml(parse_config(h5::read_attr_string(f, "config"), "the partial file's config"));
    r.pooling = h5::read_attr_string(f, "pooling");
    r.layers = h5::read_attr_ints(f, "layers");
    r.inputs = h5::read_attr_strings(f, "inputs");
    r.input_bytes = h5::read_attr_ints(f, "input_bytes");
    r.per_residue = h5::read_attr_int(f, "per_residue");
    r.weights = h5::read_attr_int(f, "weights");
    // Partial files from before the reader options were read with these (gaps kept as residues).
    r.reader = h5::has_attr(f, "reader") ? h5::read_attr_string(f, "reader")
                                         : std::string("--unknown map --empty error --gaps keep");
    r.precision = h5::has_attr(f, "precision") ? h5::read_attr_string(f, "precision") : std::string("fp32");
    return r;
  }
  // What differs from `now`, in words ("" when nothing does).
  std::string difference(const RunIdentity& now) const {
    if (step != now.step || config != now.config || weights != now.weights)
      return "the weights of " + checkpoint + " at step " + std::to_string(step) + " (" + now.checkpoint +
             (checkpoint == now.checkpoint ? " has changed since)" : " holds others)");
    if (pooling != now.pooling) return "--pool " + pooling + ", not " + now.pooling;
    if (layers != now.layers) return "other --layers";
    if (per_residue != now.per_residue) return per_residue ? "--per-residue" : "no --per-residue";
    if (inputs != now.inputs) return "other --input files";
    if (input_bytes != now.input_bytes) return "inputs of other sizes (an input has changed since)";
    if (reader != now.reader) return reader + ", not " + now.reader;
    if (precision != now.precision) return "precision " + precision + ", not " + now.precision;
    return "";
  }
};

// How far a partial output got: what its last commit wrote.
struct Committed {
  int64_t proteins = 0, residues = 0;
  uint64_t hash = 0;  // add_protein() over the committed proteins
};

// The output datasets, appended to chunk by chunk; fresh, or continued from a partial file's last commit.
class EmbeddingFile {
 public:
  EmbeddingFile(hid_t file, const std::vector<int64_t>& layers, int64_t d, Pooling pool, bool per_residue,
                const std::optional<Committed>& from)
      : file_(file),
        proteins_(from ? h5::open_group(file, "proteins") : h5::create_group(file, "proteins")),
        accessions_(from ? h5::StringAppender(proteins_, "accessions", kChunk, keep(from->proteins))
                         : h5::StringAppender(proteins_, "accessions", kChunk)),
        lengths_(from ? h5::Appender<int64_t>(proteins_, "lengths", kChunk, keep(from->proteins))
                      : h5::Appender<int64_t>(proteins_, "lengths", kChunk)),
        pool_(pool) {
    const auto width = static_cast<hsize_t>(d);
    const hsize_t rows = 256;
    auto group = [&](const std::string& name) { return from ? h5::open_group(file, name) : h5::create_group(file, name); };
    auto rows_of = [&](hid_t g, const std::string& name, int64_t keep_rows, hsize_t chunk) {
      return from ? h5::RowAppender(g, name, width, keep(keep_rows)) : h5::RowAppender(g, name, width, chunk);
    };
    h5::Handle pooled = group("per_protein");
    std::optional<h5::Handle> cls_group, residue_group;
    if (pool == Pooling::kBoth) cls_group.emplace(group("per_protein_cls"));
    if (per_residue) residue_group.emplace(group("per_residue"));
    const int64_t n = from ? from->proteins : 0, residues = from ? from->residues : 0;
    for (int64_t l : layers) {
      const std::string name = "layer_" + std::to_string(l);
      pooled_.push_back(rows_of(pooled, name, n, rows));
      if (cls_group) cls_.push_back(rows_of(*cls_group, name, n, rows));
      if (residue_group) residues_.push_back(rows_of(*residue_group, name, residues, rows * 16));
    }
    if (residue_group) {
      if (from) {
        offsets_.emplace(*residue_group, "offsets", kChunk, keep(n + 1));
      } else {
        offsets_.emplace(*residue_group, "offsets", kChunk);
        offsets_->append(int64_t{0});
      }
    }
    residues_total_ = residues;
  }

  // Writes what was appended through and records how far: after this, a killed process loses nothing
  // up to `c`.
  // One attribute, overwritten in place (h5::write_attr), so that it is never absent or half new.
  void commit(const Committed& c) {
    accessions_.flush();
    lengths_.flush();
    if (offsets_) offsets_->flush();
    h5::write_attr(file_, "commit", std::vector<int64_t>{c.proteins, c.residues, static_cast<int64_t>(c.hash)});
    h5::flush_file(file_);
  }

  static Committed committed(hid_t file) {
    const std::vector<int64_t> v = h5::read_attr_ints(file, "commit");
    if (v.size() != 3 || v[0] < 0 || v[1] < 0) throw Error("its commit record is malformed");
    return Committed{v[0], v[1], static_cast<uint64_t>(v[2])};
  }

  void write(const std::vector<std::string>& accessions, const std::vector<std::string>& proteins,
             const std::vector<ProteinEmbedding>& e) {
    for (size_t p = 0; p < proteins.size(); ++p) {
      accessions_.append(accessions[p]);
      lengths_.append(static_cast<int64_t>(proteins[p].size()));
      for (size_t k = 0; k < pooled_.size(); ++k) {
        const at::Tensor& v = pool_ == Pooling::kCls ? e[p].cls[k] : e[p].mean[k];
        pooled_[k].append(v.contiguous().data_ptr<float>(), 1);
        if (!cls_.empty()) cls_[k].append(e[p].cls[k].contiguous().data_ptr<float>(), 1);
        if (!residues_.empty()) {
          const at::Tensor r = e[p].residues[k].contiguous();
          residues_[k].append(r.data_ptr<float>(), static_cast<hsize_t>(r.size(0)));
        }
      }
      if (offsets_) {
        residues_total_ += static_cast<int64_t>(proteins[p].size());
        offsets_->append(residues_total_);
      }
    }
  }


 private:
  static constexpr hsize_t kChunk = 1 << 12;
  static h5::Continue keep(int64_t n) { return h5::Continue{static_cast<hsize_t>(n)}; }

  hid_t file_;
  h5::Handle proteins_;
  h5::StringAppender accessions_;
  h5::Appender<int64_t> lengths_;
  std::vector<h5::RowAppender> pooled_, cls_, residues_;
  std::optional<h5::Appender<int64_t>> offsets_;
  Pooling pool_ = Pooling::kMean;
  int64_t residues_total_ = 0;
};

// The partial file to continue, or none: refuses one left by an interrupted run unless --resume, and one
// started for something else.
std::optional<Committed> partial_to_continue(const EmbedJob& a, const std::string& partial, const RunIdentity& now) {
  if (!std::filesystem::exists(partial)) {
    if (a.resume) warn("embed --resume: no " + partial + " to continue; starting from the first protein");
    return std::nullopt;
  }
  std::optional<Committed> c;
  std::string why;
  try {
    h5::Handle f = h5::open_file(partial);
    c = EmbeddingFile::committed(f);
    why = RunIdentity::read(f).difference(now);
  } catch (const Error& e) {
    throw Error(partial + ": the partial output of an interrupted run is unreadable (" + e.what() +
                "); remove it to start over");
  }
  const std::string held = std::to_string(c->proteins) + " proteins";
  if (!a.resume)
    throw Error(partial + " holds " + held + " of an interrupted run: add --resume to continue it, or remove it to "
                "start over");
  if (!why.empty())
    throw Error(partial + ": cannot resume: it was started with " + why + "; run with the same arguments, or remove "
                "it to start over");
  return c;
}

// What a job embeds with, once checked: the model, the options, the run's identity and where it starts.
struct Setup {
  torch::Device device{torch::kCPU};
  Precision precision = Precision::kFp32;  // resolved
  RunConfig config;
  Encoder model{nullptr};
  EmbedOptions options;
  int64_t window = 0;  // residues a window of the model holds
  RunIdentity id;
  uint64_t total_bytes = 0;
  std::string partial;
  std::optional<Committed> from;  // the partial file's last commit, when resuming
};

Setup set_up(const EmbedJob& a, const std::atomic<bool>* stop) {
  if (a.inputs.empty()) throw Error("embed: give --input FILE...");
  if (a.chunk < 1) throw Error("embed: --chunk must be positive");
  if (a.stop_after < 0) throw Error("embed: --stop-after must be positive (0: no limit)");
  std::vector<InputFile> inputs{{"--checkpoint", a.checkpoint}};
  for (const std::string& in : a.inputs) inputs.push_back({"--input", in});
  refuse_overwriting_inputs("--out", {a.out, a.out + ".partial"}, inputs);
  Setup s;
  s.device = resolve_device(a.device, "--device");
  s.model = model_from_checkpoint(a.checkpoint, s.config, s.device);
  s.precision = resolve_precision(parse_precision(a.precision, "--precision"), s.device);
  // Hidden states 0..L: "all", or indices from 0 or from the end (-1 = the last), as attention's --layers.
  s.options.layers = parse_index_list(a.layers, s.config.model.layers + 1,
                                      "--layers (0 = the embeddings, -1 = the last layer)");
  s.options.pool = a.pool;
  s.options.per_residue = a.per_residue;
  s.options.tokens_per_batch = a.tokens_per_batch;
  s.options.stop = stop;
  s.window = s.config.model.max_len - 2;
  s.id = RunIdentity{a.checkpoint, config_to_yaml(s.config), pooling_names()[static_cast<size_t>(a.pool)],
                     checkpoint_step(a.checkpoint), a.per_residue ? 1 : 0, weights_hash(s.model), a.reader_flags,
                     precision_name(s.precision), s.options.layers, {}, a.inputs};
  for (const std::string& in : a.inputs) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(in, ec);
    if (ec) throw Error(in + ": cannot read the input (" + ec.message() + ")");
    s.total_bytes += size;
    s.id.input_bytes.push_back(static_cast<int64_t>(size));
  }
  s.partial = a.out + ".partial";
  s.from = partial_to_continue(a, s.partial, s.id);
  return s;
}

// Reads the inputs, skips what a resumed file holds, and embeds and commits the rest chunk by chunk.
class Stream {
 public:
  Stream(const EmbedJob& a, Setup& s, EmbeddingFile& writer, Progress& progress, const std::atomic<bool>* stop)
      : a_(a), s_(s), writer_(writer), progress_(progress), stop_(stop), done_(s.from.value_or(Committed{})),
        skip_(done_.proteins) {}

  // Every input; false when stopped (a signal, or --stop-after before the last protein).
  bool run() {
    bool stopped = false;
    uint64_t bytes_before = 0;
    for (size_t k = 0; k < a_.inputs.size() && !stopped; ++k) {
      SequenceReader reader(a_.inputs[k], a_.reader);
      SequenceRecord rec;
      while (!stopped && reader.next(rec)) {
        if (++read_ <= skip_) {  // embedded by an earlier run
          stopped = skip(rec, a_.inputs[k], bytes_before + reader.lines().bytes_consumed());
          continue;
        }
        if (limit_reached_) {
          stopped = true;
          break;
        }
        accessions_.push_back(rec.accession);
        proteins_.push_back(rec.residues);
        if (static_cast<int64_t>(proteins_.size()) == a_.chunk) {
          stopped = !embed_chunk();
          progress_.update(bytes_before + reader.lines().bytes_consumed(), done_.proteins);
        }
      }
      if (!stopped) stopped = !embed_chunk();
      if (!stopped) warn_about(a_.inputs[k], reader.counts(), a_.reader.gaps);
      bytes_before += reader.lines().file_size();
      progress_.update(bytes_before, done_.proteins);
    }
    if (!stopped && read_ < skip_)
      throw Error(s_.partial + ": holds " + std::to_string(skip_) + " proteins but the inputs have only " +
                  std::to_string(read_) + ": the inputs are not those it was started with");
    if (!stopped && done_.proteins == 0) throw Error("embed: no proteins in the input");
    return !stopped;
  }

  const Committed& done() const { return done_; }
  int64_t embedded() const { return embedded_; }  // proteins of this invocation
  int64_t tokens() const { return tokens_; }      // the model's tokens for them

 private:
  // One protein an earlier run embedded: hashed, to check at the last one that they are those committed.
  // True when a signal asks to stop meanwhile (nothing new to keep).
  bool skip(const SequenceRecord& rec, const std::string& input, uint64_t bytes) {
    skipped_hash_ = add_protein(skipped_hash_, rec.accession, rec.residues);
    if (read_ == skip_ && skipped_hash_ != done_.hash)
      throw Error(s_.partial + ": cannot resume: the first " + std::to_string(skip_) + " proteins of the inputs " +
                  "(up to " + where(input, rec.line) + ") are not those it holds; the inputs have changed since, or " +
                  "remove it to start over");
    if (read_ % 4096 != 0) return false;
    progress_.update(bytes, read_);
    return stop_ != nullptr && stop_->load();
  }

  // Embeds and commits the chunk read so far; false when stopped by a signal (the chunk is dropped: the next
  // run redoes it).
  bool embed_chunk() {
    if (proteins_.empty()) return true;
    std::vector<ProteinEmbedding> e;
    {
      const AutocastScope autocast(s_.device, s_.precision);
      e = embed_proteins(s_.model, proteins_, s_.options, s_.device);
    }
    if (e.empty()) return false;
    writer_.write(accessions_, proteins_, e);
    Committed next = done_;
    for (size_t i = 0; i < proteins_.size(); ++i) {
      next.residues += static_cast<int64_t>(proteins_[i].size());
      next.hash = add_protein(next.hash, accessions_[i], proteins_[i]);
      tokens_ += embedding_tokens(static_cast<int64_t>(proteins_[i].size()), s_.window);
    }
    next.proteins += static_cast<int64_t>(proteins_.size());
    writer_.commit(next);
    done_ = next;  // only once it is on disk
    embedded_ += static_cast<int64_t>(proteins_.size());
    accessions_.clear();
    proteins_.clear();
    limit_reached_ = a_.stop_after > 0 && embedded_ >= a_.stop_after;  // stop at the next protein, if any
    return true;
  }

  const EmbedJob& a_;
  Setup& s_;
  EmbeddingFile& writer_;
  Progress& progress_;
  const std::atomic<bool>* stop_;
  Committed done_;
  const int64_t skip_;  // proteins the resumed file holds
  int64_t read_ = 0, embedded_ = 0, tokens_ = 0;
  uint64_t skipped_hash_ = 0;
  bool limit_reached_ = false;
  std::vector<std::string> accessions_, proteins_;  // the chunk being read
};

void report(const EmbedJob& a, const Setup& s, const Stream& stream, double seconds) {
  const double rate_seconds = std::max(seconds, 1e-9);
  const Committed& done = stream.done();
  const auto residues_now = static_cast<double>(done.residues - (s.from ? s.from->residues : 0));  // this invocation
  std::printf("wrote %s: %lld proteins, %lld residues, layers %s, pooling %s%s; %.1f s", a.out.c_str(),
              static_cast<long long>(done.proteins), static_cast<long long>(done.residues), a.layers.c_str(),
              s.id.pooling.c_str(), a.per_residue ? ", per residue" : "", seconds);
  if (s.from && s.from->proteins > 0) std::printf(" (resumed after %lld proteins)", static_cast<long long>(s.from->proteins));
  std::printf("\nthroughput: %.1f proteins/s; %.0f residues/s; model reads %.0f tokens/s (%.2f tokens per residue: "
              "<cls>, <eos> and windows of %lld residues overlapping by half); peak RSS %s\n",
              static_cast<double>(stream.embedded()) / rate_seconds, residues_now / rate_seconds,
              static_cast<double>(stream.tokens()) / rate_seconds,
              static_cast<double>(stream.tokens()) / std::max(1.0, residues_now), static_cast<long long>(s.window),
              human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
}

}  // namespace

int run_embed_job(const EmbedJob& a, const std::atomic<bool>* stop) {
  Setup s = set_up(a, stop);
  if (stop != nullptr && stop->load()) throw Interrupted("embed: interrupted before anything was written");
  Progress progress(s.from ? "embed (resumed)" : "embed", s.total_bytes, !a.quiet, /*check_every=*/1);
  std::optional<Stream> stream;
  bool complete = false;
  try {
    h5::Handle file = s.from ? h5::open_file(s.partial, /*writable=*/true) : h5::create_file(s.partial);
    if (!s.from) {
      h5::write_attr(file, "format", "performer-embeddings");
      h5::write_attr(file, "model", s.config.model.describe());
      s.id.write(file);
    }
    EmbeddingFile writer(file, s.options.layers, s.config.model.d_model, s.options.pool, s.options.per_residue, s.from);
    if (!s.from) writer.commit(Committed{});
    stream.emplace(a, s, writer, progress, stop);
    complete = stream->run();
    if (complete) {  // the totals, for readers of the finished file
      h5::write_attr(file, "proteins", stream->done().proteins);
      h5::write_attr(file, "residues", stream->done().residues);
    }
  } catch (...) {
    // Nothing half-written: a partial file with nothing committed goes; one with committed proteins stays
    // for --resume (the error may be a full disk, and the proteins took time).
    const int64_t kept = stream ? stream->done().proteins : (s.from ? s.from->proteins : 0);
    if (kept == 0) {
      std::error_code ignored;  // the error being reported matters more than a failed removal
      std::filesystem::remove(s.partial, ignored);
    } else {
      warn(std::to_string(kept) + " proteins embedded so far are kept in " + s.partial +
           "; once the cause is fixed, the same command with --resume continues");
    }
    throw;
  }
  const double seconds = progress.elapsed();
  progress.finish(s.total_bytes, stream->done().proteins);
  if (!complete) {
    warn("stopped after " + std::to_string(stream->done().proteins) + " proteins, kept in " + s.partial +
         "; the same command with --resume continues");
    return 130;
  }
  rename_durably(s.partial, a.out);
  report(a, s, *stream, seconds);
  return 0;
}

}  // namespace performer
