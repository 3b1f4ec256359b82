#!/usr/bin/env bash
# Which LibTorch the main jobs (scripts/quickstart.sh, scripts/longseq.sh) build and run with, sourced by
# them: TORCH=debian (Debian's CPU LibTorch 1.13, build/) or TORCH=pip (pip's LibTorch 2.11, build-torch2/),
# and by default (TORCH unset or auto) pip's where it can be built, that is where the CUDA toolkit is
# present (its CMake config needs nvcc, even for CPU runs), else Debian's.
# Why 2.x first: measured on the development machine (2-core AMD EPYC with AVX512_BF16, 2026-12-02, both
# toolchains interleaved in one run), 2.11 with bf16 autocast trains the quickstart model at 1.56x the
# tokens/s of 1.13 in float32 and 1.22x 1.13 in bf16; the ESM-2 8M shape 1.40x and 1.24x
# (docs/benchmarks.md#bf16-on-cpu).
# Sets TORCH and PERFORMER (the binary) and says which in one line.
choose_toolchain() {
  TORCH="${TORCH:-auto}"
  local why=""
  if [[ "${TORCH}" == auto ]]; then
    if command -v nvcc >/dev/null 2>&1 || [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]]; then
      TORCH=pip why="the CUDA toolkit is here to build it"
    else
      TORCH=debian why="no CUDA toolkit (nvcc) to build pip's LibTorch 2.x with; Debian's 1.13 is slower, see docs/benchmarks.md#bf16-on-cpu"
    fi
  fi
  case "${TORCH}" in
    pip) PERFORMER="${ROOT}/build-torch2/performer" ;;
    debian) PERFORMER="${ROOT}/build/performer" ;;
    *) echo "error: TORCH=${TORCH}: expected auto, pip or debian" >&2; exit 2 ;;
  esac
  echo "toolchain: TORCH=${TORCH} (${PERFORMER#"${ROOT}"/})${why:+: ${why}}"
  export TORCH
}
