#!/usr/bin/env python3
"""Makes the small int4 / int8 checkpoints under tests/data/int4/ (issue 28) and their expected logits.

One tiny Llama (hidden 64, 2 layers, GQA; weights drawn by tools/make_goldens.py's make_weights) is
quantized round-to-nearest, group by group, and written in each format by its published packing
rules (the code below is this project's own, written from these descriptions):

  AWQ (quant_method "awq", version "gemm"): AutoAWQ's WQLinear_GEMM.from_linear
      (awq/modules/linear/gemm.py) and AWQ_ORDER in awq/utils/packing_utils.py:
      qweight int32 [in, out/8] packed along the outputs in nibble order [0, 2, 4, 6, 1, 3, 5, 7]
      (nibble i of word w holds output 8w + order[i]); qzeros int32 [in/g, out/8] the same way;
      scales fp16 [in/g, out]; w = (q - z) * s.
  GPTQ (quant_method "gptq"): AutoGPTQ's QuantLinear.pack (auto_gptq/nn_modules/qlinear/
      qlinear_cuda_old.py), GPTQModel's "gptq" (v1) and "gptq_v2" formats: qweight int32
      [in/pf, out] packed along the inputs (pf = 32/bits, input pf*r + j in bits*j..);
      qzeros int32 [groups, out/pf] packed along the outputs, stored minus one in v1;
      scales fp16 [groups, out]; g_idx int32 [in] (desc_act: act-order); w = (q - z) * s.
  compressed-tensors "pack-quantized" (W4A16 / W8A16): compressed-tensors' pack_to_int32
      (compressors/quantized_compressors/pack_quantized.py): weight_packed int32 [out, in/pf]
      packed along the inputs, codes = signed value + 2^(bits-1); weight_scale [out, groups]
      (bf16 here); weight_zero_point int32 [out/pf, groups] packed along the outputs (asymmetric
      only); weight_g_idx int32 [in] (actorder "group"); weight_shape int32 [2].

Act-order fixtures permute each layer's input features once (the same permutation for q/k/v and
for gate/up, which share their input, as GPTQ's Hessian order would) and form the groups along
it, so g_idx is a real permutation's groups.

Expected logits: the dequantized weights (computed here in float64 from the stored codes, scales
and zero points) run through make_goldens.py's own float64 reference forward; with transformers
importable (the GPU machine) LlamaForCausalLM on the same dequantized weights must agree (rel err
< 1e-4) and its logits are recorded instead. `--dequant-copies` also writes `<name>_dequant/`,
the same model with the dequantized fp32 weights and no quantization_config (not committed: 2.4 MB).

Usage: python3 tools/make_int4_fixtures.py [--out tests/data/int4] [--dequant-copies]
"""
import argparse
import json
import os
import shutil
import sys
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
PROMPT_LENS = [7, 12]
CONFIG = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64,
              intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
              rms_norm_eps=1e-5)

# name -> (format, bits, group (-1: per channel), symmetric, act_order, extra)
FIXTURES = {
    "awq_g32": ("awq", 4, 32, False, False, {}),
    "awq_g64": ("awq", 4, 64, False, False, {}),
    "gptq_g32_actorder": ("gptq", 4, 32, False, True, {"checkpoint_format": "gptq"}),
    "gptq_g64_sym": ("gptq", 4, 64, True, False, {"checkpoint_format": "gptq"}),
    "gptq_channel_v2": ("gptq", 4, -1, False, False, {"checkpoint_format": "gptq_v2"}),
    "gptq_8bit_g32": ("gptq", 8, 32, False, True, {"checkpoint_format": "gptq"}),
    "ct_group_actorder": ("ct", 4, 32, True, True, {}),
    "ct_channel_asym": ("ct", 4, -1, False, False, {}),
}


def to_f16(x):
    return x.astype(np.float16).astype(np.float64)


def to_bf16(x):
    return torch.tensor(x, dtype=torch.float64).to(torch.bfloat16).to(torch.float64).numpy()


def quantize(w, bits, group, sym, g_idx, scale_round):
    """Round-to-nearest per group. w [out, in] float64; g_idx [in] group of each input.
    -> q [out, in] uint codes, scales [G, out], zeros [G, out] (codes), both as stored."""
    out_f, in_f = w.shape
    G = int(g_idx.max()) + 1
    maxq = 2 ** bits - 1
    q = np.zeros((out_f, in_f), dtype=np.int64)
    scales = np.zeros((G, out_f))
    zeros = np.zeros((G, out_f), dtype=np.int64)
    for g in range(G):
        cols = np.nonzero(g_idx == g)[0]
        blk = w[:, cols]
        if sym:
            amax = np.maximum(np.abs(blk).max(axis=1), 1e-8)
            s = scale_round(2 * amax / maxq)
            z = np.full(out_f, 2 ** (bits - 1))
        else:
            lo, hi = np.minimum(blk.min(axis=1), 0), np.maximum(blk.max(axis=1), 0)
            s = scale_round(np.maximum(hi - lo, 1e-8) / maxq)
            z = np.clip(np.round(-lo / s), 0, maxq).astype(np.int64)
        q[:, cols] = np.clip(np.round(blk / s[:, None]) + z[:, None], 0, maxq)
        scales[g], zeros[g] = s, z
    return q, scales, zeros


