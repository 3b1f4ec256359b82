#!/usr/bin/env bash
# The Performer paper's backward-compatibility claim on proteins: an exact-attention model's weights used
# with FAVOR attention, without training, then after a short fine-tuning.
#
#   1. train an ESM-shaped model (ESM-2's LM head, token dropout, rotary) with exact attention on
#      trembl-sample for 1,400 steps (configs/quickstart.yaml's data and optimizer, its former budget);
#   2. export it (HuggingFace folder) and import it back with each attention: exact, FAVOR-softmax at
#      m = 64, 128, 256, 512, FAVOR-ReLU, the random features of each drawn with DRAWS seeds (the estimate
#      of a model never trained with FAVOR varies much from draw to draw); evaluate each on the 500 QUERY
#      proteins (masked perplexity, the same masks for all);
#   3. fine-tune the FAVOR-softmax (m = FT_FEATURES) model for 100 and 400 steps (train --init) and
#      evaluate again: how much of the gap to exact attention closes.
#
# Usage: scripts/esm-backcompat.sh      (about 20 minutes on 2 cores; OUT=runs/backcompat)
# Extra settings: STEPS (exact training, default 1400, the quickstart's former budget), DRAWS ("0 1 2"), FT_STEPS
# ("100 400"), FT_FEATURES (256), FT_LR (1e-3).
# Output: OUT/results.tsv (attention, features, fine-tuning steps, QUERY perplexity, gap to exact, share of
# the gap closed) and one folder per model with its eval summary.json.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=toolchain.sh
source scripts/toolchain.sh
choose_toolchain

OUT="${OUT:-runs/backcompat}"
STEPS="${STEPS:-1400}"
FT_STEPS="${FT_STEPS:-100 400}"
DRAWS="${DRAWS:-0 1 2}"
FT_FEATURES="${FT_FEATURES:-256}"
FT_LR="${FT_LR:-1e-3}"
QUERY=data/trembl-sample/QUERY.fasta.gz
ESM=(--set model.positions=rotary --set model.lm_head=esm --set model.token_dropout=true
     --set train.optimizer=adamw --set train.lr=3e-3)  # the optimizer these figures were measured with

scripts/setup.sh >/dev/null
scripts/get-data.sh >/dev/null
mkdir -p "${OUT}"

echo "== 1. exact attention, ${STEPS} steps (configs/quickstart.yaml's budget)"
"${PERFORMER}" train --config configs/quickstart.yaml "${ESM[@]}" --set model.kind=exact \
  --set train.steps="${STEPS}" --set train.max_minutes=0 --set eval.every=200 --set output.checkpoint_every=200 \
  --set output.dir="${OUT}/exact" --resume auto
CORPUS="${OUT}/exact/corpus.h5"

echo "== 2. the same weights under each attention, no training"
"${PERFORMER}" export --checkpoint "${OUT}/exact/best.h5" --format hf --out "${OUT}/hf" --force
evaluate() {  # name checkpoint
  "${PERFORMER}" eval --checkpoint "$2" --input "${QUERY}" --train-corpus "${CORPUS}" --out "${OUT}/eval-$1" \
    | grep -E '^masked ' | head -n 1
}
variants=("exact|exact|" "favor-softmax-64|favor-softmax|64" "favor-softmax-128|favor-softmax|128"
          "favor-softmax-256|favor-softmax|256" "favor-softmax-512|favor-softmax|512" "favor-relu|favor-relu|")
for v in "${variants[@]}"; do
  IFS='|' read -r name kind m <<<"${v}"
  draws="${DRAWS}"
  [[ "${kind}" == exact ]] && draws=0
  for seed in ${draws}; do
    sets=(--set model.kind="${kind}" --set runtime.seed="${seed}")
    [[ -n "${m}" ]] && sets+=(--set model.features="${m}")
    tag="${name}"
    [[ "${seed}" != 0 ]] && tag="${name}-draw${seed}"
    "${PERFORMER}" import --hf "${OUT}/hf" --out "${OUT}/${tag}.h5" "${sets[@]}" --force >/dev/null
    printf '%-26s ' "${tag}"
    evaluate "${tag}" "${OUT}/${tag}.h5"
  done
done

echo "== 3. fine-tuning FAVOR-softmax (m = ${FT_FEATURES}) from the exact weights"
for n in ${FT_STEPS}; do
  "${PERFORMER}" train --config configs/quickstart.yaml "${ESM[@]}" --set model.kind=favor-softmax \
    --set model.features="${FT_FEATURES}" --set data.train="${CORPUS}" --set train.steps="${n}" \
    --set train.warmup_steps=$((n / 10)) --set train.lr="${FT_LR}" --set train.max_minutes=0 \
    --set eval.every=0 --set output.checkpoint_every=0 --set output.dir="${OUT}/ft-${n}" \
    --init "${OUT}/favor-softmax-${FT_FEATURES}.h5" --resume auto >/dev/null  # a finished run is only re-evaluated
  printf '%-20s ' "fine-tuned ${n}"
  evaluate "ft-${n}" "${OUT}/ft-${n}/ckpt-$(printf '%09d' "${n}").h5"
done

python3 - "${OUT}" "${FT_FEATURES}" "${DRAWS}" ${FT_STEPS} <<'EOF'
import json, os, statistics, sys
out, m, draws, steps = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def ppl(name):
    return json.load(open(os.path.join(out, f"eval-{name}", "summary.json")))["masked"]["perplexity"]
def per_draw(name):
    return [ppl(name if s == "0" else f"{name}-draw{s}") for s in draws]
exact, base = ppl("exact"), ppl(f"favor-softmax-{m}")  # fine-tuning starts from draw 0
rows = [("exact", "", 0, [exact])]
rows += [("favor-softmax", f, 0, per_draw(f"favor-softmax-{f}")) for f in ("64", "128", "256", "512")]
rows += [("favor-relu", "", 0, per_draw("favor-relu"))]
rows += [("favor-softmax", m, int(n), [ppl(f"ft-{n}")]) for n in steps]
with open(os.path.join(out, "results.tsv"), "w") as f:
    f.write("attention\tfeatures\tfine_tuning_steps\tquery_perplexity_per_draw\tmean\tgap_to_exact\tgap_closed\n")
    for kind, feats, n, ps in rows:
        mean = statistics.mean(ps)
        closed = f"{(base - mean) / (base - exact):.3f}" if n and base != exact else ""
        f.write(f"{kind}\t{feats}\t{n}\t{' '.join(f'{p:.3f}' for p in ps)}\t{mean:.3f}\t{mean - exact:+.3f}\t{closed}\n")
print(open(os.path.join(out, "results.tsv")).read(), end="")
EOF
