#!/usr/bin/env python3
"""Goldens of Qwen2.5-VL's vision tower (issue 34): a tiny random Qwen2_5_VisionTransformer
(patch embedding as a bias-free linear over the flattened 2x14x14 patches, 2-D rope, window
attention with full-attention blocks at fullatt_block_indexes, RMSNorm, SiLU-gated MLP, the 2x2
patch merger with exact GELU), with Qwen2_5_VLForConditionalGeneration's tensor names
(visual.*), on the committed test images preprocessed as Qwen2VLImageProcessor does
(tools/make_vlm_fixtures.py's pil_reference). Writes tests/data/vlm/qwen25vl_tiny/: config.json,
preprocessor_config.json, model.safetensors (fp32), golden.safetensors (image{i}.grid_thw,
 image{i}.embeds [merged tokens, out_hidden_size]) and golden.json.

Reference: this script's own float64 PyTorch implementation (runs here). With transformers (the
GPU machine; the lead runs it) Qwen2_5_VisionTransformerPretrainedModel with the same weights must
agree (rel err < 1e-6).

Usage: /usr/bin/python3 tools/make_qwen_vl_goldens.py [--out tests/data/vlm/qwen25vl_tiny]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_goldens import write_safetensors  # noqa: E402
from make_vlm_fixtures import QWEN_BASE, pil_reference  # noqa: E402

DATA = os.path.join(HERE, "..", "tests", "data", "vlm")
IMAGES = ["photo.jpg", "chart.png"]
# window_size 56 = 2 merged tokens a side of a window (56 // 2 // 14), so that the small images
# have several windows, partial ones included.
VISION = {"model_type": "qwen2_5_vl", "depth": 3, "hidden_size": 32, "hidden_act": "silu",
          "intermediate_size": 48, "num_heads": 4, "in_chans": 3, "out_hidden_size": 24,
          "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
          "window_size": 56, "fullatt_block_indexes": [1], "tokens_per_second": 2}
PROC = {**QWEN_BASE, "max_pixels": 28 * 28 * 20}
P = "visual."


def make_weights(gen):
    h, f, o = VISION["hidden_size"], VISION["intermediate_size"], VISION["out_hidden_size"]
    ps, tp = VISION["patch_size"], VISION["temporal_patch_size"]
    r = lambda *s, std=1.0: torch.randn(*s, generator=gen, dtype=torch.float64) * std  # noqa
    w = {P + "patch_embed.proj.weight": r(h, 3, tp, ps, ps, std=1 / math.sqrt(3 * tp * ps * ps))}
    for i in range(VISION["depth"]):
        b = f"{P}blocks.{i}."
        w[b + "norm1.weight"] = 1 + r(h, std=0.1)
        w[b + "norm2.weight"] = 1 + r(h, std=0.1)
        w[b + "attn.qkv.weight"] = r(3 * h, h, std=1 / math.sqrt(h))
        w[b + "attn.qkv.bias"] = r(3 * h, std=0.1)
        w[b + "attn.proj.weight"] = r(h, h, std=1 / math.sqrt(h))
        w[b + "attn.proj.bias"] = r(h, std=0.1)
        for m, (a, c) in {"gate_proj": (f, h), "up_proj": (f, h), "down_proj": (h, f)}.items():
            w[b + f"mlp.{m}.weight"] = r(a, c, std=1 / math.sqrt(c))
            w[b + f"mlp.{m}.bias"] = r(a, std=0.1)
    w[P + "merger.ln_q.weight"] = 1 + r(h, std=0.1)
    w[P + "merger.mlp.0.weight"] = r(4 * h, 4 * h, std=1 / math.sqrt(4 * h))
    w[P + "merger.mlp.0.bias"] = r(4 * h, std=0.1)
    w[P + "merger.mlp.2.weight"] = r(o, 4 * h, std=1 / math.sqrt(4 * h))
    w[P + "merger.mlp.2.bias"] = r(o, std=0.1)
    return w


def rms(x, wt, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * wt


def rot_pos(gh, gw, m):
    """(h, w) position of each patch in merge-window order (the pixel rows' order)."""
    hp = torch.arange(gh)[:, None].expand(gh, gw).reshape(gh // m, m, gw // m, m)
    wp = torch.arange(gw)[None, :].expand(gh, gw).reshape(gh // m, m, gw // m, m)
    return torch.stack([hp.permute(0, 2, 1, 3).flatten(), wp.permute(0, 2, 1, 3).flatten()], -1)


def window_index(gh, gw):
    """Merged-token order grouped by window, and each window's size in merged tokens."""
    m = VISION["spatial_merge_size"]
    vw = VISION["window_size"] // m // VISION["patch_size"]
    lh, lw = gh // m, gw // m
    idx = torch.arange(lh * lw).reshape(lh, lw)
    ph, pw = (vw - lh % vw) % vw, (vw - lw % vw) % vw
    pad = torch.nn.functional.pad(idx, (0, pw, 0, ph), "constant", -100)
    nh, nw = (lh + ph) // vw, (lw + pw) // vw
    pad = pad.reshape(nh, vw, nw, vw).permute(0, 2, 1, 3).reshape(nh * nw, vw * vw)
    sizes = (pad != -100).sum(-1)
    flat = pad.reshape(-1)
    return flat[flat != -100], [int(s) for s in sizes if s > 0]


def attention(x, w, b, segments, cos, sin):
    n, h = x.shape
    nh = VISION["num_heads"]
    hd = h // nh
    qkv = (x @ w[b + "attn.qkv.weight"].T + w[b + "attn.qkv.bias"]).reshape(n, 3, nh, hd)
    q, k, v = qkv.unbind(1)  # [n, nh, hd]

    def rope(t):
        t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
        return t * cos[:, None] + torch.cat([-t2, t1], -1) * sin[:, None]

    q, k = rope(q), rope(k)
    out = torch.empty_like(q)
    s0 = 0
    for s in segments:
        qs, ks, vs = (t[s0:s0 + s].transpose(0, 1) for t in (q, k, v))
        a = torch.softmax(qs @ ks.transpose(1, 2) / math.sqrt(hd), -1) @ vs
        out[s0:s0 + s] = a.transpose(0, 1)
        s0 += s
    return out.reshape(n, h) @ w[b + "attn.proj.weight"].T + w[b + "attn.proj.bias"]


def vision_forward(w, pv, grid):
    _, gh, gw = grid
    m = VISION["spatial_merge_size"]
    mu = m * m
    h = VISION["hidden_size"]
    hd = h // VISION["num_heads"]
    x = pv @ w[P + "patch_embed.proj.weight"].reshape(h, -1).T
    inv = 1.0 / (10000 ** (torch.arange(0, hd // 2, 2, dtype=torch.float64) / (hd // 2)))
    pos = rot_pos(gh, gw, m)
    freqs = torch.cat([pos[:, 0:1] * inv, pos[:, 1:2] * inv], -1)  # [n, hd / 2]
    widx, wsizes = window_index(gh, gw)
    n = x.shape[0]
    x = x.reshape(n // mu, mu, h)[widx].reshape(n, h)
    freqs = freqs.reshape(n // mu, mu, -1)[widx].reshape(n, -1)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos(), emb.sin()
    for i in range(VISION["depth"]):
        b = f"{P}blocks.{i}."
        segs = [n] if i in VISION["fullatt_block_indexes"] else [s * mu for s in wsizes]
        x = x + attention(rms(x, w[b + "norm1.weight"]), w, b, segs, cos, sin)
        y = rms(x, w[b + "norm2.weight"])
        g = y @ w[b + "mlp.gate_proj.weight"].T + w[b + "mlp.gate_proj.bias"]
        u = y @ w[b + "mlp.up_proj.weight"].T + w[b + "mlp.up_proj.bias"]
        x = x + (torch.nn.functional.silu(g) * u) @ w[b + "mlp.down_proj.weight"].T \
            + w[b + "mlp.down_proj.bias"]
    y = rms(x, w[P + "merger.ln_q.weight"]).reshape(n // mu, mu * h)
    y = torch.nn.functional.gelu(y @ w[P + "merger.mlp.0.weight"].T + w[P + "merger.mlp.0.bias"])
    y = y @ w[P + "merger.mlp.2.weight"].T + w[P + "merger.mlp.2.bias"]
    return y[torch.argsort(widx)]


def transformers_check(w, cases):
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel)
    cfg = Qwen2_5_VLVisionConfig(**{k: v for k, v in VISION.items() if k != "model_type"})
    cfg._attn_implementation = "eager"
    model = Qwen2_5_VisionTransformerPretrainedModel(cfg).double().eval()
    model.load_state_dict({k[len(P):]: v for k, v in w.items()}, strict=True)
    with torch.no_grad():
        for pv, grid, want in cases:
            got = model(pv, grid_thw=torch.tensor([grid]))
            got = getattr(got, "pooler_output", got)
            rel = float((got - want).norm() / want.norm())
            assert rel < 1e-6, f"transformers disagrees with the own implementation ({rel})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(DATA, "qwen25vl_tiny"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    w = make_weights(torch.Generator().manual_seed(2525))
    cases = []
    for name in IMAGES:
        img = Image.open(os.path.join(DATA, name)).convert("RGB")
        pv, grid = pil_reference(img, PROC)
        pv = torch.from_numpy(np.ascontiguousarray(pv)).double()
        cases.append((pv, grid, vision_forward(w, pv, grid)))
    reference = "tools/make_qwen_vl_goldens.py own float64 implementation (torch %s)" % (
        torch.__version__)
    try:
        import transformers
        transformers_check(w, cases)
        reference += "; transformers %s agrees" % transformers.__version__
    except ImportError:
        reference += "; transformers was not available"
    config = {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
              "vision_config": VISION}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(PROC, f, indent=2)
    write_safetensors(os.path.join(args.out, "model.safetensors"),
                      {k: v.float() for k, v in w.items()})
    gold = {}
    for i, (pv, grid, emb) in enumerate(cases):
        gold[f"image{i}.grid_thw"] = torch.tensor(grid, dtype=torch.int32)
        gold[f"image{i}.embeds"] = emb.float()
    write_safetensors(os.path.join(args.out, "golden.safetensors"), gold)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump({"reference": reference, "images": IMAGES,
                   "grids": [c[1] for c in cases]}, f, indent=2)
    print(reference, [c[1] for c in cases])


if __name__ == "__main__":
    main()
