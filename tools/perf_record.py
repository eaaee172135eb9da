#!/usr/bin/env python3
"""Performance record of one `scripts/gpu-check.sh` run (issue 11), standard library only.

Two subcommands:

  ncu-table  Aggregates an `ncu --metrics gpu__time_duration.sum --csv` log of a run into a
             per-kernel table of ONE decode step: it finds the decode steps in the profiled
             window by their repetition (the longest run of kernels that repeats with a fixed
             period, kernel name + grid + block compared), so that start-up, prefill or the
             last steps in the window do not count. Writes a markdown table and a JSON summary.

  record     Reads the JSON files that `inferd bench latency|throughput|serve --json` wrote (field
             names as src/cli/cmd_bench.cc and src/bench/report.cc write them), the HF baseline
             log, the profile summaries and the benchmark logs, and writes
               - docs/perf/h200.json's content (--out-json): the keys of issue 11 plus extras,
                 null where a run is missing or failed;
               - a section for docs/performance.md (--out-md): figures, ratios against the
                 floors and peers of DESIGN.md, and the per-kernel profiles;
             and prints a short summary table.

Examples (gpu-check.sh runs both):
  tools/perf_record.py ncu-table --csv w/ncu_b1.log --batch 1 --label "decode, batch 1" \\
      --out-md w/profile_b1.md --out-json w/profile_b1.json
  tools/perf_record.py record --latency w/latency_512.json --prefill w/latency_2048.json \\
      --throughput w/throughput.json --serve w/serve.json --profile-b1 w/profile_b1.json \\
      --profile-b256 w/profile_b256.json --hf-log w/hf.log --log w/bench.log \\
      --commit abc1234 --gpu "NVIDIA H200, 143771 MiB, 580.159" --out-json h200.json \\
      --out-md performance-section.md
"""

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import re
import sys
from collections import Counter, OrderedDict

# Floors and peers (DESIGN.md, Performance; measured on the H200 on 2026-12-01).
DECODE_FLOOR_TOK_S = 268.0  # 16.06 GB of weights at ~4.3 TB/s
LLAMACPP_DECODE_TOK_S = 163.5
LLAMACPP_PREFILL_512_TOK_S = 19100.0
LLAMACPP_PREFILL_2048_TOK_S = 19500.0
LLAMACPP_B128_TOK_S = 2430.0
HF_B128_TOK_S = 1501.0
VLLM_H100_OUT_TOK_S = 12500.0  # published, H100, 1000 ShareGPT prompts
SGLANG_H100_OUT_TOK_S = 16200.0
# Issue 11, "Must reach".
TARGET_DECODE_TOK_S = 200.0
TARGET_THROUGHPUT_OUT_TOK_S = 12000.0
TARGET_SERVE_OUT_TOK_S = 8000.0
TARGET_SERVE_TPOT_P50_MS = 30.0

REQUIRED_KEYS = [
    "date", "commit", "gpu", "decode_tok_s", "prefill_512_tok_s", "prefill_2048_tok_s",
    "throughput_out_tok_s", "throughput_num_prompts", "serve_out_tok_s", "serve_tpot_p50_ms",
    "serve_ttft_p50_ms",
]

# ---------------------------------------------------------------------------------------------
# ncu CSV


def _to_us(value, unit):
    v = float(str(value).replace(",", "").strip())
    u = (unit or "").strip().lower()
    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3,
             "second": 1e6, "s": 1e6}.get(u, 1e-3)  # ncu's base unit for durations is ns
    return v * scale


def parse_ncu_csv(text):
    """Returns (kernels, notes): kernels in launch order as dicts {name, grid, block, us}; notes:
    the tool's ==ERROR== / ==WARNING== lines."""
    notes = [l.strip() for l in text.splitlines() if l.startswith(("==ERROR==", "==WARNING=="))]
    rows = [l for l in text.splitlines() if l.startswith('"')]
    header = None
    by_id = OrderedDict()
    for rec in csv.reader(io.StringIO("\n".join(rows))):
        if header is None or ("Kernel Name" in rec and "Metric Value" in rec):
            if "Kernel Name" in rec and "Metric Value" in rec:
                header = {k: i for i, k in enumerate(rec)}
            continue
        if len(rec) < len(header):
            continue
        metric = rec[header["Metric Name"]] if "Metric Name" in header else ""
        if metric and "gpu__time_duration" not in metric:
            continue
        try:
            us = _to_us(rec[header["Metric Value"]],
                        rec[header["Metric Unit"]] if "Metric Unit" in header else "")
        except ValueError:
            continue
        kid = rec[header["ID"]] if "ID" in header else str(len(by_id))
        if "Process ID" in header:
            kid = rec[header["Process ID"]] + ":" + kid
        by_id[kid] = {
            "name": rec[header["Kernel Name"]],
            "grid": rec[header["Grid Size"]] if "Grid Size" in header else "",
            "block": rec[header["Block Size"]] if "Block Size" in header else "",
            "us": us,
        }
    return list(by_id.values()), notes


