#!/usr/bin/env bash
# The isoFLOP study on this machine: set-up and build, fetch trembl-sample (20,000 UniProt entries and 500
# QUERY proteins), then `performer scaling` from configs/quickstart.yaml on its 50%-identity cluster split:
# budgets 1e13, 3e13 and 1e14 model FLOPs, shapes 2x96, 4x128, 4x192 and 6x256 (layers x d_model, head
# width 32), learning rates 1.5e-3, 3e-3 and 6e-3 tried at 1e13 and each shape's best (on valid) kept.
# About 65-75 minutes on 2 CPU cores with bf16 units (65 measured). Extra arguments go to `performer scaling` (e.g.
# --budgets 1e13,1e14 --shapes 4x128,4x192, or --resume to continue an interrupted study).
# Toolchain and precision as scripts/quickstart.sh chooses them (scripts/toolchain.sh; runtime.precision auto).
# Outputs: runs/scaling/ (results.csv, fit.txt, scaling.png, one folder per run with its config, train.log,
# valid/ and query/ evaluation summaries and checkpoint).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

# shellcheck source=toolchain.sh
source scripts/toolchain.sh
choose_toolchain  # TORCH=debian|pip|auto (default auto: pip's LibTorch 2.x where it can be built)

echo "== set-up and build"
scripts/setup.sh
echo "== fetch real data (trembl-sample)"
scripts/get-data.sh
echo "== isoFLOP study (configs/quickstart.yaml, 50% cluster split)"
# The study's model family is the quickstart's former one (learned positions, 64 projected ReLU features
# redrawn every 1,000 steps, no local convolution, AdamW), pinned here so that this command repeats the figures
# in docs/scaling.md.
"${PERFORMER}" scaling --config configs/quickstart.yaml --set train.optimizer=adamw \
  --set model.positions=learned --set model.relu_projection=true --set model.features=64 \
  --set model.redraw_interval=1000 --set model.local_kernel=0 \
  --set data.clusters=data/trembl-sample/DB.clusters50.tsv \
  --budgets 1e13,3e13,1e14 --shapes 2x96,4x128,4x192,6x256 --lrs 1.5e-3,3e-3,6e-3 \
  --query data/trembl-sample/QUERY.fasta.gz --out runs/scaling "$@"
