#!/usr/bin/env python3
"""Issue 16's must-reach figures for `inferd router`, on this machine's CPU, on loopback.

Starts tiny CPU replicas of `inferd serve` (random weights, real tokenizers), routers in front of
them, and drives them with `inferd bench serve`:

  1. prefix affinity: shared-prefix workload, 8 distinct 1,000-token prefixes; the prefix-cache hit
     rate of one replica alone, through a cache-aware router over three replicas, and through a
     round-robin router over three replicas;
  2. failover: one of the three replicas killed (SIGKILL) mid-run and restarted on its port; which
     requests failed, how many attempts were retried, whether the replica rejoined;
  3. router overhead: TTFT p50 direct to a replica against through a router to the same replica,
     runs alternated;
  4. two different models behind one router, each answering under its own name.

Prints a Markdown summary; --json writes the figures. Needs the inferd binary (build it first) and
the test tokenizers (scripts/fetch-test-data.sh). Takes about a minute on two cores.
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_model(dest, tokenizer, arch):
    """A model directory: a tiny config of `arch` and a real tokenizer (weights: --load-format dummy)."""
    os.makedirs(dest, exist_ok=True)
    tok = os.path.join(ROOT, "tests", "data", "tokenizers", tokenizer)
    if not os.path.exists(os.path.join(tok, "tokenizer.json")):
        sys.exit(f"{tok}/tokenizer.json is missing: run scripts/fetch-test-data.sh")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok, f), os.path.join(dest, f))
    if arch == "qwen3":
        cfg = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False,
               "head_dim": 32, "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 144,
               "max_position_embeddings": 4096, "num_attention_heads": 4, "num_hidden_layers": 2,
               "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
               "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 151936,
               "eos_token_id": 151645}
    else:
        cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 96,
               "intermediate_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
               "num_hidden_layers": 3, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
               "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
               "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001}
    with open(os.path.join(dest, "config.json"), "w") as f:
        json.dump(cfg, f)
    return dest


class Proc:
    """An `inferd` process on 127.0.0.1 whose port is read from its log."""

    def __init__(self, binary, args, name, logdir, pattern):
        self.name = name
        self.args = args
        self.binary = binary
        self.logpath = os.path.join(logdir, name + ".log")
        self.pattern = pattern
        self.start()

    def start(self):
        self.log = open(self.logpath, "a")
        self.p = subprocess.Popen([self.binary] + self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        self.port = None
        while self.port is None:
            with open(self.logpath) as f:
                m = re.findall(self.pattern, f.read())
            if m:
                self.port = int(m[-1])
            elif self.p.poll() is not None:
                sys.exit(f"{self.name} exited early; see {self.logpath}")
            elif time.time() > deadline:
                sys.exit(f"{self.name} did not start; see {self.logpath}")
            else:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def restart_on_same_port(self):
        i = self.args.index("--port")
        self.args[i + 1] = str(self.port)
        self.start()

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        sys.exit(f"{self.name} never became ready; see {self.logpath}")

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def replica(binary, model, name, logdir, served, port=0, threads=1):
    args = ["serve", model, "--load-format", "dummy", "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", served, "--kv-cache-memory", "0.25", "--threads", str(threads),
            # A small batch, so that requests also wait in the replica's queue (the failover
            # run needs some that have not started streaming when their replica dies).
            "--max-num-seqs", "4"]
    return Proc(binary, args, name, logdir, r"serving \S+ on http://127\.0\.0\.1:(\d+)")


def router(binary, backends, name, logdir, policy="cache_aware"):
    args = ["router", "--host", "127.0.0.1", "--port", "0", "--policy", policy,
            "--health-check-interval", "0.25"]
    for b in backends:
        args += ["--backend", b.url]
    return Proc(binary, args, name, logdir, r"routing on http://127\.0\.0\.1:(\d+)")


def metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        return r.read().decode()


def metric_sum(page, name, match=""):
    total = 0.0
    for line in page.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " ") and match in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def bench(binary, base, tokenizer, out, *, dataset, num_prompts, seed, extra=()):
    args = [binary, "bench", "serve", "--base-url", base, "--tokenizer", tokenizer, "--dataset",
            dataset, "--num-prompts", str(num_prompts), "--seed", str(seed), "--no-progress",
            "--json", out] + list(extra)
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench failed ({' '.join(args)}):\n{r.stdout}\n{r.stderr}")
    with open(out) as f:
        return json.load(f)["runs"][0]


def interleaved_ttft(ports, n, prompt_tokens=64):
    """TTFT of streamed completions, one request to each port in turn (so that both see the same
    moments of the machine's load), over kept-alive connections: {port: [ms, ...]}."""
    conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports}
    out = {p: [] for p in ports}
    for i in range(n):
        # Which goes first alternates; every request has a prompt of its own (no prefix-cache hit)
        # of the same shape.
        order = list(conns.items()) if i % 2 == 0 else list(reversed(conns.items()))
        for p, c in order:
            prompt = " ".join(f"w{i}p{p}x{k}" for k in range(prompt_tokens // 4))
            body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 2,
                               "stream": True, "ignore_eos": True})
            t0 = time.perf_counter()
            c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            ttft = None
            while True:
                line = r.readline()
                if not line:
                    break
                if ttft is None and line.startswith(b"data: {") and b'"text":""' not in line:
                    ttft = (time.perf_counter() - t0) * 1e3
                if line.startswith(b"data: [DONE]"):
                    r.read()
                    break
            if ttft is None:
                sys.exit(f"no text streamed from port {p}")
            out[p].append(ttft)
    for c in conns.values():
        c.close()
    return out


