#!/usr/bin/env python3
"""How far a bf16 pipeline alone puts a gpt-oss golden from its fp64 reference.

Recomputes tests/data/goldens/gpt_oss{,_mxfp4} in pure Python (no numpy or torch needed): once in
float64 (it reproduces golden.safetensors to ~1e-7), once with values rounded to bf16 where the
CUDA backend rounds them. Prints each prompt's relative logit error (the CudaGoldens measure), the
smallest gaps between the k-th and the next router logit, the experts that bf16 chooses otherwise
and, with --greedy, the first 8 greedy tokens of the golden's greedy prompts under bf16
(teacher-forced on the reference tokens).

Rounding points (all on by default; --skip drops some, to see what each costs):
  W      linear weights and the embedding in bf16 (norm weights, biases and sinks stay fp32)
  A      every activation after its op (norms, q/k/v, rope, MoE activation, MoE output)
  BIAS2  a biased linear's GEMM output rounded before its fp32 bias is added (and after)
  ATT    the attention output
  RES    the residual stream
  LOG    the router logits (moe_topk reads bf16)
  Y      each expert's output before the weighted sum (moe.cu rounds it; the old fused_moe.cu
         kept it in fp32)
--bug injects a mistake (WIN: window + 1, SINK2: sink counted twice, YARNATT: no YaRN attention
factor, LIMIT: SwiGLU limit 8, ALPHA: alpha 1.8, ZERO: MXFP4 experts all zero, which the placement
race in cuda_moe.cc produced: 1.361, the H100's 1.36) to size the errors real bugs make.

Usage: tools/gpt_oss_bf16_emulation.py tests/data/goldens/gpt_oss_mxfp4 [--skip Y] [--greedy]
"""
import argparse
import json
import math
import struct

