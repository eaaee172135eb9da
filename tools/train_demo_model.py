#!/usr/bin/env python3
"""Trains the small English demo model that `inferd serve` uses by default (issue 8).

Input: the corpus that scripts/fetch-demo-corpus.sh writes (public-domain / BSD English text from
Debian packages): train.txt and heldout.txt (one document per line), chat_train.jsonl (question /
answer pairs from train-side dictionary entries) and SOURCES.txt.

What it does (on the GPU machine, `--device cuda`; see tools/README.md for the exact call):
  1. trains a byte-level BPE tokenizer with Hugging Face `tokenizers` (Llama-3-style split regex +
     ByteLevel, 4096 tokens including the special tokens below);
  2. trains a LlamaForCausalLM (`transformers`) from scratch on train.txt (+ chat pairs), seeded,
     AdamW + warmup + cosine, bf16 autocast on CUDA, residual dropout during training only; prints
     validation and held-out perplexity every --eval-every steps and keeps the weights of the step
     with the best validation perplexity (validation = ~1% of train.txt left out of training;
     heldout.txt is never used to choose anything);
  3. writes a Hugging Face model directory to --out: config.json, model.safetensors (bf16),
     generation_config.json, tokenizer.json, tokenizer_config.json (bos/eos + chat template),
     plus heldout.txt (the held-out lines scored below) and CORPUS_SOURCES.txt (packages, licences);
  4. checks it: transformers reloads the directory (fp32), the greedy continuation of
     "And God said" by a plain argmax loop, by generate() on CPU and (if present) on CUDA must agree;
     AutoTokenizer must give the same ids and chat-template text as the script; held-out
     perplexity of the saved model and of the same architecture with random weights; everything
     goes into --out/training_summary.json, which the CPU tests compare inferd against.
Before the real run a preflight runs the whole pipeline on a tiny model for a few steps into a
temporary folder, so an API mismatch in training or saving fails in seconds rather than after
training (a failed check there is only reported: the real run still trains and saves).

Perplexity definition (inferd's CPU test must use the same): each held-out line is scored alone as
[<|begin_of_text|>] + ids(line) (add_special_tokens=False ids, cut to max_position_embeddings
tokens in all); every token after the bos is predicted; eos is not scored; ppl =
exp(sum of -log p / number of predicted tokens) over the lines, computed in fp32.

--smoke runs a few steps on the CPU. When `tokenizers`/`transformers` are missing (this project's
CPU machines: Debian has PyTorch but not them) it falls back to a byte tokenizer and a small
hand-written Llama-like module of its own, only to exercise the data pipeline, the training loop
and the evaluation; it then writes SMOKE_TEST_ONLY.txt and smoke_summary.json, never a model
directory.

Usage:
  python3 tools/train_demo_model.py --device cuda --corpus .carry/corpus --out OUT_DIR
  python3 tools/train_demo_model.py --device cpu --smoke --corpus .carry/corpus --out /tmp/demo-smoke
"""
import argparse
import copy
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("error: tools/train_demo_model.py needs PyTorch (python3 -c 'import torch' failed)")

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
SPECIAL_TOKENS = [BOS, EOS, "<|system|>", "<|user|>", "<|assistant|>", "<|end_of_turn|>"]
EOT = "<|end_of_turn|>"
# Llama 3's pre-tokenizer regex (inferd's tokenizer supports it through PCRE2).
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Jinja chat template: only constructs inferd's Jinja subset and transformers both render.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] | trim + '<|end_of_turn|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
GREEDY_PROMPT = "And God said"
GREEDY_TOKENS = 32
CHAT_PROMPTS = ["What does \"bore\" mean?", "What is \"hacker\" in hacker jargon?"]
VALID_SALT = "inferd-demo-valid-v1:"
VALID_PER_MILLE = 10


def render_chat(messages, add_generation_prompt):
    """The Python twin of CHAT_TEMPLATE (checked against transformers' rendering)."""
    s = BOS
    for m in messages:
        s += "<|" + m["role"] + "|>\n" + m["content"].strip() + EOT + "\n"
    if add_generation_prompt:
        s += "<|assistant|>\n"
    return s


def log(msg):
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# Arguments and libraries


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="folder with train.txt, heldout.txt, ...")
    p.add_argument("--out", required=True, help="output model directory (created)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--smoke", action="store_true",
                   help="a few CPU-sized steps to exercise the pipeline; never a real model")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=768)
    p.add_argument("--seq-len", type=int, default=1024,
                   help="training window; also max_position_embeddings")
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1, help="residual dropout while training")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-lines", type=int, default=512,
                   help="validation lines scored at each periodic evaluation")
    p.add_argument("--train-budget-s", type=float, default=300.0,
                   help="wall-clock budget of the training loop; steps are cut to fit it "
                        "(decided after the first timed steps) so the run ends in time")
    p.add_argument("--max-lines", type=int, default=0, help="use only the first N train lines")
    p.add_argument("--no-preflight", action="store_true")
    p.add_argument("--no-chat", action="store_true", help="leave chat_train.jsonl out")
    return p.parse_args(argv)


