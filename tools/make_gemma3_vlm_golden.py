#!/usr/bin/env python3
"""Golden of a whole tiny Gemma3ForConditionalGeneration (issue 34): the text model of
make_goldens.py's "gemma3" cut to 2 layers (sliding window 12, then global; tied embeddings) with a
tiny SigLIP vision tower and Gemma 3's projector (make_vlm_goldens.py's, at 112x112 pixels: 64
patches pooled to 16 soft tokens), run on a prompt with two images (tests/data/vlm/photo.jpg and
chart.png, preprocessed as Gemma3ImageProcessor does). Writes tests/data/vlm/gemma3_vlm_tiny/:
config.json (transformers >= 4.52 layout: model.language_model., model.vision_tower.,
model.multi_modal_projector.), preprocessor_config.json, model.safetensors (fp32), a byte-level
tokenizer.json (ids 3..258: the bytes; 310 <start_of_image>, 311 <end_of_image>, 312
<image_soft_token>) with a small chat template, generation_config.json, golden.safetensors
(prompt.ids, prompt.logits [L, V] at every position, greedy.tokens, image{i}.position) and
golden.json.

Reference: make_goldens.reference_forward (float64), given each image's soft tokens
(make_vlm_goldens.vision_forward + projector_forward) at its <image_soft_token> rows, which attend
to each other on every layer (transformers' token_type_ids mask). transformers' own
Gemma3ForConditionalGeneration is not run here (it is not installed on this machine); the lead
may check it on the GPU machine.

Usage: /usr/bin/python3 tools/make_gemma3_vlm_golden.py [--out tests/data/vlm/gemma3_vlm_tiny]
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
import make_goldens as mg  # noqa: E402
import make_vlm_goldens as mv  # noqa: E402
from make_vlm_fixtures import GEMMA_BASE, pil_reference  # noqa: E402

DATA = os.path.join(HERE, "..", "tests", "data", "vlm")
BOI, EOI, IMG = 310, 311, 312
MM_TOKENS = 16
GREEDY = 12
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>"
            "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
            "{% for p in m['content'] %}{% if p['type'] == 'image' %}<start_of_image>"
            "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
            "{% if add_generation_prompt %}<model>{% endif %}")


def byte_chars():
    """GPT-2's byte -> printable character table (ByteLevel pre-tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


GEMMA_SPECIALS = (("<start_of_image>", BOI), ("<end_of_image>", EOI),
                  ("<image_soft_token>", IMG))


def tokenizer_json(specials=GEMMA_SPECIALS):
    """A byte-level BPE without merges: ids 3..258 the bytes, `specials` (content, id) added."""
    chars = byte_chars()
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2}
    for b in range(256):
        vocab[chars[b]] = 3 + b
    by_id = {i: t for t, i in specials}
    for i in range(259, mg.VOCAB):  # the rest decodes as plain words
        vocab.setdefault(by_id.get(i, f"w{i}"), i)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for t, i in (("<pad>", 0), ("<bos>", 1), ("<eos>", 2)) + tuple(specials)]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(DATA, "gemma3_vlm_tiny"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    text = mg.full_config("gemma3")
    # Two of its layers (one sliding, one global) keep the fixture small.
    text.update(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"])
    mv.VISION = dict(mv.VISION, image_size=112)
    mv.MM_TOKENS = MM_TOKENS
    mv.TEXT_HIDDEN = text["hidden_size"]
    gen = torch.Generator().manual_seed(mg.SEED + zlib.crc32(b"gemma3_vlm") % 100003)
    w = mg.make_weights(text, gen)
    vw = mv.make_weights(gen)
    proc = {**GEMMA_BASE, "size": {"height": 112, "width": 112}}
    soft = []
    for name in ("photo.jpg", "chart.png"):
        img = Image.open(os.path.join(DATA, name)).convert("RGB")
        pv = torch.from_numpy(np.ascontiguousarray(pil_reference(img, proc)[0])).double()
        soft.append(mv.projector_forward(vw, mv.vision_forward(vw, pv)))
    # "\n\n<start_of_image>" + soft tokens + "<end_of_image>\n\n" per image, as Gemma3Processor.
    nl = 3 + ord("\n")
    t = lambda n: torch.randint(3 + 32, 3 + 127, (n,), generator=gen).tolist()  # noqa: E731
    ids = [1] + t(5)
    images = []
    for s in soft:
        ids += [nl, nl, BOI]
        images.append((len(ids), s))
        ids += [IMG] * MM_TOKENS + [EOI, nl, nl] + t(6)
    logits = mg.reference_forward(text, w, ids, images=images)
    out = list(ids)
    for _ in range(GREEDY):
        out.append(int(mg.reference_forward(text, w, out, images=images)[-1].argmax()))
    greedy = out[len(ids):]
    top2 = logits[-1].topk(2).values
    config = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
              "mm_tokens_per_image": MM_TOKENS, "boi_token_index": BOI, "eoi_token_index": EOI,
              "image_token_index": IMG, "bos_token_id": 1, "eos_token_id": 2,
              "text_config": {k: v for k, v in text.items() if k != "architectures"},
              "vision_config": mv.VISION, "tie_word_embeddings": True, "dtype": "float32"}
    config["text_config"]["model_type"] = "gemma3_text"
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, f, indent=2)
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                   "add_bos_token": False, "chat_template": TEMPLATE}, f, indent=2)
    tensors = {"model.language_model." + k[len("model."):]: v.float() for k, v in w.items()}
    tensors.update({"model." + k: v.float() for k, v in vw.items()})
    mg.write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    gold = {"prompt.ids": torch.tensor(ids, dtype=torch.int32),
            "prompt.logits": logits.float().contiguous(),
            "greedy.tokens": torch.tensor(greedy, dtype=torch.int32)}
    for i, (p, s) in enumerate(images):
        gold[f"image{i}.position"] = torch.tensor([p], dtype=torch.int32)
        gold[f"image{i}.soft_tokens"] = s.float().contiguous()
    mg.write_safetensors(os.path.join(args.out, "golden.safetensors"), gold)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump({"reference": "tools/make_gemma3_vlm_golden.py: make_goldens.reference_forward "
                                f"(float64, torch {torch.__version__}) with the images' soft "
                                "tokens; transformers was not run",
                   "images": ["photo.jpg", "chart.png"], "prompt_len": len(ids),
                   "greedy": greedy, "last_top2_gap": round(float(top2[0] - top2[1]), 4)},
                  f, indent=2)
    print(f"prompt {len(ids)} tokens, images at {[p for p, _ in images]}, greedy {greedy}")


if __name__ == "__main__":
    main()
