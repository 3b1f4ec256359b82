#!/usr/bin/env bash
# The main job, end to end on real proteins: set-up and build, fetch trembl-sample (20,000 UniProt
# entries from Debian's mmseqs2-examples), tokenize it into an HDF5 corpus with a deterministic
# train/valid/test split (exact duplicates removed), and print the corpus statistics with the
# unigram-perplexity baseline. Outputs go to runs/quickstart/.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${RUN:-${ROOT}/runs/quickstart}"
PERFORMER="${ROOT}/build/performer"

echo "== set-up and build"
"${ROOT}/scripts/setup.sh"
echo "== fetch real data"
"${ROOT}/scripts/get-data.sh"
mkdir -p "${RUN}"
echo "== prepare: DB.fasta.gz -> ${RUN}/corpus.h5"
"${PERFORMER}" prepare --input "${ROOT}/data/trembl-sample/DB.fasta.gz" --out "${RUN}/corpus.h5" --dedup \
  --valid-frac 0.02 --test-frac 0.02
echo "== corpus statistics"
"${PERFORMER}" info "${RUN}/corpus.h5"