def short_name(name, width=64):
    s = name.strip()
    if s.startswith("void "):
        s = s[5:]
    # Drop the parameter list: the last balanced "(...)" at the end.
    if s.endswith(")"):
        depth = 0
        for i in range(len(s) - 1, -1, -1):
            if s[i] == ")":
                depth += 1
            elif s[i] == "(":
                depth -= 1
                if depth == 0:
                    if i > 0:
                        s = s[:i]
                    break
    s = s.replace("(anonymous namespace)::", "")
    s = re.sub(r"\b[A-Za-z_][A-Za-z_0-9]*::", "", s)
    s = s.replace("|", "/")  # keep markdown tables intact
    if len(s) > width:
        s = s[: width - 1] + "…"
    return s


def kernel_class(name):
    n = name.lower()
    if any(t in n for t in ("attention", "attn", "flash", "combine_split", "paged", "mha_", "mqa")):
        return "attention"
    if any(t in n for t in ("nvjet", "gemm", "cutlass", "sm90_xmma", "gemv", "cublas", "splitk")) \
            or "Kernel2" in name:
        return "GEMM"
    if any(t in n for t in ("sampl", "argmax", "topk", "top_k", "top_p", "topp", "min_p", "softmax",
                            "philox", "penalt", "logit", "gumbel", "multinomial", "logprob")):
        return "sampling"
    if "norm" in n:
        return "norm"
    return "other"


CLASSES = ["GEMM", "attention", "sampling", "norm", "other"]


def find_decode_steps(keys, min_period=8, max_candidates=300):
    """The longest stretch of `keys` that repeats with one period P (>= 2 whole periods): returns
    (start, period, num_periods) or None. Candidate periods are the distances between successive
    occurrences of the same key (a kernel that runs once per step recurs exactly every P)."""
    n = len(keys)
    ids = {}
    seq = [ids.setdefault(k, len(ids)) for k in keys]
    last, gaps = {}, Counter()
    for i, k in enumerate(seq):
        if k in last and i - last[k] >= min_period:
            gaps[i - last[k]] += 1
        last[k] = i
    best = None
    for period, _ in gaps.most_common(max_candidates):
        if 2 * period > n:
            continue
        run, best_run, best_start = 0, 0, 0
        for i, same in enumerate(a == b for a, b in zip(seq, seq[period:])):
            if same:
                run += 1
                if run > best_run:
                    best_run, best_start = run, i - run + 1
            else:
                run = 0
        if best_run < period:  # fewer than two whole periods
            continue
        if len(set(seq[best_start:best_start + period])) < 4:  # a fill loop, not a model step
            continue
        periods = (best_run + period) // period
        cover = periods * period
        cand = (cover, -period, best_start, period, periods)
        if best is None or cand[:2] > best[:2]:
            best = cand
    if best is None:
        return None
    return best[2], best[3], best[4]


