// The Responses API end to end (issue 30): the official `openai` client's `responses.create`,
// `responses.stream`, `responses.parse`, `retrieve` and `delete` against the real `inferd serve` on
// a tiny random-weight Qwen3-shaped model. Greedy output (temperature 0) streamed and not streamed
// agrees; a named function tool gives a function_call whose arguments validate (ajv), and a
// function_call_output turn continues it through previous_response_id; text.format json_schema
// gives JSON that validates; stored responses are retrieved and deleted; unsupported fields and
// unknown ids are the errors OpenAI's client expects. Two servers: one without tool flags, one
// with `--enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import OpenAI from 'openai';
import { makeModelDir, startServer } from './helpers.mjs';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const ajv = new Ajv2020({ strict: false, allErrors: true });

const weather = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather forecast of a city',
  strict: true,
  parameters: {
    type: 'object',
    properties: {
      city: { type: 'string', enum: ['Paris', 'Oslo', 'Lima'] },
      days: { type: 'integer', minimum: 1, maximum: 7 },
    },
    required: ['city', 'days'],
    additionalProperties: false,
  },
};
const validateWeather = ajv.compile(weather.parameters);

let modelDir;
let plain;
let hermes;
let client;
let hermesClient;

before(async () => {
  modelDir = makeModelDir();
  [plain, hermes] = await Promise.all([
    startServer(modelDir, ['--max-num-seqs', '8']),
    startServer(modelDir, ['--max-num-seqs', '8', '--enable-auto-tool-choice', '--tool-call-parser', 'hermes',
      '--reasoning-parser', 'qwen3']),
  ]);
  const opts = { apiKey: 'unused', maxRetries: 0, timeout: 120000 };
  client = new OpenAI({ baseURL: plain.baseURL, ...opts });
  hermesClient = new OpenAI({ baseURL: hermes.baseURL, ...opts });
});

after(async () => {
  await Promise.all([plain?.stop(), hermes?.stop()]);
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

function checkUsage(u) {
  assert.ok(u.input_tokens > 0, JSON.stringify(u));
  assert.ok(u.output_tokens > 0, JSON.stringify(u));
  assert.equal(u.total_tokens, u.input_tokens + u.output_tokens);
  assert.equal(typeof u.input_tokens_details.cached_tokens, 'number');
  assert.equal(typeof u.output_tokens_details.reasoning_tokens, 'number');
}

describe('text responses', () => {
  test('create: string input, instructions, the response object', async () => {
    const r = await client.responses.create({
      model: 'tiny', instructions: 'Answer briefly.', input: 'Say hello.', max_output_tokens: 12, temperature: 0,
      metadata: { run: 'e2e' },
    });
    assert.match(r.id, /^resp_[0-9a-f]+$/);
    assert.equal(r.object, 'response');
    assert.equal(typeof r.created_at, 'number');
    assert.equal(r.model, 'tiny');
    assert.equal(r.instructions, 'Answer briefly.');
    assert.deepEqual(r.metadata, { run: 'e2e' });
    assert.ok(['completed', 'incomplete'].includes(r.status), r.status);
    if (r.status === 'incomplete') assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
    const msg = r.output.find((o) => o.type === 'message');
    assert.ok(msg, JSON.stringify(r.output));
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.content[0].type, 'output_text');
    assert.equal(r.output_text, msg.content[0].text);  // the client's convenience
    assert.ok(r.output_text.length > 0);
    checkUsage(r.usage);
    assert.ok(r.usage.output_tokens <= 12);
  });

  test('message items with text parts; stream and create agree (greedy)', async () => {
    const body = {
      model: 'tiny', temperature: 0, max_output_tokens: 16,
      input: [
        { role: 'developer', content: 'Be terse.' },
        { role: 'user', content: [{ type: 'input_text', text: 'Count to three.' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'One, two, three.' }] },
        { role: 'user', content: 'Again.' },
      ],
    };
    const plainResp = await client.responses.create(body);
    // The helper stream: events in order, the final response reassembled by the client.
    const types = [];
    let deltas = '';
    const stream = client.responses.stream(body);
    stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
    stream.on('event', (e) => types.push(e.type));
    const fin = await stream.finalResponse();
    assert.equal(types[0], 'response.created');
    assert.equal(types[1], 'response.in_progress');
    assert.equal(types[2], 'response.output_item.added');
    assert.equal(types[3], 'response.content_part.added');
    assert.ok(types.includes('response.output_text.delta'));
    assert.ok(types.includes('response.output_text.done'));
    assert.ok(types.includes('response.content_part.done'));
    assert.ok(types.includes('response.output_item.done'));
    assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)), types.at(-1));
    assert.equal(deltas, plainResp.output_text);
    // (The helper adds output_text only for a completed response; greedy output of random weights
    // usually runs to max_output_tokens.)
    assert.equal(fin.output.find((o) => o.type === 'message').content[0].text, plainResp.output_text);
    // (Its snapshot takes the final status from response.completed only, not response.incomplete.)
    if (plainResp.status === 'completed') assert.equal(fin.status, 'completed');

    // create({stream: true}): raw events with increasing sequence numbers.
    const raw = await client.responses.create({ ...body, stream: true });
    let seq = -1;
    let last;
    for await (const e of raw) {
      assert.equal(e.sequence_number, seq + 1);
      seq = e.sequence_number;
      last = e;
    }
    assert.equal(last.response.output_text ?? last.response.output[0].content[0].text, plainResp.output_text);
    assert.equal(last.type, `response.${plainResp.status}`);
    assert.equal(last.response.status, plainResp.status);
    checkUsage(last.response.usage);
  });
});

