#!/usr/bin/env python3
"""Writes a seed corpus for the `decode` fuzz target into corpus/decode/:
every encoding of the msgpack-test-suite vectors vendored in
spec/fixtures/msgpack-test-suite/ (or the file given as argument), plus a few
hostile inputs (lying length headers, deep nesting, the reserved marker).

    python3 seed_corpus.py [path/to/msgpack-test-suite.json]

The corpus is generated, not committed (see .gitignore).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(
    HERE, "..", "..", "spec", "fixtures", "msgpack-test-suite", "msgpack-test-suite.json"
)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    out = os.path.join(HERE, "corpus", "decode")
    os.makedirs(out, exist_ok=True)
    with open(path) as f:
        suite = json.load(f)
    n = 0
    for name, groups in suite.items():
        stem = name.split(".")[0] + "-" + name.split(".")[1]
        for g, group in enumerate(groups):
            for e, enc in enumerate(group["msgpack"]):
                data = bytes(int(b, 16) for b in enc.split("-") if b)
                with open(os.path.join(out, f"{stem}-{g}-{e}"), "wb") as f:
                    f.write(data)
                n += 1
    hostile = {
        "lying-array32": bytes.fromhex("ddffffffff"),
        "lying-map32": bytes.fromhex("dfffffffff"),
        "lying-bin32": bytes.fromhex("c6ffffffff"),
        "lying-str32": bytes.fromhex("dbffffffff"),
        "lying-ext32": bytes.fromhex("c9ffffffff01"),
        "nested-array16": bytes.fromhex("dcffff") * 200,
        "nested-fixarray": b"\x91" * 200 + b"\xc0",
        "reserved-c1": bytes.fromhex("93 01 c1 02"),
        "ext16": bytes.fromhex("c8 00 03 07 61 62 63"),
    }
    for name, data in hostile.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        n += 1
    print(f"wrote {n} seeds to {out}")


if __name__ == "__main__":
    main()