def dequantize(q, scales, zeros, g_idx):
    return (q - zeros[g_idx].T) * scales[g_idx].T


def pack_rows(v, bits, order=None):
    """[R, C] codes -> uint32 [R, C * bits / 32], packed along the columns (nibble i of word w
    holds column pf*w + order[i])."""
    pf = 32 // bits
    R, C = v.shape
    order = order or list(range(pf))
    out = np.zeros((R, C // pf), dtype=np.uint32)
    for i in range(pf):
        out |= (v[:, [w * pf + order[i] for w in range(C // pf)]].astype(np.uint32) & (2 ** bits - 1)) << (bits * i)
    return out


def write_awq(name, q, s, z, group):
    """AWQ GEMM: [in, out/8] along the outputs in AWQ_ORDER."""
    return {name + ".qweight": pack_rows(q.T, 4, AWQ_ORDER).view(np.int32),
            name + ".qzeros": pack_rows(z, 4, AWQ_ORDER).view(np.int32),
            name + ".scales": s.astype(np.float16)}


def write_gptq(name, q, s, z, bits, g_idx, v1):
    zs = (z - 1) % (2 ** bits) if v1 else z  # v1: stored minus one, masked to `bits` bits
    return {name + ".qweight": pack_rows(q, bits).T.copy().view(np.int32),  # [in/pf, out]
            name + ".qzeros": pack_rows(zs, bits).view(np.int32),
            name + ".scales": s.astype(np.float16),
            name + ".g_idx": g_idx.astype(np.int32)}


def write_ct(name, q, s, z, bits, sym, g_idx, act_order):
    out_f, in_f = q.shape
    t = {name + ".weight_packed": pack_rows(q, bits).view(np.int32),
         name + ".weight_scale": torch.tensor(s.T.copy()).to(torch.bfloat16),
         name + ".weight_shape": np.array([out_f, in_f], dtype=np.int32)}
    if not sym:
        t[name + ".weight_zero_point"] = pack_rows(z, bits).T.copy().view(np.int32)  # [out/pf, G]
    if act_order:
        t[name + ".weight_g_idx"] = g_idx.astype(np.int32)
    return t


def quant_config(fmt, bits, group, sym, act_order, extra):
    if fmt == "awq":
        return {"quant_method": "awq", "bits": bits, "group_size": group, "zero_point": True,
                "version": "gemm", "modules_to_not_convert": None}
    if fmt == "gptq":
        return dict({"quant_method": "gptq", "bits": bits, "group_size": group, "desc_act": act_order,
                     "sym": sym, "static_groups": False, "true_sequential": True,
                     "damp_percent": 0.01, "lm_head": False}, **extra)
    return {"quant_method": "compressed-tensors", "format": "pack-quantized",
            "quantization_status": "compressed", "kv_cache_scheme": None, "ignore": ["lm_head"],
            "config_groups": {"group_0": {
                "targets": ["Linear"], "input_activations": None, "output_activations": None,
                "weights": {"num_bits": bits, "type": "int", "symmetric": sym, "dynamic": False,
                            "strategy": "group" if group > 0 else "channel",
                            "group_size": group if group > 0 else None,
                            "block_structure": None,
                            "actorder": "group" if act_order else None, "observer": "minmax"}}}}


def save(path, tensors):
    """safetensors with F32 / F16 / BF16 / I32 tensors (torch or numpy)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = (t if isinstance(t, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(t))).contiguous()
        dt = {torch.float32: "F32", torch.float16: "F16", torch.int32: "I32",
              torch.bfloat16: "BF16"}[t.dtype]
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hs = json.dumps(header, separators=(",", ":")).encode()
    hs += b" " * ((8 - len(hs) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hs).to_bytes(8, "little"))
        f.write(hs)
        for b in blobs:
            f.write(b)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "int4"))
    ap.add_argument("--dequant-copies", action="store_true")
    a = ap.parse_args()
    try:
        import transformers
        have_tf = True
    except ImportError:
        have_tf = False
    mg.MODELS["int4_llama"] = CONFIG
    c = mg.full_config("int4_llama")
    gen = torch.Generator().manual_seed(mg.SEED + zlib.crc32(b"int4_llama") % 100003)
    w = {k: v.double() for k, v in mg.make_weights(c, gen).items()}
    # The unquantized tensors as the checkpoints store them (fp16).
    for k in w:
        if not any(f".{p}." in k for p in LINEAR):
            w[k] = w[k].half().double()
    prompts = [torch.randint(3, c["vocab_size"], (n,), generator=gen).tolist() for n in PROMPT_LENS]
    perm_gen = np.random.default_rng(28)
    reference = (f"transformers {transformers.__version__} on the dequantized weights" if have_tf
                 else f"tools/make_goldens.py own float64 implementation on the dequantized weights "
                      f"(torch {torch.__version__}); transformers was not available")
    for name, (fmt, bits, group, sym, act_order, extra) in FIXTURES.items():
        qt, dq = {}, dict(w)
        perms = {}
        for k, v in w.items():
            if not any(f".{p}." in k for p in LINEAR):
                qt[k] = v.half()
                continue
            base = k[: -len(".weight")]
            wt = v.numpy()
            in_f = wt.shape[1]
            g = group if group > 0 else in_f
            if act_order:
                key = (k.split(".")[2], "qkv" if any(p in k for p in ("q_proj", "k_proj", "v_proj"))
                       else "gu" if any(p in k for p in ("gate_proj", "up_proj")) else base)
                if key not in perms:
                    perms[key] = perm_gen.permutation(in_f)
                g_idx = np.empty(in_f, dtype=np.int64)
                g_idx[perms[key]] = np.arange(in_f) // g
            else:
                g_idx = np.arange(in_f) // g
            rnd = to_bf16 if fmt == "ct" else to_f16
            q, s, z = quantize(wt, bits, g, sym, g_idx, rnd)
            if fmt == "gptq" and extra["checkpoint_format"] == "gptq":
                # v1 as readers see it: (z - 1) masked to `bits` bits, plus one (a zero point of 0
                # reads back as 2^bits: AutoGPTQ's off-by-one, kept by every v1 reader).
                z = ((z - 1) & (2 ** bits - 1)) + 1
            dq[k] = torch.tensor(dequantize(q, s, z, g_idx))
            if fmt == "awq":
                qt.update(write_awq(base, q, s, z, g))
            elif fmt == "gptq":
                qt.update(write_gptq(base, q, s, z, bits, g_idx, extra["checkpoint_format"] == "gptq"))
            else:
                qt.update(write_ct(base, q, s, z, bits, sym, g_idx, act_order))
        d = os.path.join(a.out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        cfg = dict(c, torch_dtype="float16", quantization_config=quant_config(fmt, bits, group, sym, act_order, extra))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        save(os.path.join(d, "model.safetensors"), qt)
        logits = [mg.reference_forward(c, dq, p) for p in prompts]
        if have_tf:
            from transformers import AutoConfig, AutoModelForCausalLM
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**c), torch_dtype=torch.float32,
                                                     attn_implementation="eager")
            model.load_state_dict({k: v.float() for k, v in dq.items()}, strict=True)
            model.eval()
            with torch.no_grad():
                tf = [model(torch.tensor([p])).logits[0].double() for p in prompts]
            for x, y in zip(tf, logits):
                rel = float((x - y).norm() / y.norm())
                print(f"  {name}: transformers vs own implementation rel err {rel:.2e}")
                assert rel < 1e-4, f"own implementation disagrees with transformers ({rel})"
            logits = tf
        gold = {}
        for i, p in enumerate(prompts):
            gold[f"prompt{i}.ids"] = torch.tensor(p, dtype=torch.int32)
            gold[f"prompt{i}.logits"] = logits[i].float().contiguous()
        save(os.path.join(d, "golden.safetensors"), gold)
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump({"reference": reference, "prompts": len(prompts)}, f, indent=2)
        if a.dequant_copies:
            dd = d + "_dequant"
            shutil.rmtree(dd, ignore_errors=True)
            os.makedirs(dd)
            with open(os.path.join(dd, "config.json"), "w") as f:
                json.dump(c, f, indent=2, sort_keys=True)
            save(os.path.join(dd, "model.safetensors"), {k: v.float() for k, v in dq.items()})
        err = max(float((dq[k] - w[k]).abs().max()) for k in w if any(f".{p}." in k for p in LINEAR))
        print(f"{name}: {fmt}, {bits} bits, group {group}, sym {sym}, act-order {act_order}; "
              f"largest weight error {err:.3g}")


if __name__ == "__main__":
    main()