def import_libs():
    """Returns (tokenizers, transformers) modules or None for each that is missing."""
    libs = []
    for name in ("tokenizers", "transformers"):
        try:
            libs.append(__import__(name))
        except ImportError:
            libs.append(None)
    return tuple(libs)


def smoke_sizes(a):
    """Shrinks the run to CPU size (applies to --smoke and to the preflight)."""
    a = copy.copy(a)
    a.vocab_size, a.hidden, a.layers, a.heads, a.kv_heads, a.ffn = 512, 64, 2, 4, 2, 128
    a.seq_len, a.batch, a.steps, a.warmup, a.eval_every, a.eval_lines = 128, 8, 30, 5, 10, 64
    a.max_lines = a.max_lines or 4000
    a.train_budget_s = 120.0
    return a


# ----------------------------------------------------------------------------------------------
# Corpus


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def is_valid_line(text):
    h = hashlib.sha256((VALID_SALT + text).encode("utf-8")).digest()
    return int.from_bytes(h[:4], "big") % 1000 < VALID_PER_MILLE


def load_corpus(a):
    d = a.corpus
    for f in ("train.txt", "heldout.txt"):
        if not os.path.isfile(os.path.join(d, f)):
            sys.exit(f"error: {os.path.join(d, f)} is missing; run scripts/fetch-demo-corpus.sh first")
    train_all = read_lines(os.path.join(d, "train.txt"))
    if a.max_lines:
        train_all = train_all[:a.max_lines]
    heldout = read_lines(os.path.join(d, "heldout.txt"))
    overlap = set(heldout) & set(train_all)
    if overlap:
        sys.exit(f"error: {len(overlap)} held-out lines also occur in train.txt")
    train = [l for l in train_all if not is_valid_line(l)]
    valid = [l for l in train_all if is_valid_line(l)]
    chat = []
    cpath = os.path.join(d, "chat_train.jsonl")
    if not a.no_chat and os.path.isfile(cpath):
        with open(cpath, encoding="utf-8") as f:
            for line in f:
                m = json.loads(line)["messages"]
                # a pair whose answer is part of a validation line stays out of training
                if not any(m[-1]["content"] in v for v in valid):
                    chat.append(m)
        if a.max_lines:
            chat = chat[:max(1, a.max_lines // 10)]
    sources = []
    spath = os.path.join(d, "SOURCES.txt")
    if os.path.isfile(spath):
        with open(spath, encoding="utf-8") as f:
            cur = {}
            for line in f:
                k, _, v = line.rstrip("\n").partition(": ")
                if k in ("package", "version", "licence", "documents"):
                    if k == "package" and cur:
                        sources.append(cur)
                        cur = {}
                    cur[k] = v
            if cur:
                sources.append(cur)
    return dict(train=train, valid=valid, heldout=heldout, chat=chat, sources=sources)


# ----------------------------------------------------------------------------------------------
# Tokenizers: the real one (Hugging Face `tokenizers`) and the smoke fallback (bytes)


class HFTok:
    def __init__(self, tk_lib, texts, vocab_size):
        from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
        tok = tk_lib.Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                      special_tokens=SPECIAL_TOKENS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        self.ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
        if [self.ids[t] for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
            raise RuntimeError(f"special tokens got unexpected ids: {self.ids}")
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, self.ids[BOS])])
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.bos, self.eos, self.eot = self.ids[BOS], self.ids[EOS], self.ids[EOT]

    def encode_batch(self, texts):
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def encode(self, text, add_special_tokens=False):
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens=False):
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)


class ByteTok:
    """SMOKE TEST ONLY: bytes 0..255 shifted past the special tokens; specials matched literally."""

    def __init__(self):
        self.n_special = len(SPECIAL_TOKENS)
        self.vocab_size = 256 + self.n_special
        self.bos, self.eos, self.eot = 0, 1, SPECIAL_TOKENS.index(EOT)

    def encode(self, text, add_special_tokens=False):
        ids = [self.bos] if add_special_tokens else []
        i = 0
        while i < len(text):
            for k, s in enumerate(SPECIAL_TOKENS):
                if text.startswith(s, i):
                    ids.append(k)
                    i += len(s)
                    break
            else:
                ids.extend(b + self.n_special for b in text[i].encode("utf-8"))
                i += 1
        return ids

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]

    def decode(self, ids, skip_special_tokens=False):
        out, buf = [], bytearray()
        for t in ids:
            if t >= self.n_special:
                buf.append(t - self.n_special)
                continue
            out.append(buf.decode("utf-8", errors="replace"))
            buf = bytearray()
            if not skip_special_tokens:
                out.append(SPECIAL_TOKENS[t])
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


