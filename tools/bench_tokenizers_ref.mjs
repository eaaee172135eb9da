// Encode throughput of Hugging Face `tokenizers` (npm bindings) on the documents that
// bench/tokenizer_bench writes, one document per call, one at a time (no encodeBatch, which
// parallelises), so that the numbers compare with tokenizer_bench's single thread.
//
//   build/<dir>/bench/tokenizer_bench --write-docs /tmp/docs.json      # also prints ours
//   RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false TOKENIZERS_JS=/tmp/tokref \
//     node tools/bench_tokenizers_ref.mjs /tmp/docs.json [NAME...]
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

process.env.RAYON_NUM_THREADS ??= '1';
process.env.TOKENIZERS_PARALLELISM ??= 'false';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const refDir = process.env.TOKENIZERS_JS ?? '/tmp/tokref';
const require = createRequire(path.join(refDir, 'node_modules') + '/');
const { Tokenizer } = require('tokenizers');
const version = require('tokenizers/package.json').version;

const [docsFile, ...rest] = process.argv.slice(2);
if (!docsFile) {
  console.error('usage: node tools/bench_tokenizers_ref.mjs DOCS.json [NAME...]');
  process.exit(1);
}
const docs = JSON.parse(fs.readFileSync(docsFile, 'utf8'));
const names = rest.length ? rest : ['llama3', 'qwen3', 'deepseek_v3', 'llama2', 'gemma3'];
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d), 0);
console.log(`tokenizers ${version}: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB, ` +
  'one encode call at a time');
console.log(`${'tokenizer'.padEnd(14)} ${'tokens'.padStart(10)} ${'MB/s'.padStart(12)} ` +
  `${'tokens/s'.padStart(12)} ${'load s'.padStart(10)}`);
for (const name of names) {
  const dir = fs.existsSync(name) ? name : path.join(repo, 'tests/data/tokenizers', name);
  const t0 = performance.now();
  const tok = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const load = (performance.now() - t0) / 1000;
  let best = Infinity;
  let tokens = 0;
  for (let rep = 0; rep < 3; rep++) {
    tokens = 0;
    const s = performance.now();
    for (const d of docs) tokens += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
    best = Math.min(best, (performance.now() - s) / 1000);
  }
  console.log(`${name.padEnd(14)} ${String(tokens).padStart(10)} ${(bytes / 1e6 / best).toFixed(2).padStart(12)} ` +
    `${Math.round(tokens / best).toString().padStart(12)} ${load.toFixed(2).padStart(10)}`);
}
