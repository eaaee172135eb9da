#!/usr/bin/env python3
"""The EAGLE-3 test fixture (issue 26; tests/engine/spec_eagle3_test.cc, run by CTest as the setup
of the `eagle3_head` fixture): a tiny EAGLE-3 head for the demo model, trained for a few CPU
steps by tools/train_spec_heads.py --smoke (about 45 s on 2 cores; skipped when OUT already
holds one), and golden.json: what tools/train_spec_heads.py's own PyTorch code computes for it,
in fp32 from the stored (bf16) weights:

  ids            one token sequence t[0..N)
  aux_layers     the target layers whose input states the head fuses
  aux            the target's states entering those layers at each position, [N, 3H]
  step0_logits   the head's first-step logits at each position i (fed t[i + 1], 0 past the end,
                 and fc(aux[i])), [N, draft_vocab]
  step1_logits, step2_logits
                 the next two draft steps of the last position (fed token 0 and the previous
                 step's output, at positions N and N + 1), [draft_vocab] each
  d2t            the head's draft -> target id offsets

Without PyTorch the script says so and exits 0 (the C++ tests then skip).

Usage: python3 tools/eagle3_test_fixture.py --target models/demo --out DIR
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default=os.path.join(HERE, "..", "models", "demo"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP: no PyTorch for", sys.executable, "(the EAGLE-3 tests skip)")
        return 0
    sys.path.insert(0, HERE)
    import train_spec_heads as t
    import torch

    head = os.path.join(args.out, "head")
    if not os.path.exists(os.path.join(head, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(HERE, "train_spec_heads.py"), "--target",
                        args.target, "--device", "cpu", "--smoke", "--out-draft",
                        os.path.join(args.out, "draft"), "--out-eagle3", head], check=True)
    with open(os.path.join(args.target, "config.json")) as f:
        tc = json.load(f)
    with open(os.path.join(head, "config.json")) as f:
        hc = json.load(f)
    tp = {k: v.float() for k, v in
          t.read_safetensors(os.path.join(args.target, "model.safetensors")).items()}
    raw = t.read_safetensors(os.path.join(head, "model.safetensors"))
    e = {k: v.float() for k, v in raw.items() if k not in ("d2t", "t2d")}
    layers = hc["eagle_config"]["eagle_aux_hidden_state_layer_ids"]
    ids = torch.tensor([[0, 17, 250, 1000, 33, 7, 99]], dtype=torch.long)
    with torch.no_grad():
        _, aux = t.llama_forward(tc, tp, ids, tuple(layers))
        outs = t.eagle3_unroll(tc, tp["model.embed_tokens.weight"], e, ids, aux, 3)
        eps = tc.get("rms_norm_eps", 1e-5)
        logits = [t.rms_norm(o, e["norm.weight"], eps) @ e["lm_head.weight"].t() for o in outs]
    golden = {
        "ids": ids[0].tolist(),
        "aux_layers": layers,
        "aux": torch.cat(aux, dim=-1)[0].flatten().tolist(),
        "step0_logits": logits[0][0].flatten().tolist(),
        "step1_logits": logits[1][0, -1].tolist(),
        "step2_logits": logits[2][0, -1].tolist(),
        "d2t": raw["d2t"].tolist(),
        "draft_vocab": int(e["lm_head.weight"].shape[0]),
        "hidden": int(tc["hidden_size"]),
    }
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(golden, f)
    print("wrote", os.path.join(args.out, "golden.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
