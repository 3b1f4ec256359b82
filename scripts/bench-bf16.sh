#!/usr/bin/env bash
# bf16 against float32 on this machine's CPU, side by side in one run: training and embedding of the
# quickstart's model (configs/quickstart.yaml) and of the ESM-2 8M shape (configs/esm2-8m-performer.yaml).
#
#   bash scripts/bench-bf16.sh [--rounds 2] [--proteins 500] [--out runs/bench-bf16] [--threads N]
#
# Training: `performer bench train` of each config as it is (trembl-sample, its own batching and optimizer),
# quickstart 8 steps after 2 warm-up, ESM-2 8M shape 3 after 1; float32 and bf16 one after the other, the
# first of the two alternating by round, for --rounds rounds. Each run measures the GEMM peak at its own
# precision (2048^3) in the same process. Then one profiled run per model and precision (`--profile`): the
# matrix products' time per step (aten::mm, addmm, bmm, baddbmm; src/util/op_profile.h) and the rest's.
#
# Why the products' split: a step = products + rest. bf16 speeds the products by at most the GEMM peaks'
# ratio, and the rest (element-wise work, which moves half the bytes at best) by at most about 2x. So where
# the products' own fp32 / bf16 ratio, printed beside the step's, is below 2x, no change to the rest brings
# the step to 2x. The rest is the profiled time less the products', the profiler's own cost included.
#
# Embeddings: `performer embed --layers all` (mean per protein, every layer) of the first --proteins QUERY
# proteins, from a 4-step checkpoint of each model made first (the speed does not depend on the weights),
# float32 and bf16 alternately, --rounds rounds; residues/s as `embed` prints them, and the cosine of every
# protein's bf16 vector to its float32 one, the minimum over proteins and layers (h5py 3.12.1, pinned,
# installed into the LibTorch 2.x virtual environment when missing).
#
# Needs pip's LibTorch 2.x build (build-torch2/, `TORCH=pip scripts/setup.sh`): Debian's 1.13 has no fast
# bf16 path on the CPU (docs/benchmarks.md). Writes $OUT/train.csv, $OUT/embed.csv, $OUT/table.md; prints
# the table. About 6 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=2
proteins=500
out=runs/bench-bf16
threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --proteins) proteins=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "bench-bf16: unknown option $1 (--rounds, --proteins, --out, --threads)" >&2; exit 2 ;;
  esac
done

bin=build-torch2/performer
venv=${TORCH_VENV:-$HOME/.cache/performer/torch2}
if [ ! -x "$bin" ] || [ ! -x "$venv/bin/python" ]; then
  echo "bench-bf16: building against pip's LibTorch 2.x first (TORCH=pip scripts/setup.sh)"
  TORCH=pip bash scripts/setup.sh
fi
python=$venv/bin/python
"$python" -c 'import h5py' 2>/dev/null ||
  "$python" -m pip install --quiet --disable-pip-version-check h5py==3.12.1
[ -f data/trembl-sample/DB.fasta.gz ] || bash scripts/get-data.sh
tcmalloc=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -1 || true)
[ -n "$tcmalloc" ] || { echo "bench-bf16: libtcmalloc_minimal.so.4 not found (scripts/setup.sh installs it)" >&2; exit 1; }
export LD_PRELOAD=$tcmalloc

mkdir -p "$out"
models=(quickstart esm2-8m-performer)
declare -A bench_steps=([quickstart]="--steps 8 --warmup 2" [esm2-8m-performer]="--steps 3 --warmup 1")
run_performer() { "$bin" --threads "$threads" "$@" 2> >(grep -v gpuGetDeviceCount >&2); }

# ------------------------------------------------------------------------------------------ training
echo "model,precision,round,tokens_per_second,gemm_peak_tflops,mfu_percent,products_ms,rest_ms" > "$out/train.csv"
bench() {  # model precision round [--profile trace]
  local m=$1 p=$2 r=$3; shift 3
  # shellcheck disable=SC2086
  run_performer bench train -c "configs/$m.yaml" --set runtime.precision="$p" --set output.dir="$out/bench-$m" \
    ${bench_steps[$m]} "$@" > "$out/bench.txt"
  awk -v m="$m" -v p="$p" -v r="$r" '
    /^tokens\/s / { tps = $2 }
    /^model FLOPs/ { for (i = 1; i <= NF; i++) { if ($i == "MFU") mfu = $(i + 1); if ($i == "TFLOP/s") peak = $(i - 1) } }
    /^matrix products / { seen = 0; for (i = 1; i <= NF; i++) { if ($i == "ms" && !seen) { prod = $(i - 1); seen = 1 }
                                                                 if ($i == "rest") rest = $(i + 1) } }
    END { sub("%", "", mfu); printf "%s,%s,%s,%s,%s,%s,%s,%s\n", m, p, r, tps, peak, mfu, prod, rest }' \
    "$out/bench.txt" >> "$out/train.csv"
  tail -n 1 "$out/train.csv"
}
for round in $(seq 1 "$rounds"); do
  for m in "${models[@]}"; do
    if [ $((round % 2)) = 1 ]; then order="fp32 bf16"; else order="bf16 fp32"; fi
    for p in $order; do bench "$m" "$p" "$round"; done
  done
