// The official `openai` client against the real `inferd serve` on a tiny random model:
// chat and completions, streaming and not, n > 1, stop, logprobs, usage (with prefix-cache hits),
// errors as the client's error classes, a disconnect that gives the KV blocks back, and a few
// hundred simultaneous streams.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { makeModelDir, metric, startServer, waitFor } from './helpers.mjs';

let modelDir;
let srv;
let client;

before(async () => {
  modelDir = makeModelDir();
  srv = await startServer(modelDir, ['--max-num-seqs', '256']);
  client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
});

after(async () => {
  await srv?.stop();
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name three colours.' },
];

describe('models', () => {
  test('list has the served name', async () => {
    const page = await client.models.list();
    assert.deepEqual(page.data.map((m) => m.id), ['tiny']);
    assert.equal((await client.models.retrieve('tiny')).id, 'tiny');
  });
});

describe('chat completions', () => {
  test('non-streaming: shape and usage', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 6, ignore_eos: true });
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 6);
    assert.ok(r.usage.prompt_tokens > 10);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 6);
    // The prompt is the model's chat template rendered and tokenized: /tokenize agrees.
    const tok = await (await fetch(`${srv.base}/tokenize`, {
      method: 'POST', body: JSON.stringify({ model: 'tiny', messages }),
    })).json();
    assert.equal(tok.count, r.usage.prompt_tokens);
  });

  test('greedy with a seed is reproducible, and streaming gives the same text', async () => {
    const body = { model: 'tiny', messages, max_tokens: 12, temperature: 0, ignore_eos: true };
    const a = await client.chat.completions.create(body);
    const b = await client.chat.completions.create(body);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let first = true;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) { usage = chunk.usage; assert.equal(chunk.choices.length, 0); continue; }
      const c = chunk.choices[0];
      if (first) { assert.equal(c.delta.role, 'assistant'); first = false; }
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(text, a.choices[0].message.content);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 12);
    assert.equal(usage.prompt_tokens, a.usage.prompt_tokens);
  });

  test('n > 1 with a seed', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 5, n: 3, seed: 7, temperature: 1, ignore_eos: true });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    assert.equal(r.usage.completion_tokens, 15);
    const again = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 5, n: 3, seed: 7, temperature: 1, ignore_eos: true });
    assert.deepEqual(again.choices.map((c) => c.message.content), r.choices.map((c) => c.message.content));
  });

  test('logprobs and top_logprobs', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 4, logprobs: true, top_logprobs: 3, temperature: 0, ignore_eos: true });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, 4);
    let joined = '';
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 3);
      // Greedy: the chosen token is the most likely one.
      assert.equal(t.top_logprobs[0].token, t.token);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
      joined += t.token;
    }
    assert.equal(joined, r.choices[0].message.content);
  });

  test('stop string cuts the text', async () => {
    const base = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 20, temperature: 0, ignore_eos: true });
    const full = base.choices[0].message.content;
    // A stop string taken from the middle of the greedy output.
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 20, temperature: 0, ignore_eos: true, stop: [stop] });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].message.content, full.slice(0, full.indexOf(stop)));
  });

  test('a repeated long prompt reports cached tokens', async () => {
    const long = [{ role: 'user', content: 'word '.repeat(100) }];
    const a = await client.chat.completions.create({ model: 'tiny', messages: long, max_tokens: 2 });
    const b = await client.chat.completions.create({ model: 'tiny', messages: long, max_tokens: 2 });
    assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
    assert.ok(b.usage.prompt_tokens_details.cached_tokens >= 64, JSON.stringify(b.usage));
    assert.ok(b.usage.prompt_tokens_details.cached_tokens < b.usage.prompt_tokens);
  });
});

