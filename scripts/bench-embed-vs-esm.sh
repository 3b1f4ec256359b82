#!/usr/bin/env bash
# `performer embed` beside the CPU ESM-2 inference a user would pick: HuggingFace `transformers` and PyPI
# `esm-cpp`, on the same ESM-2 8M-shaped model (random weights made by transformers, imported here with
# `performer import`; esm-cpp reads our `performer export` of it, the hub form it requires), the same
# proteins (the first PROTEINS of QUERY.fasta.gz of at most 1,022 residues) and the same threads; exact
# attention, per-protein mean embeddings of the last layer. Each embedder runs in its own process:
# residues/s over its embedding loop, peak RSS of the process, and the cosine of its embeddings to
# transformers' float32 ones.
#
# Usage: TORCH=pip scripts/bench-embed-vs-esm.sh     (PROTEINS=200 THREADS=2 OUT=runs/bench-embed)
# Needs pip's LibTorch 2.x build (its virtual environment has transformers); installs esm-cpp 0.2.1 into a
# virtual environment of its own (it pins numpy < 2), ESMCPP_VENV, default ~/.cache/performer/esmcpp.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
TORCH=pip
PERFORMER="${ROOT}/build-torch2/performer"
TORCH_VENV="${TORCH_VENV:-${XDG_CACHE_HOME:-${HOME}/.cache}/performer/torch2}"
ESMCPP_VENV="${ESMCPP_VENV:-${XDG_CACHE_HOME:-${HOME}/.cache}/performer/esmcpp}"
PROTEINS="${PROTEINS:-200}"
THREADS="${THREADS:-2}"
OUT="${OUT:-runs/bench-embed}"
export THREADS OMP_NUM_THREADS="${THREADS}"

TORCH=pip scripts/setup.sh >/dev/null
scripts/get-data.sh >/dev/null
if ! "${ESMCPP_VENV}/bin/python" -c 'import esm_cpp' >/dev/null 2>&1; then
  python3 -m venv "${ESMCPP_VENV}"
  "${ESMCPP_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check esm-cpp==0.2.1
fi
mkdir -p "${OUT}"
FASTA="${OUT}/query-${PROTEINS}.fasta"
# The first PROTEINS QUERY proteins of at most 1,022 residues: ESM-2's 1,024 tokens, which every embedder
# takes whole (longer ones are windowed by performer embed, cut by esm-cpp, whole in transformers: three
# different computations, so they are left out).
python3 - "${PROTEINS}" "${FASTA}" <<'EOF'
import gzip, sys
n, out, records, cur = int(sys.argv[1]), sys.argv[2], [], None
for line in gzip.open("data/trembl-sample/QUERY.fasta.gz", "rt"):
    if line.startswith(">"):
        cur = [line, ""]
        records.append(cur)
    elif cur is not None:
        cur[1] += line.strip()
kept = [r for r in records if len(r[1]) <= 1022][:n]
open(out, "w").writelines(f"{h}{s}\n" for h, s in kept)
print(f"{len(kept)} proteins, {sum(len(s) for _, s in kept)} residues")
EOF
[[ -f "${OUT}/hf-random/model.safetensors" ]] || "${TORCH_VENV}/bin/python" scripts/embed_peers.py make "${OUT}/hf-random"
"${PERFORMER}" import --hf "${OUT}/hf-random" --out "${OUT}/esm2-8m.h5" --force >/dev/null
"${PERFORMER}" export --checkpoint "${OUT}/esm2-8m.h5" --format hf --out "${OUT}/hf-hub" --force >/dev/null

# name, then the command; prints name, residues/s, seconds, peak RSS (MB)
measure() {
  local name="$1"
  shift
  python3 - "${name}" "$@" <<'EOF'
import os, re, subprocess, sys
name, cmd = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
out = p.stdout.read()
_, status, usage = os.wait4(p.pid, 0)
if status != 0:
    sys.exit(f"{name} failed:\n{out}")
m = re.search(r"([0-9.]+) residues/s", out) or re.search(r"residues/s ([0-9.]+)", out)
print(f"{name}\t{float(m.group(1)):.0f}\t{usage.ru_maxrss / 1024:.0f}")
EOF
}
rm -f "${OUT}"/ours-*.h5
echo -e "embedder\tresidues_per_s\tpeak_rss_mb" > "${OUT}/results.tsv"
{
  measure "performer fp32" "${PERFORMER}" --threads "${THREADS}" embed --checkpoint "${OUT}/esm2-8m.h5" --input "${FASTA}" \
    --out "${OUT}/ours-fp32.h5" --layers -1 --pool mean --precision fp32 -q
  measure "performer bf16" "${PERFORMER}" --threads "${THREADS}" embed --checkpoint "${OUT}/esm2-8m.h5" --input "${FASTA}" \
    --out "${OUT}/ours-bf16.h5" --layers -1 --pool mean --precision bf16 -q
  measure "transformers fp32" "${TORCH_VENV}/bin/python" scripts/embed_peers.py transformers "${OUT}/hf-hub" "${FASTA}" "${OUT}/hf-fp32"
  measure "transformers bf16" "${TORCH_VENV}/bin/python" scripts/embed_peers.py transformers "${OUT}/hf-hub" "${FASTA}" "${OUT}/hf-bf16" --bf16
  measure "esm-cpp fp32" "${ESMCPP_VENV}/bin/python" scripts/embed_peers.py esmcpp "${OUT}/hf-hub" "${FASTA}" "${OUT}/esmcpp"
} | tee -a "${OUT}/results.tsv"

echo "== cosine to transformers' float32 embeddings (min over proteins)"
if ! "${TORCH_VENV}/bin/python" -c 'import h5py' >/dev/null 2>&1; then
  "${TORCH_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check h5py==3.12.1
fi
"${TORCH_VENV}/bin/python" - "${OUT}" <<'EOF'
import sys, h5py, numpy as np
out = sys.argv[1]
ref = np.load(f"{out}/hf-fp32.npy")
def cos(x):
    return float(((x * ref).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(ref, axis=1)).min())
for name in ["ours-fp32", "ours-bf16"]:
    with h5py.File(f"{out}/{name}.h5") as f:
        g = f["per_protein"]
        x = g[list(g.keys())[0]][:]
    print(f"performer {name[5:]}\t{cos(x):.6f}")
print(f"transformers bf16\t{cos(np.load(f'{out}/hf-bf16.npy')):.6f}")
print(f"esm-cpp fp32\t{cos(np.load(f'{out}/esmcpp.npy')):.6f}")
EOF
