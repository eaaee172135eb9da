#!/usr/bin/env python3
"""Golden of a whole tiny Qwen2_5_VLForConditionalGeneration's language side (issue 34): the text
model of make_goldens.py's "qwen2" cut to 2 layers (head_dim 16) with M-RoPE (mrope_section [2, 3, 3])
and make_qwen_vl_goldens.py's tiny Qwen2.5-VL vision tower (out_hidden_size = the text width), on
a prompt with two images (tests/data/vlm/photo.jpg and chart.png, preprocessed as
Qwen2VLImageProcessor does with max_pixels 28 * 28 * 20). Writes tests/data/vlm/qwen25vl_lm_tiny/:
config.json (the released checkpoints' layout: text fields at the top level, rope_scaling
{"type": "mrope", "mrope_section"}, tensors under model. and visual.), preprocessor_config.json,
a byte-level tokenizer.json with a small chat template (make_gemma3_vlm_golden.py's, the Qwen
image tokens added), generation_config.json,
model.safetensors (fp32), golden.safetensors (prompt.ids, prompt.logits [L, V], greedy.tokens,
image{i}.position, image{i}.tokens) and golden.json. Token ids: 300 <|vision_start|>, 301
<|image_pad|>, 302 <|vision_end|>.

Reference: make_goldens.reference_forward (float64) with the images' merged patch embeddings at
their <|image_pad|> rows (causal attention) and M-RoPE positions from get_rope_index (images:
temporal index 0, (start, start + row, start + column) of the merged grid; text one more than the
largest position before it). transformers is not run here; the lead may check it on the GPU
machine.

Usage: /usr/bin/python3 tools/make_qwen_vl_lm_golden.py [--out tests/data/vlm/qwen25vl_lm_tiny]
"""
import argparse
import json
import os
import sys
import zlib

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_gemma3_vlm_golden as g3  # noqa: E402
import make_goldens as mg  # noqa: E402
import make_qwen_vl_goldens as mq  # noqa: E402
from make_vlm_fixtures import pil_reference  # noqa: E402

DATA = os.path.join(HERE, "..", "tests", "data", "vlm")
VS, PAD, VE = 300, 301, 302
SECTION = [2, 3, 3]
GREEDY = 12
# The Qwen2.5-VL template's image part, in a small template for the served test.
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>"
            "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
            "{% for p in m['content'] %}{% if p['type'] == 'image' %}"
            "<|vision_start|><|image_pad|><|vision_end|>"
            "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<model>{% endif %}")


def rope_index(ids, grids, merge):
    """transformers' get_rope_index for images: [3, L] positions and rope_delta."""
    pos = [[], [], []]
    nxt, i, k = 0, 0, 0
    while i < len(ids):
        if ids[i] != PAD:
            for r in pos:
                r.append(nxt)
            nxt += 1
            i += 1
            continue
        _, gh, gw = grids[k]
        k += 1
        lh, lw = gh // merge, gw // merge
        for y in range(lh):
            for x in range(lw):
                pos[0].append(nxt)
                pos[1].append(nxt + y)
                pos[2].append(nxt + x)
        i += lh * lw
        nxt += max(lh, lw)
    return torch.tensor(pos, dtype=torch.int64), nxt - len(ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(DATA, "qwen25vl_lm_tiny"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    text = mg.full_config("qwen2")
    text.update(num_hidden_layers=2)  # (a small fixture)
    mq.VISION = dict(mq.VISION, out_hidden_size=text["hidden_size"])
    gen = torch.Generator().manual_seed(mg.SEED + zlib.crc32(b"qwen25vl_lm") % 100003)
    w = mg.make_weights(text, gen)
    vw = mq.make_weights(gen)
    embeds, grids = [], []
    for name in ("photo.jpg", "chart.png"):
        img = Image.open(os.path.join(DATA, name)).convert("RGB")
        pv, grid = pil_reference(img, mq.PROC)
        pv = torch.from_numpy(np.ascontiguousarray(pv)).double()
        embeds.append(mq.vision_forward(vw, pv, grid))
        grids.append(list(grid))
    t = lambda n: torch.randint(3 + 32, 3 + 127, (n,), generator=gen).tolist()  # noqa: E731
    ids = [1] + t(4)
    images = []
    for e in embeds:
        ids += [VS]
        images.append((len(ids), e))
        ids += [PAD] * len(e) + [VE] + t(5)
    merge = mq.VISION["spatial_merge_size"]

    def forward(seq):
        p3, delta = rope_index(seq[:len(ids)], grids, merge)
        extra = torch.arange(len(ids), len(seq), dtype=torch.int64) + delta
        p3 = torch.cat([p3, extra[None].expand(3, -1)], dim=1)
        return mg.reference_forward(text, w, seq, images=images, bidirectional=False,
                                    mrope=(p3, SECTION))

    logits = forward(ids)
    out = list(ids)
    for _ in range(GREEDY):
        out.append(int(forward(out)[-1].argmax()))
    greedy = out[len(ids):]
    plain = {k: v for k, v in text.items() if k not in ("rope_parameters", "architectures")}
    plain["rope_theta"] = text["rope_parameters"]["rope_theta"]
    config = {**plain, "architectures": ["Qwen2_5_VLForConditionalGeneration"],
              "model_type": "qwen2_5_vl",
              "rope_scaling": {"type": "mrope", "mrope_section": SECTION},
              "vision_start_token_id": VS, "image_token_id": PAD, "vision_end_token_id": VE,
              "vision_config": mq.VISION}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(mq.PROC, f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, f, indent=2)
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(g3.tokenizer_json((("<|vision_start|>", VS), ("<|image_pad|>", PAD),
                                     ("<|vision_end|>", VE))), f)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                   "add_bos_token": False, "chat_template": TEMPLATE}, f, indent=2)
    tensors = {k: v.float() for k, v in w.items()}
    tensors.update({k: v.float() for k, v in vw.items()})
    mg.write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    gold = {"prompt.ids": torch.tensor(ids, dtype=torch.int32),
            "prompt.logits": logits.float().contiguous(),
            "greedy.tokens": torch.tensor(greedy, dtype=torch.int32)}
    for i, (p, e) in enumerate(images):
        gold[f"image{i}.position"] = torch.tensor([p], dtype=torch.int32)
        gold[f"image{i}.tokens"] = torch.tensor([len(e)], dtype=torch.int32)
    mg.write_safetensors(os.path.join(args.out, "golden.safetensors"), gold)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump({"reference": "tools/make_qwen_vl_lm_golden.py: make_goldens.reference_forward "
                                f"(float64, torch {torch.__version__}) with M-RoPE and the images' "
                                "embeddings; transformers was not run",
                   "images": ["photo.jpg", "chart.png"], "grids": grids, "prompt_len": len(ids),
                   "greedy": greedy}, f, indent=2)
    print(f"prompt {len(ids)} tokens, grids {grids}, images at {[p for p, _ in images]}, "
          f"greedy {greedy}")


if __name__ == "__main__":
    main()