def ncu_table(args):
    text = ""
    if os.path.exists(args.csv):
        with open(args.csv, errors="replace") as f:
            text = f.read()
    kernels, notes = parse_ncu_csv(text)
    out = {"label": args.label, "batch": args.batch, "kernels_profiled": len(kernels),
           "found": False, "command": args.cmd or None}
    md = [f"#### Per-kernel profile: {args.label}", ""]
    if args.cmd:
        md += [f"`{args.cmd}`", ""]
    found = None
    if kernels:
        found = find_decode_steps([(k["name"], k["grid"], k["block"]) for k in kernels])
        if found is None:  # grids that change from step to step (eager split-KV): names alone
            found = find_decode_steps([(k["name"], k["block"]) for k in kernels])
            out["matched_on"] = "name+block"
        else:
            out["matched_on"] = "name+grid+block"
    if not kernels or found is None:
        var = "NCU_B1" if args.batch == 1 else "NCU_B256"
        why = "no kernel rows in the ncu output" if not kernels else (
            f"no repeating decode step among the {len(kernels)} kernels profiled; if they are all "
            f"start-up, skip them next time ({var}_SKIP={args.skip + len(kernels)}), else raise "
            f"{var}_COUNT (scripts/ncu-profile.sh)")
        md += [f"Not available: {why}."]
        md += [f"    {n}" for n in notes[:8]]
        if kernels:  # show what was profiled, to place the window next time
            names = Counter(short_name(k["name"], 48) for k in kernels)
            md += ["", "Most frequent kernels in the window: " +
                   ", ".join(f"{n} ×{c}" for n, c in names.most_common(8))]
        out["error"] = why
        out["notes"] = notes[:8]
        _write(args.out_md, "\n".join(md) + "\n")
        _write(args.out_json, json.dumps(out, indent=1) + "\n")
        print(f"ncu-table {args.label}: {why}")
        return 0
    start, period, nperiods = found
    window = kernels[start:start + period * nperiods]
    period_sums = [sum(k["us"] for k in window[s * period:(s + 1) * period])
                   for s in range(nperiods)]
    # A period is normally one step. Should steps alternate (two kinds of step), the period spans
    # several: every kernel then appears that many times in it, the embedding, lm_head and
    # sampler included, which run once a step.
    per_period = Counter(short_name(k["name"]) for k in window[:period])
    steps_per_period = max(1, min(per_period.values()))
    nsteps = nperiods * steps_per_period
    step_sums = [v / steps_per_period for v in period_sums]
    step_us = sum(period_sums) / nsteps
    # One row per kernel name; a name launched with several grids in a step (one GEMM kernel
    # for the qkv, o, gate_up and down shapes) gets one row per grid when steps match exactly.
    grids = {}
    for k in window:
        grids.setdefault(short_name(k["name"]), set()).add(k["grid"])
    agg = OrderedDict()
    for k in window:
        key = short_name(k["name"])
        if len(grids[key]) > 1 and out["matched_on"] == "name+grid+block":
            key += " " + k["grid"].replace(" ", "")
        a = agg.setdefault(key, {"calls": 0, "us": 0.0, "class": kernel_class(k["name"])})
        a["calls"] += 1
        a["us"] += k["us"]
    rows = sorted(agg.items(), key=lambda kv: -kv[1]["us"])
    total = sum(a["us"] for _, a in rows)
    cls = {c: 0.0 for c in CLASSES}
    for _, a in rows:
        cls[a["class"]] += a["us"]
    implied = args.batch * 1e6 / step_us if step_us > 0 else None
    out.update({
        "found": True, "start_index": args.skip + start, "period_kernels": period // steps_per_period,
        "steps": nsteps, "steps_per_period": steps_per_period,
        "step_us": round(step_us, 2), "step_us_min": round(min(step_sums), 2),
        "step_us_max": round(max(step_sums), 2),
        "implied_tok_s": round(implied, 1) if implied else None,
        "classes_us_per_step": {c: round(v / nsteps, 2) for c, v in cls.items()},
        "kernels": [{"kernel": n, "class": a["class"], "calls_per_step": a["calls"] / nsteps,
                     "us_per_step": round(a["us"] / nsteps, 3),
                     "share_pct": round(100 * a["us"] / total, 2) if total else None}
                    for n, a in rows],
    })
    md += [
        f"{nsteps} decode steps found among {len(kernels)} kernels profiled (launches "
        f"{args.skip + start}–{args.skip + start + period * nperiods - 1}, {period // steps_per_period} kernels per step"
        + (f", steps alternate: period of {steps_per_period} steps" if steps_per_period > 1
           else "") + f", matched on {out['matched_on']}). GPU time per step (sum of kernel durations, ncu serialises "
        f"kernels): **{step_us:,.1f} µs** (min {min(step_sums):,.1f}, max {max(step_sums):,.1f})"
        + (f" → at most {implied:,.0f} tok/s at batch {args.batch} if the GPU never idled."
           if implied else "."), "",
        "| class | µs / step | share |", "|---|---:|---:|",
    ]
    for c in CLASSES:
        if cls[c] > 0:
            md.append(f"| {c} | {cls[c] / nsteps:,.1f} | {100 * cls[c] / total:.1f} % |")
    md += ["", "| kernel | class | count | calls / step | total µs | µs / step | share |",
           "|---|---|---:|---:|---:|---:|---:|"]
    shown = rows[: args.top]
    for n, a in shown:
        md.append(f"| `{n}` | {a['class']} | {a['calls']} | {a['calls'] / nsteps:g} | "
                  f"{a['us']:,.1f} | {a['us'] / nsteps:,.2f} | {100 * a['us'] / total:.1f} % |")
    rest = rows[args.top:]
    if rest:
        r_calls = sum(a["calls"] for _, a in rest)
        r_us = sum(a["us"] for _, a in rest)
        md.append(f"| ({len(rest)} more kernels) | | {r_calls} | {r_calls / nsteps:g} | "
                  f"{r_us:,.1f} | {r_us / nsteps:,.2f} | {100 * r_us / total:.1f} % |")
    if notes:
        md += ["", "ncu said:"] + [f"    {n}" for n in notes[:5]]
    _write(args.out_md, "\n".join(md) + "\n")
    _write(args.out_json, json.dumps(out, indent=1) + "\n")
    print(f"ncu-table {args.label}: {nsteps} steps x {period} kernels, {step_us:,.1f} us/step")
    return 0


