// lm-evaluation-harness's loglikelihood requests, made with the official `openai` client against
// the real `inferd serve`: /v1/completions with token-id prompts, echo, logprobs 1 and max_tokens
// 1 (its local-completions shape) and 0, read as lm-eval reads them (sum of
// token_logprobs[ctxlen:-1], is_greedy from top_logprobs).
//   - On a golden model (tests/data/goldens/llama3, real weights) against transformers: the sum
//     and is_greedy equal those of the log-softmax of transformers' logits (golden.safetensors).
//   - On a tiny random model with the real Qwen3 tokenizer: a continuation scored inside the
//     prompt gets the logprobs it was generated with.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { DATA, makeModelDir, startServer } from './helpers.mjs';

let modelDir;
let srv;
let client;

before(async () => {
  modelDir = makeModelDir();
  // Small chunks: the scored prompts run over several prefill steps.
  srv = await startServer(modelDir, ['--max-num-batched-tokens', '16']);
  client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
});

after(async () => {
  await srv?.stop();
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

const close = (a, b, tol = 2e-4) => Math.abs(a - b) <= tol * (1 + Math.abs(b));

// lm-eval's parse_logprobs for one choice.
function loglikelihood(choice, ctxlen) {
  const lps = choice.logprobs.token_logprobs.slice(ctxlen, -1);
  const tops = choice.logprobs.top_logprobs.slice(ctxlen, -1);
  let isGreedy = true;
  lps.forEach((lp, i) => { if (lp !== Math.max(...Object.values(tops[i]))) isGreedy = false; });
  return { sum: lps.reduce((a, b) => a + b, 0), isGreedy };
}

describe('loglikelihood (lm-eval)', () => {
  test('scored continuations equal the logprobs they were generated with', async () => {
    const ctx = (await client.completions.create({
      model: 'tiny', prompt: 'The capital of France is', max_tokens: 0, echo: true, logprobs: 0,
    })).choices[0];
    // The context's own tokens, as the server tokenized them (lm-eval sends token ids).
    const ctxIds = (await fetch(`${srv.baseURL.replace(/\/v1$/, '')}/tokenize`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'The capital of France is' }),
    }).then((r) => r.json())).tokens;
    assert.equal(ctx.logprobs.token_logprobs.length, ctxIds.length);
    assert.equal(ctx.logprobs.token_logprobs[0], null);
    // Generate 6 tokens greedily with their logprobs.
    const gen = await client.completions.create({
      model: 'tiny', prompt: ctxIds, max_tokens: 6, temperature: 0, logprobs: 1,
      ignore_eos: true,
    });
    const genLps = gen.choices[0].logprobs.token_logprobs;
    assert.equal(genLps.length, 6);
    const contIds = (await fetch(`${srv.baseURL.replace(/\/v1$/, '')}/tokenize`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: gen.choices[0].text, add_special_tokens: false }),
    }).then((r) => r.json())).tokens;
    // lm-eval's request: context + continuation as token ids, echo, logprobs 1, max_tokens 1.
    for (const maxTokens of [1, 0]) {
      const res = await client.completions.create({
        model: 'tiny', prompt: [...ctxIds, ...contIds], echo: true, logprobs: 1,
        max_tokens: maxTokens, temperature: 0,
      });
      const choice = res.choices[0];
      const n = ctxIds.length + contIds.length + maxTokens;
      assert.equal(choice.logprobs.token_logprobs.length, n);
      const cut = maxTokens === 0 ? { ...choice, logprobs: {
        token_logprobs: [...choice.logprobs.token_logprobs, 0],
        top_logprobs: [...choice.logprobs.top_logprobs, {}] } } : choice;
      const { sum, isGreedy } = loglikelihood(cut, ctxIds.length);
      // The continuation re-tokenizes to the tokens it was generated as (the dummy weights are
      // fixed): each scored logprob is the one it was generated with, and greedy stays greedy.
      assert.equal(contIds.length, genLps.length);
      const want = genLps.reduce((a, b) => a + b, 0);
      assert.ok(close(sum, want), `sum ${sum} vs generated ${want}`);
      assert.equal(isGreedy, true);
      assert.ok(Number.isFinite(sum) && sum <= 0);
    }
  });

  test('prompt_logprobs (vLLM) agree with echo + logprobs', async () => {
    const prompt = 'One two three four five six seven';
    const echo = (await client.completions.create({
      model: 'tiny', prompt, echo: true, logprobs: 2, max_tokens: 1,
    })).choices[0];
    const res = await client.completions.create({
      model: 'tiny', prompt, max_tokens: 1, prompt_logprobs: 2,
    });
    const pl = res.choices[0].prompt_logprobs;
    assert.equal(pl[0], null);
    assert.equal(pl.length, echo.logprobs.token_logprobs.length - 1);
    for (let i = 1; i < pl.length; ++i) {
      const entries = Object.values(pl[i]);
      const own = entries.find((e) => e.decoded_token === echo.logprobs.tokens[i]);
      assert.ok(own, `position ${i}: the prompt token is in its entry`);
      assert.ok(close(own.logprob, echo.logprobs.token_logprobs[i]), `position ${i}`);
      assert.ok(entries.length >= 2 && entries.length <= 3);
    }
  });
});

