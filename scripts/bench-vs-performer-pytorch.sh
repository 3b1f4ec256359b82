#!/usr/bin/env bash
# Our FAVOR attention core against lucidrains' performer-pytorch FastAttention, side by side in one run.
#
#   bash scripts/bench-vs-performer-pytorch.sh [--lengths 1024,...,65536] [--rounds 2] [--out runs/bench-vs-peer]
#       [--torch pip|debian] [--threads N] [--favor-chunk C] [--model-only] [--no-model]
#       [--model-length 512] [--model-rows 16] [--model-steps 4]
#
# Both sides: forward + backward of the attention core alone (no projections), B = 1, H = 8, d = 64,
# m = 256 (passed to both), float32, CPU; q, k, v made before the clock starts; median of 3 runs after
# 1 warm-up; memory = the process's peak RSS above its footprint before the cell. Every case runs in a
# fresh process, both with tcmalloc preloaded and the same thread count, ours and the peer alternately for
# each (L, kind) (ours first in odd rounds, the peer first in even ones), for --rounds rounds. Ours = `performer bench attention` (one child process per cell) built against the same
# LibTorch as the peer's torch:
#   --torch pip (the default when build-torch2/ exists): build-torch2/performer and the venv's torch 2.11
#     (`TORCH=pip scripts/setup.sh`);
#   --torch debian (the default otherwise): build/performer and Debian's python3-torch 1.13 (installed with
#     apt-get when missing), both on OpenBLAS.
# The peer: performer-pytorch 1.1.4 and its pure-Python dependencies, pinned, installed with pip into a
# scratch folder (~/.cache/performer/peer) that the chosen Python loads, so both sides use one torch. The FLOP floor: 12 x 2 B H L m d (the features of q and k in forward and again in backward, the
# key-value sum, the outputs, and their gradients; storing the features instead of recomputing them saves
# 2 of the 12) at this machine's float32 GEMM rate, measured before and after the cells (2048^3 matmul).
# Writes $OUT/cells.csv (every measurement) and $OUT/table.md (times: medians over rounds; memory: the
# largest peak over rounds), and prints the table.
#
# Then whole training steps of one model shape on both sides (--no-model: skipped; --model-only: nothing
# else): the ESM-2 8M shape of configs/esm2-8m-performer.yaml (6 layers, d 320, 20 heads of 16, d_ff 1280,
# rotary positions, FAVOR softmax with m 64), rows of --model-length tokens, --model-rows rows per step, in
# fp32 and in bf16 autocast. Ours: `performer bench train` on concatenated trembl-sample proteins (every row
# full: tokens = rows x length); the peer: PerformerLM on random tokens of the same shape (15% masked),
# cross-entropy, clipping and AdamW as ours. Each: median step of --model-steps after 2 warm-up, for
# --rounds rounds, alternating who goes first. Written to $OUT/model.csv and $OUT/model.md.
set -euo pipefail
cd "$(dirname "$0")/.."

lengths=1024,2048,4096,8192,16384,32768,65536
rounds=2
out=runs/bench-vs-peer
threads=$(nproc)
chunk=""
torch=""
attention=1
model=1
model_length=512
model_rows=16
model_steps=4
while [ $# -gt 0 ]; do
  case "$1" in
    --lengths) lengths=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --favor-chunk) chunk=$2; shift 2 ;;
    --torch) torch=$2; shift 2 ;;
    --model-only) attention=0; shift ;;
    --no-model) model=0; shift ;;
    --model-length) model_length=$2; shift 2 ;;
    --model-rows) model_rows=$2; shift 2 ;;
    --model-steps) model_steps=$2; shift 2 ;;
    *) echo "bench-vs-performer-pytorch: unknown option $1" >&2; exit 2 ;;
  esac
done

venv=${TORCH_VENV:-$HOME/.cache/performer/torch2}
if [ -z "$torch" ]; then
  if [ -x build-torch2/performer ] && [ -x "$venv/bin/python" ]; then torch=pip; else torch=debian; fi
fi
case "$torch" in
  pip)
    bin=build-torch2/performer
    if [ ! -x "$bin" ] || [ ! -x "$venv/bin/python" ]; then
      echo "bench-vs-performer-pytorch: building against pip's torch first (TORCH=pip scripts/setup.sh)"
      TORCH=pip bash scripts/setup.sh
    fi
    python=$venv/bin/python ;;
  debian)
    bin=build/performer
    [ -x "$bin" ] || bash scripts/setup.sh
    python=/usr/bin/python3
    if ! "$python" -c "import torch" 2>/dev/null; then
      echo "bench-vs-performer-pytorch: installing Debian's python3-torch"
      sudo=$([ "$(id -u)" = 0 ] || echo sudo)
      $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q python3-torch python3-pip >/dev/null
    fi ;;
  *) echo "bench-vs-performer-pytorch: --torch must be pip or debian" >&2; exit 2 ;;
