#!/usr/bin/env python3
"""The peers of scripts/bench-embed-vs-esm.sh: an ESM-2 8M-shaped model with random weights, and its
per-protein embeddings (mean over residues of the last hidden state) by `transformers` or `esm-cpp`.

  embed_peers.py make DIR                        EsmForMaskedLM, ESM-2 8M's shape, seed 0, save_pretrained
  embed_peers.py transformers DIR FASTA OUT [--bf16] [--tokens-per-batch N]
  embed_peers.py esmcpp DIR FASTA OUT [--tokens-per-batch N]

transformers gets the proteins sorted by length in batches filled up to a padded token budget (what a
user would do, and what `performer embed` does); esm-cpp one protein at a time (its only call that
returns hidden states). Both time from the first protein to the last, print one line
`residues/s R seconds S proteins P residues N`, and save the embeddings (float32, input order) to OUT.npy.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np


def read_fasta(path):
    opener = gzip.open if path.endswith(".gz") else open
    seqs, cur = [], None
    with opener(path, "rt") as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if cur is not None:
                    seqs.append(cur)
                cur = ""
            elif cur is not None:
                cur += line
    if cur is not None:
        seqs.append(cur)
    return seqs


def batches(seqs, budget):
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batch, longest = [], 0
    for i in order:
        n = len(seqs[i]) + 2
        if batch and max(longest, n) * (len(batch) + 1) > budget:
            yield batch
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, n)
    if batch:
        yield batch


def report(seqs, out, embeddings, seconds):
    residues = sum(len(s) for s in seqs)
    np.save(out, np.stack(embeddings).astype(np.float32))
    print(f"residues/s {residues / seconds:.1f} seconds {seconds:.2f} proteins {len(seqs)} residues {residues}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["make", "transformers", "esmcpp"])
    ap.add_argument("dir")
    ap.add_argument("fasta", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    a = ap.parse_args()
    if a.command == "make":
        import torch
        from transformers import EsmConfig, EsmForMaskedLM
        torch.manual_seed(0)
        config = EsmConfig(vocab_size=33, hidden_size=320, num_hidden_layers=6, num_attention_heads=20,
                           intermediate_size=1280, position_embedding_type="rotary", token_dropout=True,
                           mask_token_id=32, pad_token_id=1, max_position_embeddings=1026,
                           emb_layer_norm_before=False, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
        EsmForMaskedLM(config).save_pretrained(a.dir)
        return 0
    seqs = read_fasta(a.fasta)
    embeddings = [None] * len(seqs)
    if a.command == "transformers":
        import torch
        from transformers import AutoModelForMaskedLM, EsmTokenizer
        torch.set_num_threads(int(os.environ.get("THREADS", "2")))
        model = AutoModelForMaskedLM.from_pretrained(a.dir).eval()
        vocab = os.path.join(a.dir, "vocab.txt")
        tokenizer = EsmTokenizer(vocab)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            for b in batches(seqs, a.tokens_per_batch):
                t = tokenizer([seqs[i] for i in b], return_tensors="pt", padding=True)
                h = model.esm(**t).last_hidden_state.float()
                m = t["attention_mask"].clone()
                m[:, 0] = 0  # residues only: not <cls>, not <eos>
                m[torch.arange(len(b)), t["attention_mask"].sum(1) - 1] = 0
                pooled = (h * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)
                for j, i in enumerate(b):
                    embeddings[i] = pooled[j].numpy()
        report(seqs, a.out, embeddings, time.perf_counter() - start)
    else:
        os.environ["ESM_NUM_THREADS"] = os.environ.get("THREADS", "2")  # its pool's size, read at the first load
        import esm_cpp
        model = esm_cpp.Model.load_from_safetensors(os.path.join(a.dir, "model.safetensors"))
        assert esm_cpp.Model.num_threads == int(os.environ["ESM_NUM_THREADS"]), esm_cpp.Model.num_threads
        tokenizer = esm_cpp.Tokenizer()
        start = time.perf_counter()
        # Its hidden states come one protein at a time (forward_with_hidden_states takes one 1-D sequence;
        # forward_batch returns logits only): no padding at all.
        for i, seq in enumerate(seqs):
            ids = np.asarray(tokenizer.encode(seq), dtype=np.int32)
            _, hidden = model.forward_with_hidden_states(ids, None)
            h = np.asarray(hidden[-1]).reshape(len(ids), -1)
            embeddings[i] = h[1 : len(ids) - 1].mean(0)
        report(seqs, a.out, embeddings, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
