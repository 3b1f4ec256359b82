// `performer embed` as one call: embeddings of every protein of the inputs (analysis/embeddings.h), streamed into one HDF5 file:
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
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/embeddings.h"
#include "data/sequence_reader.h"

namespace performer {

struct EmbedJob {
  std::string checkpoint, out;
  std::vector<std::string> inputs;
  std::string layers = "-1";         // --layers as given: "all", or 0 = the embeddings ... -1 = the last layer
  Pooling pool = Pooling::kMean;
  bool per_residue = false;
  int64_t tokens_per_batch = 16384;  // per forward pass
  int64_t chunk = 1024;              // proteins read, embedded and committed together
  int64_t stop_after = 0;            // stop (resumable) once this invocation embedded N proteins; 0 = no limit
  bool resume = false;               // continue <out>.partial
  bool quiet = false;                // no progress line
  std::string device = "auto";
  std::string precision = "fp32";  // fp32 | bf16 | auto (util/precision.h)
  ReaderOptions reader;
  std::string reader_flags;          // the reader options as given ("--unknown map --empty error --gaps strip"),
                                     // recorded in the output: a resumed run must read the inputs the same way
};

// Runs the job; `stop` (set by a signal handler) stops it at the last commit. Returns 0 when the output is
// complete, 130 when stopped with the partial file kept. Errors are Error, with the partial file kept when
// something was committed.
int run_embed_job(const EmbedJob& job, const std::atomic<bool>* stop);

}  // namespace performer
