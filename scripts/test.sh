#!/usr/bin/env bash
# The test command: installs what the build needs (Debian/Ubuntu, via scripts/setup.sh), builds in
# Release, and runs the GoogleTest suite through CTest. Needs no data download and no GPU
# (CUDA tests skip themselves when no GPU is visible).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
# TORCH=pip: the same against pip's LibTorch 2.x (CUDA build) in build-torch2/ (see scripts/setup.sh).
# Arguments go to cmake's configure step.
if [[ "${TORCH:-debian}" == pip ]]; then BUILD_DIR="${BUILD_DIR:-${ROOT}/build-torch2}"; else BUILD_DIR="${BUILD_DIR:-${ROOT}/build}"; fi
export BUILD_DIR
"${ROOT}/scripts/setup.sh" "$@"
cd "${BUILD_DIR}"
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" --timeout 900
