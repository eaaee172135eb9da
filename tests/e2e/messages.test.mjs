// The Anthropic Messages API end to end (issue 30): the official `@anthropic-ai/sdk` client against
// the real `inferd serve` on a tiny random-weight Qwen3-shaped model. messages.create (text, a
// system prompt as a string or as blocks, stop_sequences, the max_tokens stop reason, usage),
// messages.stream (text events, finalMessage), countTokens, tools (a forced tool_use whose input
// validates against its input_schema, streamed as input_json deltas, then a tool_result turn),
// thinking, and errors as the client's typed errors. Two servers: one with an API key (the client
// sends x-api-key) and no tool flags, one with `--enable-auto-tool-choice --tool-call-parser hermes
// --reasoning-parser qwen3`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import Anthropic from '@anthropic-ai/sdk';
import { makeModelDir, startServer } from './helpers.mjs';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const ajv = new Ajv2020({ strict: false, allErrors: true });

const KEY = 'sk-e2e-messages';
const weather = {
  name: 'get_weather',
  description: 'The weather forecast of a city',
  input_schema: {
    type: 'object',
    properties: {
      city: { type: 'string', enum: ['Paris', 'Oslo', 'Lima'] },
      days: { type: 'integer', minimum: 1, maximum: 7 },
    },
    required: ['city', 'days'],
    additionalProperties: false,
  },
};
const validateWeather = ajv.compile(weather.input_schema);
const ask = [{ role: 'user', content: 'What is the weather in Paris for the next 3 days?' }];
// Qwen3's template without its thinking block, so that a forced tool call starts at once.
const noThinking = { thinking: { type: 'disabled' } };

let modelDir;
let keyed; // --api-key, no tool flags
let hermes; // --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3
let client;
let hermesClient;

before(async () => {
  modelDir = makeModelDir();
  [keyed, hermes] = await Promise.all([
    startServer(modelDir, ['--max-num-seqs', '8', '--api-key', KEY]),
    startServer(modelDir, ['--max-num-seqs', '8', '--enable-auto-tool-choice', '--tool-call-parser', 'hermes',
      '--reasoning-parser', 'qwen3']),
  ]);
  const opts = { maxRetries: 0, timeout: 120000 };
  client = new Anthropic({ apiKey: KEY, baseURL: keyed.base, ...opts });
  hermesClient = new Anthropic({ apiKey: 'unused', baseURL: hermes.base, ...opts });
});

after(async () => {
  await Promise.all([keyed?.stop(), hermes?.stop()]);
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

const textOf = (m) => m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

describe('messages.create', () => {
  test('text: the message shape, max_tokens stop reason and usage', async () => {
    const m = await client.messages.create({
      model: 'tiny', max_tokens: 8, system: 'You are terse.', messages: [{ role: 'user', content: 'Hello' }],
    });
    assert.match(m.id, /^msg_[0-9a-f]{24}$/);
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, 'tiny');
    assert.equal(m.stop_reason, 'max_tokens', JSON.stringify(m));
    assert.equal(m.stop_sequence, null);
    assert.equal(m.content.length, 1);
    assert.equal(m.content[0].type, 'text');
    assert.ok(m.content[0].text.length > 0);
    assert.equal(m.usage.output_tokens, 8);
    assert.ok(m.usage.input_tokens + m.usage.cache_read_input_tokens > 5, JSON.stringify(m.usage));
  });

  test('a system prompt as blocks is the same prompt as a string; countTokens counts it', async () => {
    const base = { model: 'tiny', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] };
    const a = await client.messages.countTokens({ ...base, system: 'Be brief.\nUse tools.' });
    const b = await client.messages.countTokens({
      ...base,
      system: [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Use tools.', cache_control: { type: 'ephemeral' } }],
    });
    assert.ok(a.input_tokens > 5);
    assert.equal(b.input_tokens, a.input_tokens);
    const m = await client.messages.create({ ...base, system: 'Be brief.\nUse tools.', max_tokens: 2 });
    assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, a.input_tokens);
  });

  test('stop_sequences: the answer stops before the sequence and names it', async () => {
    const body = { model: 'tiny', max_tokens: 40, temperature: 0, messages: ask };
    const full = textOf(await client.messages.create(body));
    const chars = Array.from(full);
    assert.ok(chars.length > 12, full);
    const stop = chars.slice(8, 11).join('');
    const m = await client.messages.create({ ...body, stop_sequences: [stop] });
    assert.equal(m.stop_reason, 'stop_sequence', JSON.stringify(m));
    assert.equal(m.stop_sequence, stop);
    assert.equal(textOf(m), full.slice(0, full.indexOf(stop)));
  });
});

