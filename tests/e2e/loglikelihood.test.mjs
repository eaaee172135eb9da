// lm-evaluation-harness's loglikelihood requests, made with the official `openai` client against
// the real `inferd serve` (tiny random model, real Qwen3 tokenizer): /v1/completions with
// token-id prompts, echo, logprobs 1 and max_tokens 1 (its local-completions shape) and 0, read as
// lm-eval reads them (sum of token_logprobs[ctxlen:-1], is_greedy from top_logprobs). The check
// that needs no reference model: a continuation scored inside the prompt gets the same logprob
// the model gave it when it generated it, and the same top alternative.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { makeModelDir, startServer } from './helpers.mjs';

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
