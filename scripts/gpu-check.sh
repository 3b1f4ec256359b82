#!/usr/bin/env bash
# The GPU check: one prepared run on the lent GPU machine (../shared/device/README.md), within ~8 minutes.
#
# Here first:  bash scripts/gpu-prepare.sh          (writes .device/; data/trembl-sample from get-data.sh)
# Then, with the device tool, from the project root:
#     run  command: bash scripts/gpu-check.sh    carry: [".device", "data/trembl-sample"]    timeout_s: 540
#
# What it does, most important first, each step logged with its start time to $OUT/summary.txt; every step
# gets at most what is left of GPU_CHECK_BUDGET (480 s) and is skipped, and said so, when too little is:
#   1. configures and builds build-gpu/ against the machine's own CUDA LibTorch (python3's torch), -j16
#   2. the CUDA tests (*Cuda*: CUDA vs CPU attention for every kind, bidirectional and causal, forward and
#      backward; bf16 autocast; 50 CUDA training steps; a CUDA checkpoint evaluated on CPU; a CUDA
#      out-of-memory in `longseq`), their printed figures copied to the summary
#   3. the quickstart (configs/quickstart.yaml) trained on the GPU for its 5,000 steps, scored on QUERY
#   4. `bench attention` on CUDA in bf16, L = 1K ... 128K (exact = fused scaled_dot_product_attention)
#   5. `bench train` in bf16 (tokens/s, TFLOP/s, MFU against PEAK_BF16_TFLOPS, 989 for an H100/H200 SXM)
#      per kind for the paper's protein model (36 layers, d 512, rows of L = 1024) and the TrEMBL-concat
#      shape (6 layers, d 512, d_ff 2048, L = 8192), on one corpus prepared once
#   6. `bench attention` in fp32, and causal in bf16
# Results (7 files, the device tool returns at most 8): summary.txt, bench_attention.csv, bench_train.csv,
# env.log, build.log, tests.log, bench.log. A failed step is recorded and the next one still runs; the exit
# status is 1 when any step failed or was skipped.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "${OUT}"
T0=${SECONDS}
BUDGET="${GPU_CHECK_BUDGET:-480}"
PEAK_BF16_TFLOPS="${PEAK_BF16_TFLOPS:-989}"
STATUS=0
P=build-gpu/performer
SCRATCH=/tmp/gpu-check
mkdir -p "${SCRATCH}"

note() { printf '[gpu-check %4ds] %s\n' $((SECONDS - T0)) "$*" | tee -a "${OUT}/summary.txt"; }
# run_step NAME MAX_SECONDS LOG COMMAND...: runs COMMAND (output appended to LOG) for at most MAX_SECONDS
# and what is left of the budget; skipped when under 20 s are left.
run_step() {
  local name="$1" max="$2" log="$3"; shift 3
  local left=$((BUDGET - (SECONDS - T0) - 5))
  local limit=$((max < left ? max : left))
  if ((limit < 20)); then note "SKIPPED (out of time): ${name}"; STATUS=1; return 1; fi
  note "${name} (limit ${limit} s)"
  if ! timeout "${limit}" "$@" >> "${log}" 2>&1; then note "FAILED: ${name} (see $(basename "${log}"))"; STATUS=1; return 1; fi
}

note "start $(date -u +%FT%TZ)"
source .device/env.sh > "${OUT}/env.log" 2>&1 || { cat "${OUT}/env.log"; exit 1; }
# env.sh unpacks only on a fresh machine: the packages gpu-prepare.sh adds are unpacked here too (a warm one kept /opt/deps).
for f in .device/debs/{libgloo-dev,liblinear,libblas3}*.deb; do dpkg -x "${f}" /opt/deps; done
# liblinear.so.4 needs libblas.so.3, which Debian reaches through an alternatives link that dpkg -x does not make.
ln -sf blas/libblas.so.3 "${DEPS}/lib/x86_64-linux-gnu/libblas.so.3"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "${OUT}/summary.txt" 2>&1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"

# 1. build
run_step configure 120 "${OUT}/build.log" cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release || exit 1
if ! run_step "build (-j16)" 300 "${OUT}/build.log" cmake --build build-gpu -j16 --target performer performer_tests; then
  grep -E 'error' -A3 "${OUT}/build.log" | head -40
  exit 1
fi
grep -E "CUDA LibTorch|Found Torch" "${OUT}/build.log" >> "${OUT}/summary.txt"
${P} --version >> "${OUT}/summary.txt" 2>&1
# A build without CUDA would pass every step below on the CPU (or skip it): stop here, loudly.
if ! grep -q "performer: CUDA LibTorch found" "${OUT}/build.log"; then
  note "FAILED: the build did not find a CUDA LibTorch (see build.log, env.log); nothing below would use the GPU"
  exit 1
