#!/usr/bin/env python3
"""One cell of scripts/bench-vs-performer-pytorch.sh, the peer's side: forward + backward of
performer-pytorch's FastAttention (the attention core alone, as `performer bench attention` times ours).

Measured like `performer bench attention`'s CPU cells: q, k, v ~ N(0, 1) [B, H, L, d] made before the clock
starts, time = median of --repeats runs after --warmup runs, memory = peak RSS of this process above its
footprint once torch is loaded and the module built. `--sgemm` instead times a 2048^3 float32 matmul
(median of 10) and prints its rate. `--model` instead times whole training steps of performer-pytorch's
PerformerLM (embedding, rotary positions, pre-LayerNorm blocks of FAVOR attention and a GELU feed-forward
layer, the output layer; masked-LM cross-entropy on 15% of the positions, backward, AdamW), optionally under
CPU bf16 autocast, and prints tokens/s = rows x length / median step time. Prints one JSON object.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sgemm_gflops(n=2048, runs=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def model_steps(a):
    from performer_pytorch import PerformerLM

    torch.manual_seed(0)
    model = PerformerLM(num_tokens=33, max_seq_len=a.length, dim=a.d_model, depth=a.layers, heads=a.heads,
                        dim_head=a.d_model // a.heads, nb_features=a.features, ff_mult=a.d_ff // a.d_model,
                        generalized_attention=a.kind == "favor-relu", feature_redraw_interval=1000,
                        rotary_position_emb=True, causal=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01)
    tokens = torch.randint(4, 29, (a.rows, a.length))
    masked = torch.rand(a.rows, a.length) < 0.15
    inputs = tokens.masked_fill(masked, 32)
    labels = tokens.masked_fill(~masked, -100)
    times = []
    for i in range(a.warmup + a.repeats):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 33), labels.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {"tokens_per_second": a.rows * a.length / step, "seconds_per_step": step,
            "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=["favor-softmax", "favor-relu"], default="favor-softmax")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--sgemm", action="store_true")
    p.add_argument("--model", action="store_true")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--d-model", type=int, default=320)
    p.add_argument("--d-ff", type=int, default=1280)
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.sgemm:
        print(json.dumps({"sgemm_gflops": sgemm_gflops(), "torch": torch.__version__}))
        return
    if a.model:
        print(json.dumps(model_steps(a)))
        return
    from performer_pytorch import FastAttention

    torch.manual_seed(0)
    attn = FastAttention(dim_heads=a.dim, nb_features=a.features, generalized_attention=a.kind == "favor-relu")
    base = rss_bytes()
    times = []
    for i in range(a.warmup + a.repeats):
        q, k, v = (torch.randn(a.batch, a.heads, a.length, a.dim, requires_grad=True) for _ in range(3))
        t0 = time.perf_counter()
        attn(q, k, v).sum().backward()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
        del q, k, v
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    print(json.dumps({"median_ms": 1e3 * statistics.median(times), "peak_bytes": max(0, peak), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