# ---------------------------------------------------------------------------------------------
# record


def _write(path, text):
    if not path:
        return
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _load_json(path):
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _num(x):
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)) and math.isfinite(x):
        return x
    return None


def _r(x, nd=1):
    x = _num(x)
    return None if x is None else round(float(x), nd)


def _read(path):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def collect(args):
    rec = OrderedDict((k, None) for k in REQUIRED_KEYS)
    rec["date"] = args.date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    rec["commit"] = args.commit
    rec["gpu"] = args.gpu
    extra = OrderedDict()
    extra["mode"] = args.mode

    lat = _load_json(args.latency)
    if lat:
        rec["decode_tok_s"] = _r(lat.get("decode_tokens_per_s_mean"), 2)
        rec["prefill_512_tok_s"] = _r(lat.get("prefill_tokens_per_s_mean"), 1)
        extra["ttft_512_ms"] = _r(lat.get("ttft_ms_mean"), 2)
        extra["latency_input_len"] = lat.get("input_len")
        extra["latency_output_len"] = lat.get("output_len")
    pre = _load_json(args.prefill)
    if pre:
        rec["prefill_2048_tok_s"] = _r(pre.get("prefill_tokens_per_s_mean"), 1)
        extra["ttft_2048_ms"] = _r(pre.get("ttft_ms_mean"), 2)
    thr = _load_json(args.throughput)
    if thr:
        rec["throughput_out_tok_s"] = _r(thr.get("output_tokens_per_s"), 1)
        rec["throughput_num_prompts"] = thr.get("num_requests")
        extra["throughput_total_tok_s"] = _r(thr.get("total_tokens_per_s"), 1)
        extra["throughput_failed"] = thr.get("failed")
        extra["throughput_elapsed_s"] = _r(thr.get("elapsed_s"), 2)
        extra["throughput_dataset"] = thr.get("dataset")
    srv = _load_json(args.serve)
    if srv and srv.get("runs"):
        m = srv["runs"][0].get("metrics", {})
        cfg = srv.get("config", {})
        rec["serve_out_tok_s"] = _r(m.get("output_throughput"), 1)
        rec["serve_tpot_p50_ms"] = _r((m.get("tpot_ms") or {}).get("p50"), 2)
        rec["serve_ttft_p50_ms"] = _r((m.get("ttft_ms") or {}).get("p50"), 2)
        extra["serve_num_prompts"] = m.get("num_requests", cfg.get("num_prompts"))
        extra["serve_concurrency"] = m.get("max_concurrency", cfg.get("max_concurrency"))
        extra["serve_completed"] = m.get("completed")
        extra["serve_failed"] = m.get("failed")
        extra["serve_total_tok_s"] = _r(m.get("total_token_throughput"), 1)
        extra["serve_tpot_p99_ms"] = _r((m.get("tpot_ms") or {}).get("p99"), 2)
        extra["serve_ttft_p99_ms"] = _r((m.get("ttft_ms") or {}).get("p99"), 2)
        extra["serve_itl_p50_ms"] = _r((m.get("itl_ms") or {}).get("p50"), 2)
        extra["serve_tokenizer"] = cfg.get("tokenizer")
    hf = re.findall(r"HF transformers (\S+) generate: batch (\d+).*?: ([0-9.]+) output tok/s",
                    _read(args.hf_log))
    if hf:
        extra["hf_transformers_version"] = hf[-1][0]
        extra["hf_generate_batch"] = int(hf[-1][1])
        extra["hf_generate_out_tok_s"] = _r(float(hf[-1][2]), 1)
    for tag, path in (("b1", args.profile_b1), ("b256", args.profile_b256)):
        p = _load_json(path)
        if p and p.get("found"):
            extra[f"profile_{tag}_step_gpu_us"] = p.get("step_us")
            extra[f"profile_{tag}_kernels_per_step"] = p.get("period_kernels")
            c = p.get("classes_us_per_step") or {}
            tot = sum(v for v in c.values() if _num(v)) or None
            if tot:
                extra[f"profile_{tag}_gemm_pct"] = round(100 * c.get("GEMM", 0) / tot, 1)
                extra[f"profile_{tag}_attention_pct"] = round(100 * c.get("attention", 0) / tot, 1)
    # What the engine prints about itself (issue 11, items 4 and 5), when it does.
    logs = "\n".join(_read(p) for p in args.log or [])
    idle = re.findall(r"(?i)\bidle\b[^\n%]*?([0-9]+(?:\.[0-9]+)?)\s*%", logs)
    if idle:
        extra["gpu_idle_pct"] = _r(float(idle[-1]), 2)
        extra["gpu_idle_lines"] = len(idle)
    cap = re.findall(r"(?i)captur\w*[^\n]*?\b([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b", logs)
    if cap:
        v, unit = cap[-1]
        extra["graph_capture_s"] = _r(float(v) / (1000.0 if unit.lower() == "ms" else 1.0), 3)
    for k, v in extra.items():
        rec[k] = v
    return rec


