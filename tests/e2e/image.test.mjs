// The container image's smoke test (issue 36): unpacks the CPU image's OCI archive
// (build/image/inferd-cpu.oci.tar from scripts/build-image.sh cpu) with umoci, runs the image's
// own entrypoint, command, user, working directory and environment (umoci's runtime config.json)
// in namespaces with scripts/image-run.sh (unshare + chroot: crun cannot set up cgroups on a
// hybrid cgroup v1/v2 host such as the CI machine), and checks: the archive's size (<= 150 MB),
// `ldd` inside the root file system (nothing missing), the bundled demo model served by default,
// /health, a completion, and that SIGTERM drains an in-flight stream and exits 0. Skipped, with
// the reason printed, when the archive or the tools (root, umoci, unshare, chroot) are absent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { waitFor } from './helpers.mjs';

const SRC = path.resolve(import.meta.dirname, '../..');
const ARCHIVE = process.env.INFERD_IMAGE_ARCHIVE ?? path.join(SRC, 'build/image/inferd-cpu.oci.tar');
const RUN = path.join(SRC, 'scripts/image-run.sh');
const MAX_BYTES = 150e6;

function which(cmd) {
  try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true; } catch { return false; }
}

function skipReason() {
  if (process.getuid?.() !== 0) return 'not root: unpacking and running the image needs namespaces and chroot';
  for (const tool of ['umoci', 'unshare', 'chroot', 'tar'])
    if (!which(tool)) return `${tool} not found (scripts/setup.sh installs the image tools)`;
  if (!fs.existsSync(ARCHIVE)) return `${ARCHIVE} not found: build it with scripts/build-image.sh cpu (scripts/test.sh does)`;
  return null;
}
const reason = skipReason();
if (reason) console.log(`# e2e_image skipped: ${reason}`);

describe('the CPU container image', { skip: reason ?? false }, () => {
  let dir, rootfs, proc, log = '', exited, base;
  const spec = {};

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferd-image-'));
    fs.mkdirSync(path.join(dir, 'oci'));
    execFileSync('tar', ['-C', path.join(dir, 'oci'), '-xf', ARCHIVE]);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'oci/index.json'), 'utf8'));
    assert.equal(index.manifests.length, 1, 'one image in the archive');
    const ref = index.manifests[0].annotations['org.opencontainers.image.ref.name'];
    execFileSync('umoci', ['unpack', '--image', `${path.join(dir, 'oci')}:${ref}`, path.join(dir, 'bundle')], { stdio: 'ignore' });
    rootfs = path.join(dir, 'bundle/rootfs');
    Object.assign(spec, JSON.parse(fs.readFileSync(path.join(dir, 'bundle/config.json'), 'utf8')).process);
  });
  after(async () => {
    if (proc && proc.exitCode === null) { proc.kill('SIGKILL'); await exited; }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the archive is at most 150 MB and ldd finds every library inside', () => {
    const bytes = fs.statSync(ARCHIVE).size;
    console.log(`# ${ARCHIVE}: ${(bytes / 1e6).toFixed(1)} MB`);
    assert.ok(bytes <= MAX_BYTES, `${bytes} bytes > 150 MB`);
    const ldd = execFileSync('chroot', [rootfs, '/usr/bin/ldd', spec.args[0]], { encoding: 'utf8' });
    assert.doesNotMatch(ldd, /not found/);
    assert.doesNotMatch(ldd, /libcuda|libcudart|libcublas|libnccl/, 'the CPU image links no CUDA library');
  });

  test('runs as the non-root user and serves the bundled demo model', async () => {
    assert.notEqual(spec.user.uid, 0);
    const args = ['--user', `${spec.user.uid}:${spec.user.gid}`, '--cwd', spec.cwd];
    for (const e of spec.env) args.push('--env', e);
    // The image's entrypoint and command (`inferd serve`: the default model is the bundled demo)
    // with a loopback port of its own and a small KV cache.
    args.push(rootfs, ...spec.args, '--host', '127.0.0.1', '--port', '0', '--threads', '2', '--kv-cache-memory', '0.05');
    proc = spawn(RUN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.on('data', (d) => { log += d; });
    proc.stderr.on('data', (d) => { log += d; });
    exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    assert.ok(await waitFor(() => /serving \S+ on http:\/\/127\.0\.0\.1:\d+/.test(log) || proc.exitCode !== null,
      { timeoutMs: 60000 }), `inferd did not start:\n${log}`);
    const m = /serving (\S+) on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
    assert.ok(m, `inferd exited:\n${log}`);
    assert.equal(m[1], 'demo');
    base = `http://127.0.0.1:${m[2]}`;
    assert.ok(await waitFor(async () => { try { return (await fetch(`${base}/ready`)).status === 200; } catch { return false; } },
      { timeoutMs: 60000 }), `never ready:\n${log}`);
    assert.equal((await fetch(`${base}/health`)).status, 200);
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
    const r = await client.completions.create({ model: 'demo', prompt: 'In the beginning', max_tokens: 16, temperature: 0 });
    assert.equal(r.usage.completion_tokens, 16);
    assert.match(r.choices[0].text, /\w/);
  });

  test('SIGTERM drains the in-flight stream and exits 0', async () => {
    assert.ok(base, 'the server runs');
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
    const stream = await client.completions.create({ model: 'demo', prompt: 'And God said', max_tokens: 300,
      ignore_eos: true, stream: true, stream_options: { include_usage: true } });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    proc.kill('SIGTERM');  // image-run.sh passes it on to inferd, PID 1 of the namespace
    let usage = null;
    for (let r = await it.next(); !r.done; r = await it.next()) if (r.value.usage) usage = r.value.usage;
    assert.equal(usage.completion_tokens, 300);
    const { code } = await exited;
    assert.equal(code, 0, log);
    assert.match(log, /received SIGTERM: draining/);
    assert.match(log, /draining: 1 request\(s\) in flight/);
    assert.match(log, /drained; stopped/);
  });
});