done
for m in "${models[@]}"; do
  for p in fp32 bf16; do bench "$m" "$p" profile --profile "$out/trace-$m-$p.json"; done
done

# ------------------------------------------------------------------------------------------ embeddings
fasta=$out/query-$proteins.fasta
zcat data/trembl-sample/QUERY.fasta.gz | awk -v n="$proteins" '/^>/ { k++ } k <= n' > "$fasta"
echo "model,precision,round,residues_per_second" > "$out/embed.csv"
for m in "${models[@]}"; do
  run_performer train --config "configs/$m.yaml" --set train.steps=4 --set eval.every=0 \
    --set train.budget_minutes=0 --set train.max_minutes=0 --set output.dir="$out/ckpt-$m" --overwrite > /dev/null
  for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order="fp32 bf16"; else order="bf16 fp32"; fi
    for p in $order; do
      run_performer embed --checkpoint "$out/ckpt-$m/best.h5" --input "$fasta" --out "$out/embed-$m-$p.h5" \
        --layers all --precision "$p" -q > "$out/embed.txt"
      rps=$(sed -n 's/^throughput: .*; \([0-9]*\) residues\/s.*/\1/p' "$out/embed.txt")
      [ -n "$rps" ] || { echo "bench-bf16: no throughput line from embed ($out/embed.txt)" >&2; exit 1; }
      echo "$m,$p,$round,$rps" | tee -a "$out/embed.csv"
      [ "$round" = "$rounds" ] || rm -f "$out/embed-$m-$p.h5"
    done
  done
done

# ------------------------------------------------------------------------------------------ the table
"$python" - "$out" "$threads" "$rounds" "$proteins" "${models[@]}" <<'PY' | tee "$out/table.md"
import csv, statistics, sys
import h5py, numpy as np
out, threads, rounds, proteins, *models = sys.argv[1:]
train = list(csv.DictReader(open(f"{out}/train.csv")))
embed = list(csv.DictReader(open(f"{out}/embed.csv")))
timed = lambda m, p: [r for r in train if r["model"] == m and r["precision"] == p and r["round"] != "profile"]
prof = lambda m, p: next(r for r in train if r["model"] == m and r["precision"] == p and r["round"] == "profile")
fmt = lambda v: " / ".join(f"{x:,.0f}" for x in v)
print(f"bf16 against float32, {threads} threads, {rounds} interleaved rounds (scripts/bench-bf16.sh)\n")
print("| model | fp32 tokens/s (MFU) | bf16 tokens/s (MFU) | bf16 / fp32 per round | GEMM peaks fp32 / bf16 TFLOP/s "
      "| products ms per step fp32 / bf16 (ratio) | rest ms fp32 / bf16 (ratio) |")
print("|---|---|---|---|---|---|---|")
for m in models:
    a, b = timed(m, "fp32"), timed(m, "bf16")
    ratios = [float(y["tokens_per_second"]) / float(x["tokens_per_second"]) for x, y in zip(a, b)]
    mfu = lambda rs: "-".join(sorted({f'{float(r["mfu_percent"]):.0f}' for r in rs})) + "%"
    peaks = lambda rs: "-".join(sorted({f'{float(r["gemm_peak_tflops"]):.2f}' for r in rs}))
    pa, pb = prof(m, "fp32"), prof(m, "bf16")
    ca, cb, ra, rb = (float(pa["products_ms"]), float(pb["products_ms"]), float(pa["rest_ms"]), float(pb["rest_ms"]))
    print(f"| {m} | {fmt(float(r['tokens_per_second']) for r in a)} ({mfu(a)}) "
          f"| {fmt(float(r['tokens_per_second']) for r in b)} ({mfu(b)}) | {' / '.join(f'{x:.2f}x' for x in ratios)} "
          f"| {peaks(a)} / {peaks(b)} | {ca:,.0f} / {cb:,.0f} ({ca / cb:.2f}x) | {ra:,.0f} / {rb:,.0f} ({ra / rb:.2f}x) |")
print(f"\n`embed --layers all` of {proteins} QUERY proteins, residues/s:\n")
print("| model | fp32 | bf16 | bf16 / fp32 per round | cosine bf16 to fp32, min over proteins and layers |")
print("|---|---|---|---|---|")
for m in models:
    a = [float(r["residues_per_second"]) for r in embed if r["model"] == m and r["precision"] == "fp32"]
    b = [float(r["residues_per_second"]) for r in embed if r["model"] == m and r["precision"] == "bf16"]
    cos = 1.0
    with h5py.File(f"{out}/embed-{m}-fp32.h5") as f32, h5py.File(f"{out}/embed-{m}-bf16.h5") as f16:
        for layer in f32["per_protein"]:
            x, y = f32["per_protein"][layer][:].astype(np.float64), f16["per_protein"][layer][:].astype(np.float64)
            c = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
            cos = min(cos, float(c.min()))
    print(f"| {m} | {fmt(a)} | {fmt(b)} | {' / '.join(f'{y / x:.2f}x' for x, y in zip(a, b))} | {cos:.6f} |")
PY