def _fmt(x, nd=0, unit=""):
    if _num(x) is None:
        return "—"
    return f"{x:,.{nd}f}{unit}"


def _ratio(x, ref):
    if _num(x) is None or not ref:
        return "—"
    return f"{x / ref:.2f}×"


def _pct(x, ref):
    if _num(x) is None or not ref:
        return "—"
    return f"{100 * x / ref:.0f} %"


def _target(x, goal, lower_is_better=False):
    if _num(x) is None:
        return "not run"
    ok = x <= goal if lower_is_better else x >= goal
    return "met" if ok else "not met"


def render_md(rec, args):
    d, c, g = rec["date"], rec["commit"], rec["gpu"] or "GPU unknown"
    quick = rec.get("mode") == "quick"
    L = [f"### {d} — {g.split(',')[0].strip()}, Llama-3.1-8B shape (bf16, dummy weights), "
         f"commit {c}" + (" (quick run: not for the record)" if quick else ""), ""]
    L += [f"`scripts/gpu-check.sh{' --quick' if quick else ''}` on {g}. Workloads as in DESIGN.md "
          "(Performance). Floors and peers: DESIGN.md, measured on this H200 on 2026-12-01 "
          "(llama.cpp CUDA/FA/f16; HF transformers `generate`); \"must reach\" is issue 11's.", ""]
    hf_now = rec.get("hf_generate_out_tok_s")
    L += ["| workload | inferd | floor / peer | ratio | must reach |", "|---|---:|---|---|---|"]
    L.append(f"| decode, 1 stream, 512 in / 256 out | {_fmt(rec['decode_tok_s'], 1)} tok/s | "
             f"floor ≈ {DECODE_FLOOR_TOK_S:.0f}; llama.cpp {LLAMACPP_DECODE_TOK_S} | "
             f"{_pct(rec['decode_tok_s'], DECODE_FLOOR_TOK_S)} of floor; "
             f"{_ratio(rec['decode_tok_s'], LLAMACPP_DECODE_TOK_S)} llama.cpp | "
             f"≥ {TARGET_DECODE_TOK_S:.0f}: {_target(rec['decode_tok_s'], TARGET_DECODE_TOK_S)} |")
    L.append(f"| prefill, 512 tokens | {_fmt(rec['prefill_512_tok_s'])} tok/s | llama.cpp "
             f"{LLAMACPP_PREFILL_512_TOK_S / 1000:.1f}k | "
             f"{_ratio(rec['prefill_512_tok_s'], LLAMACPP_PREFILL_512_TOK_S)} | |")
    L.append(f"| prefill, 2048 tokens | {_fmt(rec['prefill_2048_tok_s'])} tok/s | llama.cpp "
             f"{LLAMACPP_PREFILL_2048_TOK_S / 1000:.1f}k | "
             f"{_ratio(rec['prefill_2048_tok_s'], LLAMACPP_PREFILL_2048_TOK_S)} | |")
    n = rec.get("throughput_num_prompts")
    thr_peer = f"HF `generate` batch 128: {HF_B128_TOK_S:,.0f}" + (
        f" (this run: {hf_now:,.0f})" if _num(hf_now) else "") + \
        f"; llama.cpp batch 128: {LLAMACPP_B128_TOK_S:,.0f}"
    failed = rec.get("throughput_failed")
    L.append(f"| offline, {n if n is not None else '—'} sharegpt-like, all at once | "
             f"{_fmt(rec['throughput_out_tok_s'])} out tok/s "
             f"({_fmt(rec.get('throughput_total_tok_s'))} total)"
             + (f", {failed} failed" if failed else "") + f" | {thr_peer} | "
             f"{_ratio(rec['throughput_out_tok_s'], hf_now if _num(hf_now) else HF_B128_TOK_S)} "
             f"HF; {_ratio(rec['throughput_out_tok_s'], LLAMACPP_B128_TOK_S)} llama.cpp | "
             f"≥ {TARGET_THROUGHPUT_OUT_TOK_S:,.0f} (1000 prompts): "
             f"{_target(rec['throughput_out_tok_s'], TARGET_THROUGHPUT_OUT_TOK_S) if n == 1000 else 'not run at 1000'} |")
    sn, sc = rec.get("serve_num_prompts"), rec.get("serve_concurrency")
    serve_ok = "not run"
    if _num(rec["serve_out_tok_s"]) is not None:
        a = _target(rec["serve_out_tok_s"], TARGET_SERVE_OUT_TOK_S)
        b = _target(rec["serve_tpot_p50_ms"], TARGET_SERVE_TPOT_P50_MS, lower_is_better=True)
        serve_ok = "met" if a == b == "met" else "not met"
    sf = rec.get("serve_failed")
    L.append(f"| `inferd serve` ← `inferd bench serve`, {sn if sn is not None else '—'} "
             f"sharegpt-like, concurrency {sc if sc is not None else '—'} | "
             f"{_fmt(rec['serve_out_tok_s'])} out tok/s; TPOT p50 "
             f"{_fmt(rec['serve_tpot_p50_ms'], 1, ' ms')}; TTFT p50 "
             f"{_fmt(rec['serve_ttft_p50_ms'], 0, ' ms')}" + (f"; {sf} failed" if sf else "") +
             f" | vLLM / SGLang publish {VLLM_H100_OUT_TOK_S / 1000:.1f}k / "
             f"{SGLANG_H100_OUT_TOK_S / 1000:.1f}k (H100, 1000 ShareGPT) | "
             f"{_ratio(rec['serve_out_tok_s'], VLLM_H100_OUT_TOK_S)} vLLM-on-H100 | "
             f"≥ {TARGET_SERVE_OUT_TOK_S:,.0f}, TPOT p50 ≤ {TARGET_SERVE_TPOT_P50_MS:.0f} ms: "
             f"{serve_ok} |")
    L.append("")
    notes = []
    if _num(rec.get("gpu_idle_pct")) is not None:
        notes.append(f"GPU idle between steps (as the engine reports it, last value in the logs): "
                     f"{rec['gpu_idle_pct']} %.")
    if _num(rec.get("graph_capture_s")) is not None:
        notes.append(f"CUDA graph capture at start-up: {rec['graph_capture_s']} s.")
    for tag, b in (("b1", 1), ("b256", 256)):
        us = rec.get(f"profile_{tag}_step_gpu_us")
        if _num(us):
            s = (f"Decode step at batch {b}: {us:,.0f} µs of kernel time "
                 f"({rec.get(f'profile_{tag}_kernels_per_step')} kernels)")
            if b == 1 and _num(rec["decode_tok_s"]):
                wall = 1e6 / rec["decode_tok_s"]
                s += (f"; the measured decode step (latency run) takes {wall:,.0f} µs: kernels "
                      f"fill {100 * us / wall:.0f} % of it, the rest is the GPU waiting")
            notes.append(s + ".")
    if notes:
        L += [" ".join(notes), ""]
    for path in (args.profile_b1_md, args.profile_b256_md):
        t = _read(path).strip()
        if t:
            L += [t, ""]
    return "\n".join(L).rstrip() + "\n"


