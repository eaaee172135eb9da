#!/usr/bin/env python3
"""Makes tests/data/goldens_embed/qwen3_embedding: a tiny Qwen3-Embedding-style model and the
embeddings transformers computes for fixed prompts.

The model directory is laid out as the published Qwen3-Embedding checkpoints are: config.json
naming Qwen3ForCausalLM, the weights of the bare decoder (Qwen3Model: tensor names without the
"model." prefix, no lm_head, tied embeddings), and the sentence-transformers files (modules.json,
1_Pooling/config.json with last-token pooling, a Normalize module,
config_sentence_transformers.json). Weights are seeded random, saved in fp32.

Reference: transformers' AutoModel (Qwen3Model) on each prompt alone: last_hidden_state (after
the final norm) at the last position, L2-normalised (sentence-transformers' last-token pooling +
Normalize), and for the MEAN pooling check the mean over every position, normalised. Stored in
golden.safetensors as prompt{i}.ids, prompt{i}.last, prompt{i}.mean; golden.json says which
transformers made them. Needs transformers (the GPU machine has it):

    python3 tools/make_embedding_golden.py --out tests/data/goldens_embed
"""
import argparse
import json
import os

SEED = 4321
VOCAB = 320
PROMPT_LENS = [1, 7, 21, 80]


def config():
    return dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", vocab_size=VOCAB, hidden_size=64,
        intermediate_size=144, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, max_position_embeddings=256, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, attention_bias=False, use_sliding_window=False,
        hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="float32")


def sentence_transformers_files(out, hidden):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ]
    with open(os.path.join(out, "modules.json"), "w") as f:
        json.dump(modules, f, indent=2)
    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(out, "2_Normalize"), exist_ok=True)
    pooling = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False,
               "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": True,
               "include_prompt": True}
    with open(os.path.join(out, "1_Pooling", "config.json"), "w") as f:
        json.dump(pooling, f, indent=2)
    with open(os.path.join(out, "config_sentence_transformers.json"), "w") as f:
        json.dump({"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"},
                  f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/goldens_embed")
    args = ap.parse_args()
    import torch
    import transformers
    from safetensors.torch import save_file

    out = os.path.join(args.out, "qwen3_embedding")
    os.makedirs(out, exist_ok=True)
    c = config()
    torch.manual_seed(SEED)
    cfg = transformers.Qwen3Config(**{k: v for k, v in c.items() if k != "torch_dtype"})
    model = transformers.AutoModel.from_config(cfg).float().eval()
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():  # weights of unit gain (the default init is too small to tell apart)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / (p.shape[-1] ** 0.5))
    tensors = {n: t.detach().contiguous() for n, t in model.state_dict().items()}
    save_file(tensors, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    sentence_transformers_files(out, c["hidden_size"])

    golden = {}
    pgen = torch.Generator().manual_seed(SEED + 1)
    for i, n in enumerate(PROMPT_LENS):
        ids = torch.randint(3, VOCAB, (n,), generator=pgen)
        with torch.no_grad():
            h = model(input_ids=ids[None]).last_hidden_state[0].double()
        golden[f"prompt{i}.ids"] = ids.to(torch.int32)
        golden[f"prompt{i}.last"] = torch.nn.functional.normalize(h[-1], dim=0).float()
        golden[f"prompt{i}.mean"] = torch.nn.functional.normalize(h.mean(0), dim=0).float()
    save_file(golden, os.path.join(out, "golden.safetensors"))
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump({"reference": f"transformers {transformers.__version__} AutoModel (Qwen3Model)",
                   "prompts": len(PROMPT_LENS), "pooling": "LAST, normalised (and MEAN)"}, f,
                  indent=1)
    print("wrote", out, sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