esac

peer=${PEER_DIR:-$HOME/.cache/performer/peer}
peer_pins="performer-pytorch==1.1.4 einops==0.8.2 local-attention==1.4.4 axial-positional-embedding==0.3.12"
if ! PYTHONPATH=$peer "$python" -c "import performer_pytorch" 2>/dev/null; then
  echo "bench-vs-performer-pytorch: installing $peer_pins into $peer"
  "$python" -m pip install --quiet --no-deps --target "$peer" $peer_pins 2>/dev/null ||
    "$python" -m pip install --quiet --no-deps --break-system-packages --target "$peer" $peer_pins
fi

tcmalloc=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -1 || true)
[ -n "$tcmalloc" ] || { echo "bench-vs-performer-pytorch: libtcmalloc_minimal.so.4 not found (scripts/setup.sh installs it)" >&2; exit 1; }
export LD_PRELOAD=$tcmalloc OMP_NUM_THREADS=$threads PYTHONWARNINGS=ignore

mkdir -p "$out"
cells=$out/cells.csv
echo "round,side,kind,length,median_ms,peak_bytes" > "$cells"
sgemm() { PYTHONPATH=$peer "$python" scripts/performer_pytorch_cell.py --sgemm --threads "$threads" | sed 's/.*"sgemm_gflops": \([0-9.]*\).*/\1/'; }
torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)
g1=$(sgemm)
echo "float32 GEMM (2048^3): $g1 GFLOP/s; torch $torch_version ($bin), $threads threads"

B=1 H=8 D=64 M=256
shape=(--batch "$B" --heads "$H" --dim "$D" --features "$M")
chunk_args=()
[ -z "$chunk" ] || chunk_args=(--favor-chunk "$chunk")
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

ours() {  # round L kind
  "$bin" --threads "$threads" bench attention --lengths "$2" --kinds "$3" "${shape[@]}" "${chunk_args[@]}" \
    --csv "$tmp" >/dev/null
  # device,kind,causal,batch,heads,length,dim,features,status,median_ms,peak_bytes,...
  awk -F, -v r="$1" 'NR == 2 { if ($9 != "ok") { print "ours " $2 " L=" $6 ": " $9 > "/dev/stderr"; exit 1 }
                                printf "%s,ours,%s,%s,%s,%s\n", r, $2, $6, $10, $11 }' "$tmp" >> "$cells"
}
peer() {  # round L kind; the cell prints one JSON object as its last line
  PYTHONPATH=$peer "$python" scripts/performer_pytorch_cell.py --kind "$3" --length "$2" --threads "$threads" \
    "${shape[@]}" | tail -n 1 | "$python" -c 'import json, sys
c = json.loads(sys.stdin.read()); r, k, L = sys.argv[1:]
print(",".join([r, "peer", k, L, str(c["median_ms"]), str(c["peak_bytes"])]))' "$1" "$3" "$2" >> "$cells"
}

