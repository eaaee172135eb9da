#!/usr/bin/env python3
"""Expected pixel values of the vision preprocessors (issue 34) for tests/media: each committed
test image under tests/data/vlm/ decoded as PIL opens it (convert("RGB")), then run through
Gemma 3's and Qwen2-VL's image processors with several settings. Writes
tests/data/vlm/pixels.json (the cases: image, preprocessor_config, shape, grid, an FNV-1a hash of
the decoded RGB bytes, a file of float32 values) and the .f32 files.

Two references, the same output:
  --reference pil           (default; runs here) Pillow + numpy following transformers'
                            Gemma3ImageProcessor / Qwen2VLImageProcessor step by step (PIL resize
                            on uint8, rescale in float64 -> float32, normalise in float32, the
                            Qwen patch transpose);
  --reference transformers  the real processors (use_fast=False). NEEDS transformers: the lead
                            runs it on the GPU machine; it also asserts that both references agree
                            (max abs <= 1e-6) before writing.

Usage: /usr/bin/python3 tools/make_vlm_fixtures.py [--reference pil|transformers] [--out DIR]
"""
import argparse
import json
import math
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "vlm")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

GEMMA_BASE = {"image_processor_type": "Gemma3ImageProcessor", "do_pan_and_scan": False,
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
              "rescale_factor": 1 / 255, "size": {"height": 896, "width": 896}}
QWEN_BASE = {"image_processor_type": "Qwen2VLImageProcessor", "image_mean": CLIP_MEAN,
             "image_std": CLIP_STD, "resample": 3, "rescale_factor": 1 / 255, "patch_size": 14,
             "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 3136,
             "max_pixels": 12845056}


def cases():
    g = lambda **kw: {**GEMMA_BASE, **kw}  # noqa: E731
    q = lambda **kw: {**QWEN_BASE, **kw}  # noqa: E731
    return [
        ("photo.jpg", "gemma_small", g(size={"height": 64, "width": 80})),  # downscale
        ("chart.png", "gemma_up", g(size={"height": 100, "width": 90})),  # upscale, RGBA
        ("grey.png", "gemma_grey", g(size={"height": 40, "width": 40})),
        ("palette.png", "gemma_palette", g(size={"height": 40, "width": 40})),
        ("rgb16.png", "gemma_rgb16", g(size={"height": 40, "width": 40})),
        ("small.webp", "gemma_webp", g(size={"height": 40, "width": 40})),
        ("progressive.jpg", "gemma_progressive", g(size={"height": 40, "width": 40})),
        ("grey.jpg", "gemma_greyjpg", g(size={"height": 40, "width": 40})),
        ("photo.jpg", "gemma_896", g()),  # the real size: values of every 101st element
        ("chart.png", "qwen_default", q()),  # 120x90 -> 112x84 (rounded to 28)
        ("grey.png", "qwen_min", q(min_pixels=70 * 70)),  # scaled up to min_pixels
        ("photo.jpg", "qwen_max", q(max_pixels=28 * 28 * 6)),  # scaled down to max_pixels
    ]


def fnv1a(b):
    h = 0xcbf29ce484222325
    for byte in b:
        h ^= byte
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def smart_resize(height, width, factor, min_pixels, max_pixels):
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def rescale_normalize(arr, cfg):
    x = (arr.astype(np.float64) * cfg["rescale_factor"]).astype(np.float32)
    mean = np.array(cfg["image_mean"], dtype=np.float32)
    std = np.array(cfg["image_std"], dtype=np.float32)
    return ((x - mean) / std).astype(np.float32)


def pil_reference(img, cfg):
    if cfg["image_processor_type"].startswith("Gemma3"):
        s = cfg["size"]
        r = img.resize((s["width"], s["height"]), resample=cfg["resample"], reducing_gap=None)
        x = rescale_normalize(np.array(r), cfg)
        return x.transpose(2, 0, 1), [1, 1, 1]
    ps, tp, m = cfg["patch_size"], cfg["temporal_patch_size"], cfg["merge_size"]
    h, w = smart_resize(img.height, img.width, ps * m, cfg["min_pixels"], cfg["max_pixels"])
    r = img.resize((w, h), resample=cfg["resample"], reducing_gap=None)
    x = rescale_normalize(np.array(r), cfg).transpose(2, 0, 1)[None]  # [1, C, H, W]
    x = np.concatenate([x] * tp, 0)
    gh, gw = h // ps, w // ps
    x = x.reshape(1, tp, 3, gh // m, m, ps, gw // m, m, ps)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gh * gw, 3 * tp * ps * ps), [1, gh, gw]


def transformers_reference(img, cfg):
    from transformers import Gemma3ImageProcessor, Qwen2VLImageProcessor
    kw = {k: v for k, v in cfg.items() if k != "image_processor_type"}
    if cfg["image_processor_type"].startswith("Gemma3"):
        out = Gemma3ImageProcessor(**kw)(images=[img], return_tensors="np")
        return out["pixel_values"][0], [1, 1, 1]
    kw["size"] = {"shortest_edge": kw.pop("min_pixels"), "longest_edge": kw.pop("max_pixels")}
    out = Qwen2VLImageProcessor(**kw)(images=[img], return_tensors="np")
    return out["pixel_values"], [int(v) for v in out["image_grid_thw"][0]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", choices=["pil", "transformers"], default="pil")
    ap.add_argument("--out", default=DATA)
    args = ap.parse_args()
    manifest = {"reference": args.reference, "cases": []}
    for image, name, cfg in cases():
        img = Image.open(os.path.join(DATA, image))
        img.load()
        rgb = img.convert("RGB")
        x, grid = pil_reference(rgb, cfg)
        if args.reference == "transformers":
            y, ygrid = transformers_reference(rgb, cfg)
            err = float(np.abs(np.asarray(y, np.float32) - x).max())
            assert ygrid == grid and y.shape == x.shape and err <= 1e-6, (name, err, ygrid, grid)
            x = np.asarray(y, np.float32)
        x = np.ascontiguousarray(x, dtype="<f4")
        case = {"name": name, "image": image, "preprocessor_config": cfg,
                "shape": list(x.shape), "grid_thw": grid,
                "rgb_fnv1a": fnv1a(np.array(rgb).tobytes()),
                "rgb_size": [rgb.width, rgb.height]}
        flat = x.reshape(-1)
        if flat.size > 100_000:
            case["stride"] = 101  # every 101st value (the 896 x 896 case)
            flat = flat[::101]
        case["file"] = name + ".f32"
        flat.tofile(os.path.join(args.out, case["file"]))
        manifest["cases"].append(case)
    with open(os.path.join(args.out, "pixels.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
