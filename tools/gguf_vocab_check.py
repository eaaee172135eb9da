#!/usr/bin/env python3
"""Dumps the tokenizer metadata llama.cpp's converter writes for a Hugging Face tokenizer, and
compares it with what tests/tokenizer/gguf_hf_metadata.cc writes.

Runs <llama.cpp>/convert_hf_to_gguf.py --vocab-only on the tokenizer directory (transformers and
sentencepiece must be installed: the converter imports them) and prints the `tokenizer.*` keys of
the GGUF file it wrote as JSON, read with <llama.cpp>/gguf-py (by path). A directory without
config.json (the npm tokenizer packages of tests/data/tokenizers) gets a minimal one for --arch.

    tools/gguf_vocab_check.py --llama-cpp ~/llama.cpp --hf-dir tests/data/tokenizers/qwen3 \\
        --arch Qwen2ForCausalLM --out /tmp/qwen3.llamacpp.json \\
        [--compare /tmp/dump/qwen3.json]

--compare takes the JSON the test writes when INFERD_GGUF_VOCAB_DUMP_DIR is set:
    INFERD_GGUF_VOCAB_DUMP_DIR=/tmp/dump build/h/tests/tokenizer/gguf_vocab_test \\
        --gtest_filter='Real/*TokensAndSpecialIds*'
and prints every key that differs (scores: whether they order the pieces the same way, since the
test rebuilds them from the merges when no tokenizer.model is at hand).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def minimal_config(hf_dir, arch):
    vocab = json.load(open(os.path.join(hf_dir, "tokenizer.json"), encoding="utf-8"))
    ids = list(vocab["model"]["vocab"].values()) + [a["id"] for a in vocab.get("added_tokens", [])]
    return {
        "architectures": [arch],
        "vocab_size": max(ids) + 1,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 16,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "query_pre_attn_scalar": 16,
        "sliding_window": 512,
        "final_logit_softcapping": None,
        "attn_logit_softcapping": None,
    }


def field_value(field, gguf):
    types = field.types
    if types[0] == gguf.GGUFValueType.ARRAY:
        elem = types[-1]
        parts = [field.parts[i] for i in field.data]
        if elem == gguf.GGUFValueType.STRING:
            return [bytes(p).decode("utf-8") for p in parts]
        return [p[0].item() for p in parts]
    part = field.parts[field.data[0]]
    if types[0] == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    return part[0].item()


def convert(llama_cpp, hf_dir, arch):
    sys.path.insert(0, os.path.join(llama_cpp, "gguf-py"))
    import gguf  # noqa: E402  (the checkout's gguf-py)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = hf_dir
        if not os.path.exists(os.path.join(hf_dir, "config.json")):
            model_dir = os.path.join(tmp, os.path.basename(os.path.normpath(hf_dir)))
            shutil.copytree(hf_dir, model_dir)
            with open(os.path.join(model_dir, "config.json"), "w", encoding="utf-8") as f:
                json.dump(minimal_config(hf_dir, arch), f)
        out = os.path.join(tmp, "vocab.gguf")
        env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py"))
        subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"),
                        "--vocab-only", "--outtype", "f16", "--outfile", out, model_dir],
                       check=True, env=env)
        reader = gguf.GGUFReader(out)
        return {name: field_value(field, gguf) for name, field in reader.fields.items()
                if name.startswith("tokenizer.")}


def order(scores):
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def compare(ours, theirs):
    same = True
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if key == "tokenizer.ggml.scores" and a is not None and b is not None:
            ok = len(a) == len(b) and order(a) == order(b)
            if not ok:
                print(f"{key}: the scores order the pieces differently")
            same &= ok
            continue
        if a == b:
            continue
        same = False
        if isinstance(a, list) and isinstance(b, list):
            diffs = [i for i in range(min(len(a), len(b))) if a[i] != b[i]]
            print(f"{key}: {len(a)} vs {len(b)} entries, {len(diffs)} differ; first: " +
                  ", ".join(f"[{i}] {a[i]!r} vs {b[i]!r}" for i in diffs[:5]))
        else:
            print(f"{key}: test {str(a)[:200]!r} vs llama.cpp {str(b)[:200]!r}")
    print("same" if same else "different")
    return same


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llama-cpp", required=True, help="a llama.cpp checkout")
    p.add_argument("--hf-dir", required=True, help="tokenizer.json + tokenizer_config.json")
    p.add_argument("--arch", default="LlamaForCausalLM",
                   help="architectures[0] of the config.json written when there is none")
    p.add_argument("--out", help="write the JSON here (default: stdout)")
    p.add_argument("--compare", help="JSON of the test helper to compare with")
    args = p.parse_args()
    kv = convert(args.llama_cpp, args.hf_dir, args.arch)
    text = json.dumps(kv, ensure_ascii=False, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    elif not args.compare:
        print(text)
    if args.compare:
        ours = json.load(open(args.compare, encoding="utf-8"))
        sys.exit(0 if compare(ours, kv) else 1)


if __name__ == "__main__":
    main()
