#!/usr/bin/env bash
# Run on the lent GPU machine (see ../shared/device/README.md), from the project root, with .device/ carried:
#   builds against the CUDA LibTorch there, runs the test suite (CUDA tests included) and the attention
#   benchmark on CUDA; logs and CSVs go to $OUT.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "${OUT}"
source .device/env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv > "${OUT}/gpu.txt" 2>&1
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release > "${OUT}/configure.log" 2>&1 || { tail -50 "${OUT}/configure.log"; exit 1; }
cmake --build build-gpu -j16 > "${OUT}/build.log" 2>&1 || { grep -E 'error' -A3 "${OUT}/build.log" | head -60; exit 1; }
(cd build-gpu && ctest --output-on-failure -j4 > "${OUT}/ctest.log" 2>&1); tail -5 "${OUT}/ctest.log"
build-gpu/performer bench attention --device cuda --lengths 1024,4096,16384,32768,65536 --repeats 5 \
  --csv "${OUT}/bench_attention_cuda.csv" 2>&1 | tee "${OUT}/bench_attention_cuda.txt"
build-gpu/performer bench attention --device cuda --causal --lengths 1024,4096,16384,65536 --repeats 5 \
  --csv "${OUT}/bench_causal_cuda.csv" 2>&1 | tee "${OUT}/bench_causal_cuda.txt"
# The long-sequence sweep on CUDA (trembl-sample: carry data/trembl-sample; the excerpt otherwise).
DATA=data/trembl-sample/DB.fasta.gz
[ -f "${DATA}" ] || DATA=tests/data/real_excerpt.fasta
build-gpu/performer longseq --config configs/longseq.yaml --set data.train="${DATA}" --set runtime.device=cuda \
  --lengths 1024,4096,8192,16384,32768,65536 --steps 32 --out "${OUT}/longseq" 2>&1 | tee "${OUT}/longseq.txt"
