#!/usr/bin/env python3
"""Goldens of the vision side of Gemma 3 (issue 34): a tiny random SigLIP vision tower and Gemma
3's multimodal projector (Gemma3ForConditionalGeneration's `vision_tower` and
`multi_modal_projector`, with its tensor names), run on the committed test images
(tests/data/vlm/photo.jpg, chart.png) preprocessed as Gemma3ImageProcessor does (PIL bilinear,
rescale, normalise; tools/make_vlm_fixtures.py's pil_reference). Writes tests/data/vlm/gemma3_tiny/:
config.json, preprocessor_config.json, model.safetensors (fp32), golden.safetensors
(image{i}.pixel_values, image{i}.vision_out [patches, hidden], image{i}.soft_tokens
[mm_tokens_per_image, text_hidden]) and golden.json.

Reference: this script's own float64 PyTorch implementation (python3-torch; runs here). When
transformers can be imported (the GPU machine: the lead runs it), SiglipVisionModel and
Gemma3MultiModalProjector with the same weights must agree with it (rel err < 1e-6), and
golden.json's "reference" says transformers confirmed it.

Usage: /usr/bin/python3 tools/make_vlm_goldens.py [--out tests/data/vlm/gemma3_tiny]
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
from make_vlm_fixtures import GEMMA_BASE, pil_reference  # noqa: E402

DATA = os.path.join(HERE, "..", "tests", "data", "vlm")
IMAGES = ["photo.jpg", "chart.png"]
VISION = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 48,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_channels": 3, "image_size": 56,
          "patch_size": 14, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
          "vision_use_head": False}
MM_TOKENS = 4
TEXT_HIDDEN = 40
VP = "vision_tower.vision_model."
PP = "multi_modal_projector."


def make_weights(gen):
    h, f, p = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    n = (VISION["image_size"] // p) ** 2
    r = lambda *s, std=1.0: torch.randn(*s, generator=gen, dtype=torch.float64) * std  # noqa
    w = {VP + "embeddings.patch_embedding.weight": r(h, 3, p, p, std=1 / math.sqrt(3 * p * p)),
         VP + "embeddings.patch_embedding.bias": r(h, std=0.1),
         VP + "embeddings.position_embedding.weight": r(n, h, std=0.5)}
    for i in range(VISION["num_hidden_layers"]):
        lp = f"{VP}encoder.layers.{i}."
        for ln in ("layer_norm1", "layer_norm2"):
            w[lp + ln + ".weight"] = 1 + r(h, std=0.1)
            w[lp + ln + ".bias"] = r(h, std=0.1)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[lp + "self_attn." + proj + ".weight"] = r(h, h, std=1 / math.sqrt(h))
            w[lp + "self_attn." + proj + ".bias"] = r(h, std=0.1)
        w[lp + "mlp.fc1.weight"] = r(f, h, std=1 / math.sqrt(h))
        w[lp + "mlp.fc1.bias"] = r(f, std=0.1)
        w[lp + "mlp.fc2.weight"] = r(h, f, std=1 / math.sqrt(f))
        w[lp + "mlp.fc2.bias"] = r(h, std=0.1)
    w[VP + "post_layernorm.weight"] = 1 + r(h, std=0.1)
    w[VP + "post_layernorm.bias"] = r(h, std=0.1)
    w[PP + "mm_soft_emb_norm.weight"] = r(h, std=0.1)
    w[PP + "mm_input_projection_weight"] = r(h, TEXT_HIDDEN, std=1 / math.sqrt(h))
    return w


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def vision_forward(w, pv):
    """SiglipVisionTransformer: pv [3, S, S] float64 -> last_hidden_state [patches, hidden]."""
    h, p, nh = VISION["hidden_size"], VISION["patch_size"], VISION["num_attention_heads"]
    eps = VISION["layer_norm_eps"]
    x = torch.nn.functional.conv2d(pv[None], w[VP + "embeddings.patch_embedding.weight"],
                                   w[VP + "embeddings.patch_embedding.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)[0] + w[VP + "embeddings.position_embedding.weight"]
    ln = lambda t, pre: torch.nn.functional.layer_norm(t, (h,), w[pre + ".weight"],  # noqa
                                                       w[pre + ".bias"], eps)
    lin = lambda t, pre: t @ w[pre + ".weight"].T + w[pre + ".bias"]  # noqa
    n, hd = x.shape[0], h // nh
    for i in range(VISION["num_hidden_layers"]):
        lp = f"{VP}encoder.layers.{i}."
        y = ln(x, lp + "layer_norm1")
        q, k, v = (lin(y, lp + "self_attn." + m).view(n, nh, hd).transpose(0, 1)
                   for m in ("q_proj", "k_proj", "v_proj"))
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), -1) @ v
        x = x + lin(a.transpose(0, 1).reshape(n, h), lp + "self_attn.out_proj")
        y = ln(x, lp + "layer_norm2")
        x = x + lin(gelu_tanh(lin(y, lp + "mlp.fc1")), lp + "mlp.fc2")
    return ln(x, VP + "post_layernorm")


def projector_forward(w, vo):
    """Gemma3MultiModalProjector: [patches, hidden] -> [MM_TOKENS, TEXT_HIDDEN]."""
    side = VISION["image_size"] // VISION["patch_size"]
    k = side // int(math.isqrt(MM_TOKENS))
    g = vo.T.reshape(1, -1, side, side)
    pooled = torch.nn.functional.avg_pool2d(g, k, k).flatten(2)[0].T
    var = pooled.pow(2).mean(-1, keepdim=True)
    normed = pooled * torch.rsqrt(var + VISION["layer_norm_eps"])
    normed = normed * (1 + w[PP + "mm_soft_emb_norm.weight"])
    return normed @ w[PP + "mm_input_projection_weight"]


def transformers_check(w, pvs, outs):
    from transformers import Gemma3Config, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.gemma3.modeling_gemma3 import Gemma3MultiModalProjector
    vc = {k: v for k, v in VISION.items() if k != "model_type"}
    tower = SiglipVisionModel(SiglipVisionConfig(**vc)).double().eval()
    tower.load_state_dict({k[len("vision_tower."):]: v for k, v in w.items() if k.startswith(VP)},
                          strict=True)
    cfg = Gemma3Config(vision_config=vc, text_config={"hidden_size": TEXT_HIDDEN},
                       mm_tokens_per_image=MM_TOKENS)
    proj = Gemma3MultiModalProjector(cfg).double().eval()
    proj.load_state_dict({k[len(PP):]: v for k, v in w.items() if k.startswith(PP)}, strict=True)
    with torch.no_grad():
        for pv, (vo, st) in zip(pvs, outs):
            tvo = tower(pixel_values=pv[None]).last_hidden_state[0]
            tst = proj(tvo[None])[0]
            for a, b in ((tvo, vo), (tst, st)):
                rel = float((a - b).norm() / b.norm())
                assert rel < 1e-6, f"transformers disagrees with the own implementation ({rel})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(DATA, "gemma3_tiny"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(3434)
    w = make_weights(gen)
    proc = {**GEMMA_BASE, "size": {"height": VISION["image_size"], "width": VISION["image_size"]}}
    pvs, outs = [], []
    for name in IMAGES:
        img = Image.open(os.path.join(DATA, name)).convert("RGB")
        pv, _ = pil_reference(img, proc)
        pv = torch.from_numpy(np.ascontiguousarray(pv)).double()
        vo = vision_forward(w, pv)
        pvs.append(pv)
        outs.append((vo, projector_forward(w, vo)))
    reference = "tools/make_vlm_goldens.py own float64 implementation (torch %s)" % torch.__version__
    try:
        import transformers
        transformers_check(w, pvs, outs)
        reference += "; transformers %s agrees" % transformers.__version__
    except ImportError:
        reference += "; transformers was not available"
    config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
              "mm_tokens_per_image": MM_TOKENS, "boi_token_index": 255999,
              "eoi_token_index": 256000, "image_token_index": 262144,
              "text_config": {"model_type": "gemma3_text", "hidden_size": TEXT_HIDDEN},
              "vision_config": VISION}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
    write_safetensors(os.path.join(args.out, "model.safetensors"),
                      {k: v.float() for k, v in w.items()})
    gold = {}
    for i, (pv, (vo, st)) in enumerate(zip(pvs, outs)):
        gold[f"image{i}.pixel_values"] = pv.float()
        gold[f"image{i}.vision_out"] = vo.float()
        gold[f"image{i}.soft_tokens"] = st.float()
    write_safetensors(os.path.join(args.out, "golden.safetensors"), gold)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump({"reference": reference, "images": IMAGES,
                   "scope": "vision tower + projector only; the language model side is not "
                            "in these goldens yet"}, f, indent=2)
    print(reference)


if __name__ == "__main__":
    main()