// ---- against transformers, on a golden model ------------------------------------------------

// The tensors of a safetensors file (F32 and I32 only) by name.
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    out[name] = { shape: t.shape, data: t.dtype === 'I32' ? new Int32Array(copy) : new Float32Array(copy) };
  }
  return out;
}

// A model directory: the golden model's config and weights, and a tokenizer of one character a
// token (ids 3.. are distinct CJK characters; 0-2 <unk> <s> </s>) so the server can show tokens.
function goldenModelDir(name, vocab) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferd-ll-'));
  const src = path.join(DATA, 'goldens', name);
  for (const f of ['config.json', 'model.safetensors', 'generation_config.json'])
    fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const specials = ['<unk>', '<s>', '</s>'];
  const v = {};
  specials.forEach((t, i) => { v[t] = i; });
  for (let i = 3; i < vocab; ++i) v[String.fromCodePoint(0x4e00 + i)] = i;
  const added = specials.map((content, id) => ({ id, content, single_word: false, lstrip: false,
    rstrip: false, normalized: false, special: true }));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: v, merges: [] },
  }));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }));
  return dir;
}

describe('loglikelihood against transformers (golden llama3)', () => {
  test('lm-eval\'s request gives transformers\' loglikelihood and is_greedy', async () => {
    const gold = readSafetensors(path.join(DATA, 'goldens', 'llama3', 'golden.safetensors'));
    const V = gold['prompt0.logits'].shape[1];
    const dir = goldenModelDir('llama3', V);
    const server = await startServer(dir, ['--max-num-batched-tokens', '16'], { realWeights: true });
    try {
      const c = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
      let checked = 0;
      for (let i = 0; gold[`prompt${i}.ids`]; ++i) {
        const ids = Array.from(gold[`prompt${i}.ids`].data);
        if (ids.length < 3) continue;
        const logits = gold[`prompt${i}.logits`].data;
        // Context: the first half; continuation: the rest (as lm-eval splits a request).
        const ctxlen = Math.floor(ids.length / 2);
        let want = 0;
        let wantGreedy = true;
        for (let p = ctxlen - 1; p + 1 < ids.length; ++p) {
          const row = logits.subarray(p * V, (p + 1) * V);
          const mx = Math.max(...row);
          let s = 0;
          for (const x of row) s += Math.exp(x - mx);
          want += row[ids[p + 1]] - mx - Math.log(s);
          if (row[ids[p + 1]] !== mx) wantGreedy = false;
        }
        // lm-eval's local-completions payload for loglikelihood requests.
        const res = await c.completions.create({
          model: 'tiny', prompt: ids, temperature: 0, max_tokens: 1, logprobs: 1, seed: 1234,
          echo: true,
        });
        const { sum, isGreedy } = loglikelihood(res.choices[0], ctxlen);
        assert.ok(Math.abs(sum - want) <= 1e-3 * (ids.length - ctxlen),
          `prompt ${i}: loglikelihood ${sum}, transformers ${want}`);
        assert.equal(isGreedy, wantGreedy, `prompt ${i}: is_greedy`);
        ++checked;
      }
      assert.equal(checked, 3);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
