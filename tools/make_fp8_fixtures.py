#!/usr/bin/env python3
"""Makes the small FP8 checkpoints under tests/data/fp8/ (issue 13) from the llama3 golden model.

For each layout inferd reads it writes the checkpoint as the quantizers publish it, and beside it
`<name>_dequant/`: the same model with the dequantized weights (f8(q) * scale, in fp32) and no
quantization_config. inferd must give identical logits for the two (the CPU computes FP8
checkpoints by dequantizing them).

  llama3_ct_channel: compressed-tensors float-quantized, weights per output channel, activations
                     dynamic per token (the layout of RedHatAI/...-FP8-dynamic)
  llama3_ct_tensor:  compressed-tensors, weights per tensor, static per-tensor input_scale
                     (RedHatAI/...-FP8)
  llama3_fp8_block:  transformers' quant_method "fp8" with weight_scale_inv per block
                     (Qwen3-FP8, DeepSeek; 32x32 blocks here so the tiny matrices have several)

FP8 encoding: float8 e4m3fn, round to nearest even, saturating at +-448, as torch's
`.clamp(-448, 448).to(torch.float8_e4m3fn)`; implemented here with numpy so the script runs with
Debian's python3-torch (no float8 dtype).

Usage: python3 tools/make_fp8_fixtures.py [--src tests/data/goldens/llama3] [--out tests/data/fp8]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def e4m3_table():
    """Values of the 128 non-negative e4m3fn codes (code 127 is NaN)."""
    vals = []
    for code in range(128):
        e, m = code >> 3, code & 7
        if e == 15 and m == 7:
            vals.append(np.nan)
        elif e == 0:
            vals.append(m * 2.0 ** -9)
        else:
            vals.append((1 + m / 8) * 2.0 ** (e - 7))
    return np.array(vals)


TABLE = e4m3_table()
FINITE = TABLE[:127]  # increasing


def to_e4m3(x):
    """float array -> uint8 codes (round to nearest even, saturate to 448)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(FINITE, a, side="left"), 0, 126)
    lo = np.clip(hi - 1, 0, 126)
    dlo, dhi = a - FINITE[lo], FINITE[hi] - a
    pick = np.where(dlo < dhi, lo, hi)
    tie = dlo == dhi
    pick = np.where(tie, np.where(lo % 2 == 0, lo, hi), pick)  # even mantissa on ties
    pick = np.where(a == FINITE[hi], hi, pick)
    return (pick.astype(np.uint8) | np.where(x < 0, 0x80, 0).astype(np.uint8)).astype(np.uint8)


def from_e4m3(q):
    v = TABLE[q & 0x7F]
    return np.where(q & 0x80, -v, v)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "F8_E4M3"}[arr.dtype]
        raw = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hs = json.dumps(header, separators=(",", ":")).encode()
    hs += b" " * ((8 - len(hs) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hs)))
        f.write(hs)
        for b in blobs:
            f.write(b)


def is_linear(name):
    return name.endswith(".weight") and any(f".{p}." in name for p in LINEAR)


def quantize(w, layout, block):
    """-> (codes, scale tensors dict suffix->array, dequantized fp32)."""
    if layout == "channel":
        s = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-12) / 448.0
        q = to_e4m3(w / s)
        return q, {"weight_scale": s.astype(np.float32)}, (from_e4m3(q) * s).astype(np.float32)
    if layout == "tensor":
        s = np.float32(max(np.abs(w).max(), 1e-12) / 448.0)
        q = to_e4m3(w / s)
        return q, {"weight_scale": np.array(s, dtype=np.float32)}, (from_e4m3(q) * s).astype(np.float32)
    bn, bk = block
    out, inn = w.shape
    nb, kb = -(-out // bn), -(-inn // bk)
    s = np.zeros((nb, kb), dtype=np.float32)
    full = np.zeros_like(w, dtype=np.float64)
    for i in range(nb):
        for j in range(kb):
            blk = w[i * bn:(i + 1) * bn, j * bk:(j + 1) * bk]
            s[i, j] = max(np.abs(blk).max(), 1e-12) / 448.0
            full[i * bn:(i + 1) * bn, j * bk:(j + 1) * bk] = s[i, j]
    q = to_e4m3(w / full)
    return q, {"weight_scale_inv": s}, (from_e4m3(q) * full).astype(np.float32)


def ct_config(strategy, static):
    acts = ({"num_bits": 8, "type": "float", "symmetric": True, "dynamic": False, "strategy": "tensor"}
            if static else
            {"num_bits": 8, "type": "float", "symmetric": True, "dynamic": True, "strategy": "token"})
    return {"quant_method": "compressed-tensors", "format": "float-quantized",
            "quantization_status": "compressed", "kv_cache_scheme": None, "ignore": ["lm_head"],
            "config_groups": {"group_0": {
                "targets": ["Linear"], "output_activations": None,
                "weights": {"num_bits": 8, "type": "float", "symmetric": True, "dynamic": False,
                            "strategy": strategy, "group_size": None, "block_structure": None,
                            "actorder": None},
                "input_activations": acts}}}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(here, "..", "tests", "data", "goldens", "llama3"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "fp8"))
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.src, "config.json")))
    weights = read_safetensors(os.path.join(a.src, "model.safetensors"))
    variants = {
        "llama3_ct_channel": ("channel", ct_config("channel", False), None),
        "llama3_ct_tensor": ("tensor", ct_config("tensor", True), None),
        "llama3_fp8_block": ("block", {"quant_method": "fp8", "activation_scheme": "dynamic",
                                       "fmt": "e4m3", "weight_block_size": [32, 32]}, (32, 32)),
    }
    for name, (layout, qcfg, block) in variants.items():
        qdir, ddir = os.path.join(a.out, name), os.path.join(a.out, name + "_dequant")
        for d in (qdir, ddir):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        qt, dt = {}, {}
        for n, w in weights.items():
            if not is_linear(n):
                qt[n] = dt[n] = w
                continue
            q, scales, deq = quantize(w.astype(np.float64), layout, block)
            qt[n] = q
            for suffix, s in scales.items():
                qt[n[: -len("weight")] + suffix] = s
            if layout == "tensor":
                qt[n[: -len("weight")] + "input_scale"] = np.array(0.05, dtype=np.float32)
            dt[n] = deq
        write_safetensors(os.path.join(qdir, "model.safetensors"), qt)
        write_safetensors(os.path.join(ddir, "model.safetensors"), dt)
        json.dump(dict(cfg, quantization_config=qcfg), open(os.path.join(qdir, "config.json"), "w"),
                  indent=2, sort_keys=True)
        json.dump(cfg, open(os.path.join(ddir, "config.json"), "w"), indent=2, sort_keys=True)
        print(f"{name}: {layout}, {sum(1 for n in weights if is_linear(n))} fp8 weights")


if __name__ == "__main__":
    main()