describe('completions', () => {
  test('non-streaming, batch of prompts and n', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: ['Once upon', 'a time'], n: 2, max_tokens: 3, ignore_eos: true });
    assert.equal(r.object, 'text_completion');
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
    assert.equal(r.usage.completion_tokens, 12);
  });

  test('streaming with usage and logprobs', async () => {
    const stream = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, stream: true, logprobs: 2, temperature: 0, ignore_eos: true, stream_options: { include_usage: true } });
    let text = '';
    let tokens = 0;
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) { usage = chunk.usage; continue; }
      const c = chunk.choices[0];
      text += c.text;
      if (c.logprobs) tokens += c.logprobs.tokens.length;
    }
    assert.equal(tokens, 5);
    assert.equal(usage.completion_tokens, 5);
    const plain = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, ignore_eos: true });
    assert.equal(text, plain.choices[0].text);
  });

  test('token-id prompt and echo', async () => {
    const ids = (await (await fetch(`${srv.base}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt: 'Hello world' }) })).json()).tokens;
    const r = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 2, echo: true });
    assert.ok(r.choices[0].text.startsWith('Hello world'));
    const detok = await (await fetch(`${srv.base}/detokenize`, { method: 'POST', body: JSON.stringify({ tokens: ids }) })).json();
    assert.equal(detok.prompt, 'Hello world');
  });
});

describe('errors surface as the client error classes', () => {
  const cases = [
    ['unknown model', () => client.chat.completions.create({ model: 'gpt-nope', messages }), OpenAI.NotFoundError, 404, 'model'],
    ['empty messages', () => client.chat.completions.create({ model: 'tiny', messages: [] }), OpenAI.BadRequestError, 400, 'messages'],
    ['invalid role', () => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'robot', content: 'x' }] }), OpenAI.BadRequestError, 400, 'messages[0].role'],
    ['negative max_tokens', () => client.chat.completions.create({ model: 'tiny', messages, max_tokens: -5 }), OpenAI.BadRequestError, 400, 'max_tokens'],
    ['huge max_tokens', () => client.chat.completions.create({ model: 'tiny', messages, max_tokens: 10 ** 9 }), OpenAI.BadRequestError, 400, 'max_tokens'],
    ['prompt longer than the context', () => client.completions.create({ model: 'tiny', prompt: 'hello '.repeat(2000), max_tokens: 1 }), OpenAI.BadRequestError, 400, 'prompt'],
    ['wrong type', () => client.chat.completions.create({ model: 'tiny', messages, temperature: 'warm' }), OpenAI.BadRequestError, 400, 'temperature'],
    ['bad logit_bias', () => client.chat.completions.create({ model: 'tiny', messages, logit_bias: { 'not-a-token': 1 } }), OpenAI.BadRequestError, 400, 'logit_bias'],
    ['logit_bias out of vocab', () => client.chat.completions.create({ model: 'tiny', messages, logit_bias: { 999999999: 1 } }), OpenAI.BadRequestError, 400, 'logit_bias'],
  ];
  for (const [name, call, cls, status, param] of cases) {
    test(name, async () => {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof cls, `${name}: got ${e.constructor.name}: ${e.message}`);
        assert.equal(e.status, status);
        assert.equal(e.param, param);
        assert.equal(typeof e.error.message, 'string');
        return true;
      });
    });
  }
  test('invalid JSON is a 400 with the error shape', async () => {
    const r = await fetch(`${srv.baseURL}/chat/completions`, { method: 'POST', body: '{"model": ', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    const j = await r.json();
    assert.deepEqual(Object.keys(j.error).sort(), ['code', 'message', 'param', 'type']);
  });
  test('the server still serves after all of them', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });
});

describe('disconnect', () => {
  test('aborting a stream frees its KV blocks at once', async () => {
    const abortedBefore = await metric(srv.base, 'vllm:request_success_total', 'abort');
    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'tiny', messages, max_tokens: 900, ignore_eos: true, stream: true },
      { signal: ac.signal });
    let chunks = 0;
    // The client stops reading when aborted (openai's stream ends quietly or throws an abort).
    try {
      for await (const _ of stream) {
        if (++chunks === 5) {
          assert.ok(await metric(srv.base, 'vllm:kv_cache_usage_perc') > 0, 'blocks are held while streaming');
          ac.abort();
        }
      }
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
    }
    assert.ok(chunks >= 5 && chunks < 900, `read ${chunks} chunks`);
    assert.ok(await waitFor(async () => (await metric(srv.base, 'vllm:kv_cache_usage_perc')) === 0, { timeoutMs: 5000 }),
      'KV usage back to 0');
    assert.ok(await waitFor(async () => (await metric(srv.base, 'vllm:request_success_total', 'abort')) === abortedBefore + 1, { timeoutMs: 5000 }));
    assert.ok(await waitFor(async () => (await metric(srv.base, 'vllm:num_requests_running')) === 0));
  });
});

describe('concurrency', () => {
  test('300 simultaneous streams all complete', { timeout: 240000 }, async () => {
    const N = 300;
    let peakRunning = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        peakRunning = Math.max(peakRunning, (await metric(srv.base, 'vllm:num_requests_running')) ?? 0);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const one = async (i) => {
      const stream = await client.chat.completions.create({
        model: 'tiny', messages: [{ role: 'user', content: `request ${i}` }], max_tokens: 8, ignore_eos: true,
        stream: true, stream_options: { include_usage: true },
      });
      let usage = null;
      let finish = null;
      for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        else if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
      }
      return usage.completion_tokens === 8 && finish === 'length';
    };
    const results = await Promise.all(Array.from({ length: N }, (_, i) => one(i)));
    polling = false;
    await poller;
    assert.equal(results.filter(Boolean).length, N);
    assert.ok(peakRunning > 50, `peak running ${peakRunning}`);
    assert.ok(await waitFor(async () => (await metric(srv.base, 'vllm:kv_cache_usage_perc')) === 0),
      'KV usage back to 0');
  });
});
