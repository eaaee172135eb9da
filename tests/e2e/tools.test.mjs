// Tool calling end to end (issue 15): the official `openai` client against the real `inferd serve`
// on a tiny random-weight Qwen3-shaped model, where only the grammar can make a call valid.
// tool_choice "required" and a named function give tool_calls whose arguments parse and validate
// (ajv) against the tool's parameters, with finish_reason "tool_calls", and a stream reassembles to
// the same calls; "none" gives text; "auto" without --enable-auto-tool-choice is a 400. Two
// servers: one without tool flags (vLLM's own formats for required / named), one with
// `--enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import OpenAI from 'openai';
import { BIN, makeModelDir, startServer } from './helpers.mjs';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

// Small enough that a random model finishes a call in a few dozen tokens.
const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather forecast of a city',
    strict: true,
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', enum: ['Paris', 'Oslo', 'Lima'] },
        days: { type: 'integer', minimum: 1, maximum: 7 },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city', 'days'],
      additionalProperties: false,
    },
  },
};
const clock = {
  type: 'function',
  function: {
    name: 'get_time',
    description: 'The time in a timezone',
    parameters: {
      type: 'object',
      properties: { timezone: { type: 'string', pattern: '^[A-Z][a-z]{2,8}/[A-Z][a-z]{2,8}$' } },
      required: ['timezone'],
      additionalProperties: false,
    },
  },
};
const tools = [weather, clock];
const validators = Object.fromEntries(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));

const messages = [
  { role: 'system', content: 'You can call tools.' },
  { role: 'user', content: 'What is the weather in Paris for the next 3 days?' },
];
// Qwen3's template: no open reasoning block, so the constraint applies from the first token.
const noThinking = { chat_template_kwargs: { enable_thinking: false } };

let modelDir;
let plain; // no tool flags
let hermes; // --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3
let plainClient;
let hermesClient;

before(async () => {
  modelDir = makeModelDir();
  [plain, hermes] = await Promise.all([
    startServer(modelDir, ['--max-num-seqs', '16']),
    startServer(modelDir, ['--max-num-seqs', '16', '--enable-auto-tool-choice', '--tool-call-parser', 'hermes',
      '--reasoning-parser', 'qwen3']),
  ]);
  const opts = { apiKey: 'unused', maxRetries: 0, timeout: 120000 };
  plainClient = new OpenAI({ baseURL: plain.baseURL, ...opts });
  hermesClient = new OpenAI({ baseURL: hermes.baseURL, ...opts });
});

