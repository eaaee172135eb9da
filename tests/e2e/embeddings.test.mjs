// /v1/embeddings through clients nobody here wrote: the official `openai` client
// (client.embeddings.create: a string, a batch, token ids, base64 decoded by the client, the
// `dimensions` error) and LangChain.js's OpenAIEmbeddings, against the real `inferd serve --task
// embed` on the tiny random model; then --task auto on a sentence-transformers layout, and the
// --task gates on both sides.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { OpenAIEmbeddings } from '@langchain/openai';
import { makeModelDir, metric, startServer } from './helpers.mjs';

const HIDDEN = 64;  // the tiny model's hidden size: the length of its vectors

let modelDir;
let srv;
let client;

const LONG = Array.from({ length: 3000 }, (_, i) => `w${i}`).join(' ');  // past max_model_len
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

// Vectors of different requests (another batch, a prefix-cache hit) may differ in the last bits of
// the arithmetic; exact bytes are the unit tests' business (tests/server/embedding_test.cc).
function assertClose(a, b, tol = 2e-3) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
}

// Little-endian float32, as OpenAI's base64 encoding is.
function decodeBase64(s) {
  const buf = Buffer.from(s, 'base64');
  const out = [];
  for (let i = 0; i < buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

async function floats(input, extra = {}) {
  const r = await client.embeddings.create({ model: 'tiny', input, encoding_format: 'float', ...extra });
  return r.data.map((d) => d.embedding);
}

describe('inferd serve --task embed', () => {
  before(async () => {
    modelDir = makeModelDir();
    srv = await startServer(modelDir, ['--task', 'embed']);
    client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
  });

  after(async () => {
    await srv?.stop();
    if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
  });

  describe('openai client', () => {
    test('a string: one normalised vector, usage, the response shape', async () => {
      const r = await client.embeddings.create({ model: 'tiny', input: 'The quick brown fox', encoding_format: 'float' });
      assert.equal(r.object, 'list');
      assert.equal(r.model, 'tiny');
      assert.equal(r.data.length, 1);
      assert.equal(r.data[0].object, 'embedding');
      assert.equal(r.data[0].index, 0);
      assert.equal(r.data[0].embedding.length, HIDDEN);
      assert.ok(r.data[0].embedding.every(Number.isFinite));
      assert.ok(Math.abs(norm(r.data[0].embedding) - 1) < 1e-4, `norm ${norm(r.data[0].embedding)}`);
      assert.ok(r.usage.prompt_tokens > 0);
      assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
    });

    test('a batch answers in input order, each as if alone', async () => {
      const texts = ['first input', 'a second, somewhat longer input', 'third', 'first input'];
      const batch = await client.embeddings.create({ model: 'tiny', input: texts, encoding_format: 'float' });
      assert.deepEqual(batch.data.map((d) => d.index), [0, 1, 2, 3]);
      for (let i = 0; i < texts.length; i++) assertClose(batch.data[i].embedding, (await floats(texts[i]))[0]);
      assertClose(batch.data[0].embedding, batch.data[3].embedding);
      assert.notDeepEqual(batch.data[0].embedding, batch.data[1].embedding);
    });

    test('token ids and arrays of them equal their text', async () => {
      const tok = await (await fetch(`${srv.base}/tokenize`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'hello there' }),
      })).json();
      const fromText = (await floats('hello there'))[0];
      assertClose((await floats(tok.tokens))[0], fromText);
      const two = await floats([tok.tokens, tok.tokens.slice(0, 1)]);
      assert.equal(two.length, 2);
      assertClose(two[0], fromText);
    });

    test('base64: decoded by the client by default, and by hand when asked', async () => {
      const input = ['base64 please', 'and another'];
      const want = await floats(input);
      // No encoding_format: the client asks for base64 and decodes it into floats itself.
      const auto = await client.embeddings.create({ model: 'tiny', input });
      for (let i = 0; i < input.length; i++) assertClose(auto.data[i].embedding, want[i]);
      const raw = await client.embeddings.create({ model: 'tiny', input, encoding_format: 'base64' });
      for (let i = 0; i < input.length; i++) {
        assert.equal(typeof raw.data[i].embedding, 'string');
        assertClose(decodeBase64(raw.data[i].embedding), want[i]);
      }
    });

    test('dimensions on a model without Matryoshka support is a 400 naming it', async () => {
      await assert.rejects(client.embeddings.create({ model: 'tiny', input: 'x', dimensions: 8 }), (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.equal(e.status, 400);
        assert.equal(e.param, 'dimensions');
        assert.match(e.message, /matryoshka/);
        return true;
      });
    });

    test('bad inputs are 400s naming input', async () => {
      for (const input of ['', [], ['ok', '']]) {
        await assert.rejects(client.embeddings.create({ model: 'tiny', input }), (e) => {
          assert.equal(e.status, 400);
          assert.match(e.param, /^input/);
          return true;
        });
      }
      await assert.rejects(client.embeddings.create({ model: 'tiny', input: LONG }), (e) => {
        assert.equal(e.status, 400);
        assert.equal(e.code, 'context_length_exceeded');
        return true;
      });
    });

    test('normalize false and truncate_prompt_tokens (vLLM extras)', async () => {
      const [raw] = await floats('not normalised', { normalize: false });
      assert.ok(Math.abs(norm(raw) - 1) > 1e-3, `norm ${norm(raw)}`);
      const r = await client.embeddings.create({ model: 'tiny', input: LONG, truncate_prompt_tokens: 16, encoding_format: 'float' });
      assert.equal(r.usage.prompt_tokens, 16);
    });

    test('a generation route is a 400 on an embedding server', async () => {
      await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 2 }), (e) => {
        assert.equal(e.status, 400);
        assert.match(e.message, /\/v1\/embeddings/);
        return true;
      });
    });

    test('metrics count the route', async () => {
      assert.ok((await metric(srv.base, 'inferd:http_requests_total', 'handler="/v1/embeddings"')) >= 1);
    });
  });

  describe('LangChain.js OpenAIEmbeddings', () => {
    test('embedQuery and embedDocuments match the openai client', async () => {
      const lc = new OpenAIEmbeddings({ model: 'tiny', apiKey: 'unused', maxRetries: 0, configuration: { baseURL: srv.baseURL } });
      const q = await lc.embedQuery('what is inferd?');
      assert.equal(q.length, HIDDEN);
      assertClose(q, (await floats('what is inferd?'))[0]);
      const docs = ['inferd serves models', 'embeddings come back in order', 'third document'];
      const vs = await lc.embedDocuments(docs);
      assert.equal(vs.length, docs.length);
      for (let i = 0; i < docs.length; i++) assertClose(vs[i], (await floats(docs[i]))[0]);
    });
  });

});

