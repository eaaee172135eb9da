#!/usr/bin/env python3
"""Trains speculative-decoding proposers for the demo model (issue 26): a small draft model that
shares the demo model's tokenizer (`--speculative-config '{"method": "draft_model", ...}'`) and,
with --out-eagle3, an EAGLE-3 head in the published layout (`--speculative-config '{"method":
"eagle3", ...}'`; docs/speculative.md).

Data: sequences sampled from the target itself (--num-sequences of --seq-len tokens) (from <|begin_of_text|>, half at temperature 1,
half at 0.7), so no corpus is needed and what the draft learns is exactly the distribution it must
guess (self-distillation, as the draft models of DistillSpec / vLLM's recipes are trained). With
`--corpus DIR` (scripts/fetch-demo-corpus.sh's folder; needs Hugging Face `tokenizers`) the first
tokens of corpus lines are used as prompts of the sampled sequences instead.

Training: loss = KL(p_target || q_draft) over every position of the sampled sequences (the
target's logits computed on the fly), AdamW, warm-up + cosine, for --seconds each (default 75:
draft and head together stay under 3 minutes on one H100) or --steps.

EAGLE-3 head (--out-eagle3 DIR; the layout of vLLM's llama_eagle3.py / SpecForge checkpoints):
config LlamaForCausalLMEagle3 with draft_vocab_size (--draft-vocab most frequent tokens of the
sampled data) and eagle_config.eagle_aux_hidden_state_layer_ids = (2, L // 2, L - 3) (the residual
stream entering those target layers, vLLM's and EAGLE's default); tensors fc.weight [H, 3H],
midlayer.* (q/k/v_proj over concat(input_layernorm(embedding of the next token),
hidden_norm(hidden)) of width 2H, o_proj, mlp, post_attention_layernorm), norm.weight,
lm_head.weight [draft_vocab, H], d2t (target id = draft id + d2t[draft id]) and t2d (bool [vocab]);
no embed_tokens (the target's is used, as in published heads). Trained with KL to the target's
distribution restricted to the draft vocabulary, unrolled --ttt-steps steps on its own outputs
(EAGLE-3's training-time test; step s weighted 0.8^s).

Output (--out-draft DIR): config.json (LlamaForCausalLM, tied embeddings), model.safetensors
(bf16, < 5 MB), the target's tokenizer.json, tokenizer_config.json and generation_config.json
(inferd checks that a draft's vocabulary is the target's), training_summary.json (settings, loss,
and the draft's agreement with the target on held-out sampled sequences: greedy top-1 agreement
and the expected acceptance sum_x min(p, q) at temperature 1).

The model code is this file's own PyTorch Llama (RMSNorm, RoPE "default", grouped-query
attention, SwiGLU), reading and writing safetensors by hand: it runs with Debian's PyTorch alone.

Usage (the lead runs the first on the GPU machine; the second is a CPU smoke test of a few steps):
  python3 tools/train_spec_heads.py --target models/demo --device cuda --out-draft models/demo-draft \
      --out-eagle3 models/demo-eagle3
  python3 tools/train_spec_heads.py --target models/demo --device cpu --smoke --out-draft /tmp/dd \
      --out-eagle3 /tmp/ee
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("error: tools/train_spec_heads.py needs PyTorch and numpy")

# ---- safetensors (https://github.com/huggingface/safetensors: 8-byte header length, JSON header,
# raw little-endian data) ------------------------------------------------------------------------

_DTYPES = {"F32": (np.float32, torch.float32), "F16": (np.float16, torch.float16),
           "BF16": (np.int16, torch.bfloat16), "I32": (np.int32, torch.int32),
           "I64": (np.int64, torch.int64), "BOOL": (np.bool_, torch.bool)}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        npdt, tdt = _DTYPES[h["dtype"]]
        a, b = h["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=npdt).reshape(h["shape"]).copy()
        t = torch.from_numpy(arr)
        out[name] = t.view(torch.bfloat16) if tdt == torch.bfloat16 else t
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
             torch.bool: "BOOL"}
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        elif t.dtype == torch.bool:
            raw = t.to(torch.uint8).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
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


# ---- a Llama forward ------------------------------------------------------------------------


def head_dim_of(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def rope_cos_sin(c, T, device):
    d = head_dim_of(c)
    theta = c.get("rope_theta") or c.get("rope_parameters", {}).get("rope_theta", 10000.0)
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
    f = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rms_norm(x, w, eps):
    v = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(v + eps)).to(x.dtype) * w


def attention(c, p, pre, x, cos, sin):
    B, T, _ = x.shape
    nh, nkv, d = c["num_attention_heads"], c["num_key_value_heads"], head_dim_of(c)
    q = (x @ p[pre + "self_attn.q_proj.weight"].t()).view(B, T, nh, d).transpose(1, 2)
    k = (x @ p[pre + "self_attn.k_proj.weight"].t()).view(B, T, nkv, d).transpose(1, 2)
    v = (x @ p[pre + "self_attn.v_proj.weight"].t()).view(B, T, nkv, d).transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(nh // nkv, dim=1)
    v = v.repeat_interleave(nh // nkv, dim=1)
    mask = torch.full((T, T), float("-inf"), device=x.device).triu(1)
    a = torch.softmax((q @ k.transpose(-1, -2)).float() / math.sqrt(d) + mask, dim=-1).to(v.dtype)
    o = (a @ v).transpose(1, 2).reshape(B, T, nh * d)
    return o @ p[pre + "self_attn.o_proj.weight"].t()


def mlp(p, pre, x):
    g = x @ p[pre + "mlp.gate_proj.weight"].t()
    u = x @ p[pre + "mlp.up_proj.weight"].t()
    return (F.silu(g) * u) @ p[pre + "mlp.down_proj.weight"].t()


def llama_forward(c, p, ids, aux_layers=()):
    """Logits [B, T, V] of a LlamaForCausalLM with weights `p` (HF names); with aux_layers, also
    the residual stream entering each of those layers (EAGLE-3's auxiliary hidden states)."""
    eps = c.get("rms_norm_eps", 1e-5)
    x = p["model.embed_tokens.weight"][ids]
    cos, sin = rope_cos_sin(c, ids.shape[1], ids.device)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    aux = []
    for i in range(c["num_hidden_layers"]):
        aux += [x] * sum(1 for a in aux_layers if a == i)
        pre = f"model.layers.{i}."
        x = x + attention(c, p, pre, rms_norm(x, p[pre + "input_layernorm.weight"], eps), cos, sin)
        x = x + mlp(p, pre, rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps))
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p.get("lm_head.weight", p["model.embed_tokens.weight"])
    logits = (x @ head.t()).float()
    return (logits, aux) if aux_layers else logits