def summary_table(rec):
    rows = [
        ("decode tok/s (1 stream, 512/256)", _fmt(rec["decode_tok_s"], 1),
         f"floor {DECODE_FLOOR_TOK_S:.0f}, must reach {TARGET_DECODE_TOK_S:.0f}"),
        ("prefill 512 tok/s", _fmt(rec["prefill_512_tok_s"]), "llama.cpp 19.1k"),
        ("prefill 2048 tok/s", _fmt(rec["prefill_2048_tok_s"]), "llama.cpp 19.5k"),
        (f"throughput out tok/s ({rec.get('throughput_num_prompts') or '—'} req)",
         _fmt(rec["throughput_out_tok_s"]), "must reach 12,000 (1000 req)"),
        (f"serve out tok/s (c={rec.get('serve_concurrency') or '—'})",
         _fmt(rec["serve_out_tok_s"]), "must reach 8,000"),
        ("serve TPOT p50 ms", _fmt(rec["serve_tpot_p50_ms"], 1), "must reach <= 30"),
        ("serve TTFT p50 ms", _fmt(rec["serve_ttft_p50_ms"], 0), ""),
        ("HF generate b128 out tok/s", _fmt(rec.get("hf_generate_out_tok_s")), "DESIGN: 1.5k"),
        ("decode step kernel us b1 / b256",
         f"{_fmt(rec.get('profile_b1_step_gpu_us'))} / {_fmt(rec.get('profile_b256_step_gpu_us'))}",
         "ncu"),
        ("GPU idle % (engine log)", _fmt(rec.get("gpu_idle_pct"), 1), ""),
    ]
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{w}}  {b:>14}  {c}" for a, b, c in rows)