describe('messages.stream', () => {
  test('text events and finalMessage match the plain answer', async () => {
    const body = { model: 'tiny', max_tokens: 16, temperature: 0, system: 'Answer.', messages: ask };
    const plain = await client.messages.create(body);
    const stream = client.messages.stream(body);
    const seen = new Set();
    let text = '';
    stream.on('streamEvent', (e) => seen.add(e.type));
    stream.on('text', (t) => { text += t; });
    const m = await stream.finalMessage();
    for (const t of ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop',
      'message_delta', 'message_stop'])
      assert.ok(seen.has(t), `no ${t} event: ${[...seen]}`);
    assert.match(m.id, /^msg_/);
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.usage.output_tokens, 16);
    assert.equal(text, textOf(m));
    assert.equal(textOf(m), textOf(plain));
  });
});

describe('tools', () => {
  test('a forced tool: tool_use with valid input, streamed the same, then a tool_result turn', async () => {
    const body = {
      model: 'tiny', max_tokens: 200, temperature: 0, messages: ask, tools: [weather],
      tool_choice: { type: 'tool', name: 'get_weather' },
    };
    const m = await client.messages.create(body);
    assert.equal(m.stop_reason, 'tool_use', JSON.stringify(m));
    const uses = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1, JSON.stringify(m.content));
    assert.equal(uses[0].name, 'get_weather');
    assert.match(uses[0].id, /^toolu_[0-9a-f]{32}$/);
    assert.ok(validateWeather(uses[0].input), `${JSON.stringify(uses[0].input)}: ${JSON.stringify(validateWeather.errors)}`);

    const stream = client.messages.stream(body);
    let json = '';
    stream.on('inputJson', (delta) => { json += delta; });
    const s = await stream.finalMessage();
    assert.equal(s.stop_reason, 'tool_use');
    const streamed = s.content.find((b) => b.type === 'tool_use');
    assert.deepEqual(streamed.input, uses[0].input);
    assert.deepEqual(JSON.parse(json), uses[0].input);

    const next = await client.messages.create({
      model: 'tiny', max_tokens: 8, tools: [weather],
      messages: [...ask, { role: 'assistant', content: m.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: uses[0].id, content: 'Sunny, 21 C' }] }],
      tool_choice: { type: 'none' },
    });
    assert.ok(['max_tokens', 'end_turn'].includes(next.stop_reason), JSON.stringify(next));
    assert.equal(next.content.filter((b) => b.type === 'tool_use').length, 0);
  });

  test('any: every tool_use input is valid (hermes parser, thinking disabled)', async () => {
    const m = await hermesClient.messages.create({
      model: 'tiny', max_tokens: 200, temperature: 0, messages: ask, tools: [weather],
      tool_choice: { type: 'any', disable_parallel_tool_use: true }, ...noThinking,
    });
    assert.equal(m.stop_reason, 'tool_use', JSON.stringify(m));
    const uses = m.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1);
    assert.ok(validateWeather(uses[0].input), JSON.stringify(uses[0].input));
  });

  test('auto with the server\'s parser: accepted; without it a 400 that says what to set', async () => {
    const m = await hermesClient.messages.create({
      model: 'tiny', max_tokens: 8, messages: ask, tools: [weather], ...noThinking,
    });
    assert.ok(['max_tokens', 'end_turn', 'tool_use'].includes(m.stop_reason));
    await assert.rejects(
      client.messages.create({ model: 'tiny', max_tokens: 8, messages: ask, tools: [weather] }),
      (e) => e instanceof Anthropic.BadRequestError && /--enable-auto-tool-choice/.test(e.message),
    );
  });
});

describe('thinking and errors', () => {
  test('thinking needs the server\'s reasoning parser', async () => {
    const body = { model: 'tiny', max_tokens: 16, messages: ask, thinking: { type: 'enabled', budget_tokens: 8 } };
    const m = await hermesClient.messages.create(body);
    assert.ok(['max_tokens', 'end_turn'].includes(m.stop_reason));
    for (const b of m.content) assert.ok(['thinking', 'text'].includes(b.type), b.type);
    await assert.rejects(client.messages.create(body), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, String(e));
      assert.equal(e.status, 400);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'invalid_request_error');
      assert.match(e.error.error.message, /reasoning parser/);
      return true;
    });
  });

  test('typed errors: bad field, image block, unknown model, wrong key', async () => {
    await assert.rejects(
      client.messages.create({ model: 'tiny', max_tokens: 8, messages: ask, top_a: 1 }),
      (e) => e instanceof Anthropic.BadRequestError && /top_a/.test(e.message),
    );
    await assert.rejects(
      client.messages.create({
        model: 'tiny', max_tokens: 8,
        messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }],
      }),
      (e) => e instanceof Anthropic.BadRequestError && /image/.test(e.message),
    );
    await assert.rejects(
      client.messages.create({ model: 'claude-x', max_tokens: 8, messages: ask }),
      (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error',
    );
    const wrong = new Anthropic({ apiKey: 'sk-wrong', baseURL: keyed.base, maxRetries: 0 });
    await assert.rejects(
      wrong.messages.create({ model: 'tiny', max_tokens: 8, messages: ask }),
      (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === 'authentication_error',
    );
    // The server is still up.
    const m = await client.messages.create({ model: 'tiny', max_tokens: 1, messages: ask });
    assert.equal(m.usage.output_tokens, 1);
  });
});
