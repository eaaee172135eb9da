// The deployment kit (deploy/): every Kubernetes manifest validates against the Kubernetes schemas
// (the `kubernetes-models` npm package), the pieces fit together (selectors, probes, the drain,
// the HPA's metric and the adapter rule that serves it), and every metric name the Grafana
// dashboard and the adapter rule use is one that a real `inferd serve` and `inferd router` export
// on /metrics.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { BIN, makeModelDir, sleep, startServer } from '../e2e/helpers.mjs';

let YAML, kinds;
try {
  YAML = (await import('yaml')).default;
  kinds = {
    'apps/v1': await import('kubernetes-models/apps/v1'),
    v1: await import('kubernetes-models/v1'),
    'autoscaling/v2': await import('kubernetes-models/autoscaling/v2'),
    'policy/v1': await import('kubernetes-models/policy/v1'),
  };
} catch (e) {
  throw new Error(`kubernetes-models or yaml is missing: run scripts/install-e2e-deps.sh (${e.message})`);
}

const DEPLOY = path.resolve(import.meta.dirname, '../../deploy');
const K8S = path.join(DEPLOY, 'kubernetes');

// Every document of every manifest, with the file it came from.
function manifests() {
  const out = [];
  for (const f of fs.readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(K8S, f), 'utf8'))) {
      assert.equal(doc.errors.length, 0, `${f}: ${doc.errors.join('; ')}`);
      const obj = doc.toJS();
      if (obj) out.push({ file: f, obj });
    }
  }
  return out;
}

const docs = manifests();
const find = (kind, name) => {
  const d = docs.find((x) => x.obj.kind === kind && x.obj.metadata?.name === name);
  assert.ok(d, `no ${kind} named ${name} in deploy/kubernetes`);
  return d.obj;
};
const matches = (selector, labels) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const flag = (args, name) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : a.slice(name.length + 3);
};

test('every manifest validates against the Kubernetes schemas', () => {
  assert.ok(docs.length >= 7, `expected the replica, router, HPA, PDB and adapter objects; got ${docs.length}`);
  for (const { file, obj } of docs) {
    const Model = kinds[obj.apiVersion]?.[obj.kind];
    assert.ok(Model, `${file}: ${obj.apiVersion} ${obj.kind} is not a kind this test knows`);
    assert.doesNotThrow(() => new Model(obj).validate(), `${file}: ${obj.kind} ${obj.metadata?.name}`);
  }
  // The validator really rejects a broken object (so the loop above proves something).
  const broken = structuredClone(find('Deployment', 'inferd-replica'));
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'eight thousand';
  assert.throws(() => new kinds['apps/v1'].Deployment(broken).validate(), /containerPort/);
  assert.throws(() => new kinds['autoscaling/v2'].HorizontalPodAutoscaler({ metadata: { name: 'x' }, spec: {} }).validate());
});

test('the replica Deployment: probes, drain, GPU, services and budget that select it', () => {
  const dep = find('Deployment', 'inferd-replica');
  const pod = dep.spec.template;
  assert.ok(matches(dep.spec.selector.matchLabels, pod.metadata.labels), 'selector does not select its pods');
  const c = pod.spec.containers[0];
  assert.equal(c.args[0], 'serve');
  assert.equal(c.readinessProbe.httpGet.path, '/ready');
  assert.equal(c.livenessProbe.httpGet.path, '/health');
  assert.equal(c.startupProbe.httpGet.path, '/health');
  assert.equal(c.resources.requests['nvidia.com/gpu'], '1');
  assert.equal(c.resources.limits['nvidia.com/gpu'], '1');
  const drain = Number(flag(c.args, 'drain-timeout'));
  const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
  assert.ok(drain > 0, '--drain-timeout is not set');
  assert.ok(pod.spec.terminationGracePeriodSeconds > drain + preStop,
    `terminationGracePeriodSeconds ${pod.spec.terminationGracePeriodSeconds} does not cover preStop ${preStop} s + drain ${drain} s`);
  const port = c.ports.find((p) => p.name === 'http').containerPort;
  assert.equal(Number(flag(c.args, 'port')), port);
  const svc = find('Service', 'inferd-replicas');
  assert.equal(svc.spec.clusterIP, 'None', 'the router resolves the replicas through a headless Service');
  assert.ok(matches(svc.spec.selector, pod.metadata.labels));
  const pdb = find('PodDisruptionBudget', 'inferd-replica');
  assert.ok(matches(pdb.spec.selector.matchLabels, pod.metadata.labels));
});

