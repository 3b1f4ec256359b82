// performer embed --checkpoint CKPT --input FILE... --out embeddings.h5 [--layers -1,0,...] [--per-residue]
//                 [--pool mean|cls|both] [--tokens-per-batch N] [--chunk N] [--device ...]
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
//                    layers (l: 0 = the embeddings, L = the last block after the final LayerNorm)
//
// Proteins are read, embedded and written in chunks of --chunk proteins (windows sorted by length within a
// chunk), so memory does not grow with the number of proteins. The file is written under a temporary name
// and renamed when complete.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

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
#include "util/names.h"
#include "util/process.h"
#include "util/progress.h"
#include "util/text.h"

namespace performer::cli {

namespace {

struct EmbedArgs {
  std::string checkpoint, out, layers = "-1", pool = "mean", device = "auto";
  std::vector<std::string> inputs;
  bool per_residue = false, quiet = false;
  int64_t tokens_per_batch = 16384, chunk = 4096;
};

std::vector<int64_t> parse_layer_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("--layers: '" + item + "' is not a layer number (expected a comma-separated list such as -1,0)");
    }
  }
  return out;
}

// The output datasets, appended to chunk by chunk.
class EmbeddingFile {
 public:
  EmbeddingFile(hid_t file, const std::vector<int64_t>& layers, int64_t d, Pooling pool, bool per_residue)
      : proteins_(h5::create_group(file, "proteins")),
        accessions_(proteins_, "accessions", 1 << 12),
        lengths_(proteins_, "lengths", 1 << 12) {
    const hsize_t width = static_cast<hsize_t>(d), rows = 256;
    h5::Handle pooled = h5::create_group(file, "per_protein");
    std::optional<h5::Handle> cls_group, residue_group;
    if (pool == Pooling::kBoth) cls_group.emplace(h5::create_group(file, "per_protein_cls"));
    if (per_residue) residue_group.emplace(h5::create_group(file, "per_residue"));
    for (int64_t l : layers) {
      const std::string name = "layer_" + std::to_string(l);
      pooled_.emplace_back(pooled, name, width, rows);
      if (cls_group) cls_.emplace_back(*cls_group, name, width, rows);
      if (residue_group) residues_.emplace_back(*residue_group, name, width, rows * 16);
    }
    if (residue_group) {
      offsets_.emplace(*residue_group, "offsets", 1 << 12);
      offsets_->append(int64_t{0});
    }
    pool_ = pool;
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

  void flush() {
    accessions_.flush();
    lengths_.flush();
    if (offsets_) offsets_->flush();
  }

 private:
  h5::Handle proteins_;
  h5::StringAppender accessions_;
  h5::Appender<int64_t> lengths_;
  std::vector<h5::RowAppender> pooled_, cls_, residues_;
  std::optional<h5::Appender<int64_t>> offsets_;
  Pooling pool_ = Pooling::kMean;
  int64_t residues_total_ = 0;
};

int run_embed(const EmbedArgs& a) {
  if (a.inputs.empty()) throw Error("embed: give --input FILE...");
  if (a.chunk < 1) throw Error("embed: --chunk must be positive");
  const torch::Device device = resolve_device(a.device, "--device");
  RunConfig c;
  Encoder model = model_from_checkpoint(a.checkpoint, c, device);
  EmbedOptions o;
  o.layers = resolve_layers(parse_layer_list(a.layers), c.model.layers);
  o.pool = parse_pooling(a.pool);
  o.per_residue = a.per_residue;
  o.tokens_per_batch = a.tokens_per_batch;

  uint64_t total_bytes = 0;
  for (const std::string& in : a.inputs) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(in, ec);
    if (ec) throw Error(in + ": cannot read the input (" + ec.message() + ")");
    total_bytes += size;
  }
  AtomicFile out(a.out);
  Progress progress("embed", total_bytes, !a.quiet);
  int64_t proteins_done = 0, residues_done = 0;
  {
    h5::Handle file = h5::create_file(out.temporary());
    h5::write_attr(file, "format", "performer-embeddings");
    h5::write_attr(file, "checkpoint", a.checkpoint);
    h5::write_attr(file, "step", checkpoint_step(a.checkpoint));
    h5::write_attr(file, "config", config_to_yaml(c));
    h5::write_attr(file, "model", c.model.describe());
    h5::write_attr(file, "pooling", a.pool);
    h5::write_attr(file, "layers", o.layers);
    h5::write_attr(file, "inputs", a.inputs);
    EmbeddingFile writer(file, o.layers, c.model.d_model, o.pool, o.per_residue);
    std::vector<std::string> accessions, proteins;
    uint64_t bytes_before = 0;
    auto flush_chunk = [&] {
      if (proteins.empty()) return;
      writer.write(accessions, proteins, embed_proteins(model, proteins, o, device));
      proteins_done += static_cast<int64_t>(proteins.size());
      for (const std::string& p : proteins) residues_done += static_cast<int64_t>(p.size());
      accessions.clear();
      proteins.clear();
    };
    for (const std::string& path : a.inputs) {
      SequenceReader reader(path);
      SequenceRecord rec;
      while (reader.next(rec)) {
        accessions.push_back(rec.accession);
        proteins.push_back(rec.residues);
        if (static_cast<int64_t>(proteins.size()) == a.chunk) {
          flush_chunk();
          progress.update(bytes_before + reader.lines().bytes_consumed(), proteins_done);
        }
      }
      flush_chunk();
      bytes_before += reader.lines().file_size();
      progress.update(bytes_before, proteins_done);
    }
    if (proteins_done == 0) throw Error("embed: no proteins in the input");
    writer.flush();
  }
  out.commit();
  progress.finish(total_bytes, proteins_done);
  const double seconds = progress.elapsed();
  std::printf("wrote %s: %lld proteins, %lld residues, layers %s, pooling %s%s; %.1f s (%.1f proteins/s, %.0f "
              "residues/s), peak RSS %s\n",
              a.out.c_str(), static_cast<long long>(proteins_done), static_cast<long long>(residues_done),
              a.layers.c_str(), a.pool.c_str(), o.per_residue ? ", per residue" : "", seconds,
              static_cast<double>(proteins_done) / seconds, static_cast<double>(residues_done) / seconds,
              human_bytes(static_cast<double>(peak_rss_bytes())).c_str());
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
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  cmd->callback([&run, a] { run = [a] { return run_embed(*a); }; });
}

}  // namespace performer::cli