if [ "$attention" = 1 ]; then
for round in $(seq 1 "$rounds"); do
  for L in ${lengths//,/ }; do
    for kind in favor-softmax favor-relu; do
      if [ $((round % 2)) = 1 ]; then ours "$round" "$L" "$kind"; peer "$round" "$L" "$kind"
      else peer "$round" "$L" "$kind"; ours "$round" "$L" "$kind"; fi
      tail -2 "$cells" | tr '\n' ' '
      echo
    done
  done
done
g2=$(sgemm)
echo "float32 GEMM after the cells: $g2 GFLOP/s"

# Medians over rounds; floor = 12 * 2 B H L m d / GEMM rate (mean of the two measurements).
awk -F, -v g1="$g1" -v g2="$g2" -v tv="$torch_version" -v B="$B" -v H="$H" -v D="$D" -v M="$M" '
  NR == 1 { next }
  { key = $3 "," $4; t[$2, key] = t[$2, key] " " $5; mem[$2, key] = $6 > mem[$2, key] ? $6 : mem[$2, key]
    if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
  function median(s,   a, k, i, j, x) { k = split(s, a, " ")
    for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
  function rounded(s,   a, k, i, r) { k = split(s, a, " "); r = ""
    for (i = 1; i <= k; i++) r = r (i > 1 ? ", " : "") sprintf("%.0f", a[i]); return r }
  function mb(b) { return b >= 1e9 ? sprintf("%.2f GB", b / 1e9) : sprintf("%.0f MB", b / 1e6) }
  END {
    rate = (g1 + g2) / 2 * 1e9
    printf "GEMM %.0f / %.0f GFLOP/s (before / after); floor = 12 x 2 B H L m d FLOP at %.0f GFLOP/s; torch %s\n\n", g1, g2, rate / 1e9, tv
    print "| L | kind | ours ms (rounds) | peer ms (rounds) | ours vs peer, time | FLOP floor ms | ours / floor | ours peak | peer peak | memory ours / peer |"
    print "|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
      split(order[i], f, ","); kind = f[1]; L = f[2]
      mo = median(t["ours", order[i]]); mp = median(t["peer", order[i]])
      floor_ms = 1e3 * 12 * 2 * B * H * L * M * D / rate
      printf "| %d | %s | %.0f (%s) | %.0f (%s) | %.2fx faster | %.0f | %.2f | %s | %s | %.2fx |\n", L, kind, mo,
             rounded(t["ours", order[i]]), mp, rounded(t["peer", order[i]]), mp / mo, floor_ms, mo / floor_ms,
             mb(mem["ours", order[i]]), mb(mem["peer", order[i]]), mem["ours", order[i]] / mem["peer", order[i]]
    }
  }' "$cells" | tee "$out/table.md"
fi


# ------------------------------------------------------------------------------------ whole training steps
[ "$model" = 1 ] || exit 0
[ -f data/trembl-sample/DB.fasta.gz ] || bash scripts/get-data.sh
mcells=$out/model.csv
echo "round,side,precision,tokens_per_second,seconds_per_step" > "$mcells"
model_ours() {  # round precision
  rm -f "$tmp"
  "$bin" --threads "$threads" bench train -c configs/esm2-8m-performer.yaml --set data.concat=true \
    --set data.max_len="$model_length" --set model.max_len="$model_length" \
    --set data.tokens_per_batch=$((model_rows * model_length)) --set runtime.precision="$2" \
    --set output.dir="$out/model-ours" --steps "$model_steps" --warmup 2 --csv "$tmp" >/dev/null
  "$python" -c 'import csv, sys
r = next(csv.DictReader(open(sys.argv[1])))
print(",".join([sys.argv[2], "ours", sys.argv[3], r["tokens_per_second"], r["seconds_per_step"]]))' "$tmp" "$1" "$2" >> "$mcells"
}
model_peer() {  # round precision
  PYTHONPATH=$peer "$python" scripts/performer_pytorch_cell.py --model --kind favor-softmax --layers 6 --d-model 320 \
    --d-ff 1280 --heads 20 --features 64 --length "$model_length" --rows "$model_rows" --precision "$2" \
    --repeats "$model_steps" --warmup 2 --threads "$threads" | tail -n 1 | "$python" -c 'import json, sys
c = json.loads(sys.stdin.read())
print(",".join([sys.argv[1], "peer", sys.argv[2], str(c["tokens_per_second"]), str(c["seconds_per_step"])]))' "$1" "$2" >> "$mcells"
}
for round in $(seq 1 "$rounds"); do
  for precision in fp32 bf16; do
    if [ $((round % 2)) = 1 ]; then model_ours "$round" "$precision"; model_peer "$round" "$precision"
    else model_peer "$round" "$precision"; model_ours "$round" "$precision"; fi
    tail -2 "$mcells" | tr '\n' ' '
    echo
  done
done
"$python" - "$mcells" "$model_rows" "$model_length" "$torch_version" "$threads" <<'PY' | tee "$out/model.md"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
R, L, tv, threads = sys.argv[2:]
tps = lambda side, p: [float(r["tokens_per_second"]) for r in rows if r["side"] == side and r["precision"] == p]
print(f"Whole training step, ESM-2 8M shape with FAVOR softmax (m 64), {R} rows x {L} tokens, torch {tv}, {threads} threads\n")
print("| precision | ours tokens/s (rounds) | peer tokens/s (rounds) | ours / peer |")
print("|---|---|---|---|")
for p in ("fp32", "bf16"):
    o, q = tps("ours", p), tps("peer", p)
    fmt = lambda v: ", ".join(f"{x:.0f}" for x in v)
    print(f"| {p} | {statistics.median(o):.0f} ({fmt(o)}) | {statistics.median(q):.0f} ({fmt(q)}) | "
          f"{statistics.median(o) / statistics.median(q):.2f}x |")
o32, o16 = statistics.median(tps("ours", "fp32")), statistics.median(tps("ours", "bf16"))
print(f"\nours bf16 / fp32: {o16 / o32:.2f}x")
PY
