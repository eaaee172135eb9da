#!/usr/bin/env python3
"""Writes tests/data/ggml_blocks/<type>.bin: random ggml blocks and their values as gguf-py computes
them, the reference that tests/core/ggml_types_test.cc holds inferd's dequantize_row to, bit for bit.

Published description followed: ggml's block layouts (ggml-common.h) as gguf-py's
gguf/quants.py (GGML_QUANT_SIZES, gguf.quants.dequantize) implements them in numpy; gguf-py's
authors test that module against ggml's own dequantize_row_* (gguf-py/tests/test_quants.py).

For each type: random bytes for every block, except the fp16 scale fields (d, dmin, m), which are
set to finite values of moderate size (|d| in [1e-3, 1e-1], random sign; Q4_1 / Q5_1's m in
[-1, 1]) so that no value is inf or nan. Plain types (f32, f16, bf16) get random finite bit
patterns, subnormals included. Q8_K is not in gguf-py: the C++ test checks it on a constructed
block instead.

File layout (little-endian): b"GBLK", uint32 type id, uint32 block count, the raw blocks, then the
block count * block size float32 values.

gguf-py is used from a checkout outside the project (never copied in), passed by path; only its
gguf/constants.py, gguf/lazy.py and gguf/quants.py are imported (the package's __init__ pulls in
tokenizer modules this tool does not need). Needs numpy (Debian: python3-numpy).

The gguf-py used for the committed files: llama.cpp's own repository was too large to fetch here,
so the copy of its gguf-py package (version 0.10.0) kept as github.com/jerrylsu/gguf-py, commit
7c3ecea7ee150638fd875420b96bc50da1b36394 (2024-11-14); its gguf/quants.py dequantize_blocks of
these 14 types read the same, line for line, as llama.cpp's gguf-py/gguf/quants.py at llama.cpp
commit 150f157acf0fd4bd5379bdb3aae3dde1aa1397a5. Command lines used:
  git -C <that repository> archive HEAD | tar -x -C /tmp/ggml-blocks-gguf-py
  /usr/bin/python3 tools/make_ggml_block_fixtures.py --gguf-py /tmp/ggml-blocks-gguf-py \
      --out tests/data/ggml_blocks
(With a llama.cpp checkout: --gguf-py <llama.cpp>/gguf-py.)
"""

import argparse
import importlib
import os
import struct
import sys
import types

import numpy as np

SEED = 35
LEGACY_BLOCKS = 96
K_BLOCKS = 24
PLAIN_ELEMS = 1024

# type name -> (offsets of fp16 scale fields within a block, offsets of fp16 "m" fields).
SCALE_FIELDS = {
    "Q4_0": ([0], []),
    "Q4_1": ([0], [2]),
    "Q5_0": ([0], []),
    "Q5_1": ([0], [2]),
    "Q8_0": ([0], []),
    "IQ4_NL": ([0], []),
    "Q2_K": ([80, 82], []),
    "Q3_K": ([108], []),
    "Q4_K": ([0, 2], []),
    "Q5_K": ([0, 2], []),
    "Q6_K": ([208], []),
}
PLAIN = ["F32", "F16", "BF16"]


def load_gguf_quants(gguf_py):
    pkg_dir = os.path.join(gguf_py, "gguf")
    if not os.path.isfile(os.path.join(pkg_dir, "quants.py")):
        sys.exit(f"{gguf_py}: no gguf/quants.py (pass the gguf-py folder of a llama.cpp checkout)")
    pkg = types.ModuleType("gguf")
    pkg.__path__ = [pkg_dir]
    sys.modules["gguf"] = pkg
    constants = importlib.import_module("gguf.constants")
    quants = importlib.import_module("gguf.quants")
    return constants, quants


def random_halves(rng, n, lo, hi, signed):
    mag = rng.uniform(lo, hi, size=n)
    if signed:
        mag *= rng.choice([-1.0, 1.0], size=n)
    return mag.astype(np.float16).view(np.uint8).reshape(n, 2)


def plain_bits(rng, name):
    if name == "F32":
        bits = rng.integers(0, 2**32, size=PLAIN_ELEMS, dtype=np.uint64).astype(np.uint32)
        exp = (bits >> 23) & 0xFF
        bits = np.where(exp == 0xFF, bits & ~np.uint32(0x40000000), bits)  # no inf / nan
        return bits.view(np.uint8)
    bits = rng.integers(0, 2**16, size=PLAIN_ELEMS, dtype=np.uint32).astype(np.uint16)
    if name == "F16":
        exp = (bits >> 10) & 0x1F
        bits = np.where(exp == 0x1F, bits & ~np.uint16(0x4000), bits)
    else:  # BF16
        exp = (bits >> 7) & 0xFF
        bits = np.where(exp == 0xFF, bits & ~np.uint16(0x4000), bits)
    return bits.astype(np.uint16).view(np.uint8)


def make_blocks(rng, name, block_bytes, n_blocks):
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint16).astype(np.uint8)
    d_offsets, m_offsets = SCALE_FIELDS[name]
    for off in d_offsets:
        raw[:, off : off + 2] = random_halves(rng, n_blocks, 1e-3, 1e-1, signed=True)
    for off in m_offsets:
        raw[:, off : off + 2] = random_halves(rng, n_blocks, 0.0, 1.0, signed=True)
    return raw


def write(path, type_id, n_blocks, raw, values):
    values = np.ascontiguousarray(values, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        sys.exit(f"{path}: non-finite reference values")
    with open(path, "wb") as f:
        f.write(b"GBLK")
        f.write(struct.pack("<II", type_id, n_blocks))
        f.write(np.ascontiguousarray(raw, dtype=np.uint8).tobytes())
        f.write(values.astype("<f4").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf-py", required=True, help="the gguf-py folder of a llama.cpp checkout")
    ap.add_argument("--out", default="tests/data/ggml_blocks")
    args = ap.parse_args()
    constants, quants = load_gguf_quants(args.gguf_py)
    QT = constants.GGMLQuantizationType
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name in PLAIN + list(SCALE_FIELDS):
        qtype = QT[name]
        block_elems, block_bytes = constants.GGML_QUANT_SIZES[qtype]
        if name in PLAIN:
            n_blocks = PLAIN_ELEMS
            raw = plain_bits(rng, name).reshape(n_blocks, block_bytes)
        else:
            n_blocks = K_BLOCKS if block_elems == 256 else LEGACY_BLOCKS
            raw = make_blocks(rng, name, block_bytes, n_blocks)
        values = quants.dequantize(raw.reshape(1, -1).copy(), qtype).reshape(-1)
        if values.size != n_blocks * block_elems:
            sys.exit(f"{name}: gguf-py gave {values.size} values for {n_blocks} blocks")
        path = os.path.join(args.out, name.lower() + ".bin")
        write(path, int(qtype), n_blocks, raw, values)
        print(f"{path}: {n_blocks} blocks of {block_elems} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
