#!/usr/bin/env python3
"""Writes the raw seeds of the fuzz corpora (scripts/fuzz.sh --reseed minimises them into
fuzz/corpus/): for `decoders`, the frames of the WIRE-NOTES tests, of the garbage corpus and of
every recorded transcript; for `definitions`, every definition file (the diagnostics cases that
extend a seed go together with it, NUL-separated, as the fuzz target splits its input).

Usage: scripts/fuzz-seed.py OUT_DIR   (run from the repository root)
"""

import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Rust string literals: raw strings (r"...", r#"..."#) and plain ones with escapes.
LITERAL = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)
# A format string's placeholder (`{}`, `{text:?}`): assertion messages, not frames.
PLACEHOLDER = re.compile(r"\{\}:|\{[a-z_]+(:[^}]*)?\}")
ESCAPE = re.compile(r'\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|\n\s*|.)', re.S)


def unescape(body):
    def one(m):
        e = m.group(1)
        if e.startswith("u{"):
            return chr(int(e[2:-1], 16))
        if e.startswith("x"):
            return chr(int(e[1:], 16))
        if e.startswith("\n"):
            return ""
        return {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}.get(e, e)

    return ESCAPE.sub(one, body)


def rust_literals(path):
    text = path.read_text()
    # Drop comments, whose apostrophes and quotes are not literals.
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    for m in LITERAL.finditer(text):
        yield m.group(2) if m.group(2) is not None else unescape(m.group(3))


def frames():
    for name in ("wire_notes.rs", "garbage.rs"):
        for literal in rust_literals(ROOT / "tests/tests/codec" / name):
            # Frames and payload values, not the messages of assertions.
            if PLACEHOLDER.search(literal):
                continue
            if literal[:1] in "{[\"" or literal in ("null", "true", "false") or literal[:1].isdigit():
                yield literal
    for path in sorted((ROOT / "interop/transcripts").glob("*/*.json")):
        for step in json.loads(path.read_text()).get("steps", []):
            for key in ("send", "recv"):
                text = step.get(key)
                if isinstance(text, str):
                    yield text.replace('"$masked:number"', "1795612298138")


def definitions():
    base = (ROOT / "protocol-defs/litecord.protocol").read_bytes()
    for path in sorted((ROOT / "protocol-defs").glob("*.protocol")):
        yield path.read_bytes()
    for path in sorted((ROOT / "codegen/tests/diagnostics").glob("*.protocol")):
        data = path.read_bytes()
        yield data + b"\0" + base if ".with-" in path.name else data


def write(folder, seeds):
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in seeds:
        data = seed.encode() if isinstance(seed, str) else seed
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        count += 1
    return count


def main():
    out = pathlib.Path(sys.argv[1])
    print(f"decoders: {write(out / 'decoders', frames())} seeds")
    print(f"definitions: {write(out / 'definitions', definitions())} seeds")


if __name__ == "__main__":
    main()
