#!/usr/bin/env bash
# Here, on the CPU machine, before a device run: writes .device/ for scripts/gpu-check.sh (Debian 12
# packages of the build's libraries and env.sh, from ../shared/device/fetch-debs.sh, plus what that list
# leaves out: nlohmann-json, gloo's headers (ProcessGroupGloo.hpp includes them; pip's torch ships none), and
# LIBLINEAR with the reference BLAS it links to). .device/ is git-ignored; name it in the device run's carry list together
# with data/trembl-sample (scripts/get-data.sh).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# The data the check's benchmarks prepare (carried with .device/): missing, the run would fall back to a
# 60-protein excerpt and its figures mean little.
[[ -f data/trembl-sample/DB.fasta.gz ]] || { echo "error: data/trembl-sample/DB.fasta.gz is missing: run bash scripts/get-data.sh first" >&2; exit 1; }
FETCH="${FETCH_DEBS:-${ROOT}/../shared/device/fetch-debs.sh}"
[[ -x "${FETCH}" || -f "${FETCH}" ]] || { echo "error: ${FETCH} not found (set FETCH_DEBS)" >&2; exit 1; }
bash "${FETCH}" .device
(cd .device/debs && apt-get download nlohmann-json3-dev libgloo-dev liblinear-dev liblinear4 libblas3 >/dev/null)
echo "ready: .device ($(ls .device/debs | wc -l) packages, $(du -sh .device | cut -f1))"
