// The chat page that `inferd serve` answers at /, in headless Chromium against the real server on
// the demo model: it loads with the model picker filled from /v1/models, streams an answer as it
// arrives, stops a long answer (the server aborts it), keeps the conversation across a reload,
// renders markdown without letting HTML through, asks for the API key once, and is gone with
// --no-ui. Screenshots go to INFERD_TEST_OUT_DIR (the build tree), not to the repository.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, metric, waitFor, sleep } from './helpers.mjs';
import { Browser } from './browser.mjs';

const DEMO = path.resolve(import.meta.dirname, '../../models/demo');
const OUT = process.env.INFERD_TEST_OUT_DIR ?? path.resolve(import.meta.dirname, '../../build/test-out');
const SERVE_ARGS = [];  // helpers.mjs gives --threads 2 and a small KV cache

let browser;
before(async () => { browser = await Browser.launch(); });
after(async () => { await browser?.close(); });

// Opens the page with the given localStorage entries and waits until it has loaded its models.
async function openPage(base, storage = {}) {
  const page = await browser.newPage();
  await page.goto(`${base}/version`);  // same origin: set storage before the page's script runs
  await page.eval(`localStorage.clear(); ${Object.entries(storage)
    .map(([k, v]) => `localStorage.setItem(${JSON.stringify(k)}, ${JSON.stringify(JSON.stringify(v))});`).join('')}`);
  await page.goto(`${base}/`);
  assert.ok(await waitFor(async () => (await page.eval(`document.body?.dataset.state ?? ''`)) === 'idle',
    { timeoutMs: 15000 }), 'the page never became idle');
  return page;
}

const lastAnswer = `(() => { const m = [...document.querySelectorAll('.msg.assistant')].pop();
  return m ? { text: m.querySelector('.content').textContent, meta: m.querySelector('.meta').textContent,
    error: m.querySelector('.error')?.textContent ?? '' } : null; })()`;

