#!/usr/bin/env bash
# The main job, end to end on real proteins: set-up and build, fetch trembl-sample (20,000 UniProt
# entries from Debian's mmseqs2-examples), train a small Performer (FAVOR+ ReLU) masked language model
# on it with configs/quickstart.yaml (the FASTA is tokenized into runs/quickstart/corpus.h5 with a
# deterministic train/valid/test split, exact duplicates removed), and report the held-out (valid)
# perplexity against the unigram baseline, then evaluate the best checkpoint on the 500 QUERY proteins
# (those identical to a training protein are left out), export attention maps and compare attention
# between amino-acid types with BLOSUM62. About 13 minutes on 2 CPU cores after the build (12 of them training).
# The toolchain: pip's LibTorch 2.x where the CUDA toolkit is present to build it, else Debian's 1.13
# (scripts/toolchain.sh; TORCH=debian or TORCH=pip chooses); the precision: runtime.precision auto, bf16
# where a probe at start measures it >= 1.5x faster than float32 (--set runtime.precision=fp32 forces).
# Outputs: runs/quickstart/ (config.yaml, train.log, metrics.csv, eval.csv, ckpt-*.h5, best.h5, corpus.h5).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=toolchain.sh
source scripts/toolchain.sh
choose_toolchain  # TORCH=debian|pip|auto (default auto: pip's LibTorch 2.x where it can be built)

echo "== set-up and build"
scripts/setup.sh
echo "== fetch real data"
scripts/get-data.sh
echo "== train (configs/quickstart.yaml)"
# --resume auto: a second run continues (or, when finished, only re-evaluates) the run in runs/quickstart
# instead of being refused; pass --overwrite instead to start over (the old files are moved aside).
"${PERFORMER}" train --config configs/quickstart.yaml --resume auto "$@"
echo "== corpus statistics"
"${PERFORMER}" info runs/quickstart/corpus.h5
echo "== result of training (valid split)"
grep -E "completed|time limit|interrupted" runs/quickstart/train.log | tail -n 1
echo "== held-out evaluation on QUERY.fasta.gz (proteins identical to training proteins left out)"
"${PERFORMER}" eval --checkpoint runs/quickstart/best.h5 --input data/trembl-sample/QUERY.fasta.gz \
  --out runs/quickstart/eval-query
echo "== attention maps and amino-acid similarity vs BLOSUM62 (the 500 QUERY proteins; maps of 2)"
"${PERFORMER}" attention --checkpoint runs/quickstart/best.h5 --input data/trembl-sample/QUERY.fasta.gz \
  --max-sequences 500 --export 2 --out runs/quickstart/attention