test('the images: the CUDA variant for the replicas, the CPU one for the router, as the image user', () => {
  // scripts/build-image.sh tags inferd:VERSION-VARIANT, VERSION the project's (CMakeLists.txt).
  const cmake = fs.readFileSync(path.join(DEPLOY, '../CMakeLists.txt'), 'utf8');
  const version = /project\(inferd VERSION ([0-9.]+)/.exec(cmake)[1];
  for (const [name, variant] of [['inferd-replica', 'cuda'], ['inferd-router', 'cpu']]) {
    const pod = find('Deployment', name).spec.template.spec;
    const c = pod.containers[0];
    assert.match(c.image, new RegExp(`(^|/)inferd:${version.replaceAll('.', '\\.')}-${variant}$`), `${name}: ${c.image}`);
    // The image's user (uid 1000, made by scripts/build-image.sh and the Containerfile).
    assert.equal(pod.securityContext.runAsNonRoot, true, name);
    assert.equal(pod.securityContext.runAsUser, 1000, name);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false, name);
  }
});

test('the router Deployment finds the replicas and its Service selects it', () => {
  const dep = find('Deployment', 'inferd-router');
  const pod = dep.spec.template;
  assert.ok(matches(dep.spec.selector.matchLabels, pod.metadata.labels));
  const c = pod.spec.containers[0];
  assert.equal(c.args[0], 'router');
  assert.equal(c.readinessProbe.httpGet.path, '/ready');
  assert.equal(c.livenessProbe.httpGet.path, '/health');
  const dns = flag(c.args, 'backend-dns');
  const svc = find('Service', 'inferd-replicas');
  assert.equal(dns, `http://${svc.metadata.name}:${svc.spec.ports[0].port}`);
  assert.ok(pod.spec.terminationGracePeriodSeconds > Number(flag(c.args, 'drain-timeout')));
  const front = find('Service', 'inferd');
  assert.ok(matches(front.spec.selector, pod.metadata.labels));
  assert.ok(!matches(front.spec.selector, find('Deployment', 'inferd-replica').spec.template.metadata.labels),
    'the front Service must not select the replicas');
});

// The adapter's rules (prometheus-adapter.yaml's config.yaml).
function adapterRules() {
  const cm = find('ConfigMap', 'inferd-prometheus-adapter');
  return YAML.parse(cm.data['config.yaml']).rules;
}