# ----------------------------------------------------------------------------------------------
# Models: transformers' LlamaForCausalLM, and the smoke fallback


def hf_config(tf, a, vocab_size, tok):
    return tf.LlamaConfig(
        vocab_size=vocab_size, hidden_size=a.hidden, intermediate_size=a.ffn,
        num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
        head_dim=a.hidden // a.heads, max_position_embeddings=a.seq_len, hidden_act="silu",
        rms_norm_eps=1e-5, initializer_range=0.02, tie_word_embeddings=True, attention_bias=False,
        mlp_bias=False, attention_dropout=0.0, use_cache=True, bos_token_id=tok.bos,
        eos_token_id=tok.eos, pad_token_id=tok.eos)


class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(v + self.eps)).to(x.dtype) * self.weight


class SmokeBlock(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.kv, self.hd = a.heads, a.kv_heads, a.hidden // a.heads
        self.input_layernorm = RMSNorm(a.hidden)
        self.post_attention_layernorm = RMSNorm(a.hidden)
        self.q = nn.Linear(a.hidden, self.h * self.hd, bias=False)
        self.k = nn.Linear(a.hidden, self.kv * self.hd, bias=False)
        self.v = nn.Linear(a.hidden, self.kv * self.hd, bias=False)
        self.o = nn.Linear(self.h * self.hd, a.hidden, bias=False)
        self.gate = nn.Linear(a.hidden, a.ffn, bias=False)
        self.up = nn.Linear(a.hidden, a.ffn, bias=False)
        self.down = nn.Linear(a.ffn, a.hidden, bias=False)
        self.dropout = 0.0

    def forward(self, x, cos, sin):
        B, T, _ = x.shape

        def rope(t):
            t1, t2 = t[..., : self.hd // 2], t[..., self.hd // 2:]
            return t * cos + torch.cat([-t2, t1], -1) * sin

        y = self.input_layernorm(x)
        q = rope(self.q(y).view(B, T, self.h, self.hd).transpose(1, 2))
        k = rope(self.k(y).view(B, T, self.kv, self.hd).transpose(1, 2))
        v = self.v(y).view(B, T, self.kv, self.hd).transpose(1, 2)
        rep = self.h // self.kv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        s = s.masked_fill(mask, float("-inf")).softmax(-1)
        att = (s @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + F.dropout(self.o(att), self.dropout, self.training)
        y = self.post_attention_layernorm(x)
        return x + F.dropout(self.down(F.silu(self.gate(y)) * self.up(y)), self.dropout,
                             self.training)


class SmokeLlama(nn.Module):
    """SMOKE TEST ONLY: a Llama-like decoder (RMSNorm, RoPE, GQA, SwiGLU, tied embeddings)."""

    def __init__(self, a, vocab_size):
        super().__init__()
        self.hd = a.hidden // a.heads
        self.embed = nn.Embedding(vocab_size, a.hidden)
        self.layers = nn.ModuleList(SmokeBlock(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def set_dropout(self, p):
        for l in self.layers:
            l.dropout = p

    def forward(self, ids):
        T = ids.shape[1]
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2, device=ids.device).float() / self.hd))
        f = torch.outer(torch.arange(T, device=ids.device).float(), inv)
        f = torch.cat([f, f], -1)
        cos, sin = f.cos(), f.sin()
        x = self.embed(ids)
        for l in self.layers:
            x = l(x, cos, sin)
        return self.norm(x) @ self.embed.weight.t()


def add_dropout_hooks(model, p):
    """Residual dropout for training only: on each layer's attention and MLP output. Returns the
    hook handles (removed before saving; the saved model has no trace of them)."""
    handles = []
    if p <= 0:
        return handles

    def hook(mod, inp, out):
        if isinstance(out, tuple):
            return (F.dropout(out[0], p, mod.training),) + tuple(out[1:])
        return F.dropout(out, p, mod.training)

    for layer in model.model.layers:
        handles.append(layer.self_attn.o_proj.register_forward_hook(hook))
        handles.append(layer.mlp.register_forward_hook(hook))
    return handles


def logits_of(model, ids):
    out = model(ids) if isinstance(model, SmokeLlama) else model(input_ids=ids)
    return out if torch.is_tensor(out) else out.logits


def count_params(model):
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


# ----------------------------------------------------------------------------------------------
# Training and evaluation (shared by the real run and the smoke fallback)


def build_stream(tok, corpus):
    """One token stream: [bos] line [eos] for each train line, then each chat pair rendered
    with the chat template (it ends with <|end_of_turn|>\\n) followed by [eos]."""
    parts = []
    for ids in tok.encode_batch(corpus["train"]):
        parts.append(tok.bos)
        parts.extend(ids)
        parts.append(tok.eos)
    if corpus["chat"]:
        rendered = [render_chat(m, False) for m in corpus["chat"]]
        for ids in tok.encode_batch(rendered):
            parts.extend(ids)  # the template starts with the bos token
            parts.append(tok.eos)
    return torch.tensor(parts, dtype=torch.long)


def lr_at(step, a, total):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
    return a.lr * (a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def score_lines(model, tok, lines, device, max_len, autocast, batch=32):
    """Per line: (sum of -log p over the line's tokens after bos, number of such tokens)."""
    seqs = [([tok.bos] + ids)[:max_len] for ids in tok.encode_batch(lines)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    res = [None] * len(seqs)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            L = max(len(seqs[i]) for i in idx)
            x = torch.full((len(idx), L), tok.eos, dtype=torch.long)
            y = torch.full((len(idx), L), -100, dtype=torch.long)
            for r, i in enumerate(idx):
                q = seqs[i]
                x[r, :len(q)] = torch.tensor(q)
                y[r, :len(q) - 1] = torch.tensor(q[1:])
            x, y = x.to(device), y.to(device)
            with autocast():
                lg = logits_of(model, x)
            nll = F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), y.reshape(-1),
                                  ignore_index=-100, reduction="none").view(len(idx), L)
            for r, i in enumerate(idx):
                res[i] = (float(nll[r].double().sum()), len(seqs[i]) - 1)
    model.train(was_training)
    return res


def ppl(scores):
    n = sum(c for _, c in scores)
    return math.exp(sum(s for s, _ in scores) / max(1, n)), n


def train(model, tok, corpus, a, device, autocast):
    stream = build_stream(tok, corpus)
    T = a.seq_len
    if len(stream) < T + 2:
        raise RuntimeError(f"corpus too small: {len(stream)} tokens for windows of {T}")
    stream_dev = stream.to(device)
    gen = torch.Generator().manual_seed(a.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    kw = dict(lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    if device == "cuda":
        kw["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], **kw)
    total = a.steps
    valid = corpus["valid"][:a.eval_lines] if corpus["valid"] else corpus["train"][-a.eval_lines:]
    hist, best = [], None
    tokens_per_step = a.batch * T
    log(f"train stream: {len(stream)} tokens ({len(stream) / tokens_per_step:.0f} steps per "
        f"epoch at {a.batch}x{T}); planned {total} steps")
    model.train()
    t0 = time.time()
    stopped_by_time = False
    step = 0
    loss_acc, loss_n = torch.zeros((), device=device), 0
    t10 = None
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    while step < total:
        if step == 10:
            sync()
            t10 = time.time()
        if step == 30:  # steps 10..30, after the warm-up, decide how many steps fit the budget
            sync()
            now = time.time()
            per_step = (now - t10) / 20
            fit = step + int((a.train_budget_s - (now - t0)) / per_step)
            log(f"{per_step * 1000:.1f} ms/step (steps 10-30); the {a.train_budget_s:.0f} s budget "
                f"fits {fit} steps")
            if fit < total:
                total = max(step + 1, fit)
                stopped_by_time = True
                log(f"warning: steps cut to {total} to fit the time budget")
        if time.time() - t0 > 1.2 * a.train_budget_s and total > step + 1:
            total = step + 1  # hard stop: the estimate above was off
            stopped_by_time = True
            log(f"warning: over the time budget; stopping after step {total}")
        off = torch.randint(0, len(stream) - T - 1, (a.batch,), generator=gen)
        idx = off.to(device)[:, None] + torch.arange(T + 1, device=device)[None, :]
        chunk = stream_dev[idx]
        x, y = chunk[:, :-1], chunk[:, 1:]
        lr = lr_at(step, a, total)
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast():
            lg = logits_of(model, x)
        loss = F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_acc += loss.detach()
        loss_n += 1
        if step % a.eval_every == 0 or step == total:
            vppl, _ = ppl(score_lines(model, tok, valid, device, T, autocast))
            hppl, _ = ppl(score_lines(model, tok, corpus["heldout"], device, T, autocast))
            el = time.time() - t0
            h = dict(step=step, train_loss=round(float(loss_acc) / loss_n, 4), valid_ppl=round(vppl, 3),
                     heldout_ppl=round(hppl, 3), lr=lr, elapsed_s=round(el, 1))
            hist.append(h)
            loss_acc, loss_n = torch.zeros((), device=device), 0
            log(f"step {step:5d}/{total}  loss {h['train_loss']:.4f}  valid ppl {vppl:9.3f}  "
                f"held-out ppl {hppl:9.3f}  lr {lr:.2e}  {el:6.1f} s")
            if best is None or vppl < best[0]:
                best = (vppl, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
    secs = time.time() - t0
    model.load_state_dict(best[2])
    log(f"kept the weights of step {best[1]} (best validation ppl {best[0]:.3f})")
    model.eval()
    return dict(steps_planned=a.steps, steps_done=step, stopped_by_time=stopped_by_time,
                tokens_per_step=tokens_per_step, stream_tokens=len(stream),
                tokens_seen=step * tokens_per_step,
                epochs=round(step * tokens_per_step / len(stream), 2), seconds=round(secs, 1),
                best_step=best[1], best_valid_ppl=round(best[0], 4), history=hist)


def greedy_loop(model, ids, n, stop_ids, device):
    """Plain argmax loop, full forward each step (the reference for generate())."""
    out = []
    cur = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.no_grad():
        for _ in range(n):
            nxt = int(logits_of(model, cur)[0, -1].float().argmax())
            out.append(nxt)
            if nxt in stop_ids:
                break
            cur = torch.cat([cur, torch.tensor([[nxt]], device=device)], 1)
    return out


# ----------------------------------------------------------------------------------------------
# The real pipeline (tokenizers + transformers)


def nullcontext():
    import contextlib
    return contextlib.nullcontext()


def make_autocast(device):
    if device == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def write_tokenizer_files(tok, out, seq_len):
    tok.tok.save(os.path.join(out, "tokenizer.json"))
    added = {}
    for t, i in tok.ids.items():
        added[str(i)] = dict(content=t, lstrip=False, normalized=False, rstrip=False,
                             single_word=False, special=True)
    cfg = dict(
        tokenizer_class="PreTrainedTokenizerFast", bos_token=BOS, eos_token=EOS, pad_token=EOS,
        clean_up_tokenization_spaces=False, model_max_length=seq_len,
        added_tokens_decoder=added, chat_template=CHAT_TEMPLATE)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def run_real(a, tk, tf, out, corpus, summary, label):
    """Tokenizer, training, save, checks. Fills `summary`; exceptions in the checks are recorded
    in summary['errors'] (the model directory is still written)."""
    device = a.device
    autocast = make_autocast(device)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    t0 = time.time()
    tok_texts = corpus["train"] + [render_chat(m, False) for m in corpus["chat"]]
    tok = HFTok(tk, tok_texts, a.vocab_size)
    tbytes = sum(len(t.encode("utf-8")) for t in corpus["train"])
    ttoks = sum(len(i) for i in tok.encode_batch(corpus["train"]))
    summary["tokenizer"] = dict(
        kind="BPE, byte-level (Llama-3 split regex + ByteLevel), trained with tokenizers",
        vocab_size=tok.vocab_size, special_tokens=tok.ids, bytes_per_token_train=round(tbytes / ttoks, 3),
        seconds=round(time.time() - t0, 1))
    log(f"[{label}] tokenizer: {tok.vocab_size} tokens, {tbytes / ttoks:.2f} bytes/token on train "
        f"({time.time() - t0:.1f} s)")

    config = hf_config(tf, a, tok.vocab_size, tok)
    torch.manual_seed(a.seed)
    model = tf.LlamaForCausalLM(config).to(device)
    n_params = count_params(model)
    log(f"[{label}] model: {n_params / 1e6:.2f}M parameters ({a.layers} layers, hidden {a.hidden}, "
        f"{a.heads} heads / {a.kv_heads} kv, ffn {a.ffn}, vocab {tok.vocab_size}, tied)")
    hooks = add_dropout_hooks(model, a.dropout)
    summary["training"] = train(model, tok, corpus, a, device, autocast)
    for h in hooks:
        h.remove()

    # Save: bf16 weights, our generation config, our tokenizer files.
    os.makedirs(out, exist_ok=True)
    model = model.to(torch.bfloat16)
    model.generation_config = tf.GenerationConfig(
        bos_token_id=tok.bos, eos_token_id=[tok.eos, tok.eot], pad_token_id=tok.eos,
        do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=128)
    model.save_pretrained(out)
    write_tokenizer_files(tok, out, a.seq_len)
    # The held-out lines (for inferd's CPU perplexity test) and the corpus' sources and licences
    # travel with the model.
    with open(os.path.join(out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(corpus["heldout"]) + "\n")
    src = os.path.join(a.corpus, "SOURCES.txt")
    if os.path.isfile(src):
        shutil.copyfile(src, os.path.join(out, "CORPUS_SOURCES.txt"))
    cpath = os.path.join(out, "config.json")
    with open(cpath, encoding="utf-8") as f:
        cj = json.load(f)
    rp = cj.get("rope_parameters") or {}
    if "rope_theta" not in cj:  # transformers 5 keeps it under rope_parameters only
        cj["rope_theta"] = float(rp.get("rope_theta", 10000.0))
        with open(cpath, "w", encoding="utf-8") as f:
            json.dump(cj, f, indent=2, sort_keys=True)
            f.write("\n")
    for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json"):
        if not os.path.isfile(os.path.join(out, f)):
            raise RuntimeError(f"{out}/{f} was not written")
    summary["model"] = dict(
        architecture="LlamaForCausalLM", params=n_params, dtype="bfloat16",
        safetensors_bytes=os.path.getsize(os.path.join(out, "model.safetensors")),
        dir_bytes=dir_bytes(out), config=cj, files=sorted(os.listdir(out)))
    log(f"[{label}] wrote {out}: {summary['model']['dir_bytes'] / 1e6:.2f} MB "
        f"({', '.join(summary['model']['files'])})")
    del model

    checks = summary.setdefault("checks", {})
    errors = summary.setdefault("errors", [])

    def check(name, fn):
        try:
            checks[name] = fn()
            log(f"[{label}] check {name}: {json.dumps(checks[name], ensure_ascii=False)[:600]}")
        except Exception:  # recorded, the run goes on with the other checks
            tb = traceback.format_exc()
            errors.append(dict(check=name, traceback=tb))
            log(f"[{label}] check {name} FAILED:\n{tb}")

    def load(dev):
        try:
            m = tf.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
        except TypeError:
            m = tf.AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32)
        return m.to(dev).eval()

    torch.set_float32_matmul_precision("highest")
    loaded = {}

    def reload():
        loaded["cpu"] = load("cpu")
        if device == "cuda":
            loaded["cuda"] = load("cuda")
        m = loaded["cpu"]
        return dict(model_class=type(m).__name__, params=count_params(m),
                    tied=m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr(),
                    devices=sorted(loaded))

    check("reload", reload)
    if "cpu" not in loaded:
        summary["greedy"] = summary["eval"] = None
        return summary
    stop = [tok.eos, tok.eot]
    prompt_ids = tok.encode(GREEDY_PROMPT, add_special_tokens=True)

    def greedy():
        ref = greedy_loop(loaded["cpu"], prompt_ids, GREEDY_TOKENS, stop, "cpu")
        r = dict(prompt=GREEDY_PROMPT, prompt_ids=prompt_ids, max_new_tokens=GREEDY_TOKENS,
                 stop_ids=stop, ids=ref, text=tok.decode(ref, skip_special_tokens=True),
                 reference="argmax loop, full forward each step, transformers fp32 on CPU")
        for dev, m in loaded.items():
            x = torch.tensor([prompt_ids], device=dev)
            greedy_cfg = tf.GenerationConfig(  # plain greedy, none of the sampling defaults
                do_sample=False, max_new_tokens=GREEDY_TOKENS, bos_token_id=tok.bos,
                eos_token_id=stop, pad_token_id=tok.eos)
            g = m.generate(input_ids=x, attention_mask=torch.ones_like(x),
                           generation_config=greedy_cfg)
            r[f"generate_{dev}_fp32_ids"] = g[0, len(prompt_ids):].tolist()
        if device == "cuda":
            r["loop_cuda_fp32_ids"] = greedy_loop(loaded["cuda"], prompt_ids, GREEDY_TOKENS, stop,
                                                  "cuda")
        # Required: generate() on the CPU equals the plain loop (what inferd's CPU backend is
        # compared with). CUDA results are recorded; a difference there (a near tie) is a warning.
        r["cpu_agree"] = r["generate_cpu_fp32_ids"] == ref
        r["cuda_agree"] = all(v == ref for k, v in r.items() if "cuda" in k and k.endswith("_ids"))
        log(f"[{label}] greedy continuation of {GREEDY_PROMPT!r}: {r['text']!r}")
        if not r["cpu_agree"]:
            raise RuntimeError("greedy continuations disagree on the CPU: " + json.dumps(
                {k: v for k, v in r.items() if k.endswith("_ids")}))
        if not r["cuda_agree"]:
            log(f"[{label}] warning: CUDA greedy ids differ from the CPU reference")
        return r

    check("greedy", greedy)
    summary["greedy"] = checks.get("greedy")

    def tokenizer_roundtrip():
        hf = tf.AutoTokenizer.from_pretrained(out)
        texts = [GREEDY_PROMPT, corpus["heldout"][0], "Don't panic -- 42 émigrés, naïve café!\n\tok"]
        r = dict(autotokenizer_class=type(hf).__name__)
        for t in texts:
            ours = tok.encode(t, add_special_tokens=True)
            theirs = hf(t)["input_ids"]
            if ours != theirs:
                raise RuntimeError(f"AutoTokenizer ids differ for {t!r}: {theirs} vs {ours}")
            if tok.decode(ours, skip_special_tokens=True) != t:
                raise RuntimeError(f"decode(encode({t!r})) != the text")
        r["ids_match"] = len(texts)
        msgs = [{"role": "user", "content": CHAT_PROMPTS[0]}]
        rendered = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if rendered != render_chat(msgs, True):
            raise RuntimeError(f"chat template renders {rendered!r}, expected "
                               f"{render_chat(msgs, True)!r}")
        r["chat_template_matches"] = True
        r["bos_token"], r["eos_token"] = hf.bos_token, hf.eos_token
        return r

    check("tokenizer", tokenizer_roundtrip)

    def chat_examples():
        ex = []
        for q in CHAT_PROMPTS:
            text = render_chat([{"role": "user", "content": q}], True)
            ids = tok.encode(text)
            out_ids = greedy_loop(loaded["cpu"], ids, 48, stop, "cpu")
            ex.append(dict(user=q, prompt_ids=ids, reply_ids=out_ids,
                           reply=tok.decode(out_ids, skip_special_tokens=True)))
        return ex

    check("chat_examples", chat_examples)

    def perplexity():
        m = loaded["cuda" if device == "cuda" else "cpu"]
        dev = device
        trained = score_lines(m, tok, corpus["heldout"], dev, a.seq_len, nullcontext)
        torch.manual_seed(a.seed + 1)
        rnd_model = tf.LlamaForCausalLM(config).to(dev).float().eval()
        rnd = score_lines(rnd_model, tok, corpus["heldout"], dev, a.seq_len, nullcontext)
        tp, n = ppl(trained)
        rp_, _ = ppl(rnd)
        first = trained[:64]
        r = dict(
            definition="each held-out line alone: [bos] + ids(line) (add_special_tokens=False), "
                       f"cut to {a.seq_len} tokens; tokens after bos predicted, eos not scored; "
                       "exp(total nll / total tokens); fp32 from the saved bf16 weights",
            heldout_lines=len(corpus["heldout"]), heldout_tokens=n,
            heldout_ppl_trained=tp, heldout_ppl_random=rp_,
            random_init=f"LlamaForCausalLM(config) after torch.manual_seed({a.seed + 1}), fp32",
            first64=dict(lines=len(first), tokens=sum(c for _, c in first),
                         ppl_trained=ppl(first)[0], ppl_random=ppl(rnd[:64])[0],
                         per_line_nll=[round(s, 5) for s, _ in first],
                         per_line_tokens=[c for _, c in first]))
        log(f"[{label}] held-out perplexity: trained {tp:.3f}, random weights {rp_:.1f} "
            f"({n} tokens in {len(corpus['heldout'])} lines)")
        return r

    check("perplexity", perplexity)
    summary["eval"] = checks.get("perplexity")
    return summary


# ----------------------------------------------------------------------------------------------
# Main


def corpus_summary(corpus):
    return dict(train_lines=len(corpus["train"]), valid_lines=len(corpus["valid"]),
                heldout_lines=len(corpus["heldout"]), chat_pairs=len(corpus["chat"]),
                sources=corpus["sources"])


def versions(tk, tf):
    v = dict(python=platform.python_version(), torch=torch.__version__)
    if tk:
        v["tokenizers"] = tk.__version__
    if tf:
        v["transformers"] = tf.__version__
    if torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name(0)
    return v


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def smoke_fallback(a, out, corpus):
    """SMOKE TEST ONLY (no tokenizers/transformers): byte tokenizer + SmokeLlama."""
    log("SMOKE TEST ONLY: tokenizers/transformers are missing; using a byte-level tokenizer and "
        "a hand-written Llama-like module to exercise the data pipeline and the training loop. "
        "Nothing written here is a model.")
    torch.manual_seed(a.seed)
    tok = ByteTok()
    a.vocab_size = tok.vocab_size
    model = SmokeLlama(a, tok.vocab_size).to(a.device)
    model.set_dropout(a.dropout)
    autocast = make_autocast(a.device)
    n_params = count_params(model)
    log(f"smoke model: {n_params} parameters")
    torch.manual_seed(a.seed + 1)
    rnd_model = SmokeLlama(a, tok.vocab_size).to(a.device)
    rnd_ppl, n = ppl(score_lines(rnd_model, tok, corpus["heldout"][:64], a.device, a.seq_len,
                                 autocast))
    tr = train(model, tok, corpus, a, a.device, autocast)
    model.set_dropout(0.0)
    tr_ppl, _ = ppl(score_lines(model, tok, corpus["heldout"][:64], a.device, a.seq_len, autocast))
    prompt = tok.encode(GREEDY_PROMPT, add_special_tokens=True)
    cont = greedy_loop(model, prompt, GREEDY_TOKENS, [tok.eos, tok.eot], a.device)
    text = tok.decode(cont, skip_special_tokens=True)
    log(f"smoke held-out ppl (first 64 lines, {n} byte tokens): trained {tr_ppl:.2f}, "
        f"random {rnd_ppl:.2f}")
    log(f"smoke greedy continuation of {GREEDY_PROMPT!r}: {text!r}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "SMOKE_TEST_ONLY.txt"), "w") as f:
        f.write("Written by tools/train_demo_model.py --smoke without tokenizers/transformers.\n"
                "A byte tokenizer and a hand-written module trained for a few steps on the CPU:\n"
                "this folder is not a model and must never be committed or served.\n")
    write_json(os.path.join(out, "smoke_summary.json"), dict(
        smoke=True, fallback=True, versions=versions(None, None), args=vars(a),
        corpus=corpus_summary(corpus), params=n_params, training=tr,
        heldout_first64_ppl_trained=tr_ppl, heldout_first64_ppl_random=rnd_ppl,
        greedy=dict(prompt=GREEDY_PROMPT, prompt_ids=prompt, ids=cont, text=text)))
    if not tr_ppl < rnd_ppl:
        sys.exit(f"error: smoke training did not lower held-out perplexity ({tr_ppl} vs {rnd_ppl})")
    log(f"smoke test passed; wrote {out}/SMOKE_TEST_ONLY.txt and smoke_summary.json")


def main():
    a = parse_args()
    tk, tf = import_libs()
    missing = [n for n, m in (("tokenizers", tk), ("transformers", tf)) if m is None]
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is False "
                 "(use --device cpu --smoke for a CPU smoke test)")
    if missing and not a.smoke:
        sys.exit(f"error: tools/train_demo_model.py needs the Python packages "
                 f"{' and '.join(repr(m) for m in missing)}, which {sys.executable} cannot import. "
                 "Run it on the GPU machine (see tools/README.md), or add --smoke for a CPU "
                 "smoke test of the data pipeline and training loop.")
    if os.path.exists(a.out) and os.listdir(a.out):
        sys.exit(f"error: --out {a.out} exists and is not empty; choose a new folder")
    if a.smoke:
        a = smoke_sizes(a)
    log(f"versions: {json.dumps(versions(tk, tf))}")
    corpus = load_corpus(a)
    if a.smoke:
        corpus["heldout"] = corpus["heldout"][:128]
    log(f"corpus: {json.dumps({k: v for k, v in corpus_summary(corpus).items() if k != 'sources'})}")
    if missing:
        smoke_fallback(a, a.out, corpus)
        return

    t_start = time.time()
    if not a.smoke and not a.no_preflight:
        pre = smoke_sizes(a)
        pre.steps, pre.eval_every = 8, 4
        pre_corpus = dict(corpus, train=corpus["train"][:pre.max_lines],
                          valid=corpus["valid"][:32], heldout=corpus["heldout"][:32],
                          chat=corpus["chat"][:200])
        tmp = tempfile.mkdtemp(prefix="demo-preflight-")
        log(f"preflight: the whole pipeline on a tiny model into {tmp}")
        pre_sum = {"errors": []}
        run_real(pre, tk, tf, os.path.join(tmp, "model"), pre_corpus, pre_sum, "preflight")
        shutil.rmtree(tmp)
        if pre_sum["errors"]:
            # The pipeline itself ran (an exception there would have stopped us); a failed check
            # will fail again below, but the trained model and its summary are still worth having.
            log(f"WARNING: preflight checks failed: {[e['check'] for e in pre_sum['errors']]}; "
                "training anyway (the same checks will be recorded as errors)")
        else:
            log(f"preflight passed in {time.time() - t_start:.1f} s")

    summary = dict(smoke=a.smoke, versions=versions(tk, tf), args=vars(a),
                   corpus=corpus_summary(corpus), errors=[])
    run_real(a, tk, tf, a.out, corpus, summary, "smoke" if a.smoke else "run")
    summary["total_seconds"] = round(time.time() - t_start, 1)
    if a.smoke:
        with open(os.path.join(a.out, "SMOKE_TEST_ONLY.txt"), "w") as f:
            f.write("Written by tools/train_demo_model.py --smoke: a tiny model trained for a few "
                    "steps. Not the demo model; never commit or serve it.\n")
    write_json(os.path.join(a.out, "training_summary.json"), summary)
    ev = summary.get("eval") or {}
    log(f"summary: {json.dumps(dict(params=summary['model']['params'], steps=summary['training']['steps_done'], train_s=summary['training']['seconds'], total_s=summary['total_seconds'], heldout_ppl_trained=ev.get('heldout_ppl_trained'), heldout_ppl_random=ev.get('heldout_ppl_random'), dir_mb=round(summary['model']['dir_bytes'] / 1e6, 2), errors=len(summary['errors'])))}")
    if summary["errors"]:
        sys.exit(f"error: {len(summary['errors'])} check(s) failed; see training_summary.json")


if __name__ == "__main__":
    main()
