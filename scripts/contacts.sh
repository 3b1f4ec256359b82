#!/usr/bin/env bash
# Residue contacts from attention, on real structures: set-up and build, fetch the 50 real chains of
# mdanalysistests' dssp set (scripts/get-data.sh --structures), fit the contact regression of a checkpoint
# on the 20 chains of data/contacts-fit.txt and evaluate it on the 30 of data/contacts-eval.txt (a fixed
# split; nothing is chosen on the evaluation chains), with the predicted and true maps of three evaluation
# chains drawn side by side.
#
# Usage: scripts/contacts.sh [CHECKPOINT] [NAME]
#   CHECKPOINT  default runs/quickstart/best.h5 (train it first: bash scripts/quickstart.sh)
#   NAME        the results' folder under runs/contacts/ (default: the checkpoint's folder name)
# Toolchain as scripts/quickstart.sh chooses it (scripts/toolchain.sh). About a minute for the quickstart
# model on 2 CPU cores, a few for the ESM-2 8M shape.
# Outputs: runs/contacts/NAME/ (regression.h5, fit.log, eval.log, eval/summary.json, eval/per_protein.csv,
# eval/png/).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
CKPT="${1:-runs/quickstart/best.h5}"
NAME="${2:-$(basename "$(dirname "${CKPT}")")}"
OUT="runs/contacts/${NAME}"

# shellcheck source=toolchain.sh
source scripts/toolchain.sh
choose_toolchain

echo "== set-up and build"
scripts/setup.sh
echo "== fetch real structures"
scripts/get-data.sh --structures
[[ -f "${CKPT}" ]] || { echo "contacts.sh: ${CKPT}: no such checkpoint (bash scripts/quickstart.sh trains one)" >&2; exit 1; }
mkdir -p "${OUT}"
echo "== fit the contact regression on data/contacts-fit.txt (20 chains)"
"${PERFORMER}" contacts fit --checkpoint "${CKPT}" --structures data/contacts-fit.txt --out "${OUT}/regression.h5" \
  --force | tee "${OUT}/fit.log"
echo "== evaluate on data/contacts-eval.txt (30 chains)"
"${PERFORMER}" contacts eval --checkpoint "${CKPT}" --regression "${OUT}/regression.h5" \
  --structures data/contacts-eval.txt --out "${OUT}/eval" | tee "${OUT}/eval.log"
