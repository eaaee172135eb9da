// Structured outputs end to end (issue 15): the real `inferd serve` on a tiny random-weight model,
// where only the grammar can make the output valid. Every schema of tests/data/structured/
// schemas.json is sent as response_format json_schema; each output that ends with "stop" must
// parse and validate under ajv (draft 2020-12, ajv-formats), and at least 90 % must end with
// "stop" within 400 tokens. Also json_object, regex (structured_outputs.regex and guided_regex),
// choice, a GBNF grammar, a streamed schema, and bad schemas / unsupported keywords answered 400
// naming the keyword.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import OpenAI from 'openai';
import { DATA, makeModelDir, startServer } from './helpers.mjs';

// ajv lives in tests/node_modules (scripts/install-e2e-deps.sh); CommonJS packages.
const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const corpus = JSON.parse(fs.readFileSync(path.join(DATA, 'structured', 'schemas.json'), 'utf8'));

function makeAjv() {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  return ajv;
}

// Runs `fn` over `items` with at most `limit` at a time; results in order.
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// Whether `s` can be extended into a JSON text (an output cut at max_tokens must be one).
function isJsonPrefix(s) {
  const EOF = Symbol('eof');
  let i = 0;
  const peek = () => {
    if (i >= s.length) throw EOF;
    return s[i];
  };
  const ws = () => { while (i < s.length && ' \t\n\r'.includes(s[i])) i++; };
  const lit = (w) => { for (const ch of w) { if (peek() !== ch) throw new SyntaxError(w); i++; } };
  const str = () => {
    lit('"');
    for (;;) {
      const c = peek();
      i++;
      if (c === '"') return;
      if (c < ' ') throw new SyntaxError('control character');
      if (c !== '\\') continue;
      const e = peek();
      i++;
      if (e === 'u') {
        for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(peek())) throw new SyntaxError('\\u');
      } else if (!'"\\/bfnrt'.includes(e)) throw new SyntaxError('escape');
    }
  };
  const num = () => {
    const m = /^-?\d*(\.\d*)?([eE][+-]?\d*)?/.exec(s.slice(i))[0];
    i += m.length;
    if (/^-?0\d/.test(m)) throw new SyntaxError(`leading zero ${m}`);
    if (i >= s.length) throw EOF;
    if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(m)) throw new SyntaxError(`number ${m}`);
  };
  const value = () => {
    const c = peek();
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (peek() === close) { i++; return; }
      for (;;) {
        if (c === '{') { str(); ws(); lit(':'); ws(); }
        value();
        ws();
        const d = peek();
        i++;
        if (d === close) return;
        if (d !== ',') throw new SyntaxError(`expected , or ${close}`);
        ws();
      }
    }
    if (c === '"') return str();
    if (c === 't') return lit('true');
    if (c === 'f') return lit('false');
    if (c === 'n') return lit('null');
    return num();
  };
  try {
    ws();
    value();
    ws();
    return i === s.length;
  } catch (e) {
    if (e === EOF) return true;
    return false;
  }
}

let modelDir;
let srv;
let client;

before(async () => {
  modelDir = makeModelDir();
  srv = await startServer(modelDir, ['--max-num-seqs', '64']);
  client = new OpenAI({ baseURL: srv.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 300000 });
});

