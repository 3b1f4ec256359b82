#!/usr/bin/env python3
"""HuggingFace `transformers` as the independent reference for the interop tests (tests/test_interop.cpp).

  hf_reference.py make  DIR --fasta F --out REF [--proteins N] [--seed S]
      A randomly initialized EsmForMaskedLM (small ESM-2 config, rotary, token dropout; created here, no
      download) saved with save_pretrained into DIR, and its outputs on the first N proteins of F in one
      padded batch, some residues replaced by <mask>, written to REF (safetensors).
  hf_reference.py score DIR --fasta F --out REF [--proteins N]
      An exported folder loaded with AutoModelForMaskedLM / AutoTokenizer (offline), and the same outputs.

  hf_reference.py contacts DIR --fasta F --out REF [--proteins N]
      A folder loaded as in score, with eager attention, and EsmModel.predict_contacts of each of the first
      N proteins alone (no padding): REF holds contacts_<k> [n, n] (float32).

REF holds input_ids and attention_mask [B, L] (int64, from EsmTokenizer), logits [B, L, 33],
last_hidden_state [B, L, D] and hidden_<k> [B, L, D] for each entry k of output_hidden_states.
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForMaskedLM, AutoTokenizer, EsmConfig, EsmForMaskedLM, EsmTokenizer  # noqa: E402

ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>"] + list("LAGVSERTIDPKQNFYMHWCXBUZO.-") + ["<null_1>", "<mask>"]
MAX_RESIDUES = 90  # proteins cropped to this many residues: different lengths, a small batch
MASK_EVERY = 7     # every 7th residue of every other protein becomes <mask> (exercises token dropout)


def read_fasta(path, n):
    seqs, cur = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if cur:
                    seqs.append(cur)
                cur = ""
            elif cur is not None:
                cur += line
    if cur:
        seqs.append(cur)
    return [s[: MAX_RESIDUES - 10 * (i % 3)] for i, s in enumerate(seqs[:n])]


def masked(seqs):
    out = []
    for i, s in enumerate(seqs):
        if i % 2 == 1:
            out.append(s)
            continue
        toks = ["<mask>" if (j % MASK_EVERY == 3) else c for j, c in enumerate(s)]
        out.append("".join(toks))
    return out


def outputs(model, tokenizer, seqs, out_path):
    batch = tokenizer(masked(seqs), return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        o = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        base = model.esm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    ref = {
        "input_ids": batch["input_ids"].to(torch.int64).contiguous(),
        "attention_mask": batch["attention_mask"].to(torch.int64).contiguous(),
        "logits": o.logits.float().contiguous(),
        "last_hidden_state": base.last_hidden_state.float().contiguous(),
    }
    for k, h in enumerate(o.hidden_states):
        ref[f"hidden_{k}"] = h.float().contiguous()
    save_file(ref, out_path)


def contacts(model, tokenizer, seqs, out_path):
    model.eval()
    ref = {}
    with torch.no_grad():
        for k, s in enumerate(seqs):
            batch = tokenizer([s], return_tensors="pt")
            c = model.esm.predict_contacts(batch["input_ids"], batch["attention_mask"])
            ref[f"contacts_{k}"] = c[0].float().contiguous()
    save_file(ref, out_path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["make", "score", "contacts"])
    ap.add_argument("dir")
    ap.add_argument("--fasta", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--proteins", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    seqs = read_fasta(a.fasta, a.proteins)
    if a.command == "make":
        torch.manual_seed(a.seed)
        config = EsmConfig(vocab_size=33, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, position_embedding_type="rotary", token_dropout=True,
                           mask_token_id=32, pad_token_id=1, max_position_embeddings=1026,
                           emb_layer_norm_before=False, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
        model = EsmForMaskedLM(config)
        with torch.no_grad():  # LayerNorms and biases away from their 1 / 0 initialization
            for name, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
            # The contact head's default initialization (std 0.02) maps every pair to ~sigmoid(0); weights
            # of the size a fitted head has make the contact maps of the contacts test vary.
            model.esm.contact_head.regression.weight.normal_(0.0, 20.0)
        model.save_pretrained(a.dir)
        with tempfile.TemporaryDirectory() as tmp:
            vocab = os.path.join(tmp, "vocab.txt")
            with open(vocab, "w") as f:
                f.write("\n".join(ESM_VOCAB) + "\n")
            tokenizer = EsmTokenizer(vocab)
            outputs(model, tokenizer, seqs, a.out)
    elif a.command == "contacts":  # a folder from make (no tokenizer files) or from performer export
        model = AutoModelForMaskedLM.from_pretrained(a.dir, attn_implementation="eager")
        with tempfile.TemporaryDirectory() as tmp:
            vocab = os.path.join(tmp, "vocab.txt")
            with open(vocab, "w") as f:
                f.write("\n".join(ESM_VOCAB) + "\n")
            contacts(model, EsmTokenizer(vocab), seqs, a.out)
    else:
        model = AutoModelForMaskedLM.from_pretrained(a.dir)
        tokenizer = AutoTokenizer.from_pretrained(a.dir)
        outputs(model, tokenizer, seqs, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
