// `performer bench attention` as calls: forward+backward time and peak memory of one attention layer's core
// (features + attention, no projections) for exact, favor-softmax and favor-relu over a range of lengths.
//
// On CPU each cell runs in a fresh child process (`bench attention-cell`, through the harness of
// experiments/cell.h), so its peak resident memory is its own and an out-of-memory failure cannot take the
// sweep down; the parent kills a child whose resident memory passes --memory-limit above its start-up size
// (reported OOM), and the child reports median_ms and peak_bytes. Cells whose predicted need exceeds the limit are reported as OOM without
// running. On CUDA cells run in-process; peak memory is the caching allocator's peak.
// Time = median over --repeats runs after --warmup runs. Memory = peak minus the footprint before the cell.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/attention.h"
#include "train/config.h"

namespace performer {

// One cell's shape: the attention kind, batch, heads, length, head dimension and features, and how it runs.
struct AttentionCell {
  AttentionKind kind = AttentionKind::kExact;
  int64_t B = 1, H = 8, L = 1024, d = 64, m = 256;
  bool causal = false;
  bool favor_stored = false;  // bidirectional FAVOR: features stored whole instead of the lean core
  int64_t favor_chunk = 0;    // the lean core's chunk; 0 = automatic
  Precision precision = Precision::kFp32;  // bf16: q, k, v in bfloat16, as bf16 autocast's projections give them
  int repeats = 3, warmup = 1;
};

// The sweep: one table row per length, one cell per kind, printed as measured, and a CSV row per cell when
// `csv` is given (written through). CPU cells run in child processes held to `limit` bytes above their
// start-up footprint and killed after `timeout_seconds` (0: none); CUDA cells run in this process.
int run_attention_bench(const AttentionCell& spec, const std::vector<int64_t>& lengths,
                        const std::vector<AttentionKind>& kinds, bool cuda, uint64_t limit, double timeout_seconds,
                        const std::string& csv);

// The child side of a CPU cell (`bench attention-cell`): measures it here and writes its report.
int run_attention_bench_cell(const AttentionCell& spec, const std::string& report);

// --device: whether the sweep runs on CUDA (auto: when a device is available); an Error for cuda in a build
// without CUDA.
bool attention_bench_on_cuda(const std::string& device);

}  // namespace performer