def init_llama(c, gen, device):
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    nh, nkv, d = c["num_attention_heads"], c["num_key_value_heads"], head_dim_of(c)

    def w(*shape):
        return (torch.randn(*shape, generator=gen) * 0.02).to(device).requires_grad_()

    p = {"model.embed_tokens.weight": w(V, H),
         "model.norm.weight": torch.ones(H, device=device, requires_grad=True)}
    for i in range(c["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        p[pre + "self_attn.q_proj.weight"] = w(nh * d, H)
        p[pre + "self_attn.k_proj.weight"] = w(nkv * d, H)
        p[pre + "self_attn.v_proj.weight"] = w(nkv * d, H)
        p[pre + "self_attn.o_proj.weight"] = w(H, nh * d)
        p[pre + "mlp.gate_proj.weight"] = w(I, H)
        p[pre + "mlp.up_proj.weight"] = w(I, H)
        p[pre + "mlp.down_proj.weight"] = w(H, I)
        p[pre + "input_layernorm.weight"] = torch.ones(H, device=device, requires_grad=True)
        p[pre + "post_attention_layernorm.weight"] = torch.ones(H, device=device,
                                                                requires_grad=True)
    return p


# ---- data: sequences sampled from the target ------------------------------------------------


@torch.no_grad()
def sample_sequences(c, p, n, length, bos, gen, device, batch):
    """n sequences of `length` tokens (bos first), half at temperature 1, half at 0.7."""
    out = []
    for b0 in range(0, n, batch):
        m = min(batch, n - b0)
        ids = torch.full((m, 1), bos, dtype=torch.long, device=device)
        temp = torch.where(torch.arange(m, device=device) % 2 == 0, 1.0, 0.7).view(m, 1)
        for _ in range(length - 1):
            logits = llama_forward(c, p, ids)[:, -1, :]
            probs = torch.softmax(logits / temp, dim=-1)
            u = torch.rand(m, 1, generator=gen).to(device)
            nxt = (probs.cumsum(-1) < u).sum(-1, keepdim=True).clamp_max(probs.shape[-1] - 1)
            ids = torch.cat([ids, nxt], dim=1)
        out.append(ids)
    return torch.cat(out, dim=0)


# ---- training -------------------------------------------------------------------------------


def kl_loss(target_logits, draft_logits):
    lp = F.log_softmax(target_logits, dim=-1)
    lq = F.log_softmax(draft_logits, dim=-1)
    return (lp.exp() * (lp - lq)).sum(-1).mean()


@torch.no_grad()
def agreement(tc, tp, dc, dp, data, batch):
    top1, accept, n = 0.0, 0.0, 0
    for b0 in range(0, data.shape[0], batch):
        ids = data[b0:b0 + batch]
        pl = llama_forward(tc, tp, ids)
        ql = llama_forward(dc, dp, ids)
        top1 += (pl.argmax(-1) == ql.argmax(-1)).float().sum().item()
        accept += torch.minimum(pl.softmax(-1), ql.softmax(-1)).sum(-1).sum().item()
        n += ids.numel()
    return top1 / n, accept / n


def train_draft(args, tc, tp, device, gen):
    H = 256 if not args.smoke else 64
    dc = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": H, "intermediate_size": 2 * H, "num_hidden_layers": 2,
        "num_attention_heads": H // 64 if H >= 64 else 1, "num_key_value_heads": 2 if H >= 128 else 1,
        "head_dim": 64, "hidden_act": "silu",
        "max_position_embeddings": tc["max_position_embeddings"],
        "rms_norm_eps": tc.get("rms_norm_eps", 1e-5), "rope_theta": 10000.0,
        "tie_word_embeddings": True, "vocab_size": tc["vocab_size"],
        "bos_token_id": tc.get("bos_token_id", 0), "eos_token_id": tc.get("eos_token_id", 1),
        "attention_bias": False, "mlp_bias": False,
    }
    dp = init_llama(dc, gen, device)
    bos = tc.get("bos_token_id", 0)
    t0 = time.time()
    data = sample_sequences(tc, tp, args.num_sequences, args.seq_len, bos, gen, device,
                            args.gen_batch)
    held = sample_sequences(tc, tp, max(4, args.num_sequences // 32), args.seq_len, bos, gen,
                            device, args.gen_batch)
    gen_s = time.time() - t0
    print(f"sampled {data.shape[0]} + {held.shape[0]} sequences of {args.seq_len} tokens "
          f"in {gen_s:.1f} s", flush=True)
    params = list(dp.values())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    steps = args.steps
    warm = max(1, min(100, steps // 10))
    t1, step, losses = time.time(), 0, []
    while step < steps and (args.seconds <= 0 or time.time() - t1 < args.seconds):
        lr = args.lr * (step + 1) / warm if step < warm else \
            args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, data.shape[0], (args.batch,), generator=gen).to(device)
        ids = data[idx]
        with torch.no_grad():
            pl = llama_forward(tc, tp, ids)
        loss = kl_loss(pl, llama_forward(dc, dp, ids))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % args.log_every == 0:
            print(f"step {step} kl {loss.item():.4f} lr {lr:.2e} {time.time() - t1:.1f} s",
                  flush=True)
        step += 1
    train_s = time.time() - t1
    top1, acc = agreement(tc, tp, dc, dp, held, args.gen_batch)
    print(f"draft: {step} steps in {train_s:.1f} s; held-out top-1 agreement {top1:.3f}, "
          f"expected acceptance at T=1 {acc:.3f}", flush=True)
    summary = {"steps": step, "train_seconds": round(train_s, 1), "sample_seconds": round(gen_s, 1),
               "final_kl": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
               "heldout_top1_agreement": round(top1, 4),
               "heldout_expected_acceptance_t1": round(acc, 4),
               "num_sequences": int(data.shape[0]), "seq_len": args.seq_len,
               "batch": args.batch, "lr": args.lr, "seed": args.seed, "device": str(device),
               "torch": torch.__version__}
    return dc, dp, summary, data, held


# ---- EAGLE-3 head (the published layout: vLLM's llama_eagle3.py, SpecForge, EAGLE) ----------


def eagle3_aux_layers(num_layers):
    """The target layers whose inputs EAGLE-3 fuses: vLLM's / EAGLE's default for Llama."""
    return (2, num_layers // 2, num_layers - 3)


def init_eagle3(tc, draft_vocab, gen, device):
    H, I = tc["hidden_size"], tc["intermediate_size"]
    nh, nkv, d = tc["num_attention_heads"], tc["num_key_value_heads"], head_dim_of(tc)

    def w(*shape):
        return (torch.randn(*shape, generator=gen) * 0.02).to(device).requires_grad_()

    def ones():
        return torch.ones(H, device=device, requires_grad=True)

    m = "midlayer."
    return {"fc.weight": w(H, 3 * H),
            m + "self_attn.q_proj.weight": w(nh * d, 2 * H),
            m + "self_attn.k_proj.weight": w(nkv * d, 2 * H),
            m + "self_attn.v_proj.weight": w(nkv * d, 2 * H),
            m + "self_attn.o_proj.weight": w(H, nh * d),
            m + "mlp.gate_proj.weight": w(I, H), m + "mlp.up_proj.weight": w(I, H),
            m + "mlp.down_proj.weight": w(H, I),
            m + "input_layernorm.weight": ones(), m + "hidden_norm.weight": ones(),
            m + "post_attention_layernorm.weight": ones(),
            "norm.weight": ones(), "lm_head.weight": w(draft_vocab, H)}


def eagle3_unroll(tc, embed, e, ids, aux, steps):
    """The head unrolled `steps` times over every anchor position i at once (training-time test):
    step 0 at position i reads embed(t[i+1]) and fc(aux[i]); step s reads embed(t[i+s+1]) and step
    s-1's output at the same anchor, at position i+s, attending to step 0's keys at positions <= i
    and to steps 1..s of its own anchor. Returns the pre-norm outputs [B, T, H] of each step."""
    eps = tc.get("rms_norm_eps", 1e-5)
    B, T = ids.shape
    nh, nkv, d = tc["num_attention_heads"], tc["num_key_value_heads"], head_dim_of(tc)
    m = "midlayer."
    hid = torch.cat(aux, dim=-1) @ e["fc.weight"].t()
    cos, sin = rope_cos_sin(tc, T + steps, ids.device)
    causal = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
    keys, vals, outs = [], [], []
    for s in range(steps):
        tok = torch.cat([ids[:, s + 1:], ids.new_zeros(B, s + 1)], dim=1)
        x = torch.cat([rms_norm(embed[tok], e[m + "input_layernorm.weight"], eps),
                       rms_norm(hid, e[m + "hidden_norm.weight"], eps)], dim=-1)
        q = (x @ e[m + "self_attn.q_proj.weight"].t()).view(B, T, nh, d).transpose(1, 2)
        k = (x @ e[m + "self_attn.k_proj.weight"].t()).view(B, T, nkv, d).transpose(1, 2)
        v = (x @ e[m + "self_attn.v_proj.weight"].t()).view(B, T, nkv, d).transpose(1, 2)
        c, sn = cos[s:s + T], sin[s:s + T]
        q = q * c + rotate_half(q) * sn
        k = (k * c + rotate_half(k) * sn).repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        keys.append(k)
        vals.append(v)
        scores = [(q @ keys[0].transpose(-1, -2)) / math.sqrt(d) + causal]
        scores += [(q * keys[r]).sum(-1, keepdim=True) / math.sqrt(d) for r in range(1, s + 1)]
        a = torch.softmax(torch.cat(scores, dim=-1), dim=-1)
        o = a[..., :T] @ vals[0]
        for r in range(1, s + 1):
            o = o + a[..., T + r - 1:T + r] * vals[r]
        o = o.transpose(1, 2).reshape(B, T, nh * d) @ e[m + "self_attn.o_proj.weight"].t()
        res = hid + o
        res = res + mlp(e, m, rms_norm(res, e[m + "post_attention_layernorm.weight"], eps))
        outs.append(res)
        hid = res
    return outs


def eagle3_losses(tc, tp, e, ids, steps, draft_ids):
    """Per step: KL(p restricted to the draft vocabulary || head) at the positions that have a
    target, and the head's greedy agreement with the target's argmax there."""
    eps = tc.get("rms_norm_eps", 1e-5)
    with torch.no_grad():
        pl, aux = llama_forward(tc, tp, ids, eagle3_aux_layers(tc["num_hidden_layers"]))
    outs = eagle3_unroll(tc, tp["model.embed_tokens.weight"], e, ids, aux, steps)
    T = ids.shape[1]
    losses, agree = [], []
    for s, out in enumerate(outs):
        n = T - s - 2  # anchors i with a target position i + s + 1 <= T - 1
        if n <= 0:
            break
        ql = rms_norm(out[:, :n], e["norm.weight"], eps) @ e["lm_head.weight"].t()
        tgt = pl[:, s + 1:s + 1 + n]
        lp = F.log_softmax(tgt[..., draft_ids], dim=-1)
        losses.append((lp.exp() * (lp - F.log_softmax(ql.float(), dim=-1))).sum(-1).mean())
        agree.append((draft_ids[ql.argmax(-1)] == tgt.argmax(-1)).float().mean().item())
    return losses, agree


def train_eagle3(args, tc, tp, device, gen, data, held):
    V = tc["vocab_size"]
    counts = torch.bincount(data.flatten().cpu(), minlength=V)
    draft_vocab = min(args.draft_vocab, V)
    draft_ids = counts.argsort(descending=True)[:draft_vocab].sort().values.to(device)
    e = init_eagle3(tc, draft_vocab, gen, device)
    params = list(e.values())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    steps, warm = args.steps, max(1, min(100, args.steps // 10))
    t1, step = time.time(), 0
    while step < steps and (args.seconds <= 0 or time.time() - t1 < args.seconds):
        lr = args.lr * (step + 1) / warm if step < warm else \
            args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, data.shape[0], (args.batch,), generator=gen).to(device)
        losses, agree = eagle3_losses(tc, tp, e, data[idx], args.ttt_steps, draft_ids)
        loss = sum(l * (0.8 ** s) for s, l in enumerate(losses))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % args.log_every == 0:
            print(f"eagle3 step {step} loss {loss.item():.4f} agreement "
                  f"{[round(a, 3) for a in agree]} {time.time() - t1:.1f} s", flush=True)
        step += 1
    train_s = time.time() - t1
    with torch.no_grad():
        _, agree = eagle3_losses(tc, tp, e, held, args.ttt_steps, draft_ids)
    agree = [round(a, 4) for a in agree]
    print(f"eagle3: {step} steps in {train_s:.1f} s; held-out greedy agreement by step {agree}",
          flush=True)
    ids = draft_ids.cpu()
    e["d2t"] = (ids - torch.arange(draft_vocab)).to(torch.int64)
    t2d = torch.zeros(V, dtype=torch.bool)
    t2d[ids] = True
    e["t2d"] = t2d
    H = tc["hidden_size"]
    cfg = {"architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama",
           "hidden_size": H, "intermediate_size": tc["intermediate_size"],
           "num_hidden_layers": 1, "num_attention_heads": tc["num_attention_heads"],
           "num_key_value_heads": tc["num_key_value_heads"], "head_dim": head_dim_of(tc),
           "hidden_act": "silu", "max_position_embeddings": tc["max_position_embeddings"],
           "rms_norm_eps": tc.get("rms_norm_eps", 1e-5),
           # the target's rope, which eagle3_unroll trains the head with
           "rope_theta": tc.get("rope_theta") or
           tc.get("rope_parameters", {}).get("rope_theta", 10000.0),
           "tie_word_embeddings": False, "vocab_size": V, "draft_vocab_size": draft_vocab,
           "target_hidden_size": H, "bos_token_id": tc.get("bos_token_id", 0),
           "eos_token_id": tc.get("eos_token_id", 1),
           "eagle_config": {"use_aux_hidden_state": True,
                            "eagle_aux_hidden_state_layer_ids":
                                list(eagle3_aux_layers(tc["num_hidden_layers"]))}}
    summary = {"steps": step, "train_seconds": round(train_s, 1), "ttt_steps": args.ttt_steps,
               "draft_vocab_size": draft_vocab,
               "heldout_greedy_agreement_by_step": agree,
               "aux_layers": list(eagle3_aux_layers(tc["num_hidden_layers"])),
               "embed_tokens": "not stored: the target's (as published heads)"}
    return cfg, e, summary


def save_model(out, cfg, params, target_dir, summary):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(cfg, dtype="bfloat16"), f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(out, "model.safetensors"),
                      {k: v.detach().to(torch.bfloat16) if v.is_floating_point() else v
                       for k, v in params.items()})
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        src = os.path.join(target_dir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(out, name))
    with open(os.path.join(out, "training_summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    print(f"wrote {out} (model.safetensors {size / 1e6:.2f} MB)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="models/demo")
    ap.add_argument("--out-draft", required=True)
    ap.add_argument("--out-eagle3", default="", help="also train an EAGLE-3 head, written here")
    ap.add_argument("--draft-vocab", type=int, default=1024,
                    help="EAGLE-3 draft vocabulary: the most frequent target tokens")
    ap.add_argument("--ttt-steps", type=int, default=3,
                    help="EAGLE-3 training-time test: steps unrolled on the head's own output")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="a few CPU steps on a tiny draft")
    ap.add_argument("--seconds", type=float, default=75.0,
                    help="training time limit of each model (0: none)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--num-sequences", type=int, default=2048)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--gen-batch", type=int, default=512)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.batch, args.num_sequences, args.seq_len = 5, 2, 8, 24
        args.gen_batch, args.log_every, args.seconds = 8, 1, 0
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 weights, TF32 matmuls
    t_start = time.time()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    with open(os.path.join(args.target, "config.json")) as f:
        tc = json.load(f)
    if tc.get("architectures") != ["LlamaForCausalLM"]:
        sys.exit(f"error: {args.target}: this tool trains for LlamaForCausalLM targets, "
                 f"got {tc.get('architectures')}")
    tp = {k: v.to(device=device, dtype=torch.float32)
          for k, v in read_safetensors(os.path.join(args.target, "model.safetensors")).items()}
    dc, dp, summary, data, held = train_draft(args, tc, tp, device, gen)
    summary["target"] = args.target
    summary["smoke"] = args.smoke
    save_model(args.out_draft, dc, dp, args.target, summary)
    if args.out_eagle3:
        ec, e, es = train_eagle3(args, tc, tp, device, gen, data, held)
        es.update(target=args.target, smoke=args.smoke, seed=args.seed, device=str(device),
                  torch=torch.__version__, batch=args.batch, lr=args.lr)
        save_model(args.out_eagle3, ec, e, args.target, es)
    print(f"total {time.time() - t_start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