after(async () => {
  await srv?.stop();
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

const messages = (what) => [
  { role: 'system', content: 'You answer in JSON only.' },
  { role: 'user', content: `Produce a ${what}.` },
];

async function post(pathname, body) {
  const r = await fetch(`${srv.baseURL}${pathname}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

describe('the schema corpus', () => {
  test('at least 110 schemas, each accepted by ajv, its examples judged as listed', () => {
    assert.ok(corpus.length >= 110, `only ${corpus.length} schemas`);
    const ajv = makeAjv();
    let examples = 0;
    for (const e of corpus) {
      const validate = ajv.compile(e.schema);
      for (const v of e.valid ?? []) {
        examples++;
        assert.ok(validate(v), `${e.name}: ${JSON.stringify(v)} should be valid: ${ajv.errorsText(validate.errors)}`);
      }
      for (const v of e.invalid ?? []) {
        examples++;
        assert.ok(!validate(v), `${e.name}: ${JSON.stringify(v)} should be invalid`);
      }
    }
    assert.ok(examples >= 100);
  });

  test('every keyword of the issue is exercised several times', () => {
    const counts = {};
    const walk = (s) => {
      if (Array.isArray(s)) return s.forEach(walk);
      if (!s || typeof s !== 'object') return;
      for (const [k, v] of Object.entries(s)) {
        counts[k] = (counts[k] ?? 0) + 1;
        if (k === 'type' && Array.isArray(v)) counts['type[]'] = (counts['type[]'] ?? 0) + 1;
        if (k === 'format') counts[`format:${v}`] = (counts[`format:${v}`] ?? 0) + 1;
        if (k === '$ref' && v === '#') counts['$ref:#'] = 1;
        if (k === 'const' || k === 'enum' || k === 'examples' || k === 'default') continue;
        if (k === 'properties' || k === '$defs' || k === 'definitions') Object.values(v).forEach(walk);
        else walk(v);
      }
    };
    corpus.forEach((e) => walk(e.schema));
    const keywords = ['type', 'type[]', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'anyOf',
      'oneOf', 'allOf', '$ref', '$defs', 'definitions', 'items', 'prefixItems', 'minItems', 'maxItems', 'minLength',
      'maxLength', 'pattern', 'format:date', 'format:time', 'format:date-time', 'format:uuid', 'format:email',
      'format:ipv4', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
    for (const k of keywords) assert.ok((counts[k] ?? 0) >= 2, `keyword ${k} appears ${counts[k] ?? 0} times`);
    assert.ok(counts['$ref:#'], 'a recursion through the root "#"');
  });
});

describe('response_format json_schema', () => {
  test('every corpus schema: outputs that stop validate, and >= 90 % stop within 400 tokens', { timeout: 1800000 }, async () => {
    const ajv = makeAjv();
    const started = Date.now();
    const results = await pool(corpus, 16, async (e, i) => {
      const greedy = i % 4 === 0;
      const r = await client.chat.completions.create({
        model: 'tiny',
        messages: messages(e.name.replaceAll('_', ' ')),
        max_tokens: 400,
        temperature: greedy ? 0 : 1,
        seed: 1000 + i,
        response_format: { type: 'json_schema', json_schema: { name: e.name, schema: e.schema, strict: e.strict ?? false } },
      });
      const c = r.choices[0];
      return { name: e.name, finish: c.finish_reason, content: c.message.content ?? '', tokens: r.usage.completion_tokens, greedy };
    });
    const failures = [];
    let stopped = 0;
    for (const [i, r] of results.entries()) {
      if (r.finish !== 'stop') {
        assert.equal(r.finish, 'length', `${r.name}: finish_reason ${r.finish}`);
        assert.equal(r.tokens, 400, r.name);
        if (!isJsonPrefix(r.content)) failures.push(`${r.name}: cut output is no JSON prefix: ${r.content.slice(0, 300)}`);
        continue;
      }
      stopped++;
      let doc;
      try {
        doc = JSON.parse(r.content);
      } catch (err) {
        failures.push(`${r.name}: not JSON (${err.message}): ${r.content.slice(0, 300)}`);
        continue;
      }
      const validate = ajv.compile(corpus[i].schema);
      if (!validate(doc)) failures.push(`${r.name}: ${ajv.errorsText(validate.errors)}: ${r.content.slice(0, 300)}`);
    }
    const share = stopped / results.length;
    const unfinished = results.filter((r) => r.finish !== 'stop').map((r) => r.name);
    console.log(`structured outputs: ${stopped}/${results.length} (${(100 * share).toFixed(1)} %) ended with "stop" ` +
      `within 400 tokens in ${((Date.now() - started) / 1000).toFixed(1)} s; ${failures.length} invalid` +
      (unfinished.length ? `; cut at 400 tokens: ${unfinished.join(', ')}` : ''));
    assert.deepEqual(failures, []);
    assert.ok(share >= 0.9, `only ${(100 * share).toFixed(1)} % ended with "stop"`);
  });

  test('the JSON prefix check used on cut outputs', () => {
    for (const ok of ['', '{', '{"a', '{"a": [1, 2.', '[true, nu', '{"k": "\\u00', '-', '{"a":1}', '[1e'])
      assert.ok(isJsonPrefix(ok), ok);
    for (const bad of ['}', '{"a" 1', '[1,,', '{"a":1}x', '[01', '"\\q', '[tru]', '{1:'])
      assert.ok(!isJsonPrefix(bad), bad);
  });

  test('streamed: the concatenated deltas validate', { timeout: 300000 }, async () => {
    const ajv = makeAjv();
    for (const name of ['invoice', 'tree_bounded', 'person']) {
      const e = corpus.find((x) => x.name === name);
      const stream = await client.chat.completions.create({
        model: 'tiny', messages: messages(name), max_tokens: 400, temperature: 1, seed: 7, stream: true,
        response_format: { type: 'json_schema', json_schema: { name, schema: e.schema } },
      });
      let text = '';
      let finish = null;
      for await (const chunk of stream) {
        const ch = chunk.choices[0];
        if (!ch) continue;
        text += ch.delta?.content ?? '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
      assert.ok(finish === 'stop' || finish === 'length', `${name}: finish ${finish}`);
      if (finish === 'stop') {
        const validate = ajv.compile(e.schema);
        assert.ok(validate(JSON.parse(text)), `${name}: ${ajv.errorsText(validate.errors)}: ${text}`);
      }
    }
  });

  test('completions endpoint too (vLLM guided_json)', async () => {
    const e = corpus.find((x) => x.name === 'sentiment');
    const r = await client.completions.create({
      model: 'tiny', prompt: 'Sentiment as JSON:', max_tokens: 200, temperature: 1, seed: 3, guided_json: e.schema,
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'stop');
    const ajv = makeAjv();
    assert.ok(ajv.validate(e.schema, JSON.parse(c.text)), c.text);
  });
});

describe('other constraints', () => {
  test('json_object: any JSON object', { timeout: 300000 }, async () => {
    let stopped = 0;
    for (const seed of [1, 2, 3, 4]) {
      const r = await client.chat.completions.create({
        model: 'tiny', messages: messages('JSON object'), max_tokens: 400, temperature: 1, seed,
        response_format: { type: 'json_object' },
      });
      const c = r.choices[0];
      if (c.finish_reason !== 'stop') {
        assert.ok(c.message.content.startsWith('{') && isJsonPrefix(c.message.content), c.message.content);
        continue;
      }
      stopped++;
      const doc = JSON.parse(c.message.content);
      assert.ok(doc !== null && typeof doc === 'object' && !Array.isArray(doc), c.message.content);
    }
    console.log(`json_object: ${stopped}/4 ended with "stop"`);
  });

  const regexes = [
    '[a-z]{3,8}@[a-z]{2,5}\\.(com|org)',
    '\\d{3}-\\d{4}',
    '(yes|no|maybe)',
    '[A-Z][a-z]{1,10}( [A-Z][a-z]{1,10}){0,2}',
    '\\(\\d{1,3}(, ?\\d{1,3}){0,3}\\)',
    '[0-9a-f]{8}-[0-9a-f]{4}',
  ];
  for (const [i, pattern] of regexes.entries()) {
    test(`regex ${pattern}: the output fully matches`, async () => {
      // Alternate between vLLM's structured_outputs.regex and the older guided_regex.
      const field = i % 2 ? { guided_regex: pattern } : { structured_outputs: { regex: pattern } };
      const r = await client.chat.completions.create({
        model: 'tiny', messages: messages('short answer'), max_tokens: 100, temperature: i % 3 ? 1 : 0, seed: i, ...field,
      });
      const c = r.choices[0];
      assert.equal(c.finish_reason, 'stop', c.message.content);
      assert.match(c.message.content, new RegExp(`^(?:${pattern})$`, 'u'));
    });
  }

  test('choice: exactly one of the strings', async () => {
    const choices = ['red', 'green', 'blue', 'dark "grey"'];
    for (const [i, field] of [{ guided_choice: choices }, { structured_outputs: { choice: choices } }].entries()) {
      const r = await client.chat.completions.create({
        model: 'tiny', messages: messages('colour'), max_tokens: 20, temperature: 1, seed: 10 + i, ...field,
      });
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.ok(choices.includes(r.choices[0].message.content), r.choices[0].message.content);
    }
  });

  test('grammar: a small GBNF', async () => {
    const grammar = [
      '# a sum of up to four numbers in parentheses',
      'root ::= "(" num (ws "+" ws num){0,3} ")"',
      'num  ::= [1-9] [0-9]{0,2}',
      'ws   ::= " "?',
    ].join('\n');
    for (const [i, field] of [{ guided_grammar: grammar }, { structured_outputs: { grammar } }].entries()) {
      const r = await client.chat.completions.create({
        model: 'tiny', messages: messages('sum'), max_tokens: 60, temperature: 1, seed: 20 + i, ...field,
      });
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.match(r.choices[0].message.content, /^\([1-9][0-9]{0,2}( ?\+ ?[1-9][0-9]{0,2}){0,3}\)$/);
    }
  });
});

describe('errors are 400 naming the problem', () => {
  const schemaCase = (schema) => ({
    model: 'tiny', messages: messages('x'), max_tokens: 10,
    response_format: { type: 'json_schema', json_schema: { name: 'bad', schema } },
  });
  const cases = [
    ['patternProperties', schemaCase({ type: 'object', properties: { a: { type: 'object', patternProperties: { x: {} } } } }), 'patternProperties', 'response_format'],
    ['not', schemaCase({ not: { type: 'string' } }), "'not'", 'response_format'],
    ['if/then', schemaCase({ if: { type: 'string' }, then: { maxLength: 2 } }), "'if'", 'response_format'],
    ['uniqueItems', schemaCase({ type: 'array', uniqueItems: true }), 'uniqueItems', 'response_format'],
    ['multipleOf', schemaCase({ type: 'integer', multipleOf: 5 }), 'multipleOf', 'response_format'],
    ['unknown format', schemaCase({ type: 'string', format: 'hostname' }), 'hostname', 'response_format'],
    ['unknown type', schemaCase({ type: 'strin' }), 'strin', 'response_format'],
    ['remote $ref', schemaCase({ $ref: 'https://example.com/schema.json' }), '$ref', 'response_format'],
    ['regex lookahead', { model: 'tiny', messages: messages('x'), max_tokens: 10, structured_outputs: { regex: 'a(?=b)' } }, 'lookahead', 'structured_outputs'],
    ['regex backreference', { model: 'tiny', messages: messages('x'), max_tokens: 10, guided_regex: '(a)\\1' }, 'backreference', 'guided_regex'],
    ['grammar syntax', { model: 'tiny', messages: messages('x'), max_tokens: 10, guided_grammar: 'root ::= "a' }, 'grammar', 'guided_grammar'],
  ];
  for (const [name, body, needle, param] of cases) {
    test(name, async () => {
      const r = await post('/chat/completions', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.ok(r.body.error.message.includes(needle), `message should name ${needle}: ${r.body.error.message}`);
      assert.equal(r.body.error.param, param, JSON.stringify(r.body));
    });
  }

  test('the server keeps serving after the errors', async () => {
    const r = await client.chat.completions.create({
      model: 'tiny', messages: messages('x'), max_tokens: 20, guided_choice: ['ok'],
    });
    assert.equal(r.choices[0].message.content, 'ok');
  });
});