def record(args):
    rec = collect(args)
    # Sections other runs add to the record ("fp8", issue 13; "gguf", issue 35) survive a new bf16
    # record.
    try:
        with open(args.out_json) as f:
            old = json.load(f)
        for key in ("fp8", "gguf"):
            if key in old and key not in rec:
                rec[key] = old[key]
    except (OSError, ValueError):
        pass
    _write(args.out_json, json.dumps(rec, indent=1) + "\n")
    _write(args.out_md, render_md(rec, args))
    print(summary_table(rec))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    t = sub.add_parser("ncu-table", help="per-kernel table of one decode step from an ncu CSV log")
    t.add_argument("--csv", required=True, help="ncu --csv output (its --log-file)")
    t.add_argument("--batch", type=int, required=True, help="sequences per decode step")
    t.add_argument("--label", required=True)
    t.add_argument("--cmd", default="", help="the profiled command, quoted in the table")
    t.add_argument("--skip", type=int, default=0, help="launches ncu skipped (--launch-skip)")
    t.add_argument("--top", type=int, default=20, help="kernels listed (the rest summed)")
    t.add_argument("--out-md", required=True)
    t.add_argument("--out-json", required=True)
    t.set_defaults(func=ncu_table)
    r = sub.add_parser("record", help="h200.json and the docs/performance.md section")
    r.add_argument("--latency", help="bench latency --json, 512 in / 256 out")
    r.add_argument("--prefill", help="bench latency --json, 2048 in / 1 out")
    r.add_argument("--throughput", help="bench throughput --json")
    r.add_argument("--serve", help="bench serve --json")
    r.add_argument("--hf-log", help="output of tools/hf_baseline.py")
    r.add_argument("--profile-b1", help="ncu-table --out-json, batch 1")
    r.add_argument("--profile-b256", help="ncu-table --out-json, batch 256")
    r.add_argument("--profile-b1-md", help="ncu-table --out-md, batch 1 (put in the section)")
    r.add_argument("--profile-b256-md", help="ncu-table --out-md, batch 256")
    r.add_argument("--log", action="append", help="benchmark logs, searched for the GPU idle "
                   "share and the graph capture time the engine prints (repeatable)")
    r.add_argument("--commit", default=None)
    r.add_argument("--gpu", default=None, help="nvidia-smi name, memory, driver")
    r.add_argument("--date", default=None, help="YYYY-MM-DD (default: today, UTC)")
    r.add_argument("--mode", default="full", choices=["full", "quick"])
    r.add_argument("--out-json", required=True)
    r.add_argument("--out-md", required=True)
    r.set_defaults(func=record)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
