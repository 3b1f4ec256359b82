#!/usr/bin/env bash
# The test command: installs what the build needs (Debian/Ubuntu, via scripts/setup.sh), builds in
# Release, and runs the GoogleTest suite through CTest. Needs no data download and no GPU
# (CUDA tests skip themselves when no GPU is visible).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
"${ROOT}/scripts/setup.sh"
cd "${ROOT}/build"
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" --timeout 900
