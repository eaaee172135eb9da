#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/<target>/) and the small tokenizer and chat
template of fuzz_request (tests/fuzz/data/) from the tests' data. Run from the repository root
after scripts/fetch-test-data.sh (the real tokenizers are cut down to a few hundred tokens so
that the committed corpus stays small). The outputs are committed; rerun only to change them."""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")
DATA = os.path.join(ROOT, "tests", "data")


def write(target, name, content):
    d = os.path.join(FUZZ, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)


def small_tokenizer(name, keep=300, added=12):
    """The model's tokenizer.json with its first `keep` tokens, the merges among them and its
    first `added` added tokens."""
    t = json.load(open(os.path.join(DATA, "tokenizers", name, "tokenizer.json")))
    m = t["model"]
    if m["type"] == "BPE":
        vocab = {k: v for k, v in m["vocab"].items() if v < keep}
        merges = []
        for mg in m["merges"]:
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            if a in vocab and b in vocab and a + b in vocab:
                merges.append(mg)
        m["vocab"], m["merges"] = vocab, merges
    elif m["type"] == "Unigram":
        m["vocab"] = m["vocab"][:keep]
    t["added_tokens"] = t["added_tokens"][:added]
    return t


def dumps(j):
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


TEXTS = [
    "Hello, world! It's 2024: naïve café, 東京, 🙂 and <|begin_of_text|> <s>[INST]",
    "  leading spaces\n\n\ttabs\r\nand 12345678 digits ünïcödé \u00a0nbsp",
]


def tokenizers():
    names = [n for n in ["llama3", "llama2", "qwen3", "gemma3", "deepseek_v3"]
             if os.path.isdir(os.path.join(DATA, "tokenizers", n))]
    for i, n in enumerate(names):
        t = small_tokenizer(n)
        write("fuzz_tokenizer", f"{n}.bin", dumps(t) + "\0" + TEXTS[i % len(TEXTS)])
    wordpiece = {
        "version": "1.0", "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, s in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {
                               "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100,
                  "vocab": {s: i for i, s in enumerate(
                      ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", "##ing",
                       "a", "b", "c", ",", "!", "un", "##able", "東", "京"])}}}
    write("fuzz_tokenizer", "wordpiece.bin", dumps(wordpiece) + "\0" + "Hello, worlds! unable 東京")
    if "llama3" in names:
        os.makedirs(os.path.join(FUZZ, "data"), exist_ok=True)
        with open(os.path.join(FUZZ, "data", "tokenizer.json"), "w") as f:
            f.write(dumps(small_tokenizer("llama3", keep=1000, added=16)))
        cfg = json.load(open(os.path.join(DATA, "tokenizers", "llama3", "tokenizer_config.json")))
        tmpl = cfg.get("chat_template") or json.load(open(os.path.join(
            DATA, "tokenizers", "llama3_1", "tokenizer_config.json")))["chat_template"]
        with open(os.path.join(FUZZ, "data", "chat_template.jinja"), "w") as f:
            f.write(tmpl)


def chat_templates():
    d = os.path.join(DATA, "chat_template_fixtures")
    for n in ["llama2", "llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"]:
        fx = json.load(open(os.path.join(d, n + ".json")))
        src = os.path.join(DATA, "tokenizers", n, "tokenizer_config.json")
        if not os.path.exists(src):
            continue
        tmpl = json.load(open(src)).get("chat_template")
        if not tmpl:
            continue
        if isinstance(tmpl, list):
            tmpl = tmpl[0]["template"]
        for i, case in enumerate(fx["cases"][:3]):
            body = {"messages": case["messages"], "tools": case.get("tools")}
            write("fuzz_chat_template", f"{n}_{i}.bin", tmpl + "\0" + dumps(body))
    # Small feature templates of the jinja tests (a sample: one in eight).
    feats = json.load(open(os.path.join(d, "features.json")))["cases"]
    for i, case in enumerate(feats[::8]):
        ctx = case.get("context", {})
        msgs = ctx.get("messages", [{"role": "user", "content": "hi"}])
        write("fuzz_chat_template", f"feature_{i:03d}.bin",
              case["template"] + "\0" + dumps({"messages": msgs}))


def model_configs():
    g = os.path.join(DATA, "goldens")
    for n in sorted(os.listdir(g)):
        p = os.path.join(g, n, "config.json")
        if os.path.exists(p):
            write("fuzz_model_config", n + ".json", open(p).read())


def safetensors():
    def st(tensors, data_len, extra=None):
        h = dict(tensors)
        if extra:
            h.update(extra)
        hb = json.dumps(h).encode()
        return struct.pack("<Q", len(hb)) + hb + bytes(data_len)
    write("fuzz_safetensors", "one_f32.st",
          st({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, 24))
    write("fuzz_safetensors", "mixed.st",
          st({"a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
              "b": {"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 16]},
              "c": {"dtype": "F32", "shape": [], "data_offsets": [16, 20]},
              "e": {"dtype": "F32", "shape": [0, 5], "data_offsets": [20, 20]}}, 20,
             {"__metadata__": {"format": "pt"}}))
    write("fuzz_safetensors", "lying_offsets.st",
          st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [18446744073709551608, 0]}}, 8))
    write("fuzz_safetensors", "fp8.st",
          st({"w": {"dtype": "F8_E4M3", "shape": [4, 4], "data_offsets": [0, 16]},
              "w_scale": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]}}, 20))


def gguf_bytes(kv, tensors, alignment=32, version=3):
    """A GGUF file (ggml's docs/gguf.md): kv is [(key, type id, packed value bytes)], tensors
    [(name, ne fastest-first, ggml type id, data bytes)]."""
    def s(x):
        x = x.encode()
        return struct.pack("<Q", len(x)) + x

    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    for key, t, v in kv:
        out += s(key) + struct.pack("<I", t) + v
    offset, infos, data = 0, b"", b""
    for name, ne, t, d in tensors:
        infos += s(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        infos += struct.pack("<IQ", t, offset)
        d += b"\0" * (-len(d) % alignment)
        data += d
        offset += len(d)
    out += infos
    out += b"\0" * (-len(out) % alignment)
    return out + data


def gguf():
    def s(x):
        x = x.encode()
        return struct.pack("<Q", len(x)) + x

    arch = ("general.architecture", 8, s("llama"))
    tokens = ("tokenizer.ggml.tokens", 9,
              struct.pack("<IQ", 8, 4) + s("<s>") + s("</s>") + s("\u2581a") + s("b"))
    scores = ("tokenizer.ggml.scores", 9, struct.pack("<IQ4f", 6, 4, 0, 0, -1.5, -2))
    ttype = ("tokenizer.ggml.token_type", 9, struct.pack("<IQ4i", 5, 4, 3, 3, 1, 1))
    eps = ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5))
    bos = ("tokenizer.ggml.add_bos_token", 7, b"\1")
    f32 = ("a.weight", [4, 2], 0, struct.pack("<8f", *range(8)))
    q8 = ("b.weight", [32, 2], 8, bytes(range(68)))
    q4k = ("c.weight", [256], 12, bytes(i % 251 for i in range(144)))
    write("fuzz_gguf", "vocab.gguf", gguf_bytes([arch, tokens, scores, ttype, bos], []))
    write("fuzz_gguf", "tensors.gguf", gguf_bytes([arch, eps], [f32, q8, q4k]))
    write("fuzz_gguf", "align64_v2.gguf",
          gguf_bytes([("general.alignment", 4, struct.pack("<I", 64)), arch], [q8, f32],
                     alignment=64, version=2))
    write("fuzz_gguf", "split_keys.gguf",
          gguf_bytes([arch, ("split.no", 2, struct.pack("<H", 0)),
                      ("split.count", 2, struct.pack("<H", 1))], [f32]))


def requests():
    bodies = [
        (0, {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}),
        (0, {"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": [{"type": "text", "text": "a"},
                                                       {"type": "text", "text": "b"}]},
                          {"role": "assistant", "content": "ok"}],
             "continue_final_message": True, "add_generation_prompt": False,
             "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "n": 2, "seed": 7,
             "max_tokens": 16, "stop": ["\n", "END"], "logprobs": True, "top_logprobs": 3,
             "stream": True, "stream_options": {"include_usage": True},
             "logit_bias": {"5": -100, "7": 3.5}, "presence_penalty": 0.5,
             "frequency_penalty": 0.2, "repetition_penalty": 1.1, "user": "u",
             "chat_template_kwargs": {"enable_thinking": False}}),
        (0, {"messages": [{"role": "user", "content": "x"},
                          {"role": "assistant", "content": None,
                           "tool_calls": [{"id": "c1", "type": "function",
                                           "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                          {"role": "tool", "tool_call_id": "c1", "content": "1"}],
             "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                 "type": "object", "properties": {"a": {"type": "integer"}}}}}],
             "tool_choice": "auto", "response_format": {"type": "text"},
             "max_completion_tokens": 8, "ignore_eos": True, "priority": 1}),
        (1, {"model": "m", "prompt": "Once upon a time", "max_tokens": 5, "echo": True,
             "logprobs": 2, "best_of": 1, "suffix": None}),
        (1, {"prompt": [[1, 2, 3], [4, 5]], "n": 1, "stop": "x", "min_tokens": 2,
             "stop_token_ids": [9], "skip_special_tokens": False}),
        (1, {"prompt": ["a", "b"], "temperature": 0, "stream": False}),
        (2, {"prompt": "Hello <|begin_of_text|>", "add_special_tokens": True,
             "return_token_strs": True}),
        (2, {"model": "m", "messages": [{"role": "user", "content": "hi"}],
             "add_generation_prompt": True}),
        (3, {"tokens": [1, 2, 300, 999]}),
    ]
    for i, (route, b) in enumerate(bodies):
        write("fuzz_request", f"body_{i}.bin", bytes([route]) + dumps(b).encode())


def http():
    reqs = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-one\r\n"
        b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}",
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",
        b"POST /v1/completions?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\nAuthorization: Bearer sk-two-longer-key\r\n\r\n"
        b"5\r\n{\"a\":\r\n2;ext=1\r\n1}\r\n0\r\nTrailer: t\r\n\r\n",
        b"OPTIONS /v1/models HTTP/1.0\r\nOrigin: http://a\r\nAuthorization: bearer  x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        b"DELETE /v1/models/m HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eA==\r\n"
        b"X-Long: " + b"a" * 200 + b"\r\n\r\n",
    ]
    for i, r in enumerate(reqs):
        write("fuzz_http", f"req_{i}.bin", bytes([255 if i % 2 == 0 else 7]) + r)


GBNF_SEEDS = [
    'root ::= "yes" | "no"',
    'root ::= object\nobject ::= "{" ws (pair ("," ws pair)*)? "}"\npair ::= string ":" ws value\n'
    'value ::= string | [0-9]+ | object | "true" | "false" | "null"\n'
    'string ::= "\\"" ([^"\\\\\\x00-\\x1f] | "\\\\" ["\\\\/bfnrt])* "\\""\nws ::= [ \\t\\n]*',
    'root ::= item{2,5} "."  # comment\nitem ::= [a-zA-Z\\u00e9-\\u00ff] | "\\U0001F642"',
    'root ::= (expr "=" term "\\n")+\nexpr ::= term ([-+*/] term)*\nterm ::= [0-9]+ | "(" expr ")"',
    'root ::= a b?\na ::= [^\\n]* "x"\nb ::= "<tool_call>" [\\x20-\\x7e]{0,8} "</tool_call>"',
    'root ::= "a" root | ""',
]

REGEX_SEEDS = [
    r"^\+?[0-9]{7,12}$", r"[a-z]+@[a-z]+\.(com|org)", r"(?:ab|cd)*e?\d{2,}", r"\w+\s\W\S.",
    r"[^\x00-\x1f\"]{0,10}", r"(?<y>\d{4})-(?P<m>\d\d)-\d\d", r"\u00e9|\u{1F642}|[\u0400-\u04ff]+?",
    r"a{3}b{1,}c{0,2}|^x$", r"[\]\-\\a-c]", r"(a|)+",
]

TOOL_OUTPUTS = [
    'Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    '</tool_call>\n<tool_call>\n{"name": "f2", "arguments": {}}\n</tool_call> done',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo", "n": [1, 2.5e3]}}; '
    '{"name": "f2", "parameters": {}}',
    '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Bern\\u00e9"}}, '
    '{"name": "f2", "arguments": {"x": null}}]',
    '[{"name": "get_weather", "parameters": {"city": "Rome"}}]',
    '{"city": "Lima", "days": 3, "nested": {"a": [true, false]}}',
    '<tool_call>\n{"name": "broken", "arguments": {"x": </tool_call> text',
]

REASONING_OUTPUTS = [
    "<think>\nplan: a, then b\n</think>\n\nThe answer is 4.",
    "no reasoning here </think> after",
    "<thi", "reasoning only, unfinished <think> nested </think></think>",
]


def grammars():
    for i, g in enumerate(GBNF_SEEDS):
        write("fuzz_gbnf", f"gbnf_{i}.bin", g.encode() + b"\0" + bytes([i * 37 % 256, 3, 250]))
    schemas = json.load(open(os.path.join(DATA, "structured", "schemas.json")))
    for i, s in enumerate(schemas[:40]):
        mode = [0, 1, 2, 4, 6, 8, 10, 3, 18, 26][i % 10]
        write("fuzz_json_schema", f"{s['name']}.bin", bytes([mode]) + dumps(s["schema"]).encode())
    for i, r in enumerate(REGEX_SEEDS):
        write("fuzz_regex", f"regex_{i}.bin", bytes([i % 2]) + r.encode())
    write("fuzz_regex", "choices.bin", b"\x02" + "yes\0no\0maybe \u00e9\0".encode())


def tool_calls():
    for i, t in enumerate(TOOL_OUTPUTS):
        for fmt in range(5):
            write("fuzz_tool_calls", f"tools_{i}_{fmt}.bin", bytes([fmt, 17 + i]) + t.encode())
    for i, t in enumerate(REASONING_OUTPUTS):
        for which in (5, 6, 13):
            write("fuzz_tool_calls", f"reasoning_{i}_{which}.bin",
                  bytes([which, 3 + i]) + t.encode())


def router():
    chat = {"model": "m", "stream": True, "stream_options": None,
            "messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi \u00e9"}]}]}
    comp = {"model": "m", "prompt": [[1, 2, 3], [4]], "max_tokens": 5}
    write("fuzz_router", "chat.bin", b"\x00\x00" + dumps(chat).encode())
    write("fuzz_router", "completion.bin", b"\x01\x00" + dumps(comp).encode())
    write("fuzz_router", "completion_text.bin", b"\x01\x00" + b'{"prompt":"abc","model":7}')
    sse = ('data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
           'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
           'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,'
           '"total_tokens":4}}\n\ndata: [DONE]\n\n')
    write("fuzz_router", "stream_strip.bin", b"\x02\x01" + sse.encode())
    write("fuzz_router", "stream_keep.bin", b"\x02\x02" + sse.replace("\n\n", "\r\n\r\n").encode())
    write("fuzz_router", "models.bin", b"\x03\x00" + b'{"object":"list","data":[{"id":"m"},{"id":2}]}')
    metrics = ('# HELP vllm:num_requests_running x\nvllm:num_requests_running{model_name="m"} 2\n'
               'vllm:num_requests_waiting{model_name="m"} 1e1\nvllm:kv_cache_usage_perc 0.5\n'
               'inferd_requests_running 3\nbad line\n')
    write("fuzz_router", "metrics.bin", b"\x04\x00" + metrics.encode())


GROUPS = {"tokenizers": tokenizers, "chat_templates": chat_templates,
          "model_configs": model_configs, "safetensors": safetensors, "gguf": gguf,
          "requests": requests, "http": http, "grammars": grammars, "tool_calls": tool_calls,
          "router": router}

if __name__ == "__main__":
    # make_seeds.py [GROUP...]: only those groups (default: all).
    import sys
    for name in sys.argv[1:] or list(GROUPS):
        GROUPS[name]()