ROUNDING = ("W", "A", "BIAS2", "ATT", "RES", "LOG", "Y")
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def read_safetensors(path):
    """name -> (shape, flat list of values) for F32 / BF16 / I32 / U8 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        kind = info["dtype"]
        if kind == "F32":
            vals = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        elif kind == "I32":
            vals = list(struct.unpack("<%di" % (len(raw) // 4), raw))
        elif kind == "BF16":
            vals = [f32_of_bits(u << 16) for u in struct.unpack("<%dH" % (len(raw) // 2), raw)]
        elif kind == "U8":
            vals = list(raw)
        else:
            raise SystemExit(f"{name}: dtype {kind} not handled")
        out[name] = (info["shape"], vals)
    return out


def f32_of_bits(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def to_bf16(x):
    """Round to nearest even bf16 (finite values)."""
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    return f32_of_bits(((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16)


def rows(shape, vals):
    width = len(vals) // shape[0]
    return [vals[i * width:(i + 1) * width] for i in range(shape[0])]


def matvec(m, x):
    return [sum(a * b for a, b in zip(row, x)) for row in m]


class GptOss:
    def __init__(self, model_dir, rounding, bugs):
        self.c = c = json.load(open(model_dir + "/config.json"))
        self.rounding, self.bugs = set(rounding), set(bugs)
        self.w = read_safetensors(model_dir + "/model.safetensors")
        self.H, self.F = c["hidden_size"], c["intermediate_size"]
        self.nh, self.nkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c.get("head_dim") or self.H // self.nh
        self.E, self.K = c["num_local_experts"], c["num_experts_per_tok"]
        self.inv_freq, self.att_factor = self.yarn()
        if "YARNATT" in self.bugs:
            self.att_factor = 1.0
        self.limit = 8.0 if "LIMIT" in self.bugs else c.get("swiglu_limit", 7.0)
        self.alpha = 1.8 if "ALPHA" in self.bugs else c.get("swiglu_alpha", 1.702)

    def r(self, point, v):
        return [to_bf16(t) for t in v] if point in self.rounding else v

    def weight(self, name):
        shape, vals = self.w[name]
        return rows(shape, self.r("W", vals))

    def vec(self, name):
        return self.w[name][1]

    def yarn(self):
        c, hd = self.c, self.hd
        rp = dict(c.get("rope_parameters") or c.get("rope_scaling"))
        base = rp.get("rope_theta", c.get("rope_theta"))
        factor, omax = rp["factor"], rp["original_max_position_embeddings"]

        def corr(rot):
            return hd * math.log(omax / (rot * 2 * math.pi)) / (2 * math.log(base))

        low, high = corr(rp.get("beta_fast", 32.0)), corr(rp.get("beta_slow", 1.0))
        if rp.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, hd - 1)
        if low == high:
            high += 0.001
        inv = []
        for i in range(hd // 2):
            ramp = min(max((i - low) / (high - low), 0.0), 1.0)
            pf = base ** (2 * i / hd)
            inv.append(to_f32(1.0 / (factor * pf) * ramp + 1.0 / pf * (1 - ramp)))
        return inv, 0.1 * math.log(factor) + 1.0

    def rms(self, x, w):
        s = math.sqrt(sum(t * t for t in x) / len(x) + self.c["rms_norm_eps"])
        return self.r("A", [wi * t / s for wi, t in zip(w, x)])

    def linear(self, m, bias, x):
        y = matvec(m, x)
        if bias is not None:
            y = [a + b for a, b in zip(self.r("BIAS2", y), bias)]
        return self.r("A", y)

    def rope(self, v, pos, heads):
        out, hd = list(v), self.hd
        for h in range(heads):
            for i in range(hd // 2):
                ang = to_f32(pos * self.inv_freq[i])  # fp32 product, as transformers
                cs, sn = math.cos(ang) * self.att_factor, math.sin(ang) * self.att_factor
                x1, x2 = v[h * hd + i], v[h * hd + i + hd // 2]
                out[h * hd + i] = x1 * cs - x2 * sn
                out[h * hd + i + hd // 2] = x2 * cs + x1 * sn
        return self.r("A", out)

    def forward(self, ids):
        """(logits [L][V], routing [(layer, token, chosen experts, k-th minus next logit)])."""
        H, F, E, K, hd = self.H, self.F, self.E, self.K, self.hd
        L = len(ids)
        emb = self.weight("model.embed_tokens.weight")
        h = [list(emb[t]) for t in ids]
        routing = []
        for li in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{li}."
            sa = p + "self_attn."
            window = self.c["sliding_window"] if li % 2 == 0 else None  # even layers slide
            if window and "WIN" in self.bugs:
                window += 1
            x = [self.rms(t, self.vec(p + "input_layernorm.weight")) for t in h]
            proj = {n: (self.weight(sa + n + ".weight"), self.vec(sa + n + ".bias"))
                    for n in ("q_proj", "k_proj", "v_proj", "o_proj")}
            q = [self.rope(self.linear(*proj["q_proj"], t), i, self.nh) for i, t in enumerate(x)]
            k = [self.rope(self.linear(*proj["k_proj"], t), i, self.nkv) for i, t in enumerate(x)]
            v = [self.linear(*proj["v_proj"], t) for t in x]
            sinks = self.vec(sa + "sinks")
            sink_count = 2 if "SINK2" in self.bugs else 1
            for t in range(L):
                keys = [j for j in range(t + 1) if window is None or j > t - window]
                o = []
                for hh in range(self.nh):
                    kh = hh // (self.nh // self.nkv)
                    qh = q[t][hh * hd:(hh + 1) * hd]
                    s = [sum(a * b for a, b in zip(qh, k[j][kh * hd:(kh + 1) * hd])) / math.sqrt(hd)
                         for j in keys]
                    m = max(max(s), sinks[hh])
                    e = [math.exp(a - m) for a in s]
                    den = sum(e) + sink_count * math.exp(sinks[hh] - m)
                    o += [sum(a * v[j][kh * hd + i] for a, j in zip(e, keys)) / den
                          for i in range(hd)]
                o = self.r("ATT", o)
                h[t] = self.r("RES", [a + b for a, b in zip(h[t], self.linear(*proj["o_proj"], o))])
            mlp = p + "mlp."
            router = self.weight(mlp + "router.weight")
            w13, w2 = self.experts(mlp + "experts.")
            b13 = self.vec(mlp + "experts.gate_up_proj_bias")
            b2 = self.vec(mlp + "experts.down_proj_bias")
            for t in range(L):
                xt = self.rms(h[t], self.vec(p + "post_attention_layernorm.weight"))
                logits = matvec(router, xt)
                rbias = self.vec(mlp + "router.bias")
                logits = [a + b for a, b in zip(self.r("BIAS2", logits), rbias)]
                logits = self.r("LOG", logits)
                order = sorted(range(E), key=lambda e: (-logits[e], e))
                chosen = order[:K]
                gap = logits[order[K - 1]] - logits[order[K]]
                routing.append((li, t, tuple(sorted(chosen)), gap))
                top = [math.exp(logits[e] - logits[chosen[0]]) for e in chosen]
                acc = [0.0] * H
                for wt, e in zip(top, chosen):
                    gu = [a + b for a, b in zip(matvec(w13[e], xt), b13[e * 2 * F:(e + 1) * 2 * F])]
                    act = []
                    for f in range(F):  # interleaved: gate 2f, up 2f + 1
                        g = min(gu[2 * f], self.limit)
                        u = min(max(gu[2 * f + 1], -self.limit), self.limit)
                        act.append((u + 1) * g / (1 + math.exp(-self.alpha * g)))
                    y = matvec(w2[e], self.r("A", act))
                    y = [a + b for a, b in zip(y, b2[e * H:(e + 1) * H])]
                    y = self.r("Y", y)
                    acc = [a + wt / sum(top) * b for a, b in zip(acc, y)]
                h[t] = self.r("RES", [a + b for a, b in zip(h[t], self.r("A", acc))])
        head = self.weight("lm_head.weight")
        return [matvec(head, self.rms(t, self.vec("model.norm.weight"))) for t in h], routing

    def experts(self, prefix):
        """w13 [E][2F][H] (gate/up rows interleaved) and w2 [E][H][F], output-major."""
        E, H, F = self.E, self.H, self.F
        if prefix + "gate_up_proj_blocks" in self.w:  # MXFP4: exact in bf16, never rounded
            return (self.mxfp4(prefix + "gate_up_proj", 2 * F, H),
                    self.mxfp4(prefix + "down_proj", H, F))
        # bf16, input-major ([E, in, out]: x @ W)
        gu, dn = self.vec(prefix + "gate_up_proj"), self.vec(prefix + "down_proj")
        w13 = [[[gu[(e * H + i) * 2 * F + o] for i in range(H)] for o in range(2 * F)]
               for e in range(E)]
        w2 = [[[dn[(e * F + i) * H + o] for i in range(F)] for o in range(H)] for e in range(E)]
        return w13, w2

    def mxfp4(self, name, out_f, in_f):
        if "ZERO" in self.bugs:
            return [[[0.0] * in_f for _ in range(out_f)] for _ in range(self.E)]
        blocks, scales = self.w[name + "_blocks"][1], self.w[name + "_scales"][1]
        groups = in_f // 32
        out = []
        for e in range(self.E):
            mat = []
            for o in range(out_f):
                row = []
                for g in range(groups):
                    s = 2.0 ** (scales[(e * out_f + o) * groups + g] - 127)
                    base = ((e * out_f + o) * groups + g) * 16
                    for byte in blocks[base:base + 16]:
                        row += [E2M1[byte & 15] * s, E2M1[byte >> 4] * s]
                mat.append(row)
            out.append(mat)
        return out


def rel_err(got, ref):
    flat = [a for row in got for a in row]
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(flat, ref)) / sum(b * b for b in ref))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("golden_dir")
    ap.add_argument("--skip", default="", help="rounding points to leave out, comma-separated")
    ap.add_argument("--bug", default="", help="mistakes to inject, comma-separated")
    ap.add_argument("--greedy", action="store_true")
    a = ap.parse_args()
    skip = {s for s in a.skip.split(",") if s}
    bugs = {s for s in a.bug.split(",") if s}
    gold = read_safetensors(a.golden_dir + "/golden.safetensors")
    exact = GptOss(a.golden_dir, (), bugs)
    bf16 = GptOss(a.golden_dir, [p for p in ROUNDING if p not in skip], bugs)
    worst = 0.0
    for i in range(100):
        if f"prompt{i}.ids" not in gold:
            break
        ids, ref = gold[f"prompt{i}.ids"][1], gold[f"prompt{i}.logits"][1]
        l64, r64 = exact.forward(ids)
        l16, r16 = bf16.forward(ids)
        err = rel_err(l16, ref)
        worst = max(worst, err)
        flips = [(x[0], x[1]) for x, y in zip(r64, r16) if x[2] != y[2]]
        gaps = sorted(r64, key=lambda x: x[3])[:2]
        print(f"prompt {i} ({len(ids)} tokens): fp64 {rel_err(l64, ref):.1e}, bf16 {err:.3e}; "
              "smallest router gaps (layer, token, gap) "
              + ", ".join(f"({g[0]}, {g[1]}, {g[3]:.4f})" for g in gaps)
              + f"; bf16 routes otherwise at (layer, token) {flips}")
    print(f"max bf16 rel err {worst:.3e} (rounding {','.join(sorted(bf16.rounding))})")
    if not a.greedy:
        return
    for j in range(100):
        if f"greedy{j}.tokens" not in gold:
            break
        pi = gold[f"greedy{j}.prompt_index"][1][0]
        seq, want = list(gold[f"prompt{pi}.ids"][1]), gold[f"greedy{j}.tokens"][1][:8]
        got = []
        for tok in want:
            last = bf16.forward(seq)[0][-1]
            got.append(max(range(len(last)), key=lambda v: last[v]))
            seq.append(tok)
        print(f"greedy {j} (prompt {pi}): bf16 {got}, reference {want}: "
              + ("same" if got == want else "DIFFERENT"))


if __name__ == "__main__":
    main()