def wait_healthy(router_proc, n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metric_sum(metrics(router_proc.url), "inferd:router_replica_healthy") == n:
            return
        time.sleep(0.05)
    sys.exit(f"{router_proc.name}: {n} replicas never became healthy")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inferd", default=os.path.join(ROOT, "build", "ci", "src", "cli", "inferd"))
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--prefix-prompts", type=int, default=160)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="inferd-router-check-")
    qwen = tiny_model(os.path.join(work, "qwen3-tiny"), "qwen3", "qwen3")
    llama = tiny_model(os.path.join(work, "llama3-tiny"), "llama3", "llama")
    procs = []
    out = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU",
           "date": time.strftime("%Y-%m-%d")}
    try:
        out["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()
        solo = replica(a.inferd, qwen, "solo", work, "tiny")
        reps = [replica(a.inferd, qwen, f"replica{i}", work, "tiny") for i in range(3)]
        procs += [solo] + reps
        for p in procs:
            p.wait_ready()
        ca = router(a.inferd, reps, "router-cache-aware", work)
        rr = router(a.inferd, reps, "router-round-robin", work, "round_robin")
        one = router(a.inferd, [solo], "router-one", work)
        procs += [ca, rr, one]
        for r, n in ((ca, 3), (rr, 3), (one, 1)):
            wait_healthy(r, n)

        # 1. Prefix affinity.
        sp = ["--num-prefixes", "8", "--prefix-len", "1000", "--input-len", "32", "--output-len",
              "8", "--max-concurrency", "8"]
        hit = {}
        for label, base, seed in (("one replica alone", solo.url, 1),
                                  ("cache-aware router, 3 replicas", ca.url, 2),
                                  ("round-robin router, 3 replicas", rr.url, 3)):
            run = bench(a.inferd, base, qwen, os.path.join(work, f"prefix{seed}.json"),
                        dataset="shared-prefix", num_prompts=a.prefix_prompts, seed=seed, extra=sp)
            m = run["metrics"]
            hit[label] = {"hit_rate": m["prefix_cache_hit_rate"], "failed": m["failed"],
                          "ttft_p50_ms": m["ttft_ms"]["p50"]}
        base_rate = hit["one replica alone"]["hit_rate"]
        for v in hit.values():
            v["vs_one_replica"] = v["hit_rate"] / base_rate
        page = metrics(ca.url)
        hit["cache-aware router, 3 replicas"]["decisions"] = {
            d: metric_sum(page, "inferd:router_routing_decisions_total", f'"{d}"')
            for d in ("cache_hit", "cache_miss", "load_balanced")}
        out["prefix"] = hit

        # 2. Failover: kill one replica mid-run (the one with the most requests open), restart it
        # on its port.
        before = metrics(ca.url)
        done0 = metric_sum(before, "inferd:router_requests_total")
        retries0 = metric_sum(before, "inferd:router_retries_total")
        n_fail = 150
        result = {}

        def run_bench():
            result["run"] = bench(a.inferd, ca.url, qwen, os.path.join(work, "failover.json"),
                                  dataset="shared-prefix", num_prompts=n_fail, seed=4,
                                  extra=["--num-prefixes", "8", "--prefix-len", "1000",
                                         "--input-len", "32", "--output-len", "64",
                                         "--max-concurrency", "24"])

        t = threading.Thread(target=run_bench)
        t.start()
        while metric_sum(metrics(ca.url), "inferd:router_requests_total") - done0 < n_fail // 4:
            time.sleep(0.02)
        page = metrics(ca.url)
        victim = max(reps, key=lambda r: metric_sum(page, "inferd:router_replica_in_flight", r.url))
        in_flight_victim = metric_sum(page, "inferd:router_replica_in_flight", victim.url)
        waiting_victim = metric_sum(page, "inferd:router_replica_waiting", victim.url)
        victim.kill()
        killed_at = time.time()
        time.sleep(2.0)
        victim.restart_on_same_port()
        restarted_after = time.time() - killed_at
        t.join()
        run = result["run"]
        failures = [q for q in run["requests"] if not q["success"]]
        mid_stream = [q for q in failures if "mid-stream" in q.get("error", "")]
        after = metrics(ca.url)
        out["failover"] = {
            "requests": n_fail,
            "in_flight_on_killed_replica": in_flight_victim,
            "waiting_on_killed_replica": waiting_victim,
            "failed": len(failures),
            "failed_mid_stream": len(mid_stream),
            "failed_other": [q.get("error", "") for q in failures if q not in mid_stream],
            "retried_attempts": metric_sum(after, "inferd:router_retries_total") - retries0,
            "killed_replica": victim.url,
            "restarted_after_s": round(restarted_after, 1),
        }
        wait_healthy(ca, 3)
        served_before = metric_sum(metrics(ca.url), "inferd:router_requests_total", victim.url)
        bench(a.inferd, ca.url, qwen, os.path.join(work, "rejoin.json"), dataset="shared-prefix",
              num_prompts=48, seed=5, extra=sp)
        served_after = metric_sum(metrics(ca.url), "inferd:router_requests_total", victim.url)
        out["failover"]["rejoined"] = metric_sum(
            metrics(ca.url), "inferd:router_replica_healthy", victim.url) == 1
        out["failover"]["served_after_rejoin"] = served_after - served_before

        # 3. Overhead: TTFT p50 direct against through a router to the same replica, alternated.
        ov = {"direct": [], "router": []}
        rnd = ["--input-len", "64", "--output-len", "4", "--max-concurrency", "1",
               "--num-warmups", "5"]
        seed = 10
        for _ in range(4):
            for label, base in (("direct", solo.url), ("router", one.url)):
                seed += 1
                run = bench(a.inferd, base, qwen, os.path.join(work, f"overhead{seed}.json"),
                            dataset="random", num_prompts=150, seed=seed, extra=rnd)
                ov[label].append(run["metrics"]["ttft_ms"]["p50"])
        med = lambda xs: sorted(xs)[len(xs) // 2]
        out["overhead"] = {"direct_ttft_p50_ms": ov["direct"], "router_ttft_p50_ms": ov["router"],
                           "median_difference_ms": med(ov["router"]) - med(ov["direct"])}
        # The same, request by request in turn (direct, router, direct, ...): one run.
        n_il = 400
        il = interleaved_ttft([solo.port, one.port], n_il)
        out["overhead"]["interleaved"] = {
            "requests": n_il, "direct_ttft_p50_ms": med(il[solo.port]),
            "router_ttft_p50_ms": med(il[one.port]),
            "difference_ms": med(il[one.port]) - med(il[solo.port]),
            # Each router request against the direct one next to it: robust to drifting load.
            "median_paired_difference_ms": med([r - d for d, r in zip(il[solo.port],
                                                                      il[one.port])])}

        # 4. Two models behind one router.
        other = replica(a.inferd, llama, "llama", work, "tiny-llama")
        procs.append(other)
        other.wait_ready()
        two = router(a.inferd, [solo, other], "router-two-models", work)
        procs.append(two)
        wait_healthy(two, 2)
        with urllib.request.urlopen(two.url + "/v1/models", timeout=5) as r:
            listed = [m["id"] for m in json.load(r)["data"]]
        answers = {}
        for model, rep in (("tiny", solo), ("tiny-llama", other)):
            req = urllib.request.Request(
                two.url + "/v1/chat/completions",
                data=json.dumps({"model": model, "max_tokens": 4,
                                 "messages": [{"role": "user", "content": "hello"}]}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                body = json.load(r)
                answers[model] = {"model": body["model"], "replica": r.headers["X-Inferd-Replica"],
                                  "expected_replica": rep.url}
        out["two_models"] = {"listed": listed, "answers": answers}
    finally:
        for p in reversed(procs):
            p.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs in {work}", file=sys.stderr)

    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    report(out)


def report(o):
    print(f"Machine: {o['machine']}; commit {o.get('commit', '?')}; {o['date']}\n")
    print("| prefix workload (8 × 1,000-token prefixes) | prefix-cache hit rate | vs one replica "
          "| failed | TTFT p50 |")
    print("|---|---:|---:|---:|---:|")
    for k, v in o["prefix"].items():
        print(f"| {k} | {v['hit_rate'] * 100:.1f} % | {v['vs_one_replica'] * 100:.1f} % "
              f"| {v['failed']} | {v['ttft_p50_ms']:.1f} ms |")
    d = o["prefix"]["cache-aware router, 3 replicas"].get("decisions", {})
    print(f"\nCache-aware decisions: {json.dumps(d)}\n")
    f = o["failover"]
    print(f"Failover: {f['requests']} requests, replica {f['killed_replica']} killed with "
          f"{f['in_flight_on_killed_replica']:.0f} requests open on it "
          f"({f['waiting_on_killed_replica']:.0f} waiting at its last health check); failed "
          f"{f['failed']} (mid-stream {f['failed_mid_stream']}, other {len(f['failed_other'])}); "
          f"attempts retried {f['retried_attempts']:.0f}; restarted after "
          f"{f['restarted_after_s']} s; rejoined: {f['rejoined']}, served "
          f"{f['served_after_rejoin']:.0f} requests afterwards")
    if f["failed_other"]:
        print("  other failures: " + "; ".join(f["failed_other"][:5]))
    ov = o["overhead"]
    print(f"\nOverhead: TTFT p50 direct {[round(x, 3) for x in ov['direct_ttft_p50_ms']]} ms, "
          f"through the router {[round(x, 3) for x in ov['router_ttft_p50_ms']]} ms; median "
          f"difference {ov['median_difference_ms']:.3f} ms")
    il = ov["interleaved"]
    print(f"Overhead, {il['requests']} streamed requests alternated direct / router: TTFT p50 "
          f"direct {il['direct_ttft_p50_ms']:.3f} ms, through the router "
          f"{il['router_ttft_p50_ms']:.3f} ms: {il['difference_ms']:+.3f} ms (median of the "
          f"paired differences {il['median_paired_difference_ms']:+.3f} ms)")
    t = o["two_models"]
    print(f"\nTwo models: /v1/models lists {t['listed']}; " + "; ".join(
        f"{m} answered as '{v['model']}' by {v['replica']} (expected {v['expected_replica']})"
        for m, v in t["answers"].items()))


if __name__ == "__main__":
    main()
