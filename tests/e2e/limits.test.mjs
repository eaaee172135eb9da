// Production behaviour of the real `inferd serve`: API keys (flag and INFERD_API_KEY), per-key
// rate limits, body size limit, CORS, --max-queue (429 + Retry-After), --request-timeout (the
// client is told, streaming or not), SIGTERM drain (in-flight requests finish, exit 0) and
// drain timeout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { makeModelDir, metric, sleep, startServer, waitFor } from './helpers.mjs';

let modelDir;
let slowDir;
before(() => { modelDir = makeModelDir(); slowDir = makeModelDir({ slow: true }); });
after(() => {
  for (const d of [modelDir, slowDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

const messages = [{ role: 'user', content: 'Say something.' }];
const mk = (srv, apiKey = 'none') => new OpenAI({ baseURL: srv.baseURL, apiKey, maxRetries: 0, timeout: 60000 });

describe('auth, rate limits, body limit, CORS', () => {
  let srv;
  before(async () => {
    srv = await startServer(modelDir, ['--api-key', 'sk-a,sk-b', '--rate-limit-rpm', '3',
      '--max-request-body-bytes', '4096']);
  });
  after(async () => { await srv?.stop(); });

  test('missing or wrong key: AuthenticationError; right key works', async () => {
    await assert.rejects(mk(srv, 'sk-wrong').chat.completions.create({ model: 'tiny', messages, max_tokens: 1 }),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
    const r = await fetch(`${srv.baseURL}/models`);
    assert.equal(r.status, 401);
    const ok = await mk(srv, 'sk-b').chat.completions.create({ model: 'tiny', messages, max_tokens: 1 });
    assert.equal(ok.choices.length, 1);
    // Outside /v1 no key is needed.
    assert.equal((await fetch(`${srv.base}/health`)).status, 200);
    assert.equal((await fetch(`${srv.base}/metrics`)).status, 200);
  });

  test('requests per minute per key: RateLimitError with Retry-After', async () => {
    const a = mk(srv, 'sk-a');
    for (let i = 0; i < 3; i++) await a.chat.completions.create({ model: 'tiny', messages, max_tokens: 1 });
    await assert.rejects(a.chat.completions.create({ model: 'tiny', messages, max_tokens: 1 }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, String(e));
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.ok(Number(e.headers.get('retry-after')) >= 1);
      return true;
    });
    // sk-b has its own budget (one used above).
    await mk(srv, 'sk-b').chat.completions.create({ model: 'tiny', messages, max_tokens: 1 });
  });

  test('body over the limit: 413', async () => {
    const r = await fetch(`${srv.baseURL}/chat/completions`, {
      method: 'POST', headers: { authorization: 'Bearer sk-b', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x'.repeat(10000) }] }),
    });
    assert.equal(r.status, 413);
    assert.equal((await r.json()).error.code, 'request_too_large');
  });

  test('CORS preflight and headers', async () => {
    const r = await fetch(`${srv.baseURL}/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    assert.match(r.headers.get('access-control-allow-headers'), /authorization/);
  });
});

test('INFERD_API_KEY sets the key', async () => {
  const srv = await startServer(modelDir, [], { env: { INFERD_API_KEY: 'sk-env' } });
  try {
    assert.equal((await fetch(`${srv.baseURL}/models`)).status, 401);
    assert.equal((await fetch(`${srv.baseURL}/models`, { headers: { authorization: 'Bearer sk-env' } })).status, 200);
  } finally {
    await srv.stop();
  }
});

describe('queue limit and request timeout', () => {
  let srv;
  before(async () => {
    srv = await startServer(slowDir, ['--max-num-seqs', '1', '--max-queue', '1', '--request-timeout', '2']);
  });
  after(async () => { await srv?.stop(); });

  test('full queue: 429 with Retry-After; a timed-out stream gets an error event', async () => {
    const client = mk(srv);
    const t0 = Date.now();
    const a = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 900, ignore_eos: true, stream: true });
    const it = a[Symbol.asyncIterator]();
    await it.next();  // A runs and holds the only sequence slot
    const ac = new AbortController();
    const b = client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2 }, { signal: ac.signal }).catch((e) => e);
    assert.ok(await waitFor(async () => (await metric(srv.base, 'vllm:num_requests_waiting')) === 1));
    await assert.rejects(client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, String(e));
      assert.equal(e.code, 'queue_full');
      assert.ok(Number(e.headers.get('retry-after')) >= 1);
      return true;
    });
    ac.abort();  // B leaves the queue
    await b;
    // A is aborted by --request-timeout and told so in the stream.
    await assert.rejects(async () => { while (!(await it.next()).done); }, (e) => {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.code, 'request_timeout');
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 1900 && took < 10000, `timed out after ${took} ms`);
    assert.ok(await waitFor(async () => (await metric(srv.base, 'vllm:kv_cache_usage_perc')) === 0));
  });

  test('a timed-out plain request gets a 408 error', async () => {
    await assert.rejects(mk(srv).chat.completions.create({ model: 'tiny', messages, max_tokens: 900, ignore_eos: true }), (e) => {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, 408);
      assert.equal(e.code, 'request_timeout');
      return true;
    });
    // And the server goes on serving.
    const r = await mk(srv).chat.completions.create({ model: 'tiny', messages, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });
});

describe('per-request caps, per-key concurrency, slow loris (issue 32)', () => {
  let srv;
  before(async () => {
    srv = await startServer(slowDir, ['--api-key', 'sk-a,sk-b', '--max-concurrent-requests-per-key', '1',
      '--max-output-tokens', '900', '--max-n', '2', '--max-stop-sequences', '1', '--http-header-timeout', '1']);
  });
  after(async () => { await srv?.stop(); });

  test('caps: a 400 naming the field, the limit and the value', async () => {
    const check = async (body, param, ...parts) => {
      await assert.rejects(mk(srv, 'sk-a').chat.completions.create({ model: 'tiny', messages, ...body }), (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.equal(e.param, param);
        for (const p of parts) assert.ok(e.message.includes(p), e.message);
        return true;
      });
    };
    await check({ max_tokens: 901 }, 'max_tokens', '--max-output-tokens', '900', '901');
    await check({ n: 3, max_tokens: 1 }, 'n', '--max-n', '3');
    await check({ stop: ['a', 'b'], max_tokens: 1 }, 'stop', 'at most 1');
  });

  test('one request of a key in flight: the next is a 429 with Retry-After, another key passes', async () => {
    const a = await mk(srv, 'sk-a').chat.completions.create({ model: 'tiny', messages, max_tokens: 900, ignore_eos: true, stream: true });
    const it = a[Symbol.asyncIterator]();
    await it.next();
    await assert.rejects(mk(srv, 'sk-a').chat.completions.create({ model: 'tiny', messages, max_tokens: 1 }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, String(e));
      assert.equal(e.code, 'concurrency_limit_exceeded');
      assert.ok(Number(e.headers.get('retry-after')) >= 1);
      return true;
    });
    const b = await mk(srv, 'sk-b').chat.completions.create({ model: 'tiny', messages, max_tokens: 1 });
    assert.equal(b.choices.length, 1);
    a.controller.abort();  // the client leaves: its slot comes back
    assert.ok(await waitFor(async () => {
      try {
        await mk(srv, 'sk-a').chat.completions.create({ model: 'tiny', messages, max_tokens: 1 });
        return true;
      } catch { return false; }
    }));
  });

  test('a client trickling its headers is cut after --http-header-timeout', async () => {
    const net = await import('node:net');
    const url = new URL(srv.base);
    const t0 = Date.now();
    const closed = await new Promise((resolve) => {
      const s = net.connect(Number(url.port), url.hostname);
      const text = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa\r\n';
      let i = 0;
      const timer = setInterval(() => { if (i < text.length) s.write(text[i++]); }, 250);
      s.on('close', () => { clearInterval(timer); resolve(Date.now() - t0); });
      s.on('error', () => {});
    });
    assert.ok(closed >= 900 && closed < 5000, `closed after ${closed} ms`);
  });
});

describe('SIGTERM', () => {
  test('drains: the in-flight stream finishes, new connections are refused, exit 0', async () => {
    const srv = await startServer(modelDir);
    try {
      const stream = await mk(srv).chat.completions.create({ model: 'tiny', messages, max_tokens: 200, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
      const it = stream[Symbol.asyncIterator]();
      await it.next();
      srv.proc.kill('SIGTERM');
      await sleep(200);
      await assert.rejects(fetch(`${srv.base}/health`));
      let usage = null;
      for (let r = await it.next(); !r.done; r = await it.next()) if (r.value.usage) usage = r.value.usage;
      assert.equal(usage.completion_tokens, 200);
      const { code } = await srv.exited;
      assert.equal(code, 0);
      assert.match(srv.log(), /drained; stopped/);
    } finally {
      await srv.stop();
    }
  });

  test('drain timeout: the unfinished stream is told, exit 0', async () => {
    const srv = await startServer(slowDir, ['--drain-timeout', '0.5']);
    try {
      const stream = await mk(srv).chat.completions.create({ model: 'tiny', messages, max_tokens: 900, ignore_eos: true, stream: true });
      const it = stream[Symbol.asyncIterator]();
      await it.next();
      srv.proc.kill('SIGTERM');
      await assert.rejects(async () => { while (!(await it.next()).done); },
        (e) => e instanceof OpenAI.APIError && e.code === 'server_shutdown');
      const { code } = await srv.exited;
      assert.equal(code, 0);
    } finally {
      await srv.stop();
    }
  });
});
