// performer embed --checkpoint CKPT --input FILE... --out embeddings.h5 [--layers -1,0,...] [--per-residue]
//                 [--pool mean|cls|both] [--tokens-per-batch N] [--chunk N] [--device ...] [--resume]
//                 [--stop-after N]
// Embeddings of every protein of the inputs (analysis/embeddings.h), streamed into one HDF5 file:
//
//   /proteins/accessions     str     [n]          as read (duplicates kept: the row index is the key)
//   /proteins/lengths        int64   [n]
//   /per_protein/layer_<l>   float32 [n, d]       mean over the residues (--pool mean), or the <cls> vector
//                                                 (--pool cls); with --pool both, the mean here and the
//   /per_protein_cls/layer_<l> float32 [n, d]     <cls> vector there
//   /per_residue/layer_<l>   float32 [residues, d] (--per-residue) every residue of every protein, in order
//   /per_residue/offsets     int64   [n + 1]      protein i is rows offsets[i]:offsets[i+1]
//   attributes of /: format = "performer-embeddings", checkpoint, step, config (YAML), model, pooling,
//                    layers (l: 0 = the embeddings, L = the last block after the final LayerNorm), inputs,
//                    input_bytes, per_residue, weights (a hash of the model's parameters and buffers),
//                    commit = [proteins, residues, hash of the proteins' accessions and residues],
//                    and when complete proteins, residues
//
// Proteins are read, embedded and written in chunks of --chunk proteins (windows sorted by length within a
// chunk), so memory does not grow with the number of proteins. The file is written as "<out>.partial" and
// renamed to --out when complete. After every chunk the partial file is committed: its datasets are
// written through, the one attribute `commit` is overwritten in place, and HDF5 flushes the file.
// SIGINT/SIGTERM/SIGHUP (or --stop-after) stop after the current forward pass at the last commit, exit 130, and
// keep the partial file (a second signal ends the process at once); so does an error once something was
// committed (a full disk). --resume reopens it, checks that it was started with the same model weights,
// config, layers, pooling and inputs, cuts whatever a killed process wrote after the last commit, skips
// the proteins already embedded (checking that they hash to the committed value) and goes on. A process
// killed while HDF5 writes its metadata may leave a file HDF5 cannot open; --resume then says so.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "analysis/embeddings.h"
#include "cli/commands.h"
#include "data/sequence_reader.h"
#include "io/hdf5.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/names.h"
#include "util/process.h"
#include "util/progress.h"
#include "util/signals.h"
#include "util/text.h"

