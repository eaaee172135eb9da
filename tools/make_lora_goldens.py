#!/usr/bin/env python3
"""Makes the LoRA goldens under tests/data/lora/ (issue 29): two PEFT adapters on a small base and
the logits transformers + peft compute with each of them.

The base is the `llama3` golden model that tools/make_goldens.py wrote (tests/data/goldens/llama3:
2 layers, hidden 64, GQA, llama3 rope; CI has it already). Two adapters with different ranks and
targets are made with peft (LoraConfig, get_peft_model), their weights drawn from a seeded
generator (peft initialises lora_B to zero, which would make every adapter a no-op), and saved
with `save_pretrained` (adapter_config.json + adapter_model.safetensors, PEFT's published format):

  adapter_a: r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]
  adapter_b: r=16, lora_alpha=32, use_rslora=True, target_modules="all-linear",
             rank_pattern={"layers.1.mlp.down_proj": 4}, alpha_pattern={"o_proj": 8}

For fixed prompts the script records the logits at every prompt position (fp32) of the base model and of
each adapter, and GREEDY_TOKENS greedy tokens continued from one
prompt; that prompt is drawn so that the first tokens of all three win by a clear margin (the GPU's
bf16 must reproduce them). A check of the script: each adapter merged by hand (W + scale B A) into
tools/make_goldens.py's own float64 forward must agree with peft to 1e-4.

Files written under --out (the lead copies them to tests/data/lora/):
  adapter_a/{adapter_config.json,adapter_model.safetensors}, adapter_b/...
  golden.safetensors: prompt{i}.ids (I32), {base,adapter_a,adapter_b}.prompt{i}.logits (F32 [L, V]),
                      {base,adapter_a,adapter_b}.greedy.tokens (I32), greedy.prompt_index (I32 [1])
  golden.json: the reference versions, the adapters' configs, the greedy margins.

Needs torch, transformers and peft (the GPU machine has them); runs on the CPU in seconds.
Usage: python3 tools/make_lora_goldens.py --out DIR [--base tests/data/goldens/llama3]
"""
import argparse
import copy
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens  # noqa: E402  (the own float64 forward, the safetensors writer)

SEED = 2929
PROMPT_LENS = [1, 7, 21, 40]
GREEDY_FROM = 2  # index of the prompt continued greedily
GREEDY_TOKENS = 16
GREEDY_CLEAR_TOKENS, GREEDY_MARGIN, GREEDY_TRIES = 8, 0.3, 200
# The size of an adapter's change relative to the base projection's output (roughly): big enough
# that every logit moves, small enough that the model stays the base's neighbour.
DELTA_GAIN = 0.3

ADAPTERS = {
    "adapter_a": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
    "adapter_b": dict(r=16, lora_alpha=32, use_rslora=True, target_modules="all-linear",
                      rank_pattern={"layers.1.mlp.down_proj": 4},
                      alpha_pattern={"o_proj": 8}),
}


def load_base(base_dir):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    return model


def make_adapter(base, name, gen):
    """A PeftModel of a copy of `base` with adapter `name`'s config and seeded random weights."""
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **ADAPTERS[name])
    model = get_peft_model(copy.deepcopy(base), cfg)
    with torch.no_grad():
        for mod_name, mod in model.named_modules():
            if not hasattr(mod, "lora_A") or "default" not in getattr(mod, "lora_A", {}):
                continue
            a, b = mod.lora_A["default"].weight, mod.lora_B["default"].weight
            r, fan_in = a.shape
            s = float(mod.scaling["default"])
            a.copy_(torch.randn(a.shape, generator=gen) / math.sqrt(fan_in))
            b.copy_(torch.randn(b.shape, generator=gen) * (DELTA_GAIN / (s * math.sqrt(r))))
    model.eval()
    return model


def merged_weights(base_w, peft_model):
    """The base weights with every LoRA module merged by hand: W + scaling * B @ A (float64)."""
    w = {k: v.double() for k, v in base_w.items()}
    for mod_name, mod in peft_model.named_modules():
        if not hasattr(mod, "lora_A") or "default" not in getattr(mod, "lora_A", {}):
            continue
        # "base_model.model.model.layers.0.self_attn.q_proj" -> "model.layers.0.self_attn.q_proj"
        key = mod_name.split("base_model.model.", 1)[1] + ".weight"
        a = mod.lora_A["default"].weight.double()
        b = mod.lora_B["default"].weight.double()
        w[key] = w[key] + float(mod.scaling["default"]) * (b @ a)
    return w


