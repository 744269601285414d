#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/ is git-ignored):

  python3 fuzz/seed_corpus.py        # from the workspace root or from fuzz/

ndjson_decode: every line of the recorded bodies (tests/data/corpus/*/*.ndjson) as a body of
its own, the small bodies whole, and every trace record's protobuf in record mode (see the mode
byte in fuzz_targets/ndjson_decode.rs).

renderers: every recorded body as segments (see fuzz_targets/renderers.rs): each trace line as
a raw-protobuf segment, every other line as a raw segment, the clock stepping 100 ms per line,
an idle call every 8 lines; bodies cut at 64 KiB; each with two flag bytes (0x00: 80 columns;
0x0f: colours, a 1x1 terminal, small limits).

dockerignore: every ignore-file text in docker-context's tests (dockerignore.rs unit tests and
tests/context.rs), each followed by the paths those tests match (NUL-separated).

dockerfile: every Dockerfile of dockerfile-analysis's table (tests/table.rs), followed by the
row's build args (NUL-separated `name=value`), and every word of the expansion unit tests
(src/expand.rs) as `FROM <word>` after a few meta ARGs.
"""

import base64
import hashlib
import json
import os
import re
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)


def write(target, data):
    out = os.path.join(FUZZ, "corpus", target)
    os.makedirs(out, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    return name


def recorded_bodies():
    """Every recorded daemon body of tests/data/corpus, in a stable order."""
    corpus = os.path.join(ROOT, "tests", "data", "corpus")
    for daemon in sorted(os.listdir(corpus)):
        folder = os.path.join(corpus, daemon)
        if not os.path.isdir(folder):
            continue
        for file in sorted(os.listdir(folder)):
            if file.endswith(".ndjson"):
                with open(os.path.join(folder, file), "rb") as f:
                    yield f.read()


def ndjson_seeds():
    names = set()
    for body in recorded_bodies():
        # Mode 0x50: body as is, chunks of 1..=32 bytes; 0x54: the same with small limits.
        if len(body) <= 16 * 1024:
            names.add(write("ndjson_decode", b"\x50" + body))
            names.add(write("ndjson_decode", b"\x54" + body))
        records = b""
        for line in body.split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            names.add(write("ndjson_decode", b"\x50" + line + b"\r\n"))
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("id") == "moby.buildkit.trace" and isinstance(msg.get("aux"), str):
                wire = base64.b64decode(msg["aux"])
                if len(wire) < 1 << 16:
                    framed = len(wire).to_bytes(2, "big") + wire
                    # Mode 0x98: record mode, chunks of 1..=512 bytes.
                    names.add(write("ndjson_decode", b"\x98" + framed))
                    if len(records) + len(framed) <= 16 * 1024:
                        records += framed
        if records:
            names.add(write("ndjson_decode", b"\x98" + records))
            names.add(write("ndjson_decode", b"\x9c" + records))
    return len(names)


def renderers_seeds():
    names = set()
    # Tag bits 2-7: clock step ((tag >> 2) - 32) x 10 ms; 42: +100 ms.
    step = 42 << 2
    for body in recorded_bodies():
        data = b""
        lines = [l for l in body.split(b"\n") if l.rstrip(b"\r")]
        for k, line in enumerate(lines):
            seg = None
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and msg.get("id") == "moby.buildkit.trace" \
                    and isinstance(msg.get("aux"), str):
                wire = base64.b64decode(msg["aux"])
                if len(wire) < 1 << 16:
                    seg = bytes([step | 0]) + len(wire).to_bytes(2, "big") + wire
            if seg is None:
                raw = line.rstrip(b"\r") + b"\r\n"
                seg = b"".join(
                    bytes([step | 1]) + len(raw[i : i + 0xFFFF]).to_bytes(2, "big")
                    + raw[i : i + 0xFFFF]
                    for i in range(0, len(raw), 0xFFFF))
            if k % 8 == 7:
                seg += bytes([(32 << 2) | 2, 6])  # idle, 150 ms quiet
            if len(data) + len(seg) > 64 * 1024:
                break
            data += seg
        if data:
            names.add(write("renderers", b"\x00" + data))
            names.add(write("renderers", b"\x0f" + data))
    return len(names)


# A Rust string literal: "…" with escapes, or r"…" / r#"…"#.
LITERAL = r'(?:"(?:[^"\\]|\\.)*"|r#*"[^"]*"#*)'


def rust_string(lit):
    if lit.startswith("r"):
        hashes = len(lit) - len(lit.lstrip("r#")) - 1
        return lit[1 + hashes + 1 : len(lit) - hashes - 1]
    body = lit[1:-1]
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e == "n":
            out.append("\n")
        elif e == "r":
            out.append("\r")
        elif e == "t":
            out.append("\t")
        elif e == "0":
            out.append("\0")
        elif e in "\\\"'":
            out.append(e)
        elif e == "u":
            end = body.index("}", i)
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
            continue
        elif e == "\n":
            # Line continuation: skip the newline and the next line's leading whitespace.
            i += 2
            while i < len(body) and body[i] in " \t\n":
                i += 1
            continue
        else:
            out.append("\\" + e)
        i += 2
    return "".join(out)


def dockerignore_seeds():
    sources = [
        os.path.join(ROOT, "crates", "docker-context", "src", "dockerignore.rs"),
        os.path.join(ROOT, "crates", "docker-context", "tests", "context.rs"),
    ]
    texts, paths = [], []
    for source in sources:
        if not os.path.exists(source):
            continue
        src = open(source, encoding="utf-8").read()
        for m in re.finditer(r'(?:\bignore|\bparse)\(\s*(' + LITERAL + r')', src):
            texts.append(rust_string(m.group(1)))
        for m in re.finditer(r'file\(\s*"[^"]*dockerignore"\s*,\s*(' + LITERAL + r')', src):
            texts.append(rust_string(m.group(1)))
        for m in re.finditer(r'(?:is_excluded|may_include_beneath|matches)\(\s*(' + LITERAL + r')', src):
            paths.append(rust_string(m.group(1)))
    paths = sorted(set(paths))
    names = set()
    # The target looks at 16 paths per input: spread the paths over several seeds.
    groups = [paths[i : i + 16] for i in range(0, len(paths), 16)] or [[]]
    for k, text in enumerate(dict.fromkeys(texts)):
        group = groups[k % len(groups)]
        data = text.encode() + b"\0" + b"\0".join(p.encode() for p in group)
        names.add(write("dockerignore", data))
    return len(names), len(dict.fromkeys(texts)), len(paths)


def dockerfile_seeds():
    crate = os.path.join(ROOT, "crates", "dockerfile-analysis")
    names = set()
    table = open(os.path.join(crate, "tests", "table.rs"), encoding="utf-8").read()
    pair = r'\(\s*(' + LITERAL + r')\s*,\s*(' + LITERAL + r')\s*\)'
    rows = list(re.finditer(r'\brow\(\s*' + LITERAL + r'\s*,\s*(' + LITERAL + r')', table))
    for k, m in enumerate(rows):
        text = rust_string(m.group(1))
        # The row's `.args(&[…])`, if any, comes before the next row.
        end = rows[k + 1].start() if k + 1 < len(rows) else len(table)
        args = re.search(r'\.args\(&\[(.*?)\]\)', table[m.end() : end], re.S)
        pairs = []
        if args:
            for a in re.finditer(pair, args.group(1)):
                pairs.append(rust_string(a.group(1)) + "=" + rust_string(a.group(2)))
        data = text.encode() + b"".join(b"\0" + p.encode() for p in pairs)
        names.add(write("dockerfile", data))
    expand = open(os.path.join(crate, "src", "expand.rs"), encoding="utf-8").read()
    prelude = "ARG S=foobarbaz\nARG V=1.22\nARG A=a\nARG EMPTY=\nARG SET=x\n"
    for m in re.finditer(r'\bex\(\s*(' + LITERAL + r')', expand):
        word = rust_string(m.group(1))
        names.add(write("dockerfile", (prelude + "FROM " + word + "\n").encode()))
    return len(names), len(rows)


def main():
    n = ndjson_seeds()
    d, texts, paths = dockerignore_seeds()
    f, rows = dockerfile_seeds()
    r = renderers_seeds()
    print(f"ndjson_decode: {n} seeds; renderers: {r} seeds; dockerignore: {d} seeds ({texts} texts, {paths} paths); "
          f"dockerfile: {f} seeds ({rows} table rows)")


if __name__ == "__main__":
    sys.exit(main())
