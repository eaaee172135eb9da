#!/usr/bin/env python3
"""Checks inferd's tokenizer of GGUF vocabularies against llama.cpp's own expectations.

llama.cpp keeps vocabulary-only GGUF files with test inputs and the token ids its tokenizer gives
(models/ggml-vocab-NAME.gguf, .gguf.inp, .gguf.out, as its test-tokenizer-0 reads them: inputs
separated by a line "__ggml_vocab_test__", ids without BOS, special tokens not parsed). This runs
`inferd tokenize` on each input and compares. The files come from a llama.cpp checkout outside
this project (they are not part of inferd):

  python3 tools/llama_cpp_vocab_check.py --inferd build/ci/src/cli/inferd DIR/ggml-vocab-*.gguf
"""
import argparse
import subprocess
import sys

SEP = "\n__ggml_vocab_test__\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inferd", required=True)
    ap.add_argument("vocabs", nargs="+")
    a = ap.parse_args()
    failures = 0
    for v in a.vocabs:
        try:
            inputs = open(v + ".inp", encoding="utf-8").read().split(SEP)
            outputs = open(v + ".out", encoding="utf-8").read().split("\n")
        except FileNotFoundError:
            print(f"{v}: no .inp/.out, skipped")
            continue
        if inputs and inputs[-1].endswith("\n__ggml_vocab_test__"):
            inputs[-1] = inputs[-1][: -len("\n__ggml_vocab_test__")]
        ok = bad = 0
        first = None
        for text, want in zip(inputs, outputs):
            r = subprocess.run([a.inferd, "tokenize", v, text], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{v}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'failed'}")
                bad = len(inputs)
                break
            got = [int(x) for x in r.stdout.replace(",", " ").split()]
            exp = [int(x) for x in want.split()]
            if got == exp:
                ok += 1
            else:
                bad += 1
                first = first or (text, exp, got)
        failures += bad
        print(f"{v.split('/')[-1]}: {ok} of {ok + bad} inputs give llama.cpp's ids")
        if first:
            print(f"  first difference: {first[0]!r}\n    llama.cpp {first[1]}\n    inferd    {first[2]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