namespace performer::cli {

namespace {

struct EmbedArgs {
  std::string checkpoint, out, layers = "-1", pool = "mean", device = "auto";
  std::vector<std::string> inputs;
  bool per_residue = false, quiet = false, resume = false;
  int64_t tokens_per_batch = 16384, chunk = 1024, stop_after = 0;
  ReaderFlags reader;
};

std::atomic<bool> g_stop_embed{false};
// The first SIGINT/SIGTERM/SIGHUP asks for a stop at the last commit; a second one ends the process at once.
void on_signal(int sig) {
  if (g_stop_embed.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

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
  }
  static RunIdentity read(hid_t f) {
    RunIdentity r;
    r.checkpoint = h5::read_attr_string(f, "checkpoint");
    r.step = h5::read_attr_int(f, "step");
    r.config = h5::read_attr_string(f, "config");
    r.pooling = h5::read_attr_string(f, "pooling");
    r.layers = h5::read_attr_ints(f, "layers");
    r.inputs = h5::read_attr_strings(f, "inputs");
    r.input_bytes = h5::read_attr_ints(f, "input_bytes");
    r.per_residue = h5::read_attr_int(f, "per_residue");
    r.weights = h5::read_attr_int(f, "weights");
    // Partial files from before the reader options were read with these (gaps kept as residues).
    r.reader = h5::has_attr(f, "reader") ? h5::read_attr_string(f, "reader")
                                         : std::string("--unknown map --empty error --gaps keep");
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
std::optional<Committed> partial_to_continue(const EmbedArgs& a, const std::string& partial, const RunIdentity& now) {
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

int run_embed(const EmbedArgs& a) {
  if (a.inputs.empty()) throw Error("embed: give --input FILE...");
  if (a.chunk < 1) throw Error("embed: --chunk must be positive");
  if (a.stop_after < 0) throw Error("embed: --stop-after must be positive (0: no limit)");
  const ReaderOptions reader_options = a.reader.options();
  std::vector<InputFile> inputs{{"--checkpoint", a.checkpoint}};
  for (const std::string& in : a.inputs) inputs.push_back({"--input", in});
  refuse_overwriting_inputs("--out", {a.out, a.out + ".partial"}, inputs);
  const torch::Device device = resolve_device(a.device, "--device");
  RunConfig c;
  Encoder model = model_from_checkpoint(a.checkpoint, c, device);
  EmbedOptions o;
  o.layers = resolve_layers(parse_int_list(a.layers, "--layers"), c.model.layers);
  o.pool = parse_pooling(a.pool);
  o.per_residue = a.per_residue;
  o.tokens_per_batch = a.tokens_per_batch;
  o.stop = &g_stop_embed;
  const int64_t window = c.model.max_len - 2;

  RunIdentity id{a.checkpoint, config_to_yaml(c), a.pool, checkpoint_step(a.checkpoint), a.per_residue ? 1 : 0,
                 weights_hash(model), "--unknown " + a.reader.unknown + " --empty " + a.reader.empty + " --gaps " +
                 a.reader.gaps, o.layers, {}, a.inputs};
  uint64_t total_bytes = 0;
  for (const std::string& in : a.inputs) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(in, ec);
    if (ec) throw Error(in + ": cannot read the input (" + ec.message() + ")");
    total_bytes += size;
    id.input_bytes.push_back(static_cast<int64_t>(size));
  }
  const std::string partial = a.out + ".partial";
  const std::optional<Committed> from = partial_to_continue(a, partial, id);
  g_stop_embed.store(false);
  const StopSignals signals(on_signal);
  Progress progress(from ? "embed (resumed)" : "embed", total_bytes, !a.quiet, /*check_every=*/1);
  Committed done = from.value_or(Committed{});
  const int64_t skip = done.proteins;
  int64_t embedded = 0, tokens = 0;  // in this invocation
  bool stopped = false;
  try {
    h5::Handle file = from ? h5::open_file(partial, /*writable=*/true) : h5::create_file(partial);
    if (!from) {
      h5::write_attr(file, "format", "performer-embeddings");
      h5::write_attr(file, "model", c.model.describe());
      id.write(file);
    }
    EmbeddingFile writer(file, o.layers, c.model.d_model, o.pool, o.per_residue, from);
    if (!from) writer.commit(done);
    std::vector<std::string> accessions, proteins;
    // --stop-after: stop at the next protein, if there is one (a run that ends there is complete).
    bool limit_reached = false;
    // Embeds and commits the chunk; false when stopped by a signal (the chunk is dropped: the next run
    // redoes it).
    auto embed_chunk = [&] {
      if (proteins.empty()) return true;
      std::vector<ProteinEmbedding> e = embed_proteins(model, proteins, o, device);
      if (e.empty()) return false;
      writer.write(accessions, proteins, e);
      Committed next = done;
      for (size_t i = 0; i < proteins.size(); ++i) {
        next.residues += static_cast<int64_t>(proteins[i].size());
        next.hash = add_protein(next.hash, accessions[i], proteins[i]);
        tokens += embedding_tokens(static_cast<int64_t>(proteins[i].size()), window);
      }
      next.proteins += static_cast<int64_t>(proteins.size());
      writer.commit(next);
      done = next;  // only once it is on disk
      embedded += static_cast<int64_t>(proteins.size());
      accessions.clear();
      proteins.clear();
      limit_reached = a.stop_after > 0 && embedded >= a.stop_after;
      return true;
    };
    int64_t read = 0;
    uint64_t bytes_before = 0, skipped_hash = 0;
    for (size_t k = 0; k < a.inputs.size() && !stopped; ++k) {
      SequenceReader reader(a.inputs[k], reader_options);
      SequenceRecord rec;
      while (!stopped && reader.next(rec)) {
        if (++read <= skip) {  // embedded by an earlier run
          skipped_hash = add_protein(skipped_hash, rec.accession, rec.residues);
          if (read == skip && skipped_hash != done.hash)
            throw Error(partial + ": cannot resume: the first " + std::to_string(skip) + " proteins of the inputs " +
                        "(up to " + where(a.inputs[k], rec.line) + ") are not those it holds; the inputs have " +
                        "changed since, or remove it to start over");
          if (read % 4096 == 0) {
            progress.update(bytes_before + reader.lines().bytes_consumed(), read);
            if (g_stop_embed.load()) stopped = true;  // a signal while skipping: nothing new to keep
          }
          continue;
        }
        if (limit_reached) {
          stopped = true;
          break;
        }
        accessions.push_back(rec.accession);
        proteins.push_back(rec.residues);
        if (static_cast<int64_t>(proteins.size()) == a.chunk) {
          stopped = !embed_chunk();
          progress.update(bytes_before + reader.lines().bytes_consumed(), done.proteins);
        }
      }
      if (!stopped) stopped = !embed_chunk();
      if (!stopped) warn_about(a.inputs[k], reader.counts(), reader_options.gaps);
      bytes_before += reader.lines().file_size();
      progress.update(bytes_before, done.proteins);
    }
    if (!stopped && read < skip)
      throw Error(partial + ": holds " + std::to_string(skip) + " proteins but the inputs have only " +
                  std::to_string(read) + ": the inputs are not those it was started with");
    if (!stopped && done.proteins == 0) throw Error("embed: no proteins in the input");
    if (!stopped) {  // complete: the totals, for readers of the finished file
      h5::write_attr(file, "proteins", done.proteins);
      h5::write_attr(file, "residues", done.residues);
    }
  } catch (...) {
    // Nothing half-written: a partial file with nothing committed goes; one with committed proteins stays
    // for --resume (the error may be a full disk, and the proteins took time).
    if (done.proteins == 0) {
      std::error_code ignored;  // the error being reported matters more than a failed removal
      std::filesystem::remove(partial, ignored);
    } else {
      warn(std::to_string(done.proteins) + " proteins embedded so far are kept in " + partial +
           "; once the cause is fixed, the same command with --resume continues");
    }
    throw;
  }
  const double seconds = progress.elapsed();
  if (stopped) {
    progress.finish(total_bytes, done.proteins);
    warn("stopped after " + std::to_string(done.proteins) + " proteins, kept in " + partial +
         "; the same command with --resume continues");
    return 130;
  }
  rename_durably(partial, a.out);
  progress.finish(total_bytes, done.proteins);
  const double rate_seconds = std::max(seconds, 1e-9);
  const auto residues_now = static_cast<double>(done.residues - (from ? from->residues : 0));  // this invocation
  std::printf("wrote %s: %lld proteins, %lld residues, layers %s, pooling %s%s; %.1f s", a.out.c_str(),
              static_cast<long long>(done.proteins), static_cast<long long>(done.residues), a.layers.c_str(),
              a.pool.c_str(), o.per_residue ? ", per residue" : "", seconds);
  if (skip > 0) std::printf(" (resumed after %lld proteins)", static_cast<long long>(skip));
  std::printf("\nthroughput: %.1f proteins/s; %.0f residues/s; model reads %.0f tokens/s (%.2f tokens per residue: "
              "<cls>, <eos> and windows of %lld residues overlapping by half); peak RSS %s\n",
              static_cast<double>(embedded) / rate_seconds,
              residues_now / rate_seconds, static_cast<double>(tokens) / rate_seconds,
              static_cast<double>(tokens) / std::max(1.0, residues_now),
              static_cast<long long>(window), human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
  return 0;
}

}  // namespace

void add_embed(CLI::App& app, Action& run) {
  auto a = std::make_shared<EmbedArgs>();
  auto* cmd = app.add_subcommand("embed", "Per-protein (and per-residue) embeddings of FASTA/UniProt proteins to HDF5");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint (.h5) written by performer train")->required();
  cmd->add_option("-i,--input", a->inputs, "FASTA or UniProt files (plain or gzip)")->required();
  cmd->add_option("--out", a->out, "output HDF5 file")->required();
  cmd->add_option("--layers", a->layers, "comma-separated layers: 0 = embeddings, -1 = last (after the final norm)")
      ->capture_default_str();
  cmd->add_flag("--per-residue", a->per_residue, "also write every residue's vector (/per_residue)");
  cmd->add_option("--pool", a->pool, "per-protein vector: mean over residues, the <cls> vector, or both")
      ->check(CLI::IsMember(pooling_names()))
      ->capture_default_str();
  cmd->add_option("--tokens-per-batch", a->tokens_per_batch, "token budget per forward pass")->capture_default_str();
  cmd->add_option("--chunk", a->chunk, "proteins read, embedded and written together")->capture_default_str();
  add_device_option(cmd, a->device);
  cmd->add_flag("--resume", a->resume, "continue <out>.partial, left by an interrupted run of the same command");
  cmd->add_option("--stop-after", a->stop_after,
                  "stop (resumable, exit 130) once this invocation has embedded N proteins (whole chunks): for job time "
                  "slices");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  add_reader_options(cmd, a->reader);
  cmd->callback([&run, a] { run = [a] { return run_embed(*a); }; });
}

}  // namespace performer::cli
