// LangChain.js against /v1/responses (issue 30): `ChatOpenAI` with `useResponsesApi: true`
// (@langchain/openai, pinned in scripts/install-e2e-deps.sh) on the real `inferd serve` with a tiny
// random-weight model. invoke and stream agree (greedy); a bound tool forced by tool_choice gives
// a valid tool call, and its ToolMessage turn is answered; withStructuredOutput (json_schema) gives
// an object that validates.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { makeModelDir, metric, startServer } from './helpers.mjs';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const ajv = new Ajv2020({ strict: false, allErrors: true });

const weatherSchema = {
  type: 'object',
  properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'days'],
  additionalProperties: false,
};
const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'The weather forecast of a city', parameters: weatherSchema },
};

let modelDir;
let server;

before(async () => {
  modelDir = makeModelDir();
  server = await startServer(modelDir, ['--max-num-seqs', '4']);
});

after(async () => {
  await server?.stop();
  if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
});

const chat = (fields = {}) => new ChatOpenAI({
  model: 'tiny', useResponsesApi: true, apiKey: 'unused', temperature: 0, maxTokens: 12, maxRetries: 0,
  configuration: { baseURL: server.baseURL }, ...fields,
});

test('invoke and stream agree; the response id and usage come back', async () => {
  const messages = [new SystemMessage('Be brief.'), new HumanMessage('Say hello.')];
  const msg = await chat().invoke(messages);
  assert.equal(typeof msg.text, 'string');
  assert.ok(msg.text.length > 0);
  assert.match(msg.response_metadata.id ?? msg.id, /^resp_/);
  assert.ok(msg.usage_metadata.input_tokens > 0);
  assert.equal(msg.usage_metadata.total_tokens, msg.usage_metadata.input_tokens + msg.usage_metadata.output_tokens);
  let streamed = '';
  for await (const chunk of await chat().stream(messages)) streamed += chunk.text;
  assert.equal(streamed, msg.text);
});

test('a forced tool call, then the ToolMessage turn', async () => {
  const model = chat({ maxTokens: 200 }).bindTools([weatherTool], { tool_choice: 'get_weather' });
  const question = new HumanMessage('Weather in Oslo for 2 days?');
  const ai = await model.invoke([question]);
  assert.equal(ai.tool_calls.length, 1, JSON.stringify(ai));
  const call = ai.tool_calls[0];
  assert.equal(call.name, 'get_weather');
  assert.ok(ajv.validate(weatherSchema, call.args), JSON.stringify(call.args));
  assert.ok(call.id);
  const answer = await chat().invoke([question, ai, new ToolMessage({ tool_call_id: call.id, content: '{"forecast": "rain"}' })]);
  assert.equal(typeof answer.text, 'string');
  assert.ok(answer.text.length > 0);
});

test('withStructuredOutput (json_schema): the object validates', async () => {
  const schema = {
    title: 'person', type: 'object',
    properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer', minimum: 0, maximum: 99 } },
    required: ['name', 'age'], additionalProperties: false,
  };
  const model = chat({ maxTokens: 200 }).withStructuredOutput(schema, { method: 'jsonSchema', strict: true });
  const out = await model.invoke('A person.');
  assert.ok(ajv.validate(schema, out), JSON.stringify(out));
});

test('every request went to /v1/responses', async () => {
  const n = await metric(server.base, 'inferd:http_requests_total', 'handler="/v1/responses",method="POST",status="200"');
  assert.equal(n, 5);  // invoke, stream, the tool call, its answer, the structured output
  assert.equal(await metric(server.base, 'inferd:http_requests_total', 'handler="/v1/chat/completions"'), undefined);
});
