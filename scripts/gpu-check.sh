#!/usr/bin/env bash
# The GPU check: one prepared run on the lent GPU machine (../shared/device/README.md), within ~8 minutes.
#
# Here first:  bash scripts/gpu-prepare.sh          (writes .device/; data/trembl-sample from get-data.sh)
# Then, with the device tool, from the project root:
#     run  command: bash scripts/gpu-check.sh    carry: [".device", "data/trembl-sample"]    timeout_s: 540
#
# What it does, each step logged with its start time to $OUT/summary.txt:
#   1. configures and builds build-gpu/ against the machine's own CUDA LibTorch (python3's torch) with -j16
#   2. the CUDA tests (`ctest -R Cuda`: CUDA vs CPU attention for every kind, bidirectional and causal,
#      forward and backward; bf16 autocast; 50 CUDA training steps; a CUDA checkpoint evaluated on CPU;
#      a CUDA out-of-memory in `longseq`)
#   3. `bench attention` on CUDA, L = 1K ... 128K, fp32 and bf16 (exact = fused scaled_dot_product_attention),
#      bidirectional, and causal in bf16
#   4. `bench train` in bf16 (tokens/s, TFLOP/s, MFU against the H200's 989 dense bf16 TFLOP/s) per kind for
#      the paper's protein model (36 layers, d 512, L 1024) and the TrEMBL-concat shape (6 layers, d 512,
#      d_ff 2048, L 8192)
# Results: $OUT/summary.txt, bench_attention.csv, bench_train.csv, and the logs (build, ctest, bench).
# A step that fails is recorded and the next one still runs; the exit status is that of the first failure.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "${OUT}"
T0=${SECONDS}
STATUS=0
step() { printf '[gpu-check %4ds] %s\n' $((SECONDS - T0)) "$*" | tee -a "${OUT}/summary.txt"; }
failed() { step "FAILED: $*"; [[ ${STATUS} -ne 0 ]] || STATUS=1; }
PEAK_BF16_TFLOPS="${PEAK_BF16_TFLOPS:-989}"  # H100/H200 SXM, dense bf16

step "start $(date -u +%FT%TZ)"
source .device/env.sh > "${OUT}/env.log" 2>&1 || { cat "${OUT}/env.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "${OUT}/summary.txt" 2>&1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"

step "configure + build (-j16)"
if ! { cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release > "${OUT}/build.log" 2>&1 &&
       cmake --build build-gpu -j16 >> "${OUT}/build.log" 2>&1; }; then
  grep -E 'error|Error' -A3 "${OUT}/build.log" | head -60
  failed "build (see build.log)"
  exit 1
fi
grep -E "CUDA LibTorch|Found Torch" "${OUT}/build.log" | tee -a "${OUT}/summary.txt"
P=build-gpu/performer
${P} --version | tee -a "${OUT}/summary.txt"

step "CUDA tests"
(cd build-gpu && timeout 240 ctest -R Cuda --output-on-failure > "${OUT}/ctest.log" 2>&1) || failed "CUDA tests (see ctest.log)"
grep -E "tests passed|Skipped|Failed|\*\*\*" "${OUT}/ctest.log" | tee -a "${OUT}/summary.txt"
grep -E "^  (CUDA training loss|.*perplexity on CUDA)" "${OUT}/ctest.log" | tee -a "${OUT}/summary.txt"

# bench attention writes one CSV per sweep; they are joined into bench_attention.csv.
bench_attention() {  # name, then bench attention options
  local name="$1"; shift
  step "bench attention ${name}"
  timeout 150 ${P} bench attention --device cuda "$@" --csv "${OUT}/attn_${name}.csv" >> "${OUT}/bench.log" 2>&1 ||
    failed "bench attention ${name} (see bench.log)"
}
bench_attention fp32 --lengths 1024,4096,16384,32768,65536,131072 --precision fp32
bench_attention bf16 --lengths 1024,2048,4096,8192,16384,32768,65536,131072 --precision bf16
bench_attention bf16_causal --lengths 1024,4096,16384,32768,131072 --precision bf16 --causal
{ head -n 1 "${OUT}/attn_fp32.csv" 2>/dev/null; for f in "${OUT}"/attn_*.csv; do tail -n +2 "${f}"; done; } \
  > "${OUT}/bench_attention.csv" && rm -f "${OUT}"/attn_*.csv

# Training throughput in bf16 on trembl-sample (carried) or the committed excerpt.
DATA=data/trembl-sample/DB.fasta.gz
[[ -f "${DATA}" ]] || DATA=tests/data/real_excerpt.fasta
bench_train() {  # label, config, then --set overrides
  local label="$1" config="$2"; shift 2
  step "bench train ${label}"
  timeout 120 ${P} bench train -c "${config}" --set data.train="${DATA}" --set runtime.device=cuda \
    --set runtime.precision=bf16 --set output.dir=/tmp/gpu-bench/"${label}" "$@" --steps 5 --warmup 2 \
    --peak-tflops "${PEAK_BF16_TFLOPS}" --csv "${OUT}/bench_train.csv" >> "${OUT}/bench.log" 2>&1 ||
    failed "bench train ${label} (see bench.log)"
  grep -E "^tokens/s|^model FLOPs" "${OUT}/bench.log" | tail -2 | tee -a "${OUT}/summary.txt"
}
for kind in favor-relu favor-softmax exact; do
  bench_train "protein-36L-${kind}" configs/trembl-performer-relu.yaml --set model.kind="${kind}" \
    --set data.tokens_per_batch=32768
done
for kind in favor-relu favor-softmax exact; do
  bench_train "concat-8192-${kind}" configs/trembl-concat-8192.yaml --set model.kind="${kind}"
done

step "done, status ${STATUS}"
exit ${STATUS}
