// Headless Chromium for the chat page tests, driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: NUL-separated JSON on fds 3 and 4), so no WebSocket client and no
// driver are needed. Debian's `chromium` package; CHROMIUM overrides the binary.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function findChromium() {
  for (const c of [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome']) {
    if (!c) continue;
    try {
      execFileSync('sh', ['-c', `command -v "${c}"`], { stdio: 'ignore' });
      return c;
    } catch {}
  }
  return null;
}

export class Browser {
  static async launch() {
    const bin = findChromium();
    if (!bin) throw new Error('chromium not found: scripts/setup.sh installs it (apt-get install chromium)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferd-chromium-'));
    const proc = spawn(bin, ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--mute-audio',
      '--remote-debugging-pipe', `--user-data-dir=${dir}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const b = new Browser(proc, dir);
    await b.send('Target.setDiscoverTargets', { discover: true });
    return b;
  }

  constructor(proc, dir) {
    this.proc = proc;
    this.dir = dir;
    this.nextId = 1;
    this.pending = new Map();
    this.waiters = [];  // {method, sessionId, resolve}
    this.stderr = '';
    proc.stderr.on('data', (d) => { this.stderr += d; });
    let buf = Buffer.alloc(0);
    proc.stdio[4].on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let k;
      while ((k = buf.indexOf(0)) >= 0) {
        const msg = JSON.parse(buf.subarray(0, k).toString('utf8'));
        buf = buf.subarray(k + 1);
        const p = msg.id !== undefined && this.pending.get(msg.id);
        if (p) {
          this.pending.delete(msg.id);
          if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
          else p.resolve(msg.result);
        } else if (msg.method) {
          this.waiters = this.waiters.filter((w) => {
            if (w.method !== msg.method || w.sessionId !== msg.sessionId) return true;
            w.resolve(msg.params);
            return false;
          });
        }
      }
    });
    proc.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited:\n${this.stderr}`));
      this.pending.clear();
    });
  }

  // The next event `method` of the session.
  event(method, sessionId, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${method} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ method, sessionId, resolve: (p) => { clearTimeout(t); resolve(p); } });
    });
  }

  send(method, params = {}, sessionId = undefined) {
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.proc.stdio[3].write(JSON.stringify(msg) + '\0');
    });
  }

  async newPage({ width = 1100, height = 800 } = {}) {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Emulation.setDeviceMetricsOverride',
      { width, height, deviceScaleFactor: 1, mobile: false });
    return page;
  }

  async close() {
    const exited = new Promise((r) => (this.proc.exitCode !== null ? r() : this.proc.on('exit', r)));
    try { await Promise.race([this.send('Browser.close'), new Promise((r) => setTimeout(r, 3000))]); } catch {}
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (this.proc.exitCode === null) {
      this.proc.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 5 });
  }
}

export class Page {
  constructor(browser, sessionId) { this.browser = browser; this.sessionId = sessionId; }
  send(method, params = {}) { return this.browser.send(method, params, this.sessionId); }

  // Evaluates an expression in the page (awaiting promises) and returns its value.
  async eval(expression) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  // Navigates and waits for the load event.
  async goto(url) {
    const loaded = this.browser.event('Page.loadEventFired', this.sessionId);
    const r = await this.send('Page.navigate', { url });
    if (r.errorText) throw new Error(`navigating to ${url}: ${r.errorText}`);
    await loaded;
  }

  // Types text as keyboard input into the focused element, then presses Enter.
  async typeAndEnter(text) {
    await this.send('Input.insertText', { text });
    for (const type of ['keyDown', 'keyUp'])
      await this.send('Input.dispatchKeyEvent', { type, key: 'Enter', code: 'Enter',
        windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13, ...(type === 'keyDown' ? { text: '\r' } : {}) });
  }

  // Clicks the centre of the element matching `selector` with the mouse.
  async click(selector) {
    const box = await this.eval(`(() => { const r = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect();
      return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`);
    for (const type of ['mousePressed', 'mouseReleased'])
      await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
  }

  async screenshot(file) {
    const { data } = await this.send('Page.captureScreenshot', { format: 'png' });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from(data, 'base64'));
    return fs.statSync(file).size;
  }
}
