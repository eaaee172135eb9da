// Shared setup for the end-to-end tests: a tiny random model with a real tokenizer, and the real
// `inferd serve` binary started on a free loopback port.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BIN = process.env.INFERD_BIN;
export const DATA = process.env.INFERD_TEST_DATA_DIR ?? path.resolve(import.meta.dirname, '../data');

// A Qwen3-shaped model small enough for the CPU (2 layers, hidden 64) with Qwen3's real tokenizer
// and chat template; weights are random (--load-format dummy). `slow` makes it about ten times
// heavier per token (hidden 512, 4 layers), for tests that need a generation to last seconds.
export function makeModelDir({ slow = false } = {}) {
  const tok = path.join(DATA, 'tokenizers', 'qwen3');
  if (!fs.existsSync(path.join(tok, 'tokenizer.json')))
    throw new Error(`${tok}/tokenizer.json is missing: run scripts/fetch-test-data.sh`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferd-e2e-'));
  const config = {
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    attention_bias: false,
    head_dim: 32,
    hidden_act: 'silu',
    hidden_size: 64,
    intermediate_size: 144,
    max_position_embeddings: 1024,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    vocab_size: 151936,
    eos_token_id: 151645,
  };
  if (slow) Object.assign(config, { hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 4 });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 1));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(tok, f), path.join(dir, f));
  return dir;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts `inferd serve` on 127.0.0.1 with --port 0 and waits until /ready answers 200. Random
// weights unless `realWeights` (a model directory with its safetensors, such as models/demo).
export async function startServer(modelDir, extraArgs = [], { env = {}, timeoutMs = 60000, realWeights = false } = {}) {
  if (!BIN) throw new Error('INFERD_BIN is not set (the inferd binary to test)');
  const args = ['serve', modelDir, ...(realWeights ? [] : ['--load-format', 'dummy']), '--host', '127.0.0.1', '--port', '0',
    '--served-model-name', 'tiny', '--kv-cache-memory', '0.05', '--threads', '2', ...extraArgs];
  const proc = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + timeoutMs;
  let port = 0;
  while (!port) {
    const m = /serving \S+ on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
    if (m) port = Number(m[1]);
    else if (proc.exitCode !== null) throw new Error(`inferd exited early:\n${log}`);
    else if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`inferd did not start:\n${log}`); }
    else await sleep(20);
  }
  const base = `http://127.0.0.1:${port}`;
  while (true) {
    try {
      if ((await fetch(`${base}/ready`)).status === 200) break;
    } catch {}
    if (proc.exitCode !== null) throw new Error(`inferd exited before it was ready:\n${log}`);
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`inferd never became ready:\n${log}`); }
    await sleep(20);
  }
  return {
    proc, port, base, baseURL: `${base}/v1`, log: () => log, exited,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

// The value of a metric line `name{labels} value` whose labels contain `match`.
export async function metric(base, name, match = '') {
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp);
    if ((key === name || key.startsWith(name + '{')) && key.includes(match)) return Number(line.slice(sp + 1));
  }
  return undefined;
}

export async function waitFor(fn, { timeoutMs = 10000, everyMs = 20 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return true;
    await sleep(everyMs);
  }
  return false;
}

export { sleep };
