#!/usr/bin/env bash
# A synthetic protein corpus of any size, for testing training on corpora larger than memory: proteins
# whose lengths are drawn from a real FASTA file's length distribution and whose residues are drawn
# independently from its amino-acid frequencies, streamed as FASTA into `performer prepare` (nothing but
# the corpus is written; nothing of it is meant to be committed).
#
#   scripts/make-synthetic-corpus.sh OUT.h5 SIZE_GB [SOURCE_FASTA]
#     SIZE_GB       residues to generate, in units of 10^9 (the corpus file is about that many GB)
#     SOURCE_FASTA  the real proteins to imitate (default data/uniprot-486k/uniprot-486k.fasta, from
#                   scripts/get-data.sh; plain or gzip)
#   PERFORMER=build/performer SEED=1 VALID_FRAC=0.001 TEST_FRAC=0.001 scripts/make-synthetic-corpus.sh ...
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: make-synthetic-corpus.sh OUT.h5 SIZE_GB [SOURCE_FASTA]}"
size_gb="${2:?usage: make-synthetic-corpus.sh OUT.h5 SIZE_GB [SOURCE_FASTA]}"
source_fasta="${3:-${ROOT}/data/uniprot-486k/uniprot-486k.fasta}"
bin="${PERFORMER:-${ROOT}/build/performer}"
[[ -f "${source_fasta}" ]] || { echo "make-synthetic-corpus: ${source_fasta} not found (run scripts/get-data.sh)" >&2; exit 1; }
[[ -x "${bin}" ]] || { echo "make-synthetic-corpus: ${bin} not built (run scripts/setup.sh)" >&2; exit 1; }
python3 -c 'import numpy' 2>/dev/null || { echo "make-synthetic-corpus: needs python3 with numpy (apt-get install python3-numpy)" >&2; exit 1; }

python3 - "${source_fasta}" "${size_gb}" "${SEED:-1}" <<'PY' | "${bin}" prepare --input - --out "${out}" \
    --valid-frac "${VALID_FRAC:-0.001}" --test-frac "${TEST_FRAC:-0.001}"
import gzip, sys
import numpy as np

path, size_gb, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = gzip.open if path.endswith(".gz") else open
lengths, counts, cur = [], np.zeros(256, dtype=np.int64), 0
with opener(path, "rb") as f:
    for line in f:
        if line.startswith(b">"):
            if cur: lengths.append(cur)
            cur = 0
        else:
            s = line.strip()
            cur += len(s)
            counts += np.bincount(np.frombuffer(s, dtype=np.uint8), minlength=256)
if cur: lengths.append(cur)
lengths = np.array(lengths, dtype=np.int64)
letters = np.array([c for c in b"ACDEFGHIKLMNPQRSTVWY"], dtype=np.uint8)
p = counts[letters].astype(np.float64); p /= p.sum()
print(f"make-synthetic-corpus: imitating {len(lengths)} proteins of {path} (mean length {lengths.mean():.0f}); "
      f"{size_gb:g} G residues", file=sys.stderr)
rng = np.random.default_rng(seed)
# Residues come from a 16 MB pool drawn once from the frequencies; each protein is a slice of it at a
# random offset (drawing every residue afresh is 10x slower, and the loader measures the same either way).
pool = rng.choice(letters, size=1 << 24, p=p).tobytes()
target, written, next_id, out, report = int(size_gb * 1e9), 0, 0, sys.stdout.buffer, 0
while written < target:
    lens = rng.choice(lengths, size=50000)
    offs = rng.integers(0, len(pool) - int(lens.max()), size=len(lens))
    parts = []
    for l, o in zip(lens.tolist(), offs.tolist()):
        if written >= target: break
        parts.append(b">SYN%012d\n" % next_id)
        parts.append(pool[o:o + l])
        parts.append(b"\n")
        written += l
        next_id += 1
    out.write(b"".join(parts))
    if written >= report:
        print(f"make-synthetic-corpus: {written / 1e9:.1f} G residues, {next_id} proteins", file=sys.stderr)
        report += int(1e9)
out.flush()
PY
