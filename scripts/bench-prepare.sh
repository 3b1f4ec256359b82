#!/usr/bin/env bash
# Benchmark of `performer prepare`: throughput (MB/s, residues/s) and peak RSS on uniprot-486k
# (486,000 proteins, 213 MB of plain FASTA) and on the gzip trembl-sample. Fetches the data if needed.
# The input is read once before timing, so the figures are for a warm page cache (parsing, not disk).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
PERFORMER="${ROOT}/build/performer"
OUT="$(mktemp -d)"
trap 'rm -rf "${OUT}"' EXIT
"${ROOT}/scripts/get-data.sh" --uniprot-486k >/dev/null
U="${ROOT}/data/uniprot-486k/uniprot-486k.fasta"
T="${ROOT}/data/trembl-sample/DB.fasta.gz"
cat "${U}" "${T}" >/dev/null
echo "binary alone (LibTorch loaded, no work):"
/usr/bin/env time -f "  peak RSS %M KB" "${PERFORMER}" --version 2>&1 | tail -n 1 || true
for args in "${U}" "${U} --dedup" "${T}" "${T} --dedup"; do
  echo "prepare --input ${args#${ROOT}/}"
  # shellcheck disable=SC2086
  "${PERFORMER}" prepare -q --input ${args} --out "${OUT}/c.h5" | grep -E '^(sequences|input|throughput)' | sed 's/^/  /'
done
