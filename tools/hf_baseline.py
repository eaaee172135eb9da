#!/usr/bin/env python3
"""HF transformers `generate` throughput on a model shape with random weights (the baseline that
docs/performance.md compares inferd with). Runs on the GPU machine (scripts/gpu-check.sh).

  python3 tools/hf_baseline.py --config models/configs/llama-3.1-8b/config.json \
      --batch 128 --input-len 128 --output-len 128
"""
import argparse
import os
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    args = ap.parse_args()
    cfg = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(args.config)))
    t0 = time.time()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.eval()
    print(f"model built on the GPU in {time.time() - t0:.1f} s")
    gen = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(100, cfg.vocab_size - 100, (args.batch, args.input_len), device="cuda",
                        generator=gen)
    mask = torch.ones_like(ids)
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        model.generate(ids[:2], attention_mask=mask[:2], max_new_tokens=4, **kw)  # warm-up
        torch.cuda.synchronize()
        t0 = time.time()
        out = model.generate(ids, attention_mask=mask, max_new_tokens=args.output_len,
                             min_new_tokens=args.output_len, **kw)
        torch.cuda.synchronize()
    dt = time.time() - t0
    n = (out.shape[1] - args.input_len) * args.batch
    print(f"HF transformers {transformers.__version__} generate: batch {args.batch}, "
          f"{args.input_len} in / {args.output_len} out: {n / dt:.0f} output tok/s ({dt:.1f} s)")


if __name__ == "__main__":
    main()
