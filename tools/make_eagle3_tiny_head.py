#!/usr/bin/env python3
"""Writes tests/data/eagle3_llama3_tiny (issue 26): an EAGLE-3 head with random weights for the
tiny Llama-3 golden model (tests/data/goldens/llama3: hidden 64, 2 layers, vocabulary 320), in the
published layout (LlamaForCausalLMEagle3, fp32, ~0.3 MB), and golden.json: what
tools/train_spec_heads.py's PyTorch definition of the head (eagle3_unroll) computes for it:

  ids            a token sequence t[0..N)
  aux            random target states [N, 3 * 64] (the head's fc input)
  step0_logits   the first draft step at each position i (fed t[i + 1], 0 past the end, and
                 fc(aux[i])), [N, draft_vocab]
  step1_logits, step2_logits
                 the next two steps of the last position (fed token 0 and the step before's
                 output), [draft_vocab] each

The draft vocabulary is 64 of the 320 ids (d2t: target id = draft id + d2t[draft id]). Weights
are drawn at a larger scale than training's init (std 0.2, norms near 1) so that the logits are
far from zero. The C++ tests (tests/engine/spec_eagle3_test.cc on the CPU,
tests/backend/cuda_spec_decode_test.cc on a GPU) read it without PyTorch.

Usage: python3 tools/make_eagle3_tiny_head.py [--out tests/data/eagle3_llama3_tiny]
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default=os.path.join(ROOT, "tests", "data", "goldens", "llama3"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "eagle3_llama3_tiny"))
    ap.add_argument("--seed", type=int, default=26)
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    import torch
    import train_spec_heads as t

    with open(os.path.join(args.target, "config.json")) as f:
        tc = json.load(f)
    tp = t.read_safetensors(os.path.join(args.target, "model.safetensors"))
    embed = tp["model.embed_tokens.weight"].float()
    V, H, L = tc["vocab_size"], tc["hidden_size"], tc["num_hidden_layers"]
    gen = torch.Generator().manual_seed(args.seed)
    draft_vocab = 64
    draft_ids = torch.randperm(V, generator=gen)[:draft_vocab].sort().values
    # The head's own config: the target's sizes, its own (default) rope.
    hc = {"architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama",
          "hidden_size": H, "intermediate_size": tc["intermediate_size"],
          "num_hidden_layers": 1, "num_attention_heads": tc["num_attention_heads"],
          "num_key_value_heads": tc["num_key_value_heads"], "head_dim": t.head_dim_of(tc),
          "hidden_act": "silu", "max_position_embeddings": tc["max_position_embeddings"],
          "rms_norm_eps": tc["rms_norm_eps"], "rope_theta": 10000.0,
          "tie_word_embeddings": False, "vocab_size": V, "draft_vocab_size": draft_vocab,
          "target_hidden_size": H, "dtype": "float32",
          "eagle_config": {"use_aux_hidden_state": True,
                           "eagle_aux_hidden_state_layer_ids": [0, L // 2, L - 1]}}
    e = t.init_eagle3(hc, draft_vocab, gen, "cpu")
    with torch.no_grad():
        for k in e:
            if e[k].dim() == 2:
                e[k] = e[k].detach() * 10.0
            else:
                e[k] = 1.0 + 0.1 * torch.randn(e[k].shape, generator=gen)
    e = {k: v.detach().float().contiguous() for k, v in e.items()}
    ids = torch.tensor([[1, 17, 250, 3, 99, 5, 300]], dtype=torch.long)
    N = ids.shape[1]
    aux = [torch.randn(1, N, H, generator=gen) for _ in range(3)]
    with torch.no_grad():
        outs = t.eagle3_unroll(hc, embed, e, ids, aux, 3)
        logits = [t.rms_norm(o, e["norm.weight"], hc["rms_norm_eps"]) @ e["lm_head.weight"].t()
                  for o in outs]
    os.makedirs(args.out, exist_ok=True)
    tensors = dict(e)
    tensors["d2t"] = (draft_ids - torch.arange(draft_vocab)).to(torch.int64)
    t2d = torch.zeros(V, dtype=torch.bool)
    t2d[draft_ids] = True
    tensors["t2d"] = t2d
    t.write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(hc, f, indent=2, sort_keys=True)
        f.write("\n")
    golden = {"ids": ids[0].tolist(), "aux": torch.cat(aux, dim=-1)[0].flatten().tolist(),
              "step0_logits": logits[0][0].flatten().tolist(),
              "step1_logits": logits[1][0, -1].tolist(),
              "step2_logits": logits[2][0, -1].tolist(),
              "d2t": tensors["d2t"].tolist(), "draft_vocab": draft_vocab, "hidden": H}
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