test('page: loads, streams an answer, stops a long one, keeps the conversation', async () => {
  const srv = await startServer(DEMO, SERVE_ARGS, { realWeights: true });
  try {
    const res = await fetch(`${srv.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const html = await res.text();
    // Self-contained: no external scripts, styles or fonts.
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|@import|https?:\/\/(?!127)/i);

    const page = await openPage(srv.base, {
      'inferd.settings.v1': { max_tokens: '300', temperature: '0.8', extra: '{"ignore_eos": true}' } });
    assert.deepEqual(await page.eval(`[...document.querySelectorAll('#model option')].map((o) => o.value)`), ['tiny']);

    // Send with the keyboard; watch the answer grow while the page says it is streaming.
    await page.eval(`document.getElementById('input').focus()`);
    await page.typeAndEnter('And God said');
    const seen = new Set();
    let state = 'streaming';
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      const a = await page.eval(lastAnswer);
      state = await page.eval('document.body.dataset.state');
      if (state === 'streaming' && a?.text) seen.add(a.text.length);
      if (state === 'idle') break;
      await sleep(10);
    }
    assert.equal(state, 'idle');
    const done = await page.eval(lastAnswer);
    assert.equal(done.error, '');
    assert.ok(seen.size >= 3, `text arrived in ${seen.size} steps while streaming; expected it to grow piece by piece`);
    assert.ok(done.text.length > Math.max(...seen), 'the final answer is longer than every partial view');
    assert.match(done.meta, /^300 tokens · [\d.]+ tok\/s · first token after [\d.]+ s · stopped at max_tokens$/);
    assert.equal(await page.eval(`document.querySelector('.msg.user .content').textContent`), 'And God said');

    // A long answer (up to the context), stopped with the Stop button.
    await page.eval(`localStorage.setItem('inferd.settings.v1', JSON.stringify({ max_tokens: '', extra: '{"ignore_eos": true}' }))`);
    await page.goto(`${srv.base}/`);
    await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle');
    const abortedBefore = (await metric(srv.base, 'vllm:request_success_total', 'abort')) ?? 0;
    await page.eval(`document.getElementById('input').focus()`);
    await page.typeAndEnter('Tell me a long story');
    assert.ok(await waitFor(async () => ((await page.eval(lastAnswer))?.text.length ?? 0) > 20, { timeoutMs: 30000 }));
    assert.equal(await page.eval(`document.getElementById('stop').hidden`), false, 'the Stop button shows while streaming');
    assert.equal(await page.eval(`document.getElementById('send').hidden`), true);
    await page.click('#stop');
    assert.ok(await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle', { timeoutMs: 5000 }));
    const stopped = await page.eval(lastAnswer);
    assert.match(stopped.meta, /^stopped/);
    assert.equal(stopped.error, '');
    await sleep(400);
    assert.equal((await page.eval(lastAnswer)).text, stopped.text, 'no text arrives after Stop');
    // The server saw the client go and aborted the generation (it would otherwise run to ~1000 tokens).
    assert.ok(await waitFor(async () => ((await metric(srv.base, 'vllm:request_success_total', 'abort')) ?? 0) > abortedBefore,
      { timeoutMs: 5000 }), 'the server did not abort the stopped answer');
    assert.match(srv.log(), /status=499/);

    // The conversation survives a reload (localStorage), and a screenshot shows it.
    await page.goto(`${srv.base}/`);
    await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle');
    assert.equal(await page.eval(`document.querySelectorAll('.msg.user').length`), 2);
    assert.equal(await page.eval(`document.querySelectorAll('.msg.assistant').length`), 2);
    assert.equal((await page.eval(lastAnswer)).text, stopped.text);
    const size = await page.screenshot(path.join(OUT, 'chat_page.png'));
    assert.ok(size > 10000, `screenshot of ${size} bytes`);
    console.log(`screenshot: ${path.join(OUT, 'chat_page.png')}`);

    // Esc stops an answer too.
    await page.eval(`document.getElementById('input').focus()`);
    await page.typeAndEnter('Another long story');
    assert.ok(await waitFor(async () => ((await page.eval(lastAnswer))?.text.length ?? 0) > 20, { timeoutMs: 30000 }));
    for (const type of ['keyDown', 'keyUp'])
      await page.send('Input.dispatchKeyEvent', { type, key: 'Escape', code: 'Escape', windowsVirtualKeyCode: 27 });
    assert.ok(await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle', { timeoutMs: 5000 }));
    assert.match((await page.eval(lastAnswer)).meta, /^stopped/);

    // New chat empties it.
    await page.click('#new-chat');
    assert.equal(await page.eval(`document.querySelectorAll('.msg').length`), 0);
    assert.equal(await page.eval(`localStorage.getItem('inferd.chat.v1')`), '[]');
  } finally {
    await srv.stop();
  }
});

test('page: markdown and code blocks render, HTML in answers stays text', async () => {
  const srv = await startServer(DEMO, SERVE_ARGS, { realWeights: true });
  try {
    const md = 'A **bold** and *soft* word, `x = 1`, [a link](https://example.com).\n\n' +
      '# Title\n\n- one\n- two\n\n1. first\n2. second\n\n> quoted\n\n```python\nprint("<b>hi</b>")\n```\n\n' +
      '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
    const page = await openPage(srv.base, { 'inferd.chat.v1': [{ role: 'user', content: 'show me' }, { role: 'assistant', content: md }] });
    const r = await page.eval(`(() => { const c = document.querySelector('.msg.assistant .content');
      return { strong: c.querySelector('strong')?.textContent, em: c.querySelector('em')?.textContent,
        code: c.querySelector('p code')?.textContent, link: c.querySelector('a')?.getAttribute('href'),
        h1: c.querySelector('h1')?.textContent, ul: c.querySelectorAll('ul li').length, ol: c.querySelectorAll('ol li').length,
        quote: c.querySelector('blockquote')?.textContent, pre: c.querySelector('pre code')?.textContent,
        lang: c.querySelector('pre code')?.className, img: c.querySelectorAll('img, script').length,
        pwned: window.pwned ?? null, text: c.textContent }; })()`);
    assert.equal(r.strong, 'bold');
    assert.equal(r.em, 'soft');
    assert.equal(r.code, 'x = 1');
    assert.equal(r.link, 'https://example.com');
    assert.equal(r.h1, 'Title');
    assert.equal(r.ul, 2);
    assert.equal(r.ol, 2);
    assert.equal(r.quote, 'quoted');
    assert.equal(r.pre, 'print("<b>hi</b>")');
    assert.equal(r.lang, 'language-python');
    assert.equal(r.img, 0);
    assert.equal(r.pwned, null);
    assert.match(r.text, /<script>window\.pwned=2<\/script>/);
    assert.ok(await page.screenshot(path.join(OUT, 'chat_page_markdown.png')) > 10000);
  } finally {
    await srv.stop();
  }
});

test('page: asks for the API key once when the server needs one', async () => {
  const srv = await startServer(DEMO, [...SERVE_ARGS, '--api-key', 'sk-page-test'], { realWeights: true });
  try {
    const page = await browser.newPage();
    await page.goto(`${srv.base}/version`);
    await page.eval('localStorage.clear()');
    await page.goto(`${srv.base}/`);
    assert.ok(await waitFor(async () => await page.eval(`document.getElementById('key-dialog').open`), { timeoutMs: 10000 }),
      'the key dialog did not open on 401');
    await page.eval(`document.getElementById('key-input').value = 'sk-page-test'`);
    await page.click('#key-save');
    assert.ok(await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle', { timeoutMs: 10000 }));
    assert.deepEqual(await page.eval(`[...document.querySelectorAll('#model option')].map((o) => o.value)`), ['tiny']);
    await page.eval(`document.getElementById('input').focus()`);
    await page.typeAndEnter('In the beginning');
    assert.ok(await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle' &&
      (await page.eval(lastAnswer))?.meta !== '', { timeoutMs: 30000 }));
    assert.equal((await page.eval(lastAnswer)).error, '');
    // Asked once: a reload uses the stored key without asking.
    await page.goto(`${srv.base}/`);
    assert.ok(await waitFor(async () => (await page.eval('document.body.dataset.state')) === 'idle', { timeoutMs: 10000 }));
    assert.equal(await page.eval(`document.getElementById('key-dialog').open`), false);
    assert.equal(await page.eval(`document.querySelectorAll('#model option').length`), 1);
  } finally {
    await srv.stop();
  }
});

test('page: --no-ui turns it off; only GET is allowed', async () => {
  const srv = await startServer(DEMO, [...SERVE_ARGS, '--no-ui'], { realWeights: true });
  try {
    const res = await fetch(`${srv.base}/`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, 'not_found');
  } finally {
    await srv.stop();
  }
  const on = await startServer(DEMO, SERVE_ARGS, { realWeights: true });
  try {
    const res = await fetch(`${on.base}/`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET');
  } finally {
    await on.stop();
  }
});
