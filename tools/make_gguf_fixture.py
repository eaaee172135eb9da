#!/usr/bin/env python3
"""Writes tests/data/gguf/gguf_py_reference.gguf (issue 35) with llama.cpp's own GGUF writer
(gguf-py's GGUFWriter), so that gguf_test checks inferd's reader against a file that inferd's
writer did not make: metadata of several value types, and tensors of 1 to 3 dimensions (F32, F16,
Q8_0 and Q4_K; the quantized ones as raw bytes of a known pattern).

Needs numpy and a fetched llama.cpp checkout (never copied into the project), passed by path:

  python3 tools/make_gguf_fixture.py /path/to/llama.cpp [--out tests/data/gguf]

The values written here are the ones GgufFixture.GgufPyReference in tests/model/gguf_test.cc
expects; change both together.
"""
import argparse
import os
import sys
import types

ap = argparse.ArgumentParser()
ap.add_argument("llama_cpp")
ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                              "gguf"))
args = ap.parse_args()
sys.path.insert(0, os.path.join(args.llama_cpp, "gguf-py"))
try:
    import sentencepiece  # noqa: F401  (gguf-py's vocab module imports it; unused here)
except ImportError:
    sys.modules["sentencepiece"] = types.SimpleNamespace(SentencePieceProcessor=object)
import numpy as np  # noqa: E402
import gguf  # noqa: E402

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "gguf_py_reference.gguf")
w = gguf.GGUFWriter(path, "qwen2")
w.add_uint32("qwen2.block_count", 2)
w.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
w.add_bool("tokenizer.ggml.add_bos_token", False)
w.add_array("tokenizer.ggml.tokens", ["a", "b", "\u2581c"])
w.add_array("tokenizer.ggml.token_type", [1, 3, 1])
w.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
w.add_uint64("x.u64", 2**40)
w.add_int8("x.i8", -3)
w.add_float64("x.f64", 0.125)
w.add_string("tokenizer.chat_template", "{{ messages }}")
w.add_tensor("a.f32", np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7))
w.add_tensor("b.f16", (np.arange(4 * 6, dtype=np.float32).reshape(4, 6) / 8).astype(np.float16))
# Quantized tensors are given as bytes, one row of blocks per numpy row: 2 rows of 64 Q8_0
# elements (2 blocks of 34 bytes each) and 3 rows of 256 Q4_K elements (one 144-byte block).
q8 = np.frombuffer(bytes((i * 7) % 256 for i in range(2 * 68)), dtype=np.uint8).reshape(2, 68)
w.add_tensor("c.q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
q4k = np.frombuffer(bytes((i * 13) % 256 for i in range(3 * 144)), dtype=np.uint8).reshape(3, 144)
w.add_tensor("d.q4_k", q4k, raw_dtype=gguf.GGMLQuantizationType.Q4_K)
w.add_tensor("e.1d", np.array([1.5, 2.5], dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {path} ({os.path.getsize(path)} bytes)")
