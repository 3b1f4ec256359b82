#!/usr/bin/env bash
# The long-sequence experiment on this machine: set-up and build, fetch uniprot-486k (486,000 UniProt
# proteins from Debian's metastudent-data), then `performer longseq` with configs/longseq.yaml over
# L = 1024 ... 16384 for exact, favor-softmax and favor-relu attention (a 2-layer model, 64 steps of 8,192
# tokens per cell; about 25 minutes on 2 CPU cores). Extra arguments go to `performer longseq`
# (e.g. --lengths 1024,2048 --kinds exact,favor-relu --steps 16 --memory-limit 16GB).
# Toolchain and precision as scripts/quickstart.sh chooses them (scripts/toolchain.sh; runtime.precision auto).
# Outputs: runs/longseq/ (results.csv, tokens_per_second.png, peak_memory.png, perplexity_L*.png, one
# folder per cell with its config, train.log, metrics.csv, eval.csv and checkpoint).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

# shellcheck source=toolchain.sh
source scripts/toolchain.sh
choose_toolchain  # TORCH=debian|pip|auto (default auto: pip's LibTorch 2.x where it can be built)

echo "== set-up and build"
scripts/setup.sh
echo "== fetch real data (uniprot-486k)"
scripts/get-data.sh --uniprot-486k
echo "== long-sequence sweep (configs/longseq.yaml)"
"${PERFORMER}" longseq --config configs/longseq.yaml --out runs/longseq "$@"