def logits_of(model, prompts):
    with torch.no_grad():
        return [model(torch.tensor([p])).logits[0].float().contiguous() for p in prompts]


def greedy_margin(model, ids, n):
    out, worst = list(ids), float("inf")
    with torch.no_grad():
        for _ in range(n):
            last = model(torch.tensor([out])).logits[0, -1].double()
            top = last.topk(2).values
            worst = min(worst, float(top[0] - top[1]))
            out.append(int(last.argmax()))
    return worst


def greedy(model, ids):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=GREEDY_TOKENS,
                             min_new_tokens=GREEDY_TOKENS, eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default=os.path.join(here, "..", "tests", "data", "goldens", "llama3"))
    args = ap.parse_args()
    try:
        import peft
        import transformers
        from safetensors.torch import load_file
    except ImportError as e:
        sys.exit(f"make_lora_goldens: needs transformers, peft and safetensors ({e})")
    reference = (f"transformers {transformers.__version__} + peft {peft.__version__} "
                 f"(torch {torch.__version__})")
    print("reference:", reference)
    with open(os.path.join(args.base, "config.json")) as f:
        base_cfg = json.load(f)
    vocab = base_cfg["vocab_size"]
    base_w = load_file(os.path.join(args.base, "model.safetensors"))
    base = load_base(args.base)
    gen = torch.Generator().manual_seed(SEED)
    models = {"base": base}
    for name in ADAPTERS:
        models[name] = make_adapter(base, name, gen)

    prompts = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in PROMPT_LENS]
    # The greedy prompt: the first tokens of the base and of both adapters clear of near-ties.
    best, best_margin = None, -1.0
    for _ in range(GREEDY_TRIES):
        p = torch.randint(3, vocab, (PROMPT_LENS[GREEDY_FROM],), generator=gen).tolist()
        m = min(greedy_margin(mdl, p, GREEDY_CLEAR_TOKENS) for mdl in models.values())
        if m > best_margin:
            best, best_margin = p, m
        if m >= GREEDY_MARGIN:
            break
    prompts[GREEDY_FROM] = best

    os.makedirs(args.out, exist_ok=True)
    gold = {f"prompt{i}.ids": torch.tensor(p, dtype=torch.int32) for i, p in enumerate(prompts)}
    gold["greedy.prompt_index"] = torch.tensor([GREEDY_FROM], dtype=torch.int32)
    info = {"reference": reference, "base": "tests/data/goldens/llama3", "prompts": len(prompts),
            "greedy_tokens": GREEDY_TOKENS, "greedy_min_margin_first_8": round(best_margin, 4),
            "adapters": {}}
    for name, model in models.items():
        logits = logits_of(model, prompts)
        for i, l in enumerate(logits):
            gold[f"{name}.prompt{i}.logits"] = l
        toks = greedy(model, prompts[GREEDY_FROM])
        gold[f"{name}.greedy.tokens"] = torch.tensor(toks, dtype=torch.int32)
        if name == "base":
            print(f"  base: greedy {toks}")
            continue
        # The script's check: the hand-merged weights through the own float64 forward.
        w = merged_weights(base_w, model)
        for i, p in enumerate(prompts):
            own = make_goldens.reference_forward(base_cfg, w, p)
            rel = float((logits[i].double() - own).norm() / own.norm())
            assert rel < 1e-4, f"{name} prompt {i}: peft vs the hand-merged forward: {rel:.2e}"
            base_l = gold[f"base.prompt{i}.logits"].double()
            moved = float((logits[i].double() - base_l).norm() / base_l.norm())
            print(f"  {name} prompt {i}: peft vs merged rel err {rel:.2e}, vs base {moved:.3f}")
            assert moved > 1e-2, f"{name} barely changes the logits ({moved})"
        d = os.path.join(args.out, name)
        model.save_pretrained(d, safe_serialization=True)
        readme = os.path.join(d, "README.md")  # peft's model card: not needed
        if os.path.exists(readme):
            os.remove(readme)
        with open(os.path.join(d, "adapter_config.json")) as f:
            info["adapters"][name] = json.load(f)
        print(f"  {name}: greedy {toks}")
    make_goldens.write_safetensors(os.path.join(args.out, "golden.safetensors"), gold)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(args.out) for n in ns)
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
