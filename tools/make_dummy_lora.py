#!/usr/bin/env python3
"""Writes a random PEFT LoRA adapter for a model directory's config (numpy only).

The adapter is what PEFT's `save_pretrained` writes for a LoRA on the given linear projections
of every decoder layer of a Llama-family model: adapter_config.json (peft_type LORA, r,
lora_alpha, target_modules) and adapter_model.safetensors with
`base_model.model.model.layers.<i>.<self_attn|mlp>.<proj>.lora_A.weight` [r, in] and
`...lora_B.weight` [out, r] in bfloat16. A is drawn like PEFT's kaiming-uniform start, B small
and non-zero (a trained adapter's B is not zero), so the adapter changes the outputs. Used by
scripts/lora-gpu-check.sh to load adapters into a running server; the weights mean nothing.

Usage: python3 tools/make_dummy_lora.py MODEL_DIR OUT_DIR [--rank 16] [--alpha 32] [--seed 0]
"""
import argparse
import json
import os
import struct

import numpy as np

PROJ = {
    "q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
    "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp",
}


def shapes(cfg):
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    hd = cfg.get("head_dim") or h // heads
    inter = cfg["intermediate_size"]
    return {  # proj -> (in, out)
        "q_proj": (h, heads * hd), "k_proj": (h, kv * hd), "v_proj": (h, kv * hd),
        "o_proj": (heads * hd, h), "gate_proj": (h, inter), "up_proj": (h, inter),
        "down_proj": (inter, h),
    }


def bf16_bytes(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    return u.tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    rng = np.random.default_rng(args.seed)
    r = args.rank
    tensors = []
    for i in range(cfg["num_hidden_layers"]):
        for proj, (fin, fout) in shapes(cfg).items():
            base = f"base_model.model.model.layers.{i}.{PROJ[proj]}.{proj}"
            bound = 1.0 / np.sqrt(fin)
            a = rng.uniform(-bound, bound, size=(r, fin)).astype(np.float32)
            b = rng.normal(0.0, 0.02, size=(fout, r)).astype(np.float32)
            tensors.append((base + ".lora_A.weight", a))
            tensors.append((base + ".lora_B.weight", b))
    header, offset, blobs = {}, 0, []
    for name, t in tensors:
        data = bf16_bytes(t)
        header[name] = {"dtype": "BF16", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for blob in blobs:
            f.write(blob)
    conf = {"peft_type": "LORA", "r": r, "lora_alpha": args.alpha, "lora_dropout": 0.0,
            "bias": "none", "use_rslora": False, "task_type": "CAUSAL_LM",
            "target_modules": sorted(PROJ), "base_model_name_or_path": args.model_dir}
    with open(os.path.join(args.out_dir, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    print(f"{args.out_dir}: rank {r}, {len(tensors)} tensors, {offset / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