describe('--task auto and the gates', () => {
  test('a sentence-transformers layout serves embeddings as its config says', async () => {
    const dir = makeModelDir();
    fs.writeFileSync(path.join(dir, 'modules.json'), JSON.stringify([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ]));
    fs.mkdirSync(path.join(dir, '1_Pooling'));
    fs.writeFileSync(path.join(dir, '1_Pooling', 'config.json'),
      JSON.stringify({ word_embedding_dimension: HIDDEN, pooling_mode_mean_tokens: true }));
    const s = await startServer(dir);  // --task auto (the default)
    try {
      const c = new OpenAI({ baseURL: s.baseURL, apiKey: 'unused', maxRetries: 0 });
      const r = await c.embeddings.create({ model: 'tiny', input: 'mean pooled', encoding_format: 'float' });
      assert.equal(r.data[0].embedding.length, HIDDEN);
      // No Normalize module: the vector is not normalised.
      assert.ok(Math.abs(norm(r.data[0].embedding) - 1) > 1e-3);
      assert.match(s.log(), /embeddings: MEAN pooling/);
    } finally {
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a generation server answers /v1/embeddings with a 400 naming --task embed', async () => {
    const dir = makeModelDir();
    const s = await startServer(dir);
    try {
      const c = new OpenAI({ baseURL: s.baseURL, apiKey: 'unused', maxRetries: 0 });
      await assert.rejects(c.embeddings.create({ model: 'tiny', input: 'x' }), (e) => {
        assert.equal(e.status, 400);
        assert.match(e.message, /--task embed/);
        return true;
      });
    } finally {
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