test('the HPA scales the replicas on a metric the adapter rule serves', () => {
  const hpa = find('HorizontalPodAutoscaler', 'inferd-replica');
  assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
  assert.equal(hpa.spec.scaleTargetRef.name, 'inferd-replica');
  assert.ok(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
  const names = hpa.spec.metrics.map((m) => m.pods?.metric?.name);
  assert.deepEqual(names, ['vllm_num_requests_waiting']);
  // The adapter names each series by its rule's matches/as: one must produce the HPA's name.
  const served = [];
  for (const r of adapterRules()) {
    const series = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(r.seriesQuery)[1];
    served.push(series.replace(new RegExp(r.name.matches), r.name.as));
    assert.deepEqual(Object.keys(r.resources.overrides).sort(), ['namespace', 'pod']);
  }
  for (const n of names) assert.ok(served.includes(n), `no adapter rule serves ${n} (rules serve ${served})`);
});

// ---- metric names against a real /metrics ------------------------------------------------------

let replica, router, routerLog = '';

async function startRouter(backend) {
  const proc = spawn(BIN, ['router', '--host', '127.0.0.1', '--port', '0', '--backend', backend,
    '--health-check-interval', '0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => { routerLog += d; });
  proc.stderr.on('data', (d) => { routerLog += d; });
  const deadline = Date.now() + 30000;
  let port = 0;
  while (!port) {
    const m = /routing on http:\/\/127\.0\.0\.1:(\d+)/.exec(routerLog);
    if (m) port = Number(m[1]);
    else if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`router did not start:\n${routerLog}`);
    else await sleep(20);
  }
  const base = `http://127.0.0.1:${port}`;
  while ((await fetch(`${base}/ready`)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`router never became ready:\n${routerLog}`);
    await sleep(20);
  }
  return { proc, base };
}

before(async () => {
  replica = await startServer(makeModelDir());
  router = await startRouter(replica.base);
  // One streamed and one plain request through the router, so that every series has samples.
  for (const stream of [true, false]) {
    const r = await fetch(`${router.base}/v1/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'hello there', max_tokens: 3, stream }),
    });
    assert.equal(r.status, 200);
    await r.text();
  }
});

after(async () => {
  if (router?.proc.exitCode === null) {
    router.proc.kill('SIGTERM');
    await new Promise((r) => router.proc.on('exit', r));
  }
  await replica?.stop();
});

// The series names a /metrics page exports: every sample's name, and the names its # TYPE lines
// promise (a counter's _total, a histogram's _bucket/_sum/_count) even before a first sample.
async function exported(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const names = new Set();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (t) {
      const [, n, type] = t;
      if (type === 'counter') names.add(`${n}_total`);
      else if (type === 'gauge') names.add(n);
      else for (const s of ['_bucket', '_sum', '_count']) names.add(n + s);
    } else if (line && !line.startsWith('#')) {
      names.add(/^[^{ ]+/.exec(line)[0]);
    }
  }
  return names;
}

const metricNames = (text) => [...new Set(text.match(/(?:inferd|vllm):[a-zA-Z0-9_:]+/g) ?? [])];

test('every metric the dashboard and the adapter use is one /metrics exports', async () => {
  const names = new Set([...(await exported(replica.base)), ...(await exported(router.base))]);
  assert.ok(names.has('vllm:num_requests_waiting') && names.has('inferd:router_requests_total'),
    'the pages look wrong');
  const dashboard = JSON.parse(fs.readFileSync(path.join(DEPLOY, 'grafana', 'inferd-dashboard.json'), 'utf8'));
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 10);
  const used = metricNames(exprs.join('\n'));
  // TTFT, TPOT, throughput, queue, KV usage, prefix hit rate, errors: each has its series.
  // vLLM's names (issue 30), so that dashboards written for vLLM work too.
  for (const needed of ['vllm:time_to_first_token_seconds_bucket', 'vllm:inter_token_latency_seconds_bucket',
    'vllm:generation_tokens_total', 'vllm:num_requests_waiting', 'vllm:kv_cache_usage_perc',
    'vllm:prefix_cache_hits_total', 'vllm:prefix_cache_queries_total', 'vllm:request_queue_time_seconds_bucket',
    'vllm:iteration_tokens_total_bucket', 'inferd:http_requests_total'])
    assert.ok(used.includes(needed), `the dashboard does not chart ${needed}`);
  for (const rule of adapterRules()) used.push(...metricNames(rule.seriesQuery));
  // The KEDA alternative (deploy/keda, outside kubernetes/: it needs KEDA's CRDs) queries them too.
  const keda = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'keda', 'scaledobject.yaml'), 'utf8'));
  assert.equal(keda.spec.scaleTargetRef.name, find('Deployment', 'inferd-replica').metadata.name);
  const kedaQueries = keda.spec.triggers.map((t) => t.metadata.query).join('\n');
  assert.ok(kedaQueries.includes('vllm:num_requests_waiting'));
  used.push(...metricNames(kedaQueries));
  const unknown = used.filter((n) => !names.has(n));
  assert.deepEqual(unknown, [], `used but not exported: ${unknown.join(', ')}`);
  // And the check itself can fail: a misspelt name is caught.
  assert.ok(!names.has('vllm:num_request_waiting'));
});
