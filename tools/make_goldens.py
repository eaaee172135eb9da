#!/usr/bin/env python3
"""Makes the tiny random models and expected outputs under tests/data/goldens/.

For each supported architecture it builds a small config that exercises the real config
fields (GQA, tied embeddings, qkv bias, q/k norm, explicit head_dim, every rope type inferd
implements, sliding windows on all or some layers), draws seeded random weights (norm weights
near 1, projections of unit gain, a large lm_head so logits are sharp), saves the model
directory (config.json, model.safetensors in fp32, generation_config.json) and records, for
fixed prompts, the logits at every prompt position and 40 greedy tokens. The longest prompt is
longer than every original_max_position_embeddings and sliding window below, so the goldens
depend on the rope scaling and the windows. The configs are given to transformers in both
styles (transformers 5's `rope_parameters` and the older `rope_theta` + `rope_scaling`,
`STYLE` below); transformers saves them in its own (new) style, the own implementation writes
them as given.

Reference: Hugging Face transformers when it can be imported (the GPU machine has it): the
weights are loaded into `AutoModelForCausalLM.from_config(...)`, logits come from its forward
and greedy tokens from `generate`; the script's own PyTorch implementation below is also run
and must agree (a check of this script). Without transformers (this project's CPU machines:
Debian ships PyTorch but not transformers) the own implementation, in float64, is the
reference, and `golden.json` says so in "reference". Regenerate on the GPU machine with
transformers to replace those goldens:  python3 tools/make_goldens.py --out tests/data/goldens

Usage: python3 tools/make_goldens.py [--out DIR] [--require-transformers] [--only NAME ...]
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

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
    "llama_linear": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="linear", factor=4.0), rms_norm_eps=1e-5),
    "llama_dynamic": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=dict(type="dynamic", factor=2.0), rms_norm_eps=1e-5),
    "qwen2_yarn": dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=64,
        intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=dict(type="yarn", factor=4.0, original_max_position_embeddings=64),
        use_sliding_window=False, rms_norm_eps=1e-6),
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
        attention_bias=False, use_sliding_window=True, sliding_window=24, max_window_layers=1,
        rms_norm_eps=1e-6),
    # Gemma 3: (1 + w) norms, sandwich norms, q/k norms, scaled embeddings, GELU-tanh, sliding and
    # global layers with their own rope (linear scaling on the global ones, as gemma-3-4b),
    # query_pre_attn_scalar != head_dim, head_dim (64) != hidden / heads. gemma3_softcap: the
    # older config style (rope_local_base_freq, sliding_window_pattern), untied, and both
    # soft-capping keys set (transformers' Gemma 3 uses only the final one).
    "gemma3": dict(
        architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", hidden_size=64,
        intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, query_pre_attn_scalar=48,
        rope_theta=1000000.0, rope_scaling=dict(rope_type="linear", factor=4.0),
        rope_local_base_freq=10000.0, sliding_window=12,
        layer_types=["sliding_attention", "full_attention", "sliding_attention",
                     "sliding_attention"],
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, rms_norm_eps=1e-6,
        final_logit_softcapping=None, attn_logit_softcapping=None),
    "gemma3_softcap": dict(
        architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", hidden_size=64,
        intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=20,
        rope_theta=500000.0, rope_local_base_freq=20000.0, sliding_window=10,
        sliding_window_pattern=2, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=False, rms_norm_eps=1e-6, final_logit_softcapping=4.0,
        attn_logit_softcapping=3.0),
    # Phi-3: fused qkv_proj and gate_up_proj, longrope (the long factors: every prompt is longer
    # than original_max_position_embeddings, see PROMPT_LENS_OF), a sliding window on every layer.
    "phi3": dict(
        architectures=["Phi3ForCausalLM"], model_type="phi3", hidden_size=64,
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=dict(type="longrope",
                          short_factor=[1.0, 1.02, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5],
                          long_factor=[1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 16.0]),
        original_max_position_embeddings=8, sliding_window=16, pad_token_id=0,
        rms_norm_eps=1e-5),
    # OLMo 2: no input norm; the attention and MLP outputs are normed before their residual adds
    # (post_attention_layernorm, post_feedforward_layernorm); q and k normed over the whole
    # projection (all heads at once).
    "olmo2": dict(
        architectures=["Olmo2ForCausalLM"], model_type="olmo2", hidden_size=64,
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=500000.0, tie_word_embeddings=False,
        attention_bias=False, rms_norm_eps=1e-6),
    # Granite: embeddings * embedding_multiplier, sublayer outputs * residual_multiplier before
    # the residual add, attention scaled by attention_multiplier (not 1 / sqrt(head_dim)), logits /
    # logits_scaling; tied embeddings as Granite 3.x.
    "granite": dict(
        architectures=["GraniteForCausalLM"], model_type="granite", hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, rope_theta=10000.0, tie_word_embeddings=True,
        embedding_multiplier=3.0, residual_multiplier=0.5, attention_multiplier=0.15,
        logits_scaling=2.0, rms_norm_eps=1e-5),
    # gpt-oss: attention sinks, q/k/v/o biases, alternating sliding / full layers (layer_types
    # left to the default), YaRN without truncation, a mixture of experts with a biased router
    # (top-k then softmax), fused interleaved gate_up experts with biases and the clamped SwiGLU.
    # gpt_oss stores the experts in bf16 ([E, in, out] as transformers keeps them); gpt_oss_mxfp4
    # packs them in the MXFP4 checkpoint layout (the reference uses the dequantized values).
    "gpt_oss": dict(
        architectures=["GptOssForCausalLM"], model_type="gpt_oss", hidden_size=64,
        intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
        sliding_window=12, attention_bias=True, tie_word_embeddings=False,
        rope_theta=150000.0,
        rope_scaling=dict(rope_type="yarn", factor=4.0, beta_fast=32.0, beta_slow=1.0,
                          truncate=False, original_max_position_embeddings=32),
        rms_norm_eps=1e-5),
    "gpt_oss_mxfp4": dict(
        architectures=["GptOssForCausalLM"], model_type="gpt_oss", hidden_size=64,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=32, num_local_experts=6, num_experts_per_tok=3,
        sliding_window=10, attention_bias=True, tie_word_embeddings=False,
        rope_theta=150000.0,
        rope_scaling=dict(rope_type="yarn", factor=8.0, beta_fast=32.0, beta_slow=1.0,
                          truncate=False, original_max_position_embeddings=16),
        rms_norm_eps=1e-5,
        quantization_config=dict(quant_method="mxfp4", modules_to_not_convert=[
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
            "lm_head"])),
    # Qwen3-MoE: Qwen3's attention, experts in layers 0 and 2 (decoder_sparse_step 1, layer 1 in
    # mlp_only_layers: a dense MLP of intermediate_size), top-3 of 8, renormalised. The
    # checkpoint stores the experts one by one (mlp.experts.<e>.gate_proj ...: the published
    # layout).
    "qwen3_moe": dict(
        architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", hidden_size=64,
        intermediate_size=64, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=3,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[1],
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        rope_theta=1000000.0, tie_word_embeddings=False, attention_bias=False,
        use_sliding_window=False, rms_norm_eps=1e-6, router_aux_loss_coef=0.001,
        output_router_logits=False),
    # Mixtral: top-2 of 4 experts in every layer, a sliding window. The checkpoint stores the
    # experts stacked as transformers 5 does (mlp.experts.gate_up_proj [E, 2F, H], down_proj).
    "mixtral": dict(
        architectures=["MixtralForCausalLM"], model_type="mixtral", hidden_size=64,
        intermediate_size=48, num_local_experts=4, num_experts_per_tok=2,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rope_theta=1000000.0, tie_word_embeddings=False, sliding_window=24,
        rms_norm_eps=1e-5, router_jitter_noise=0.0, router_aux_loss_coef=0.02,
        output_router_logits=False),
}
# How each config is given to transformers (and written by the own implementation):
# "new": rope_parameters with rope_theta inside (transformers 5), "old": rope_theta + rope_scaling.
STYLE = {"llama3": "new", "llama32_tied": "old", "llama_linear": "new", "llama_dynamic": "old",
         "mistral": "old", "qwen2": "new", "qwen2_yarn": "old", "qwen3": "new",
         "gemma3": "new", "gemma3_softcap": "old", "phi3": "old", "olmo2": "new",
         "granite": "old", "qwen3_moe": "new", "mixtral": "old", "gpt_oss": "old",
         "gpt_oss_mxfp4": "new"}
PROMPT_LENS = [1, 7, 21, 80]
# longrope: transformers picks the short or long factors by the sequence's length, inferd once
# for its max_model_len (here max_position_embeddings: long), so every Phi-3 prompt is longer
# than its original_max_position_embeddings.
PROMPT_LENS_OF = {"phi3": [9, 12, 21, 80],
                  # MoE: shorter (still past Mixtral's window), so that prompts without a routing
                  # near-tie (ROUTING_MIN_GAP) can be found.
                  "qwen3_moe": [1, 7, 21, 40], "mixtral": [1, 7, 21, 40],
                  # gpt-oss as well (still past its windows, 12 / 10, and YaRN's original lengths,
                  # 32 / 16): at 80 tokens no prompt left every router gap wide enough, and one
                  # that bf16 re-routes put the bf16 logits 4.8e-2 off (no bug could then show).
                  "gpt_oss": [1, 7, 21, 40], "gpt_oss_mxfp4": [1, 7, 21, 40]}
GREEDY_FROM = [2, 3]  # indices of prompts to continue greedily
GREEDY_TOKENS = 40
LM_HEAD_GAIN = 3.0
ROUTER_GAIN = 2.0
EXPERT_GAIN = 4.0
TIED_LAYER_GAIN = 8.0
ROUTER_GAIN = 2.0
# MoE prompts are drawn again until every token's k-th router logit beats the next by this
# fraction of the token's logit spread (bf16 on the GPU is ~0.5 % off), so the GPU routes alike.
ROUTING_MIN_GAP, ROUTING_TRIES = 0.02, 3000
# gpt-oss's bf16 pipeline moves router logits further (tools/gpt_oss_bf16_emulation.py: a prompt
# that passed 0.02 was re-routed under bf16 and its logits came out 4.9e-2 off).
GPT_OSS_MIN_GAP = 0.04
GREEDY_CLEAR_TOKENS, GREEDY_MARGIN, GREEDY_TRIES = 8, 0.3, 100


def full_config(name):
    c = dict(MODELS[name])
    c.update(vocab_size=VOCAB, max_position_embeddings=256,
             bos_token_id=1, eos_token_id=2, initializer_range=0.02,
             attention_dropout=0.0, use_cache=True)
    if not is_gemma3(c):
        c["hidden_act"] = "silu"
    if is_gemma3(c) and STYLE.get(name, "old") == "new":
        # transformers 5: one rope dict per layer type.
        full = dict(c.pop("rope_scaling", None) or {"rope_type": "default"})
        full["rope_theta"] = c.pop("rope_theta")
        c["rope_parameters"] = {
            "full_attention": full,
            "sliding_attention": {"rope_type": "default",
                                  "rope_theta": c.pop("rope_local_base_freq")}}
        c["dtype"] = "float32"
    elif STYLE.get(name, "old") == "new":
        rp = dict(c.pop("rope_scaling", None) or {"rope_type": "default"})
        rp["rope_theta"] = c.pop("rope_theta")
        c["rope_parameters"] = rp
        c["dtype"] = "float32"
    else:
        c["torch_dtype"] = "float32"
    return c


def is_gemma3(c):
    return c["architectures"][0] == "Gemma3ForCausalLM"


def is_phi3(c):
    return c["architectures"][0] == "Phi3ForCausalLM"


def is_olmo2(c):
    return c["architectures"][0] == "Olmo2ForCausalLM"


def is_granite(c):
    return c["architectures"][0] == "GraniteForCausalLM"


def is_gpt_oss(c):
    return c["architectures"][0] == "GptOssForCausalLM"


def is_mxfp4(c):
    return (c.get("quantization_config") or {}).get("quant_method") == "mxfp4"


def rope_params(c, layer_type=None):
    """The merged rope dict (either style): rope_type, rope_theta and the scaling fields. Gemma 3
    has one per layer type (Gemma3TextConfig.convert_rope_params_to_dict)."""
    if is_gemma3(c):
        if c.get("rope_parameters"):
            rp = dict(c["rope_parameters"][layer_type])
        elif layer_type == "full_attention":
            rp = {"rope_type": "default", **(c.get("rope_scaling") or {})}
            rp.setdefault("rope_theta", c.get("rope_theta", 1000000.0))
        else:
            rp = {"rope_type": "default", "rope_theta": c.get("rope_local_base_freq", 10000.0)}
        return rp
    rp = dict(c.get("rope_parameters") or c.get("rope_scaling") or {})
    if "type" in rp:
        rp["rope_type"] = rp.pop("type")
    rp.setdefault("rope_type", "default")
    rp.setdefault("rope_theta", c.get("rope_theta", 10000.0))
    if is_phi3(c):
        if rp["rope_type"] in ("su", "yarn"):  # Phi3Config: old names of longrope
            rp["rope_type"] = "longrope"
        # Phi3Config's top-level original_max_position_embeddings (default 4096) wins.
        rp["original_max_position_embeddings"] = c.get("original_max_position_embeddings", 4096)
    return rp


def gemma3_layer_types(c):
    """Gemma3TextConfig: layer_types, else every sliding_window_pattern-th layer is global."""
    if c.get("layer_types"):
        return list(c["layer_types"])
    pattern = c.get("sliding_window_pattern", 6)
    return ["sliding_attention" if (i + 1) % pattern else "full_attention"
            for i in range(c["num_hidden_layers"])]


def layer_windows(c):
    """The sliding window of each layer (None: full attention), as transformers applies it."""
    n = c["num_hidden_layers"]
    arch = c["architectures"][0]
    if arch in ("MistralForCausalLM", "MixtralForCausalLM"):
        return [c.get("sliding_window")] * n
    if arch == "Gemma3ForCausalLM":
        return [c.get("sliding_window", 4096) if t == "sliding_attention" else None
                for t in gemma3_layer_types(c)]
    if arch == "Phi3ForCausalLM":
        return [c.get("sliding_window")] * n
    if arch == "GptOssForCausalLM":  # GptOssConfig: even layers slide unless layer_types says
        types = c.get("layer_types") or ["sliding_attention" if i % 2 == 0 else "full_attention"
                                         for i in range(n)]
        return [c.get("sliding_window", 128) if t == "sliding_attention" else None for t in types]
    if arch.startswith("Qwen") and c.get("use_sliding_window"):
        return [c["sliding_window"] if i >= c.get("max_window_layers", 28) else None
                for i in range(n)]
    return [None] * n


def is_moe(c):
    return c["architectures"][0] in ("Qwen3MoeForCausalLM", "MixtralForCausalLM")


def has_router(c):
    """A mixture of experts whose routing the prompts must not leave at a near-tie."""
    return is_moe(c) or is_gpt_oss(c)


def moe_sizes(c):
    """(experts, top-k, expert intermediate size, renormalise) of an MoE config."""
    if c["architectures"][0] == "MixtralForCausalLM":
        return c["num_local_experts"], c["num_experts_per_tok"], c["intermediate_size"], True
    return (c["num_experts"], c["num_experts_per_tok"], c["moe_intermediate_size"],
            c.get("norm_topk_prob", False))


def is_sparse_layer(c, i):
    """Qwen3MoeDecoderLayer: not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0."""
    if c["architectures"][0] == "MixtralForCausalLM":
        return True
    if not is_moe(c) or i in c.get("mlp_only_layers", []):
        return False
    return (i + 1) % c.get("decoder_sparse_step", 1) == 0


def checkpoint_layout(c, w):
    """The tensors as the checkpoint stores them. The weights are kept as transformers 5 holds
    them (mlp.gate.weight, mlp.experts.gate_up_proj [E, 2F, H] with the gate rows first,
    mlp.experts.down_proj [E, H, F]); Qwen3-MoE is written per expert as its published
    checkpoints are, Mixtral stacked as transformers 5 saves it."""
    if c["architectures"][0] != "Qwen3MoeForCausalLM":
        return w
    out = {}
    for k, v in w.items():
        if k.endswith("mlp.experts.gate_up_proj"):
            p = k[: -len("gate_up_proj")]
            F = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{p}{e}.gate_proj.weight"] = v[e, :F].contiguous()
                out[f"{p}{e}.up_proj.weight"] = v[e, F:].contiguous()
        elif k.endswith("mlp.experts.down_proj"):
            p = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{p}{e}.down_proj.weight"] = v[e].contiguous()
        else:
            out[k] = v
    return out


def transformers_layout(model, c, w):
    """The weights under the names the transformers model holds: stacked experts (transformers 5)
    or per expert (older versions: Mixtral's block_sparse_moe.experts.<e>.w1/w3/w2)."""
    names = set(model.state_dict().keys())
    if any(k.endswith("experts.gate_up_proj") for k in names):
        return w
    mixtral = c["architectures"][0] == "MixtralForCausalLM"
    gate, up, down = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
    out = {}
    for k, v in w.items():
        if ".mlp.gate.weight" in k or ".mlp.experts." in k:
            k2 = k.replace(".mlp.", ".block_sparse_moe.") if mixtral else k
            if k.endswith("gate.weight"):
                out[k2] = v
            elif k.endswith("gate_up_proj"):
                F = v.shape[1] // 2
                for e in range(v.shape[0]):
                    out[k2[: -len("gate_up_proj")] + f"{e}.{gate}.weight"] = v[e, :F].contiguous()
                    out[k2[: -len("gate_up_proj")] + f"{e}.{up}.weight"] = v[e, F:].contiguous()
            else:
                for e in range(v.shape[0]):
                    out[k2[: -len("down_proj")] + f"{e}.{down}.weight"] = v[e].contiguous()
        else:
            out[k] = v
    return out


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

    def norm(name, n, gain=1.0):
        # Gemma's norms scale by (1 + w): the same effective weights, stored minus 1.
        w[name] = gain + 0.2 * torch.randn(n, generator=gen) - (1.0 if is_gemma3(c) else 0.0)

    def bias(name, n):
        w[name] = 0.2 * torch.randn(n, generator=gen)

    # Tied models: a smaller embedding so the residual stream does not just echo the input token.
    # (Gemma multiplies its embeddings by sqrt(hidden_size): smaller still.)
    tied_scale = 0.1 if is_gemma3(c) else 0.25
    w["model.embed_tokens.weight"] = torch.randn(V, H, generator=gen) * (tied_scale if c["tie_word_embeddings"] else 1.0)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        if not is_olmo2(c):
            norm(p + "input_layernorm.weight", H)
        else:
            norm(p + "post_feedforward_layernorm.weight", H)
        # Gemma: the sandwich norms give the layers' outputs a gain of about 4, so that they
        # dominate the (scaled) embedding in the residual stream and the greedy tokens do not just
        # repeat the input. (Sharper attention through larger q-norm weights made the tied model's
        # bf16 logits 4e-2 off the fp32 ones on the H200, with no error anywhere: too sensitive.)
        norm(p + "post_attention_layernorm.weight", H, 4.0 if is_gemma3(c) else 1.0)
        if is_gemma3(c):
            norm(p + "pre_feedforward_layernorm.weight", H)
            norm(p + "post_feedforward_layernorm.weight", H, 4.0)
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
        if c["architectures"][0] in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Gemma3ForCausalLM"):
            norm(p + "self_attn.q_norm.weight", hd)
            norm(p + "self_attn.k_norm.weight", hd)
        if is_olmo2(c):  # over the whole projection
            norm(p + "self_attn.q_norm.weight", nh * hd)
            norm(p + "self_attn.k_norm.weight", nkv * hd)
        if is_gpt_oss(c):
            E = c["num_local_experts"]
            w[p + "self_attn.sinks"] = torch.randn(nh, generator=gen)
            lin(p + "mlp.router.weight", E, H)
            w[p + "mlp.router.weight"] *= ROUTER_GAIN
            bias(p + "mlp.router.bias", E)
            # Experts as transformers keeps them: [E, in, out] (x @ W). The gate_up gain makes
            # some gate and up values pass the SwiGLU limit (7), so the clamps matter.
            w[p + "mlp.experts.gate_up_proj"] = (
                torch.randn(E, H, 2 * F, generator=gen) * (EXPERT_GAIN / math.sqrt(H)))
            w[p + "mlp.experts.gate_up_proj_bias"] = 0.2 * torch.randn(E, 2 * F, generator=gen)
            w[p + "mlp.experts.down_proj"] = torch.randn(E, F, H, generator=gen) / math.sqrt(F)
            w[p + "mlp.experts.down_proj_bias"] = 0.2 * torch.randn(E, H, generator=gen)
            continue
        if is_sparse_layer(c, i):
            E, _, Fe, _ = moe_sizes(c)
            lin(p + "mlp.gate.weight", E, H)
            # Sharper routing: fewer near-ties between the k-th and the next expert, which bf16
            # on the GPU could order the other way.
            w[p + "mlp.gate.weight"] *= ROUTER_GAIN
            w[p + "mlp.experts.gate_up_proj"] = torch.randn(E, 2 * Fe, H, generator=gen) / math.sqrt(H)
            w[p + "mlp.experts.down_proj"] = torch.randn(E, H, Fe, generator=gen) / math.sqrt(Fe)
            continue
        lin(p + "mlp.gate_proj.weight", F, H)
        lin(p + "mlp.up_proj.weight", F, H)
        lin(p + "mlp.down_proj.weight", H, F)
    norm("model.norm.weight", H, 6.0 if is_gemma3(c) and c["tie_word_embeddings"] else 1.0)
    if is_phi3(c):
        # Phi-3's checkpoint: q/k/v as one qkv_proj, gate/up as one gate_up_proj.
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            w[p + "self_attn.qkv_proj.weight"] = torch.cat(
                [w.pop(p + f"self_attn.{n}_proj.weight") for n in "qkv"])
            w[p + "mlp.gate_up_proj.weight"] = torch.cat(
                [w.pop(p + "mlp.gate_proj.weight"), w.pop(p + "mlp.up_proj.weight")])
    if not c["tie_word_embeddings"]:
        lin("lm_head.weight", V, H)
        w["lm_head.weight"] *= LM_HEAD_GAIN
    else:
        # Tied: the residual stream must not just echo the input token's embedding (which the
        # tied head would pick again and again); the layers' outputs are made to dominate it.
        for k in list(w):
            if k.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
                w[k] *= TIED_LAYER_GAIN
    w = {k: v.float().contiguous() for k, v in w.items()}
    if is_gpt_oss(c):
        for k in list(w):
            if k.endswith(("experts.gate_up_proj", "experts.down_proj")):
                # bf16 experts (the checkpoint stores them so); MXFP4: the values its packing
                # represents exactly.
                w[k] = mxfp4_roundtrip(w[k]) if is_mxfp4(c) else w[k].bfloat16().float()
    return w


# ---- MXFP4 (OCP microscaling FP4; the layout of the gpt-oss checkpoints) -----------------------

FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
              -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def mxfp4_pack(w):
    """w [E, in, out] (transformers' layout) -> (blocks uint8 [E, out, in/32, 16], scales uint8
    [E, out, in/32]): each group of 32 inputs of an output row gets the e8m0 scale that puts its
    largest magnitude at or below 6, each value the nearest e2m1 code; element 2i of a block in the
    low nibble of byte i."""
    t = w.transpose(1, 2).contiguous().double()  # [E, out, in]
    E, O, I = t.shape
    g = t.reshape(E, O, I // 32, 32)
    amax = g.abs().amax(-1).clamp_min(2.0 ** -100)
    exp = torch.ceil(torch.log2(amax / 6.0))
    scaled = g / torch.pow(2.0, exp)[..., None]
    lut = torch.tensor(FP4_VALUES, dtype=torch.float64)
    codes = (scaled[..., None] - lut).abs().argmin(-1)  # the first of equals: +0 before -0
    codes = codes.to(torch.uint8)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    scales = (exp + 127).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous()


def mxfp4_unpack(blocks, scales):
    """The values [E, in, out] (transformers' layout) of packed blocks and scales."""
    lut = torch.tensor(FP4_VALUES, dtype=torch.float64)
    lo, hi = (blocks & 0x0F).long(), (blocks >> 4).long()
    vals = torch.stack([lut[lo], lut[hi]], dim=-1).reshape(*blocks.shape[:-1], 32)
    vals = vals * torch.pow(2.0, scales.double() - 127)[..., None]
    E, O = vals.shape[:2]
    return vals.reshape(E, O, -1).transpose(1, 2).contiguous()


def mxfp4_roundtrip(w):
    return mxfp4_unpack(*mxfp4_pack(w)).float()


def checkpoint_tensors(c, w):
    """The tensors the model directory stores: bf16 experts, or MXFP4 blocks and scales."""
    out = {}
    for k, v in w.items():
        if is_gpt_oss(c) and k.endswith(("experts.gate_up_proj", "experts.down_proj")):
            if is_mxfp4(c):
                out[k + "_blocks"], out[k + "_scales"] = mxfp4_pack(v)
            else:
                out[k] = v.bfloat16()
        else:
            out[k] = v
    return out


# ---- the script's own implementation of the transformers forward pass -------------------

def inv_freq(c, rs=None, seq_len=None):
    """(inv_freq, attention scaling) as transformers' rope init functions compute them (fp32),
    for sequences up to max_position_embeddings (longrope: for a sequence of seq_len tokens)."""
    hd = head_dim(c)
    rs = rs or rope_params(c)
    kind, base = rs["rope_type"], rs["rope_theta"]
    exps = torch.arange(0, hd, 2, dtype=torch.int64).float() / hd
    inv = 1.0 / (base ** exps)
    if kind == "linear":
        inv = inv / rs["factor"]
    elif kind == "dynamic":
        pass  # unchanged up to max_position_embeddings
    elif kind == "yarn":
        factor = rs["factor"]
        omax = rs.get("original_max_position_embeddings", c["max_position_embeddings"])
        att = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
        fast, slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

        def corr(rot):
            return (hd * math.log(omax / (rot * 2 * math.pi))) / (2 * math.log(base))

        low, high = corr(fast), corr(slow)
        if rs.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, hd - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(hd // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        pos_freqs = base ** (torch.arange(0, hd, 2).float() / hd)
        extra = 1 - ramp
        inv = (1.0 / (factor * pos_freqs)) * (1 - extra) + (1.0 / pos_freqs) * extra
        return inv, att
    elif kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv = torch.where(medium, smoothed, scaled)
    elif kind == "longrope":
        omax = rs["original_max_position_embeddings"]
        factor = rs.get("factor") or c["max_position_embeddings"] / omax
        att = rs.get("attention_factor")
        if att is None:
            att = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(omax))
        ext = rs["long_factor"] if seq_len and seq_len > omax else rs["short_factor"]
        inv = 1.0 / (torch.tensor(ext, dtype=torch.float32) * base ** exps)
        return inv, att
    elif kind != "default":
        raise SystemExit(f"make_goldens: no own implementation of rope type {kind}")
    return inv, 1.0


def reference_forward(c, w, ids, dtype=torch.float64, images=(), bidirectional=True, mrope=None):
    """Logits [L, V] for one sequence, recomputed from scratch (no KV cache).

    images (Gemma3ForConditionalGeneration, tools/make_gemma3_vlm_golden.py): (start, embeds)
    pairs; rows [start, start + len(embeds)) take the image's embeddings (after the text
    embeddings' scaling) and attend to each other on every layer (transformers' token_type_ids
    mask or-ed into the causal and sliding-window masks) when `bidirectional`.
    mrope (Qwen2.5-VL, tools/make_qwen_vl_lm_golden.py): (positions [3, L], mrope_section): rope
    frequency i turns by the temporal, height or width position as its section says (transformers'
    apply_multimodal_rotary_pos_emb)."""
    g = lambda n: w[n].to(dtype)
    H = c["hidden_size"]
    nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], head_dim(c)
    eps = c["rms_norm_eps"]
    L = len(ids)
    pos = torch.arange(L)

    gemma = is_gemma3(c)

    def rms(x, weight):
        var = x.pow(2).mean(-1, keepdim=True)
        # Gemma3RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w)
        return (1.0 + weight if gemma else weight) * (x * torch.rsqrt(var + eps))

    def cos_sin(rs):
        # longrope: the factors for this sequence's length (transformers' dynamic_rope_update).
        inv, att = inv_freq(c, rs, seq_len=L)
        if mrope is not None:
            p3, sec = mrope
            which = torch.cat([torch.full((n,), k, dtype=torch.int64) for k, n in enumerate(sec)])
            freqs = p3[which].T.float() * inv[None, :]  # [L, hd / 2], fp32 as transformers
        else:
            freqs = pos[:, None].float() * inv[None, :]  # fp32 as transformers
        emb = torch.cat([freqs, freqs], dim=-1)
        return (emb.cos() * att).to(dtype), (emb.sin() * att).to(dtype)

    if gemma:
        types = gemma3_layer_types(c)
        tables = {t: cos_sin(rope_params(c, t)) for t in set(types)}
        layer_rope = [tables[t] for t in types]
    else:
        layer_rope = [cos_sin(rope_params(c))] * c["num_hidden_layers"]

    def rope(x, cs):  # [L, heads, hd]
        cos, sin = cs
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        rot = torch.cat([-x2, x1], dim=-1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    causal = torch.ones(L, L, dtype=torch.bool).tril()
    windows = layer_windows(c)

    same_image = torch.zeros(L, L, dtype=torch.bool)
    for s, e in images if bidirectional else ():
        same_image[s:s + len(e), s:s + len(e)] = True

    def mask_of(window):
        if not window:
            return causal | same_image
        i = torch.arange(L)[:, None]
        j = torch.arange(L)[None, :]
        return (causal & (j > i - window)) | same_image

    h = g("model.embed_tokens.weight")[torch.tensor(ids)]
    if is_granite(c):
        h = h * c["embedding_multiplier"]
    if gemma:
        # Gemma3TextScaledWordEmbedding: * tensor(sqrt(hidden)) in the weights' dtype (fp32).
        h = h * torch.tensor(H ** 0.5, dtype=torch.float32).to(dtype)
    for s, e in images:
        h[s:s + len(e)] = e.to(dtype)
    scale = c["query_pre_attn_scalar"] ** -0.5 if gemma else 1 / math.sqrt(hd)
    if is_granite(c):
        scale = c["attention_multiplier"]
    resid = c.get("residual_multiplier", 1.0) if is_granite(c) else 1.0
    for li in range(c["num_hidden_layers"]):
        p = f"model.layers.{li}."
        x = h if is_olmo2(c) else rms(h, g(p + "input_layernorm.weight"))

        def proj(name, inp):
            y = inp @ g(p + name + ".weight").T
            if (p + name + ".bias") in w:
                y = y + g(p + name + ".bias")
            return y

        if is_phi3(c):
            qkv = proj("self_attn.qkv_proj", x)
            q = qkv[:, : nh * hd].reshape(L, nh, hd)
            k = qkv[:, nh * hd: (nh + nkv) * hd].reshape(L, nkv, hd)
            v = qkv[:, (nh + nkv) * hd:].reshape(L, nkv, hd)
        else:
            q = proj("self_attn.q_proj", x).view(L, nh, hd)
            k = proj("self_attn.k_proj", x).view(L, nkv, hd)
            v = proj("self_attn.v_proj", x).view(L, nkv, hd)
        if c["architectures"][0] in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Gemma3ForCausalLM"):
            q = rms(q, g(p + "self_attn.q_norm.weight"))
            k = rms(k, g(p + "self_attn.k_norm.weight"))
        if is_olmo2(c):
            q = rms(q.reshape(L, nh * hd), g(p + "self_attn.q_norm.weight")).view(L, nh, hd)
            k = rms(k.reshape(L, nkv * hd), g(p + "self_attn.k_norm.weight")).view(L, nkv, hd)
        q, k = rope(q, layer_rope[li]), rope(k, layer_rope[li])
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        # (Gemma 3's attn_logit_softcapping is not applied: transformers' Gemma3Attention never
        # passes it to the attention function.)
        scores = torch.einsum("qhd,khd->hqk", q, k) * scale
        scores = scores.masked_fill(~mask_of(windows[li])[None], float("-inf"))
        if is_gpt_oss(c):
            # The sink: one more logit per head in the softmax, its probability dropped.
            sinks = g(p + "self_attn.sinks")[:, None, None].expand(nh, L, 1)
            probs = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
        else:
            probs = torch.softmax(scores, dim=-1)
        o = torch.einsum("hqk,khd->qhd", probs, v).reshape(L, nh * hd)
        if gemma:
            h = h + rms(proj("self_attn.o_proj", o), g(p + "post_attention_layernorm.weight"))
            x = rms(h, g(p + "pre_feedforward_layernorm.weight"))
            act = torch.nn.functional.gelu(proj("mlp.gate_proj", x), approximate="tanh")
            m = proj("mlp.down_proj", act * proj("mlp.up_proj", x))
            h = h + rms(m, g(p + "post_feedforward_layernorm.weight"))
            continue
        if is_olmo2(c):
            h = h + rms(proj("self_attn.o_proj", o), g(p + "post_attention_layernorm.weight"))
            m = proj("mlp.down_proj",
                     torch.nn.functional.silu(proj("mlp.gate_proj", h)) * proj("mlp.up_proj", h))
            h = h + rms(m, g(p + "post_feedforward_layernorm.weight"))
            continue
        h = h + proj("self_attn.o_proj", o) * resid
        x = rms(h, g(p + "post_attention_layernorm.weight"))
        if is_gpt_oss(c):
            h = h + gpt_oss_moe(c, g, p + "mlp.", x)
            continue
        if is_sparse_layer(c, li):
            h = h + moe_block(c, g, p + "mlp.", x)
            continue
        if is_phi3(c):
            gate, up = proj("mlp.gate_up_proj", x).chunk(2, dim=-1)
        else:
            gate, up = proj("mlp.gate_proj", x), proj("mlp.up_proj", x)
        h = h + proj("mlp.down_proj", torch.nn.functional.silu(gate) * up) * resid
    h = rms(h, g("model.norm.weight"))
    head = g("model.embed_tokens.weight") if c["tie_word_embeddings"] else g("lm_head.weight")
    logits = h @ head.T
    if is_granite(c):
        logits = logits / c["logits_scaling"]
    cap = c.get("final_logit_softcapping")
    if gemma and cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def gpt_oss_moe(c, g, p, x):
    """GptOssMLP: router logits (with bias), the top k, a softmax over them; each chosen expert's
    gate_up (interleaved: gate = even columns, up = odd), the clamped SwiGLU, down; weighted sum."""
    k, limit, alpha = c["num_experts_per_tok"], 7.0, 1.702
    logits = x @ g(p + "router.weight").T + g(p + "router.bias")
    record_routing_gaps(logits, k)
    top, idx = torch.topk(logits, k, dim=-1)
    weights = torch.softmax(top, dim=-1)
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(idx[t, j])
            gu = x[t] @ g(p + "experts.gate_up_proj")[e] + g(p + "experts.gate_up_proj_bias")[e]
            gate, up = gu[0::2].clamp(max=limit), gu[1::2].clamp(-limit, limit)
            act = (up + 1) * (gate * torch.sigmoid(gate * alpha))
            y = act @ g(p + "experts.down_proj")[e] + g(p + "experts.down_proj_bias")[e]
            out[t] += weights[t, j] * y
    return out


def moe_block(c, g, p, x):
    """The sparse MoE block: softmax over all router logits, the top k (renormalised as the
    config says), each chosen expert's SwiGLU MLP weighted and summed."""
    E, K, F, renorm = moe_sizes(c)
    logits = x @ g(p + "gate.weight").T
    record_routing_gaps(logits, K)
    probs = torch.softmax(logits, dim=-1)
    top_w, top_i = probs.topk(K, dim=-1)
    if renorm:
        top_w = top_w / top_w.sum(dim=-1, keepdim=True)
    w13, w2 = g(p + "experts.gate_up_proj"), g(p + "experts.down_proj")
    out = torch.zeros_like(x)
    for e in range(E):
        tok, slot = torch.where(top_i == e)
        if len(tok) == 0:
            continue
        gate, up = (x[tok] @ w13[e].T).chunk(2, dim=-1)
        y = (torch.nn.functional.silu(gate) * up) @ w2[e].T
        out.index_add_(0, tok, y * top_w[tok, slot][:, None])
    return out


ROUTING_GAPS = None  # a list while routing_gap() records the router's k-th / next gaps


def record_routing_gaps(logits, k):
    """While routing_gap() runs: each token's gap between its k-th and (k+1)-th router logit,
    relative to the token's logit spread (bf16 errors scale with the logits)."""
    if ROUTING_GAPS is not None:
        top = logits.topk(k + 1, dim=-1).values
        ROUTING_GAPS.extend(((top[:, k - 1] - top[:, k]) / logits.std(dim=-1)).tolist())


def min_routing_gap(c):
    return GPT_OSS_MIN_GAP if is_gpt_oss(c) else ROUTING_MIN_GAP


def routing_gap(c, w, ids):
    """The smallest gap between the k-th and the (k+1)-th router logit over the prompt's tokens
    and MoE layers (inf for a dense model): bf16 on the GPU must choose the same experts."""
    global ROUTING_GAPS
    if not has_router(c):
        return float("inf")
    ROUTING_GAPS = []
    reference_forward(c, w, ids)
    gaps, ROUTING_GAPS = ROUTING_GAPS, None
    return min(gaps)


def draw_routed_prompt(c, w, n, gen):
    """A random prompt of n tokens whose routing has no near-tie (ROUTING_MIN_GAP)."""
    best, best_gap = None, -1.0
    for _ in range(ROUTING_TRIES):
        p = torch.randint(3, VOCAB, (n,), generator=gen).tolist()
        g = routing_gap(c, w, p)
        if g > best_gap:
            best, best_gap = p, g
        if g >= min_routing_gap(c):
            break
    return best


def reference_greedy(c, w, ids, n):
    out = list(ids)
    for _ in range(n):
        logits = reference_forward(c, w, out)
        out.append(int(logits[-1].argmax()))
    return out[len(ids):]


def greedy_margin(c, w, ids, n):
    """The smallest gap between the best and the second-best logit over n greedy steps."""
    out, worst = list(ids), float("inf")
    for _ in range(n):
        last = reference_forward(c, w, out)[-1]
        top = last.topk(2).values
        worst = min(worst, float(top[0] - top[1]))
        out.append(int(last.argmax()))
    return worst


def draw_greedy_prompt(c, w, n, gen):
    """A random prompt of n tokens whose first GREEDY_CLEAR_TOKENS greedy tokens each win by at
    least GREEDY_MARGIN: the GPU (bf16 weights, logits within ~1e-2 relative) must reproduce
    them exactly, so they must not hinge on a near-tie."""
    best, best_margin = None, -1.0
    tries = 0
    for _ in range(ROUTING_TRIES):
        p = torch.randint(3, VOCAB, (n,), generator=gen).tolist()
        if routing_gap(c, w, p) < min_routing_gap(c):  # MoE: no routing near-tie either
            continue
        tries += 1
        if tries > GREEDY_TRIES:
            break
        m = greedy_margin(c, w, p, GREEDY_CLEAR_TOKENS)
        if is_gpt_oss(c) and m >= GREEDY_MARGIN:
            # The greedy tokens' own positions must route without a near-tie too: a flipped
            # expert there changes every later token (gpt_oss parted at its third token so).
            # (Qwen3-MoE's and Mixtral's goldens predate this check and pass on the GPU; applied
            # to them it would change their prompts.)
            if routing_gap(c, w, p + reference_greedy(c, w, p, GREEDY_CLEAR_TOKENS)) < min_routing_gap(c):
                continue
        if m > best_margin:
            best, best_margin = p, m
        if m >= GREEDY_MARGIN:
            break
    return best, best_margin


# ---- files ----------------------------------------------------------------------------------

def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dt = {torch.float32: "F32", torch.int32: "I32", torch.bfloat16: "BF16",
              torch.uint8: "U8"}[t.dtype]
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
    ap.add_argument("--only", action="append", default=[],
                    help="make only this model (repeatable); each model's seed depends on its name only")
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
    unknown = [n for n in args.only if n not in MODELS]
    if unknown:
        sys.exit(f"--only: unknown model(s) {unknown}; expected some of {sorted(MODELS)}")
    for name in sorted(MODELS):
        if args.only and name not in args.only:
            continue
        c = full_config(name)
        # Seeded by the name, so adding a model does not change the others.
        gen = torch.Generator().manual_seed(SEED + zlib.crc32(name.encode()) % 100003)
        w = make_weights(c, gen)
        prompts = [torch.randint(3, VOCAB, (n,), generator=gen).tolist()
                   for n in PROMPT_LENS_OF.get(name, PROMPT_LENS)]
        if has_router(c):  # no routing near-tie in the prompts (the greedy ones: below)
            prompts = [p if i in GREEDY_FROM else draw_routed_prompt(c, w, len(p), gen)
                       for i, p in enumerate(prompts)]
        margins = {}
        for pi in GREEDY_FROM:  # the prompts continued greedily: no near-ties early on
            prompts[pi], margins[pi] = draw_greedy_prompt(c, w, len(prompts[pi]), gen)
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        own_logits = [reference_forward(c, w, p) for p in prompts]
        if have_tf:
            from transformers import AutoConfig, AutoModelForCausalLM
            # MXFP4: transformers gets the dequantized experts (a plain config); the directory
            # gets the packed checkpoint below.
            cfg = AutoConfig.for_model(**{k: v for k, v in c.items()
                                          if k != "quantization_config"})
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32,
                                                     attn_implementation="eager")
            missing, unexpected = model.load_state_dict(transformers_layout(model, c, w),
                                                        strict=False)
            bad = [m for m in missing if not (c["tie_word_embeddings"] and m == "lm_head.weight")]
            assert not bad and not unexpected, (bad, unexpected)
            model.eval()
            if is_mxfp4(c):
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(c, f, indent=2, sort_keys=True)
                write_safetensors(os.path.join(d, "model.safetensors"), checkpoint_tensors(c, w))
            else:
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
            write_safetensors(os.path.join(d, "model.safetensors"),
                              checkpoint_layout(c, checkpoint_tensors(c, w)))
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
                       "greedy": len(GREEDY_FROM), "greedy_tokens": GREEDY_TOKENS,
                       "config_style_given": STYLE.get(name, "old"),
                       "greedy_min_margin_first_8": {str(k): round(v, 4) for k, v in margins.items()}},
                      f, indent=2)
        print(f"  {name}: prompts {[len(p) for p in prompts]}, greedy {greedy}")


if __name__ == "__main__":
    main()
