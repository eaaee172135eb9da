#!/usr/bin/env python3
"""Writes the small test images of the vision-language tests (issue 34) under tests/data/vlm/:
photo.jpg (200x150, a smooth scene with shapes and noise, JPEG 4:2:0, quality 90) and chart.png
(120x90 RGBA bar chart), plus format variants for the decoder tests (grey and palette PNG, a
16-bit PNG, a lossy WebP, a progressive JPEG, a greyscale JPEG). Deterministic (seeded); needs
numpy and Pillow (Debian: python3-numpy python3-pil).

Usage: /usr/bin/python3 tools/make_vlm_images.py [--out tests/data/vlm]
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw


def photo():
    rng = np.random.default_rng(0)
    h, w = 150, 200
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 120 + 100 * np.sin(x / 23.0) * np.cos(y / 31.0)
    g = 90 + 80 * (y / h) + 30 * np.sin((x + y) / 11.0)
    b = 200 - 150 * (x / w) + 20 * np.cos(y / 7.0)
    img = np.stack([r, g, b], -1)
    for cx, cy, rad, col in [(60, 50, 25, (250, 40, 30)), (140, 100, 35, (20, 220, 60)),
                             (170, 30, 15, (255, 255, 255))]:
        m = (x - cx) ** 2 + (y - cy) ** 2 < rad ** 2
        img[m] = col
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def chart():
    im = Image.new("RGBA", (120, 90), (255, 255, 255, 255))
    d = ImageDraw.Draw(im)
    for i, (hgt, col) in enumerate([(60, (200, 30, 30)), (35, (30, 120, 200)),
                                    (75, (40, 170, 60)), (20, (230, 180, 20))]):
        d.rectangle([10 + i * 26, 85 - hgt, 28 + i * 26, 85], fill=col + (255,))
    d.line([5, 86, 115, 86], fill=(0, 0, 0, 255), width=1)
    d.text((40, 3), "Q1-Q4", fill=(0, 0, 0, 255))
    # A translucent corner: PIL's convert("RGB") drops alpha without compositing.
    a = np.array(im)
    a[:20, 100:, 3] = 80
    return Image.fromarray(a, "RGBA")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "data", "vlm"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    p = photo()
    p.save(os.path.join(args.out, "photo.jpg"), quality=90)
    c = chart()
    c.save(os.path.join(args.out, "chart.png"))
    small = p.resize((64, 48), Image.BILINEAR)
    small.save(os.path.join(args.out, "progressive.jpg"), quality=85, progressive=True)
    small.convert("L").save(os.path.join(args.out, "grey.jpg"), quality=85)
    small.convert("L").save(os.path.join(args.out, "grey.png"))
    small.convert("P", palette=Image.ADAPTIVE, colors=16).save(os.path.join(args.out,
                                                                            "palette.png"))
    arr16 = (np.array(small).astype(np.uint16) * 257 + 3).astype(">u2")
    # 16-bit RGB PNG (PIL reads it as RGB with each sample's high byte).
    import zlib, struct
    raw = b"".join(b"\x00" + arr16[yy].tobytes() for yy in range(arr16.shape[0]))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(args.out, "rgb16.png"), "wb").write(png)
    small.save(os.path.join(args.out, "small.webp"), quality=80)
    data = open(os.path.join(args.out, "photo.jpg"), "rb").read()
    open(os.path.join(args.out, "truncated.jpg"), "wb").write(data[: len(data) // 3])


if __name__ == "__main__":
    main()
