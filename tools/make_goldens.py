#!/usr/bin/env python3
"""Makes the tiny random models and expected outputs under tests/data/goldens/.

For each supported architecture it builds a small config that exercises the real config
fields (GQA, tied embeddings, qkv bias, q/k norm, explicit head_dim, llama3 rope scaling,
sliding window), draws seeded random weights, saves the model directory (config.json,
model.safetensors in fp32, generation_config.json) and records, for fixed prompts, the logits
at every prompt position and 16 greedy tokens.

Reference: Hugging Face transformers when it can be imported (the GPU machine has it): the
weights are loaded into `AutoModelForCausalLM.from_config(...)`, logits come from its forward
and greedy tokens from `generate`; the script's own PyTorch implementation below is also run
and must agree (a check of this script). Without transformers (this project's CPU machines:
Debian ships PyTorch but not transformers) the own implementation, in float64, is the
reference, and `golden.json` says so in "reference". Regenerate on the GPU machine with
transformers to replace those goldens:  python3 tools/make_goldens.py --out tests/data/goldens

Usage: python3 tools/make_goldens.py [--out DIR] [--require-transformers]
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

SEED = 1234
VOCAB = 320

# name -> config.json fields (besides the common ones)
MODELS = {
    "llama3": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64,
        intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=32),
        rms_norm_eps=1e-5),
    "llama32_tied": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=64),
        rms_norm_eps=1e-5),
    "mistral": dict(
        architectures=["MistralForCausalLM"], model_type="mistral", hidden_size=64,
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
        sliding_window=12, rms_norm_eps=1e-5),
    "qwen2": dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=64,
        intermediate_size=176, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=1000000.0, tie_word_embeddings=True,
        use_sliding_window=False, rms_norm_eps=1e-6),
    "qwen3": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=64,
        intermediate_size=144, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=False,
        attention_bias=False, use_sliding_window=False, rms_norm_eps=1e-6),
}
PROMPT_LENS = [1, 7, 21]
GREEDY_FROM = [1, 2]  # indices of prompts to continue greedily
GREEDY_TOKENS = 16


def full_config(name):
    c = dict(MODELS[name])
    c.update(vocab_size=VOCAB, max_position_embeddings=256, hidden_act="silu",
             bos_token_id=1, eos_token_id=2, torch_dtype="float32", initializer_range=0.02,
             attention_dropout=0.0, use_cache=True)
    return c


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def qkv_bias(c):
    return c["architectures"][0] == "Qwen2ForCausalLM" or c.get("attention_bias", False)


def o_bias(c):
    return c["architectures"][0] != "Qwen2ForCausalLM" and c.get("attention_bias", False)


def make_weights(c, gen):
    """Seeded random weights, large enough that logits are well separated."""
    H, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = head_dim(c)
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    w = {}

    def lin(name, out_f, in_f):
        w[name] = torch.randn(out_f, in_f, generator=gen) / math.sqrt(in_f)

    def norm(name, n):
        w[name] = 1.0 + 0.2 * torch.randn(n, generator=gen)

    def bias(name, n):
        w[name] = 0.2 * torch.randn(n, generator=gen)

    # Tied models: a smaller embedding so the residual stream does not just echo the input token.
    w["model.embed_tokens.weight"] = torch.randn(V, H, generator=gen) * (0.25 if c["tie_word_embeddings"] else 1.0)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        norm(p + "input_layernorm.weight", H)
        norm(p + "post_attention_layernorm.weight", H)
        lin(p + "self_attn.q_proj.weight", nh * hd, H)
        lin(p + "self_attn.k_proj.weight", nkv * hd, H)
        lin(p + "self_attn.v_proj.weight", nkv * hd, H)
        lin(p + "self_attn.o_proj.weight", H, nh * hd)
        if qkv_bias(c):
            bias(p + "self_attn.q_proj.bias", nh * hd)
            bias(p + "self_attn.k_proj.bias", nkv * hd)
            bias(p + "self_attn.v_proj.bias", nkv * hd)
        if o_bias(c):
            bias(p + "self_attn.o_proj.bias", H)
        if c["architectures"][0] == "Qwen3ForCausalLM":
            norm(p + "self_attn.q_norm.weight", hd)
            norm(p + "self_attn.k_norm.weight", hd)
        lin(p + "mlp.gate_proj.weight", F, H)
        lin(p + "mlp.up_proj.weight", F, H)
        lin(p + "mlp.down_proj.weight", H, F)
    norm("model.norm.weight", H)
    if not c["tie_word_embeddings"]:
        lin("lm_head.weight", V, H)
    return {k: v.float().contiguous() for k, v in w.items()}


# ---- the script's own implementation of the transformers forward pass -------------------

def inv_freq(c):
    hd = head_dim(c)
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def reference_forward(c, w, ids, dtype=torch.float64):
    """Logits [L, V] for one sequence, recomputed from scratch (no KV cache)."""
    g = lambda n: w[n].to(dtype)
    H = c["hidden_size"]
    nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], head_dim(c)
    eps = c["rms_norm_eps"]
    L = len(ids)
    pos = torch.arange(L)

    def rms(x, weight):
        var = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(var + eps))

    freqs = pos[:, None].float() * inv_freq(c)[None, :]  # fp32 as transformers
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)

    def rope(x):  # [L, heads, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        rot = torch.cat([-x2, x1], dim=-1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    mask = torch.ones(L, L, dtype=torch.bool).tril()
    window = c.get("sliding_window") if c["architectures"][0] == "MistralForCausalLM" else None
    if window:
        i = torch.arange(L)[:, None]
        j = torch.arange(L)[None, :]
        mask &= j > i - window

    h = g("model.embed_tokens.weight")[torch.tensor(ids)]
    for li in range(c["num_hidden_layers"]):
        p = f"model.layers.{li}."
        x = rms(h, g(p + "input_layernorm.weight"))

        def proj(name, inp):
            y = inp @ g(p + name + ".weight").T
            if (p + name + ".bias") in w:
                y = y + g(p + name + ".bias")
            return y

        q = proj("self_attn.q_proj", x).view(L, nh, hd)
        k = proj("self_attn.k_proj", x).view(L, nkv, hd)
        v = proj("self_attn.v_proj", x).view(L, nkv, hd)
        if c["architectures"][0] == "Qwen3ForCausalLM":
            q = rms(q, g(p + "self_attn.q_norm.weight"))
            k = rms(k, g(p + "self_attn.k_norm.weight"))
        q, k = rope(q), rope(k)
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
        scores = scores.masked_fill(~mask[None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        o = torch.einsum("hqk,khd->qhd", probs, v).reshape(L, nh * hd)
        h = h + proj("self_attn.o_proj", o)
        x = rms(h, g(p + "post_attention_layernorm.weight"))
        gate = proj("mlp.gate_proj", x)
        up = proj("mlp.up_proj", x)
        h = h + proj("mlp.down_proj", torch.nn.functional.silu(gate) * up)
    h = rms(h, g("model.norm.weight"))
    head = g("model.embed_tokens.weight") if c["tie_word_embeddings"] else g("lm_head.weight")
    return h @ head.T


def reference_greedy(c, w, ids, n):
    out = list(ids)
    for _ in range(n):
        logits = reference_forward(c, w, out)
        out.append(int(logits[-1].argmax()))
    return out[len(ids):]


# ---- files ----------------------------------------------------------------------------------

def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dt = {torch.float32: "F32", torch.int32: "I32", torch.bfloat16: "BF16"}[t.dtype]
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hs = json.dumps(header, separators=(",", ":")).encode()
    hs += b" " * ((8 - len(hs) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hs)))
        f.write(hs)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "goldens"))
    ap.add_argument("--require-transformers", action="store_true")
    args = ap.parse_args()
    try:
        import transformers  # noqa: F401
        have_tf = True
    except ImportError:
        have_tf = False
        if args.require_transformers:
            sys.exit("transformers is required (--require-transformers) but cannot be imported")
    reference = (f"transformers {transformers.__version__} (torch {torch.__version__})" if have_tf
                 else f"tools/make_goldens.py own float64 implementation (torch {torch.__version__}); "
                      "transformers was not available")
    print("reference:", reference)
    torch.manual_seed(SEED)
    for mi, name in enumerate(sorted(MODELS)):
        c = full_config(name)
        gen = torch.Generator().manual_seed(SEED + mi)
        w = make_weights(c, gen)
        prompts = [torch.randint(3, VOCAB, (n,), generator=gen).tolist() for n in PROMPT_LENS]
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        own_logits = [reference_forward(c, w, p) for p in prompts]
        if have_tf:
            from transformers import AutoConfig, AutoModelForCausalLM
            cfg = AutoConfig.for_model(**c)
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32,
                                                     attn_implementation="eager")
            missing, unexpected = model.load_state_dict(w, strict=False)
            bad = [m for m in missing if not (c["tie_word_embeddings"] and m == "lm_head.weight")]
            assert not bad and not unexpected, (bad, unexpected)
            model.eval()
            model.save_pretrained(d, safe_serialization=True)
            with torch.no_grad():
                logits = [model(torch.tensor([p])).logits[0].float() for p in prompts]
                greedy = []
                for pi in GREEDY_FROM:
                    out = model.generate(torch.tensor([prompts[pi]]), do_sample=False,
                                         max_new_tokens=GREEDY_TOKENS, min_new_tokens=GREEDY_TOKENS,
                                         eos_token_id=None, pad_token_id=0)
                    greedy.append(out[0, len(prompts[pi]):].tolist())
            for a, b in zip(logits, own_logits):
                rel = float((a.double() - b).norm() / b.norm())
                print(f"  {name}: transformers vs own implementation rel err {rel:.2e}")
                assert rel < 1e-4, f"own implementation disagrees with transformers ({rel})"
        else:
            logits = [l.float() for l in own_logits]
            greedy = [reference_greedy(c, w, prompts[pi], GREEDY_TOKENS) for pi in GREEDY_FROM]
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(c, f, indent=2, sort_keys=True)
            write_safetensors(os.path.join(d, "model.safetensors"), w)
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": 2, "do_sample": False}, f, indent=2)
        gold = {}
        for i, p in enumerate(prompts):
            gold[f"prompt{i}.ids"] = torch.tensor(p, dtype=torch.int32)
            gold[f"prompt{i}.logits"] = logits[i].contiguous()
        for j, pi in enumerate(GREEDY_FROM):
            gold[f"greedy{j}.prompt_index"] = torch.tensor([pi], dtype=torch.int32)
            gold[f"greedy{j}.tokens"] = torch.tensor(greedy[j], dtype=torch.int32)
        write_safetensors(os.path.join(d, "golden.safetensors"), gold)
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump({"reference": reference, "prompts": len(prompts),
                       "greedy": len(GREEDY_FROM), "greedy_tokens": GREEDY_TOKENS}, f, indent=2)
        print(f"  {name}: prompts {PROMPT_LENS}, greedy {greedy}")


if __name__ == "__main__":
    main()