after(async () => {
  await Promise.all([plain?.stop(), hermes?.stop()]);
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

// Every call names a tool and its arguments are JSON valid under that tool's schema.
function checkCalls(calls, allowed = tools.map((t) => t.function.name)) {
  assert.ok(Array.isArray(calls) && calls.length >= 1, `tool_calls: ${JSON.stringify(calls)}`);
  for (const c of calls) {
    assert.match(c.id, /^chatcmpl-tool-[0-9a-f]{32}$/);
    assert.equal(c.type, 'function');
    assert.ok(allowed.includes(c.function.name), c.function.name);
    const args = JSON.parse(c.function.arguments);
    const validate = validators[c.function.name];
    assert.ok(validate(args), `${c.function.arguments}: ${JSON.stringify(validate.errors)}`);
  }
}

// A stream's chunks reassembled as OpenAI clients do: content, and calls by index.
async function collect(stream) {
  let content = '';
  let finish = null;
  const calls = [];
  for await (const chunk of stream) {
    const ch = chunk.choices[0];
    if (!ch) continue;
    assert.equal(finish, null, 'nothing after finish_reason');
    if (ch.delta?.content) content += ch.delta.content;
    for (const t of ch.delta?.tool_calls ?? []) {
      if (t.id) {
        assert.equal(t.index, calls.length, 'calls are announced in order');
        assert.equal(t.type, 'function');
        assert.equal(t.function.arguments, '', 'the first delta of a call has empty arguments');
        calls.push({ id: t.id, type: 'function', function: { name: t.function.name, arguments: '' } });
      } else {
        assert.ok(t.index < calls.length, 'arguments of an announced call');
        calls[t.index].function.arguments += t.function.arguments;
      }
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { content, calls, finish };
}

const sameCalls = (a, b) => assert.deepEqual(
  a.map((c) => [c.function.name, c.function.arguments]), b.map((c) => [c.function.name, c.function.arguments]));

for (const [label, getClient, extra] of [
  ['without a parser (vLLM formats)', () => plainClient, {}],
  ['hermes parser', () => hermesClient, noThinking],
]) {
  describe(`tool_choice, ${label}`, () => {
    test('a named function: one call of it, arguments valid, streamed the same', async () => {
      const body = {
        model: 'tiny', messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } },
        max_tokens: 200, seed: 7, ...extra,
      };
      const r = await getClient().chat.completions.create(body);
      const ch = r.choices[0];
      assert.equal(ch.finish_reason, 'tool_calls', JSON.stringify(ch));
      assert.equal(ch.message.tool_calls.length, 1);
      checkCalls(ch.message.tool_calls, ['get_weather']);
      assert.equal(ch.message.content, null);
      const s = await collect(await getClient().chat.completions.create({ ...body, stream: true }));
      assert.equal(s.finish, 'tool_calls');
      assert.equal(s.content, '');
      checkCalls(s.calls, ['get_weather']);
      sameCalls(s.calls, ch.message.tool_calls);
    });

    test('required, one call (parallel_tool_calls false): valid, streamed the same', async () => {
      const body = { model: 'tiny', messages, tools, tool_choice: 'required', parallel_tool_calls: false,
        max_tokens: 200, seed: 11, ...extra };
      const r = await getClient().chat.completions.create(body);
      const ch = r.choices[0];
      assert.equal(ch.finish_reason, 'tool_calls', JSON.stringify(ch));
      assert.equal(ch.message.tool_calls.length, 1);
      checkCalls(ch.message.tool_calls);
      const s = await collect(await getClient().chat.completions.create({ ...body, stream: true }));
      assert.equal(s.finish, 'tool_calls');
      sameCalls(s.calls, ch.message.tool_calls);
    });

    test('required, any number of calls: every finished call is valid', async () => {
      let finished = 0;
      for (const seed of [1, 2, 3, 4, 5, 6]) {
        const r = await getClient().chat.completions.create({
          model: 'tiny', messages, tools, tool_choice: 'required', max_tokens: 400, seed, ...extra,
        });
        const ch = r.choices[0];
        const calls = ch.message.tool_calls ?? [];
        if (ch.finish_reason === 'tool_calls') {
          finished++;
          checkCalls(calls);
        } else {
          // Cut by max_tokens: the calls before the last one are complete.
          assert.equal(ch.finish_reason, 'length');
          if (calls.length > 1) checkCalls(calls.slice(0, -1));
        }
      }
      assert.ok(finished >= 4, `only ${finished} of 6 ended with tool_calls within 400 tokens`);
    });
  });
}

describe('tool_choice none and auto', () => {
  test('"none": plain text, no tool_calls', async () => {
    for (const c of [plainClient, hermesClient]) {
      const r = await c.chat.completions.create({
        model: 'tiny', messages, tools, tool_choice: 'none', max_tokens: 8, ignore_eos: true, ...noThinking,
      });
      assert.equal(typeof r.choices[0].message.content, 'string');
      assert.equal(r.choices[0].message.tool_calls, undefined);
      assert.equal(r.choices[0].finish_reason, 'length');
    }
  });

  test('"auto" without --enable-auto-tool-choice is a 400 that says what to set', async () => {
    for (const tool_choice of ['auto', undefined]) {
      await assert.rejects(
        plainClient.chat.completions.create({ model: 'tiny', messages, tools, tool_choice, max_tokens: 4 }),
        (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'tool_choice' &&
          /--enable-auto-tool-choice/.test(e.message));
    }
  });

  test('"auto" with the hermes parser: answered (text or calls, parsed)', async () => {
    const r = await hermesClient.chat.completions.create({
      model: 'tiny', messages, tools, max_tokens: 16, seed: 3, ...noThinking,
    });
    const ch = r.choices[0];
    assert.ok(['stop', 'length', 'tool_calls'].includes(ch.finish_reason));
    if (ch.finish_reason === 'tool_calls') checkCalls(ch.message.tool_calls);
    else assert.equal(typeof ch.message.content, 'string');
  });

  test('a conversation with a tool call and its result goes through the template', async () => {
    const conversation = [
      ...messages,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city": "Paris", "days": 3}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"forecast": "sunny"}' },
    ];
    const r = await plainClient.chat.completions.create({
      model: 'tiny', tools, tool_choice: 'none', max_tokens: 4, ignore_eos: true, messages: conversation,
    });
    assert.equal(r.choices[0].finish_reason, 'length');
    // tool_choice none leaves the tools out of the template: the prompt is /tokenize's.
    const count = async (msgs) => (await (await fetch(`${plain.base}/tokenize`, {
      method: 'POST', body: JSON.stringify({ model: 'tiny', messages: msgs }),
    })).json()).count;
    assert.equal(r.usage.prompt_tokens, await count(conversation));
    assert.ok(r.usage.prompt_tokens > (await count(messages)) + 20, 'the call and its result are in the prompt');
  });
});

describe('constraints and reasoning', () => {
  const schema = { type: 'object', properties: { answer: { type: 'integer', minimum: 0, maximum: 9 } },
    required: ['answer'], additionalProperties: false };
  const response_format = { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } };

  test('with --reasoning-parser and the reasoning closed by the prompt, the schema holds at once', async () => {
    const r = await hermesClient.chat.completions.create({
      model: 'tiny', messages, response_format, max_tokens: 50, seed: 5, ...noThinking,
    });
    const ch = r.choices[0];
    assert.equal(ch.finish_reason, 'stop');
    assert.ok(ajv.validate(schema, JSON.parse(ch.message.content)), ch.message.content);
  });

  test('with the reasoning open, the schema waits for </think> (random weights never write it)', async () => {
    const r = await hermesClient.chat.completions.create({
      model: 'tiny', messages, response_format, max_tokens: 24, seed: 5, ignore_eos: true,
    });
    const text = `${r.choices[0].message.reasoning_content ?? ''}${r.choices[0].message.content ?? ''}`;
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.throws(() => JSON.parse(text), undefined, `unconstrained text parsed as JSON: ${text}`);
  });

  test("the engine's compile error reaches the client as a 400", async () => {
    await assert.rejects(
      plainClient.chat.completions.create({ model: 'tiny', messages, max_tokens: 4,
        structured_outputs: { grammar: 'root ::= missing_rule' } }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /missing_rule/.test(e.message));
  });
});

describe('serve flags', () => {
  for (const [args, message] of [
    [['--tool-call-parser', 'pythonic'], /--tool-call-parser: unknown parser 'pythonic': expected one of hermes, llama3_json, mistral/],
    [['--enable-auto-tool-choice'], /--enable-auto-tool-choice needs --tool-call-parser/],
    [['--reasoning-parser', 'granite'], /--reasoning-parser: unknown parser 'granite': expected one of qwen3, deepseek_r1/],
  ]) {
    test(`${args.join(' ')} stops at start with one message`, () => {
      const r = spawnSync(BIN, ['serve', modelDir, '--load-format', 'dummy', '--port', '0', ...args],
        { encoding: 'utf8', timeout: 60000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr + r.stdout, message);
    });
  }
});
