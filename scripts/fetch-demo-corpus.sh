#!/usr/bin/env bash
# Fetches the public-domain English text that the demo model (issue 8) is trained on, from Debian
# packages, and writes the plain-text corpus for tools/train_demo_model.py. Runs on a Debian
# machine with apt (not on the GPU machine, which has no network); nothing here is committed.
#
#   scripts/fetch-demo-corpus.sh            # -> .carry/corpus/{train.txt,heldout.txt,...}
#
# Packages (downloaded with `apt-get download`, unpacked with `dpkg -x` under .carry/, never /):
#   bible-kjv-text  King James Bible (1611, public domain), stored compressed in /usr/lib/bible.data
#   bible-kjv       its reader program (GPL-2+); used here only as a tool to decompress the text
#                   above, nothing of it goes into the corpus
#   fortunes-min, fortunes   fortune cookies (quotations, jokes, poems; BSD licence per Debian's
#                   copyright file); the files ascii-art, ethnic and translate-me are left out
#   dict-devil      Ambrose Bierce, The Devil's Dictionary (1911, public domain)
#   dict-jargon     The Jargon File 4.4.7 (public domain)
#
# Outputs in .carry/corpus/ (the folder the GPU run carries; about 9 MB):
#   train.txt      one document per line (a verse, a fortune, a dictionary entry; inner whitespace
#                  collapsed to single spaces), in source order
#   heldout.txt    ~2% of the documents, chosen by a hash of their text (so identical documents
#                  always fall on the same side: no held-out line occurs in train.txt)
#   chat_train.jsonl  question/answer pairs made from train-side dictionary entries only
#                  ({"messages": [{"role": "user", ...}, {"role": "assistant", ...}]})
#   SOURCES.txt    each package's name, version, licence summary and its copyright file verbatim
# The .deb files and their unpacked trees stay in .carry/corpus-pkgs/ (not carried).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=.carry/corpus
pkgs_dir=.carry/corpus-pkgs
PKGS=(bible-kjv-text bible-kjv fortunes-min fortunes dict-devil dict-jargon)

git check-ignore -q .carry/ || { echo "error: .carry/ must be git-ignored (see .gitignore)" >&2; exit 1; }
for tool in apt-get dpkg-deb python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

