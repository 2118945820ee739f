#!/usr/bin/env python3
"""Prints the README's benchmark tables from criterion's results.

    cargo bench -p msgpack-rs-core -- --warm-up-time 0.5 --measurement-time 1.5
    python3 core/benches/table.py [path/to/target/criterion]

Reads the median of every benchmark of `benches/codec.rs` (criterion's
`new/estimates.json`) and prints Markdown: decode time per message and
throughput (MB/s, 10^6 bytes per second, of the encoded message) per shape
and decoder, the arena decoder's speed-up over rmpv's `read_value_ref` with
its geometric mean, then encode times and the streaming group.
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "target", "criterion")

SHAPES = [
    "map1_str150",
    "log_record",
    "records_1000",
    "ints_10000",
    "floats_10000",
    "nested_200",
    "bin_1mib",
    "utf8_strings_2000",
]
DECODERS = [
    ("decode/arena", "arena"),
    ("decode/arena+utf8", "arena + UTF-8 check"),
    ("decode/value", "`Value` tree"),
    ("decode/rmpv-read_value", "rmpv `read_value`"),
    ("decode/rmpv-read_value_ref", "rmpv `read_value_ref`"),
    ("decode/rmp_serde-json", "rmp-serde → `serde_json::Value`"),
    ("decode/rmp_serde-typed", "rmp-serde → structs"),
]
ENCODERS = [("encode/msgpack-rs", "msgpack-rs"), ("encode/rmpv", "rmpv")]
STREAM = "stream_log_records_1000"
STREAMERS = [
    ("decode/arena-feed", "`ArenaStream` feed + `next_message`"),
    ("decode/arena-read", "`ArenaStream::read_message` (io::Read)"),
    ("decode/rmpv-read_value_ref", "rmpv `read_value_ref` loop"),
    ("decode/value-stream", "`StreamDecoder` → `Value`"),
]


def load(root):
    """{(group, function): (median ns, bytes)} from criterion's files."""
    results = {}
    for group in os.listdir(root):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for dirpath, _, files in os.walk(gdir):
            if "benchmark.json" not in files or not dirpath.endswith("new"):
                continue
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            thr = bench.get("throughput") or {}
            fid = bench["function_id"]
            if bench.get("value_str"):
                fid += "/" + bench["value_str"]
            results[(bench["group_id"], fid)] = (
                est["median"]["point_estimate"],
                thr.get("Bytes"),
            )
    return results


def t(ns):
    if ns < 1e3:
        return f"{ns:.3g} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns / 1e6:.3g} ms"


def mbs(nbytes, ns):
    rate = nbytes / ns * 1e3  # bytes per ns -> MB/s
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    r = load(root)

    print("Decode, time per message (median):\n")
    print("| shape | bytes | " + " | ".join(name for _, name in DECODERS) + " | arena vs `read_value_ref` |")
    print("|---|---:|" + "---:|" * len(DECODERS) + "---:|")
    ratios = []
    for shape in SHAPES:
        row = []
        nbytes = None
        for fid, _ in DECODERS:
            if (shape, fid) in r:
                ns, nbytes = r[(shape, fid)]
                row.append(t(ns))
            else:
                row.append("n/a")
        arena = r.get((shape, "decode/arena"))
        ref = r.get((shape, "decode/rmpv-read_value_ref"))
        ratio = ref[0] / arena[0] if arena and ref else None
        if ratio:
            ratios.append(ratio)
        speedup = f"{ratio:.2f}x" if ratio else "n/a"
        print(f"| `{shape}` | {nbytes or 0:,} | " + " | ".join(row) + f" | {speedup} |")
    def geomean(xs):
        return math.exp(sum(math.log(x) for x in xs) / len(xs))

    if ratios:
        print(f"\nGeometric mean of the arena decoder's speed-up over `read_value_ref`: "
              f"**{geomean(ratios):.2f}x** (min {min(ratios):.2f}x, max {max(ratios):.2f}x).")
    # Like for like: rmpv checks UTF-8 while decoding; the arena decoder doesn't.
    utf8 = [r[(s, "decode/rmpv-read_value_ref")][0] / r[(s, "decode/arena+utf8")][0]
            for s in SHAPES if (s, "decode/arena+utf8") in r and (s, "decode/rmpv-read_value_ref") in r]
    if utf8:
        print(f"With every str checked as UTF-8 too (as rmpv does): **{geomean(utf8):.2f}x** "
              f"(min {min(utf8):.2f}x, max {max(utf8):.2f}x).")

    print("\nDecode throughput, MB/s of encoded input:\n")
    print("| shape | " + " | ".join(name for _, name in DECODERS) + " |")
    print("|---|" + "---:|" * len(DECODERS))
    for shape in SHAPES:
        row = []
        for fid, _ in DECODERS:
            if (shape, fid) in r:
                ns, nbytes = r[(shape, fid)]
                row.append(mbs(nbytes, ns))
            else:
                row.append("n/a")
        print(f"| `{shape}` | " + " | ".join(row) + " |")

    print("\nEncode (a `Value` / `rmpv::Value` into a reused `Vec`), time per message:\n")
    print("| shape | " + " | ".join(name for _, name in ENCODERS) + " |")
    print("|---|" + "---:|" * len(ENCODERS))
    for shape in SHAPES:
        row = [t(r[(shape, fid)][0]) if (shape, fid) in r else "n/a" for fid, _ in ENCODERS]
        print(f"| `{shape}` | " + " | ".join(row) + " |")

    if any(g == STREAM for g, _ in r):
        nbytes = next(b for (g, _), (_, b) in r.items() if g == STREAM)
        print(f"\nA stream of 1,000 log-record messages ({nbytes:,} bytes), all of them:\n")
        print("| decoder | time | per message | MB/s |")
        print("|---|---:|---:|---:|")
        for fid, name in STREAMERS:
            if (STREAM, fid) in r:
                ns, nbytes = r[(STREAM, fid)]
                print(f"| {name} | {t(ns)} | {t(ns / 1000)} | {mbs(nbytes, ns)} |")


if __name__ == "__main__":
    main()