describe('store', () => {
  test('retrieve, previous_response_id, delete', async () => {
    const first = await client.responses.create({ model: 'tiny', input: 'Remember 42.', max_output_tokens: 8, temperature: 0 });
    const got = await client.responses.retrieve(first.id);
    assert.equal(got.id, first.id);
    assert.deepEqual(got.output, first.output);
    const second = await client.responses.create({
      model: 'tiny', input: 'What number?', previous_response_id: first.id, max_output_tokens: 8, temperature: 0,
    });
    assert.equal(second.previous_response_id, first.id);
    // The second prompt holds the first turn: more input tokens than the first.
    assert.ok(second.usage.input_tokens > first.usage.input_tokens + 4,
      `${second.usage.input_tokens} vs ${first.usage.input_tokens}`);
    await client.responses.delete(first.id);
    await assert.rejects(client.responses.retrieve(first.id), (e) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(
      client.responses.create({ model: 'tiny', input: 'x', previous_response_id: first.id }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'previous_response_id' &&
        e.code === 'previous_response_not_found');
    const unstored = await client.responses.create({ model: 'tiny', input: 'x', max_output_tokens: 2, store: false });
    await assert.rejects(client.responses.retrieve(unstored.id), (e) => e instanceof OpenAI.NotFoundError);
  });
});

describe('function tools', () => {
  test('a named function: a valid function_call, then its output continues the conversation', async () => {
    const r = await client.responses.create({
      model: 'tiny', input: 'Weather in Paris for 3 days?', tools: [weather],
      tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 200, temperature: 0,
    });
    assert.equal(r.status, 'completed', JSON.stringify(r));
    const calls = r.output.filter((o) => o.type === 'function_call');
    assert.equal(calls.length, 1, JSON.stringify(r.output));
    const call = calls[0];
    assert.equal(call.name, 'get_weather');
    assert.match(call.id, /^fc_/);
    assert.ok(call.call_id);
    const args = JSON.parse(call.arguments);
    assert.ok(validateWeather(args), `${call.arguments}: ${JSON.stringify(validateWeather.errors)}`);

    // Streamed, the arguments arrive as deltas and agree.
    let streamedArgs = '';
    const s = client.responses.stream({
      model: 'tiny', input: 'Weather in Paris for 3 days?', tools: [weather],
      tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 200, temperature: 0,
    });
    s.on('response.function_call_arguments.delta', (e) => { streamedArgs += e.delta; });
    const sf = await s.finalResponse();
    assert.equal(streamedArgs, call.arguments);
    assert.equal(sf.output.find((o) => o.type === 'function_call').arguments, call.arguments);

    const next = await client.responses.create({
      model: 'tiny', previous_response_id: r.id, tools: [weather], tool_choice: 'none',
      input: [{ type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ forecast: 'sun' }) }],
      max_output_tokens: 8, temperature: 0,
    });
    assert.ok(next.output.some((o) => o.type === 'message'), JSON.stringify(next.output));

    // The same turn sent as items without the store.
    const items = await client.responses.create({
      model: 'tiny', store: false, tools: [weather], tool_choice: 'none', max_output_tokens: 8, temperature: 0,
      input: [
        { role: 'user', content: 'Weather in Paris for 3 days?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ forecast: 'sun' }) },
      ],
    });
    assert.equal(items.output_text, next.output_text);
  });

  test('required with the hermes parser and thinking off (reasoning.effort none)', async () => {
    const r = await hermesClient.responses.create({
      model: 'tiny', input: 'Weather in Oslo for 2 days?', tools: [weather], tool_choice: 'required',
      parallel_tool_calls: false, reasoning: { effort: 'none' }, max_output_tokens: 200, temperature: 0,
    });
    const calls = r.output.filter((o) => o.type === 'function_call');
    assert.equal(calls.length, 1, JSON.stringify(r.output));
    assert.ok(validateWeather(JSON.parse(calls[0].arguments)), calls[0].arguments);
    assert.equal(r.reasoning.effort, 'none');
  });
});

describe('text.format', () => {
  test('json_schema: the output validates; responses.parse gives output_parsed', async () => {
    const schema = {
      type: 'object',
      properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
      required: ['name', 'age'],
      additionalProperties: false,
    };
    const validate = ajv.compile(schema);
    const body = {
      model: 'tiny', input: 'A person as JSON.', max_output_tokens: 200, temperature: 0,
      text: { format: { type: 'json_schema', name: 'person', schema, strict: true } },
    };
    const r = await client.responses.parse(body);
    assert.equal(r.status, 'completed', JSON.stringify(r));
    const obj = JSON.parse(r.output_text);
    assert.ok(validate(obj), `${r.output_text}: ${JSON.stringify(validate.errors)}`);
    assert.deepEqual(r.output_parsed, obj);
    assert.equal(r.text.format.name, 'person');
  });
});

describe('errors', () => {
  const cases = [
    ['a built-in tool', { tools: [{ type: 'web_search' }] }, 'tools[0].type'],
    ['background', { background: true }, 'background'],
    ['an unknown field', { frobnicate: 1 }, 'frobnicate'],
    ['an image part', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] },
      'input[0].content[0].type'],
    ['reasoning.effort without a reasoning parser', { reasoning: { effort: 'high' } }, 'reasoning.effort'],
    ['max_output_tokens past the context', { max_output_tokens: 10 ** 6 }, 'max_output_tokens'],
  ];
  for (const [label, patch, param] of cases) {
    test(`${label}: 400 naming ${param}`, async () => {
      await assert.rejects(client.responses.create({ model: 'tiny', input: 'x', ...patch }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === param || assert.fail(`${e}: ${e.param}`));
    });
  }
  test('unknown model: 404', async () => {
    await assert.rejects(client.responses.create({ model: 'nope', input: 'x' }), (e) => e instanceof OpenAI.NotFoundError);
  });
});
