#!/usr/bin/env python3
"""Quantizes a bf16/fp32 Llama-family model directory to a 4-bit AWQ or GPTQ checkpoint (issue 28).

The linears (q/k/v/o, gate/up/down; never lm_head or the embeddings) are quantized per group of
--group inputs, data-free: for each group the clipping of its range is chosen from a grid of
shrink factors (1.0, 0.95, ... 0.70) to minimise the squared weight error after rounding (the
weight-only part of AutoAWQ's auto_clip), then rounded to nearest. Written by the packing rules of
tools/make_int4_fixtures.py (whose opening comment names the published descriptions):
  --format awq:  asymmetric with zero points, AutoAWQ GEMM layout (version "gemm");
  --format gptq: AutoGPTQ v1 layout (checkpoint_format "gptq"), asymmetric (sym = false) unless
                 --sym, no act-order.
Everything else in the directory (tokenizer, generation config, held-out text) is copied. The
perplexity of the result against the source: `inferd bench perplexity OUT --file
models/demo/heldout.txt` (see docs or the report of issue 28 for the demo model's figures).

Usage: python3 tools/quantize_int4.py --model models/demo --format awq|gptq [--group 128]
                                      [--sym] --out DIR
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_int4_fixtures as fx  # noqa: E402

SHRINK = [1.0 - 0.05 * i for i in range(7)]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.frombuffer(data[a:b], dtype={"BF16": np.uint16, "F16": np.float16,
                                               "F32": np.float32}[info["dtype"]])
        if info["dtype"] == "BF16":
            t = torch.from_numpy(raw.astype(np.int32) << 16).view(torch.float32).to(torch.bfloat16)
        else:
            t = torch.from_numpy(raw.copy())
        out[name] = (t.reshape(info["shape"]), info["dtype"])
    return out


def quantize_clipped(w, bits, group, sym, zmin=0):
    """w [out, in] float64 -> codes [out, in], scales [G, out] (fp16-rounded), zeros [G, out]."""
    out_f, in_f = w.shape
    G, maxq = in_f // group, 2 ** bits - 1
    q = np.zeros((out_f, in_f), dtype=np.int64)
    scales, zeros = np.zeros((G, out_f)), np.zeros((G, out_f), dtype=np.int64)
    for g in range(G):
        blk = w[:, g * group:(g + 1) * group]
        best_err = np.full(out_f, np.inf)
        for r in SHRINK:
            if sym:
                amax = np.maximum(np.abs(blk).max(axis=1) * r, 1e-8)
                s = fx.to_f16(2 * amax / maxq)
                z = np.full(out_f, 2 ** (bits - 1))
            else:
                lo, hi = np.minimum(blk.min(axis=1), 0) * r, np.maximum(blk.max(axis=1), 0) * r
                s = fx.to_f16(np.maximum(hi - lo, 1e-8) / maxq)
                z = np.clip(np.round(-lo / s), zmin, maxq).astype(np.int64)
            qq = np.clip(np.round(blk / s[:, None]) + z[:, None], 0, maxq)
            err = (((qq - z[:, None]) * s[:, None] - blk) ** 2).sum(axis=1)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            q[better, g * group:(g + 1) * group] = qq[better]
            scales[g, better], zeros[g, better] = s[better], z[better]
    return q, scales, zeros


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--format", choices=["awq", "gptq"], required=True)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--sym", action="store_true", help="gptq: symmetric (zero point 8)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.format == "awq" and a.sym:
        sys.exit("--sym: AWQ checkpoints always have zero points")
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    for f in os.listdir(a.model):
        if f not in ("model.safetensors", "config.json") and os.path.isfile(os.path.join(a.model, f)):
            shutil.copy(os.path.join(a.model, f), os.path.join(a.out, f))
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    tensors = read_safetensors(os.path.join(a.model, "model.safetensors"))
    out, worst = {}, 0.0
    for name, (t, dt) in tensors.items():
        if not (name.endswith(".weight") and any(f".{p}." in name for p in fx.LINEAR)):
            out[name] = t
            continue
        w = t.double().numpy()
        if w.shape[1] % a.group:
            sys.exit(f"{name}: {w.shape[1]} inputs is not a multiple of --group {a.group}")
        # GPTQ v1 stores zero points minus one: a zero point of 0 would read back as 16
        # (AutoGPTQ's off-by-one), so they start at 1 there.
        q, s, z = quantize_clipped(w, 4, a.group, a.sym, 1 if a.format == "gptq" else 0)
        base = name[: -len(".weight")]
        g_idx = np.arange(w.shape[1]) // a.group
        if a.format == "awq":
            out.update(fx.write_awq(base, q, s, z, a.group))
        else:
            out.update(fx.write_gptq(base, q, s, z, 4, g_idx, True))
        deq = fx.dequantize(q, s, z, g_idx)
        worst = max(worst, float(np.linalg.norm(deq - w) / np.linalg.norm(w)))
    qcfg = fx.quant_config(a.format, 4, a.group, a.sym, False, {"checkpoint_format": "gptq"})
    cfg["quantization_config"] = qcfg
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    fx.save(os.path.join(a.out, "model.safetensors"), out)
    print(f"{a.out}: {a.format} 4-bit group {a.group}; largest relative weight error {worst:.4f}")


if __name__ == "__main__":
    main()
