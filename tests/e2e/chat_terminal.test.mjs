// `inferd chat` in a terminal (tmux: send-keys, capture-pane) on the demo model, in process and
// against a running server (--url): answers stream and end in a tokens/s line, Ctrl-C stops an
// answer but not the program, multi-line input, /system, /params, /save, /clear, /load, /exit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, startServer, metric, waitFor, sleep } from './helpers.mjs';

const DEMO = path.resolve(import.meta.dirname, '../../models/demo');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'inferd-chat-'));
const SOCKET = path.join(tmp, 'tmux.sock');  // a tmux server of our own, removed with tmp
const STATS = /\[(stopped: )?(\d+) tokens?, [\d.]+ tok\/s, first token after [\d.]+ s[^\]]*\]/g;

const tmux = (...args) => execFileSync('tmux', ['-S', SOCKET, ...args],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const q = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

// Runs `inferd chat ARGS` in a fresh tmux session; the pane stays after it exits, showing [exit N].
function startChat(name, args, env = {}) {
  return startInTmux(name, ['chat', ...args], env);
}
function startInTmux(name, args, env = {}) {
  const envs = Object.entries(env).map(([k, v]) => `${k}=${q(v)}`).join(' ');
  // The shell ignores Ctrl-C (it would end after its child otherwise); inferd sets its own handler.
  const cmd = `trap '' INT; ${envs} ${q(BIN)} ${args.map(q).join(' ')}; echo "[exit $?]"; sleep 600`;
  tmux('new-session', '-d', '-s', name, '-x', '150', '-y', '50', 'sh', '-c', cmd);
  return {
    screen: () => tmux('capture-pane', '-p', '-J', '-t', name, '-S', '-2000'),
    keys: (...k) => tmux('send-keys', '-t', name, ...k),
    line: (text) => {
      tmux('send-keys', '-t', name, '-l', text);
      tmux('send-keys', '-t', name, 'Enter');
    },
    kill: () => { try { tmux('kill-session', '-t', name); } catch {} },
  };
}

async function until(chat, pred, what, timeoutMs = 60000) {
  let s = '';
  const ok = await waitFor(() => pred((s = chat.screen())), { timeoutMs, everyMs: 25 });
  assert.ok(ok, `timed out waiting for ${what}; screen:\n${s}`);
  return s;
}
// The latest 'params: ...' line shows every one of `kv`.
const paramsShown = (s, ...kv) => {
  const l = s.split('\n').filter((x) => x.startsWith('params: ')).pop() ?? '';
  return kv.every((x) => l.split(' ').includes(x));
};
const count = (s, re) => [...s.matchAll(re)].length;
const statsLines = (s) => [...s.matchAll(STATS)];

// Sends a message and waits for its tokens/s line; returns the screen.
async function ask(chat, text) {
  const n = statsLines(chat.screen()).length;
  chat.line(text);
  return until(chat, (s) => statsLines(s).length > n, `the answer to '${text}'`);
}

// Starts a long answer, checks that it streams, stops it with Ctrl-C; returns the token count.
async function stopLongAnswer(chat) {
  chat.line('/params max_tokens=800 ignore_eos=true temperature=0.8');
  await until(chat, (s) => paramsShown(s, 'max_tokens=800', 'ignore_eos=true', 'temperature=0.8'), 'params');
  const before = statsLines(chat.screen()).length;
  chat.line('Tell me everything you know');
  const tail = () => chat.screen().split('Tell me everything you know').pop();
  await until(chat, () => tail().trim().length > 40, 'the long answer to start');
  // Streaming: the text on screen grows while the answer is unfinished (no stats line yet).
  const a = tail().trim().length;
  await until(chat, () => tail().trim().length > a, 'the answer to grow', 10000);
  assert.equal(statsLines(chat.screen()).length, before, 'the long answer ended before Ctrl-C');
  chat.keys('C-c');
  const s = await until(chat, (x) => statsLines(x).length > before, 'the stopped answer\'s stats');
  const last = statsLines(s).pop();
  assert.equal(last[1], 'stopped: ', `expected a stopped answer: ${last[0]}`);
  assert.ok(Number(last[2]) > 0 && Number(last[2]) < 800, `stopped after ${last[2]} tokens`);
  return Number(last[2]);
}

before(() => { tmux('-f', '/dev/null', 'start-server'); });
after(() => {
  try { tmux('kill-server'); } catch {}
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('terminal chat on the demo model: streaming, Ctrl-C, multi-line, commands', async () => {
  const chat = startChat('local', [DEMO, '--threads', '2', '--system', 'You answer briefly.']);
  try {
    await until(chat, (s) => s.includes('inferd chat: ') && s.includes('>>> '), 'the prompt');
    chat.line('/params temperature=0 max_tokens=60');
    await until(chat, (s) => paramsShown(s, 'temperature=0.0', 'max_tokens=60'), '/params');
    let s = await ask(chat, 'Who made the heaven and the earth?');
    const tail = s.split('Who made the heaven and the earth?').pop();
    const answer = tail.slice(0, tail.search(new RegExp(STATS.source))).trim();
    assert.ok(answer.length > 0, `no answer text:\n${s}`);

    // Ctrl-C stops the answer, not the program.
    await stopLongAnswer(chat);
    chat.line('/params max_tokens=20 ignore_eos=false');
    await until(chat, (x) => paramsShown(x, 'max_tokens=20', 'ignore_eos=false'), '/params after Ctrl-C');
    s = await ask(chat, 'And after that?');
    assert.doesNotMatch(statsLines(s).pop()[0], /stopped:/);

    // Ctrl-C at the prompt drops the typed text.
    chat.keys('-l', 'half a thought');
    chat.keys('C-c');
    await until(chat, (x) => x.includes('^C (Ctrl-D or /exit quits)'), 'Ctrl-C at the prompt');

    // Several lines in one message: a """ block, and a trailing backslash.
    chat.line('"""');
    chat.line('first line');
    chat.line('second line');
    const n = statsLines(chat.screen()).length;
    chat.line('"""');
    await until(chat, (x) => statsLines(x).length > n, 'the answer to a """ block');
    chat.line('one \\');
    const m = statsLines(chat.screen()).length;
    chat.line('two');
    await until(chat, (x) => statsLines(x).length > m, 'the answer to a continued line');
    // A paste of several lines (they reach the terminal together) is one message.
    const p = statsLines(chat.screen()).length;
    tmux('set-buffer', '-b', 'paste', 'pasted one\npasted two\n');
    tmux('paste-buffer', '-b', 'paste', '-t', 'local');
    await until(chat, (x) => statsLines(x).length > p, 'the answer to a paste');
    assert.equal(statsLines(chat.screen()).length, p + 1, 'a paste of two lines got two answers');

    // /save writes the conversation the model saw, /clear forgets it, /load brings it back.
    const file = path.join(tmp, 'conv.json');
    chat.line(`/save ${file}`);
    await until(chat, (x) => x.includes(`to ${file}`), '/save');
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    const roles = saved.messages.map((x) => x.role);
    assert.deepEqual(roles, ['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant',
      'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    assert.equal(saved.messages[0].content, 'You answer briefly.');
    assert.equal(saved.messages[1].content, 'Who made the heaven and the earth?');
    const norm = (x) => x.replace(/\s+/g, ' ').trim();
    assert.equal(norm(saved.messages[2].content), norm(answer), 'the saved answer is the one shown');
    assert.equal(saved.messages[3].content, 'Tell me everything you know');
    assert.ok(saved.messages[4].content.length > 0, 'the stopped answer is kept');
    assert.equal(saved.messages[7].content, 'first line\nsecond line');
    assert.equal(saved.messages[9].content, 'one \ntwo');
    assert.equal(saved.messages[11].content, 'pasted one\npasted two');
    assert.deepEqual(saved.params, { temperature: 0.8, max_tokens: 20, ignore_eos: false });

    chat.line('/clear');
    await until(chat, (x) => x.includes('conversation cleared'), '/clear');
    chat.line(`/save ${file}.cleared`);
    await until(chat, (x) => x.includes(`to ${file}.cleared`), '/save after /clear');
    assert.deepEqual(JSON.parse(fs.readFileSync(`${file}.cleared`, 'utf8')).messages,
      [{ role: 'system', content: 'You answer briefly.' }]);
    chat.line(`/load ${file}`);
    await until(chat, (x) => x.includes(`loaded 13 messages from ${file}`), '/load');

    // Bad input gets a message, not an exit.
    chat.line('/params top_p=7');
    await until(chat, (x) => x.includes("error: /params: top_p must be in (0, 1], got '7'"), 'a bad /params');
    chat.line('/load /nonexistent/file.json');
    await until(chat, (x) => x.includes("error: /load: cannot open '/nonexistent/file.json'"), 'a bad /load');
    chat.line('/frobnicate');
    await until(chat, (x) => x.includes("unknown command '/frobnicate'"), 'an unknown command');

    chat.line('/exit');
    await until(chat, (x) => x.includes('[exit 0]'), '/exit');
  } finally {
    chat.kill();
  }
});

test('terminal chat against a running server (--url): streaming, Ctrl-C aborts on the server', async () => {
  const srv = await startServer(DEMO, [], { realWeights: true });
  // An OpenAI-style base URL (ending in /v1) works as well as the bare address.
  const chat = startChat('remote', ['--url', `${srv.base}/v1/`, '--param', 'temperature=0', '--param', 'max_tokens=40']);
  try {
    await until(chat, (s) => s.includes(`inferd chat: ${srv.base}/v1/, model 'tiny'`) && s.includes('>>> '), 'the prompt');
    const s = await ask(chat, 'In the beginning');
    const last = statsLines(s).pop();
    assert.ok(Number(last[2]) > 0 && Number(last[2]) <= 40, last[0]);
    const aborted = (await metric(srv.base, 'vllm:request_success_total', 'abort')) ?? 0;
    await stopLongAnswer(chat);
    assert.ok(await waitFor(async () => ((await metric(srv.base, 'vllm:request_success_total', 'abort')) ?? 0) > aborted),
      'the server did not abort the stopped answer');
    chat.line('/params max_tokens=10 ignore_eos=false');
    await ask(chat, 'Still there?');
    chat.keys('C-d');
    await until(chat, (x) => x.includes('[exit 0]'), 'Ctrl-D');
  } finally {
    chat.kill();
    await srv.stop();
  }
});

test('terminal chat: clear errors for a bad model, an unreachable server, a missing API key', async () => {
  const run = (args, env = {}, input = '/exit\n') => spawnSync(BIN, ['chat', ...args],
    { input, encoding: 'utf8', env: { ...process.env, INFERD_API_KEY: '', ...env }, timeout: 60000 });
  let r = run([path.join(tmp, 'no-such-model')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^error: .*no-such-model/m);
  // No model named: the demo model (the default of serve too).
  r = run(['--threads', '2']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^inferd chat: \S*models\/demo \(LlamaForCausalLM on cpu/);
  r = run(['--url', 'http://127.0.0.1:1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: cannot connect to 127\.0\.0\.1:1/);
  r = run(['--url', 'ftp://x']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /expected http:\/\/HOST\[:PORT\]/);

  const srv = await startServer(DEMO, ['--api-key', 'sk-term'], { realWeights: true });
  try {
    r = run(['--url', srv.base]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /needs an API key: give it with --api-key or INFERD_API_KEY/);
    r = run(['--url', srv.base, 'no-such-model'], { INFERD_API_KEY: 'sk-term' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not serve a model 'no-such-model': it serves tiny/);
    // Piped input: one message per line, then end of input.
    r = run(['--url', srv.base, '--param', 'max_tokens=8'], { INFERD_API_KEY: 'sk-term' }, 'Hello there\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(count(r.stdout, STATS), 1, r.stdout);
    // Bytes that are not UTF-8 in the input neither end the chat nor break /save.
    const file = path.join(tmp, 'latin1.json');
    r = run(['--url', srv.base, '--param', 'max_tokens=4'], { INFERD_API_KEY: 'sk-term' },
      Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9, 0xff]), Buffer.from(`\n/save ${file}\n`)]));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(count(r.stdout, STATS), 1, r.stdout);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).messages[0].content, 'caf\ufffd\ufffd');
  } finally {
    await srv.stop();
  }
});

test('serve start-up: a progress bar on a terminal, log lines otherwise, one summary at /ready', async () => {
  const SUMMARY = /ready: model (\S+) \(LlamaForCausalLM, 6 layers\) on cpu[^;]*; weights bfloat16; KV cache (\d+) blocks of 16 = (\d+) tokens; max_model_len 1024; max concurrency (\d+) sequences \(KV room for ([\d.]+) at full context\); http:\/\/127\.0\.0\.1:(\d+)( \(chat page at \/\))?; api key (on|off)/;
  const check = (m, { name, seqs, ui, key }) => {
    assert.ok(m, 'no start-up summary');
    assert.equal(m[1], name);
    assert.equal(Number(m[2]) * 16, Number(m[3]));
    assert.equal(Number(m[4]), seqs);
    assert.ok(Math.abs(Number(m[5]) - Number(m[3]) / 1024) < 0.06, `${m[5]} vs ${Number(m[3]) / 1024}`);
    assert.equal(Boolean(m[7]), ui);
    assert.equal(m[8], key);
    return Number(m[6]);
  };
  // A terminal: the bar, redrawn in place, ends at 100% with the size and a rate.
  const term = startInTmux('serve', ['serve', DEMO, '--host', '127.0.0.1', '--port', '0', '--threads', '2',
    '--kv-cache-memory', '0.05', '--max-num-seqs', '8', '--served-model-name', 'demo-term']);
  try {
    const s = await until(term, (x) => SUMMARY.test(x), 'the start-up summary on a terminal');
    assert.match(s, /loading weights \[=+\] 100% {2}17\.\d MiB \/ 17\.\d MiB {2}[\d.]+ (KiB|MiB|GiB)\/s/);
    const port = check(SUMMARY.exec(s), { name: 'demo-term', seqs: 8, ui: true, key: 'off' });
    assert.equal((await fetch(`http://127.0.0.1:${port}/ready`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
  } finally {
    term.kill();
  }
  // Not a terminal: plain log lines, no bar; the summary follows the options.
  const srv = await startServer(DEMO, ['--no-ui', '--api-key', 'k', '--max-num-seqs', '4'], { realWeights: true });
  try {
    const log = srv.log();
    assert.match(log, /loading weights: 1 file, 17\.\d MiB/);
    assert.match(log, /read 17\.\d MiB of weights in [\d.]+ s \([\d.]+ (KiB|MiB|GiB)\/s\)/);
    assert.doesNotMatch(log, /\r|loading weights \[/);
    assert.equal(check(SUMMARY.exec(log), { name: 'tiny', seqs: 4, ui: false, key: 'on' }), srv.port);
    assert.equal(count(log, /ready: model/g), 1);
  } finally {
    await srv.stop();
  }
});