fi

# 2. the CUDA tests, run directly so that their printed figures are kept. On this machine a GPU is there, so
# a CUDA test that skips ("no CUDA device") is a failure too.
run_step "CUDA tests" 180 "${OUT}/tests.log" build-gpu/performer_tests --gtest_filter='*Cuda*'
grep -E "^\[  (PASSED|FAILED|SKIPPED) |^  (CUDA training loss|exact:|favor-softmax:)" "${OUT}/tests.log" >> "${OUT}/summary.txt"
if grep -q "^\[  SKIPPED \]" "${OUT}/tests.log"; then note "FAILED: CUDA tests skipped on the GPU machine"; STATUS=1; fi

# 3. the quickstart's model and data on the GPU: its full 5,000-step schedule (no wall-clock budget; a 150 s
# hard stop), then held-out perplexity on QUERY, as scripts/quickstart.sh scores it on CPU.
QS="${SCRATCH}/quickstart"
run_step "quickstart on the GPU (5,000 steps)" 170 "${OUT}/bench.log" \
  ${P} train --config configs/quickstart.yaml --set runtime.device=cuda --set train.budget_minutes=0 \
  --set train.max_minutes=2.5 --set output.dir="${QS}"
grep -E "completed|time limit|precision|tokens/s" "${QS}/train.log" | tail -n 4 >> "${OUT}/summary.txt" 2>/dev/null
run_step "quickstart: QUERY perplexity" 60 "${OUT}/bench.log" \
  ${P} eval --checkpoint "${QS}/best.h5" --input data/trembl-sample/QUERY.fasta.gz --out "${QS}/eval-query"
grep -E "^masked \(standard\)|^training corpus" "${OUT}/bench.log" | tail -n 2 >> "${OUT}/summary.txt"

# 4-6. benchmarks; each bench attention sweep writes its own CSV, joined at the end
bench_attention() {  # name, max seconds, then options
  local name="$1" max="$2"; shift 2
  run_step "bench attention ${name}" "${max}" "${OUT}/bench.log" \
    ${P} bench attention --device cuda "$@" --csv "${SCRATCH}/attn_${name}.csv"
}
bench_attention bf16 120 --lengths 1024,2048,4096,8192,16384,32768,65536,131072 --precision bf16

DATA=data/trembl-sample/DB.fasta.gz
[[ -f "${DATA}" ]] || DATA=tests/data/real_excerpt.fasta
run_step "prepare ${DATA}" 60 "${OUT}/bench.log" ${P} prepare -i "${DATA}" -o "${SCRATCH}/corpus.h5"
bench_train() {  # label, config, then --set overrides
  local label="$1" config="$2"; shift 2
  run_step "bench train ${label}" 60 "${SCRATCH}/train_${label}.txt" \
    ${P} bench train -c "${config}" --set data.train="${SCRATCH}/corpus.h5" --set runtime.device=cuda \
    --set runtime.precision=bf16 --set output.dir="${SCRATCH}/${label}" "$@" --steps 5 --warmup 2 \
    --peak-tflops "${PEAK_BF16_TFLOPS}" --csv "${OUT}/bench_train.csv"
  cat "${SCRATCH}/train_${label}.txt" >> "${OUT}/bench.log" 2>/dev/null
  grep -E "^tokens/s|^model FLOPs" "${SCRATCH}/train_${label}.txt" >> "${OUT}/summary.txt" 2>/dev/null
}
for kind in favor-relu favor-softmax exact; do  # concat: every row exactly 1024 tokens
  bench_train "protein-36L-${kind}" configs/trembl-performer-relu.yaml --set model.kind="${kind}" \
    --set data.concat=true --set data.tokens_per_batch=32768
done
for kind in favor-relu favor-softmax exact; do
  bench_train "concat-8192-${kind}" configs/trembl-concat-8192.yaml --set model.kind="${kind}"
done

bench_attention fp32 90 --lengths 1024,4096,16384,32768,65536,131072 --precision fp32
# the lean FAVOR core (default, automatic chunk) against features stored whole, on the GPU
bench_attention fp32_stored 45 --lengths 4096,32768,131072 --precision fp32 --kinds favor-softmax,favor-relu --favor-stored
bench_attention bf16_causal 60 --lengths 1024,4096,16384,32768,131072 --precision bf16 --causal
{ head -n 1 "$(ls "${SCRATCH}"/attn_*.csv | head -n 1)"; for f in "${SCRATCH}"/attn_*.csv; do tail -n +2 "${f}"; done; } \
  > "${OUT}/bench_attention.csv" 2>/dev/null
grep -E "^ +[0-9]+ \|" "${OUT}/bench.log" >> "${OUT}/summary.txt"

note "done, status ${STATUS}"
exit ${STATUS}