rm -rf "$pkgs_dir" "$dest"
mkdir -p "$pkgs_dir/debs" "$pkgs_dir/root" "$dest"
(cd "$pkgs_dir/debs" && apt-get download "${PKGS[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
for p in "${PKGS[@]}"; do
  deb=$(ls "$pkgs_dir/debs/${p}"_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { echo "error: apt-get download $p failed (run 'apt-get update' first?)" >&2; exit 1; }
  dpkg-deb -x "$deb" "$pkgs_dir/root"
done

# The KJV text: the package stores it in its own compressed format; its reader prints it.
bible_bin="$pkgs_dir/root/usr/bin/bible"
"$bible_bin" -f -l 100000 -p "$pkgs_dir/root/usr/lib" 'Gen1:1-Rev22:21' </dev/null \
  >"$pkgs_dir/kjv.txt"

python3 - "$pkgs_dir" "$dest" "${PKGS[@]}" <<'EOF'
import gzip, hashlib, json, os, re, subprocess, sys

pkgs_dir, dest, pkgs = sys.argv[1], sys.argv[2], sys.argv[3:]
root = os.path.join(pkgs_dir, "root")
HELDOUT_PER_MILLE = 20          # ~2% of documents
SPLIT_SALT = "inferd-demo-corpus-v1:"
FORTUNE_SKIP = {"ascii-art", "ethnic", "translate-me"}

def clean(text):
    return re.sub(r"\s+", " ", text).strip()

def is_heldout(doc):
    h = hashlib.sha256((SPLIT_SALT + doc).encode("utf-8")).digest()
    return int.from_bytes(h[:4], "big") % 1000 < HELDOUT_PER_MILLE

docs = []   # (source, text, chat pair or None)

# King James Bible: "Ge1:1 In the beginning ..." -> the verse text
n = 0
with open(os.path.join(pkgs_dir, "kjv.txt"), encoding="ascii") as f:
    for line in f:
        m = re.match(r"^\S+?\d+:\d+ (.*)$", line.rstrip("\n"))
        if not m:
            sys.exit(f"error: unexpected line in the KJV text: {line!r}")
        docs.append(("bible-kjv-text", clean(m.group(1)), None))
        n += 1
if n != 31102:
    sys.exit(f"error: expected the 31102 verses of the KJV, got {n}")

# Fortunes: records separated by lines holding only '%'
fdir = os.path.join(root, "usr/share/games/fortunes")
for name in sorted(os.listdir(fdir)):
    path = os.path.join(fdir, name)
    if "." in name or name in FORTUNE_SKIP or not os.path.isfile(path) or os.path.getsize(path) == 0:
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        for rec in re.split(r"^%\s*$", f.read(), flags=re.M):
            t = clean(rec)
            if t:
                docs.append(("fortunes", t, None))

# dictd databases: .index lines "word<TAB>offset<TAB>length" in dictd's base64 numbers
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
def b64num(s):
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v

def dict_entries(name):
    data = gzip.open(os.path.join(root, f"usr/share/dictd/{name}.dict.dz")).read()
    seen = set()
    with open(os.path.join(root, f"usr/share/dictd/{name}.index"), encoding="utf-8") as f:
        for line in f:
            word, off, ln = line.rstrip("\n").split("\t")
            if word.startswith("00-database") or word.startswith("00database"):
                continue
            key = (b64num(off), b64num(ln))
            if key in seen:
                continue
            seen.add(key)
            yield data[key[0]:key[0] + key[1]].decode("utf-8")

# Devil's Dictionary: "ABNORMAL, adj.  Not conforming ..."
for e in dict_entries("devil"):
    t = clean(e)
    m = re.match(r"^([A-Z][A-Z' .-]*[A-Z])[,.] ?(?:(?:n|v|adj|adv|pp|p|x|pro|prep|conj|interj|t|i)\.\s*)*(.*)$", t)
    chat = None
    if m and m.group(2):
        chat = (f"What does \"{m.group(1).lower()}\" mean?", m.group(2))
    docs.append(("dict-devil", t, chat))

# Jargon File: "headword\n /pron/, n.\n\n    text"; {cross refs} lose their braces
for e in dict_entries("jargon"):
    lines = e.split("\n")
    head = lines[0].strip()
    rest = lines[1:]
    pos = ""
    if rest and rest[0].startswith(" ") and rest[0].strip():
        pos = re.sub(r"^/[^/]*/,?\s*", "", rest[0].strip())   # drop the pronunciation
        rest = rest[1:]
    body = clean(re.sub(r"\{\s*([^{}]*?)\s*\}", r"\1", "\n".join(rest)))
    if not head or not body:
        continue
    t = clean(f"{head}, {pos} {body}" if pos else f"{head}: {body}")
    docs.append(("dict-jargon", t, (f"What is \"{head}\" in hacker jargon?", body)))

train, held, chat = [], [], []
counts = {}
for src, t, qa in docs:
    side = "heldout" if is_heldout(t) else "train"
    c = counts.setdefault(src, {"train": 0, "heldout": 0, "bytes": 0})
    c[side] += 1
    c["bytes"] += len(t.encode("utf-8")) + 1
    (held if side == "heldout" else train).append(t)
    if side == "train" and qa:
        chat.append({"messages": [{"role": "user", "content": qa[0]},
                                  {"role": "assistant", "content": qa[1]}]})

assert not set(held) & set(train)
with open(os.path.join(dest, "train.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(train) + "\n")
with open(os.path.join(dest, "heldout.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(held) + "\n")
with open(os.path.join(dest, "chat_train.jsonl"), "w", encoding="utf-8") as f:
    for c in chat:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")

LICENCE = {
    "bible-kjv-text": "public domain (King James Version, 1611; copyright expired)",
    "bible-kjv": "GPL-2+ (program only; used to decompress bible-kjv-text, none of it is in the corpus)",
    "fortunes-min": "BSD (as stated in the package's copyright file; quotations credit their authors)",
    "fortunes": "BSD (as stated in the package's copyright file; quotations credit their authors)",
    "dict-devil": "public domain (Ambrose Bierce, The Devil's Dictionary, 1911; copyright expired)",
    "dict-jargon": "public domain (The Jargon File 4.4.7; Debian packaging GPL-2+, not in the corpus)",
}
with open(os.path.join(dest, "SOURCES.txt"), "w", encoding="utf-8") as f:
    f.write("Corpus of the inferd demo model, made by scripts/fetch-demo-corpus.sh from Debian packages.\n")
    f.write(f"Split: a document is held out when sha256('{SPLIT_SALT}' + text) mod 1000 < "
            f"{HELDOUT_PER_MILLE} (first 4 bytes, big-endian).\n")
    f.write(f"Fortune files left out: {', '.join(sorted(FORTUNE_SKIP))}.\n\n")
    for p in pkgs:
        ver = subprocess.run(["dpkg-deb", "-f", next(
            os.path.join(pkgs_dir, "debs", d) for d in sorted(os.listdir(os.path.join(pkgs_dir, "debs")))
            if d.startswith(p + "_")), "Version"], capture_output=True, text=True, check=True).stdout.strip()
        src = {"bible-kjv-text": "bible-kjv-text", "fortunes-min": "fortunes",
               "fortunes": "fortunes", "dict-devil": "dict-devil", "dict-jargon": "dict-jargon"}.get(p)
        c = counts.get(src) if p not in ("fortunes-min",) else None
        f.write(f"package: {p}\nversion: {ver}\nlicence: {LICENCE[p]}\n")
        if p == "fortunes-min":
            f.write("documents: counted under 'fortunes' (same fortune directory)\n")
        elif c:
            f.write(f"documents: {c['train']} train, {c['heldout']} held out, {c['bytes']} bytes\n")
        else:
            f.write("documents: none (tool only)\n")
        f.write(f"--- /usr/share/doc/{p}/copyright ---\n")
        with open(os.path.join(root, f"usr/share/doc/{p}/copyright"), encoding="utf-8", errors="replace") as cf:
            f.write(cf.read().rstrip("\n") + "\n")
        f.write("--- end ---\n\n")

total = sum(len(t.encode()) + 1 for t in train + held)
print(f"documents: {len(train)} train, {len(held)} held out, {len(chat)} chat pairs; {total/1e6:.2f} MB of text")
for src, c in counts.items():
    print(f"  {src:15s} {c['train']:6d} train {c['heldout']:5d} held out {c['bytes']/1e6:6.2f} MB")
EOF
du -sh "$dest"
ls -l "$dest"
