#!/usr/bin/env python3
"""Moves the BPE train tokens to the GPU machine, whose calls carry about 15 MB each
(ignored files persist on a warm machine between calls).

pack (here): cuts build-corpus/train.tok.u16 into shards of N consecutive tokens
(shard k holds tokens [kN, (k+1)N); the split's documents are in hash order, so the
first K shards are a random sample of documents), compresses each with xz (lzma
preset 9e) to build-corpus/shards/train-NNN.tok.u16.xz (each at most 14 MB; N is
chosen from the compression ratio of the first 2M tokens), adds
validation.tok.u16.xz, and writes the manifest notebooks-data/corpus-bpe/shards.json
(committed: tokens and sha256 of every compressed file and of its tokens).
unpack (device): joins the shards present, from 000 up to the first missing one,
checked against the manifest, into build-corpus/train.tok.u16, and unpacks
validation.tok.u16. Python's lzma only: nothing to install there.
Usage: pack_train_tokens.py pack|unpack [--dir build-corpus] [--manifest notebooks-data/corpus-bpe/shards.json]
"""

import argparse
import hashlib
import json
import lzma
import os
import sys
from concurrent.futures import ProcessPoolExecutor

LIMIT = 14_000_000
PRESET = 9 | lzma.PRESET_EXTREME


def sha(data):
    return hashlib.sha256(data).hexdigest()


def compress(job):
    raw, path = job
    xz = lzma.compress(raw, preset=PRESET)
    with open(path, "wb") as f:
        f.write(xz)
    return {"file": os.path.basename(path), "tokens": len(raw) // 2, "xz_bytes": len(xz),
            "xz_sha256": sha(xz), "tokens_sha256": sha(raw)}


def pack(args):
    shards = os.path.join(args.dir, "shards")
    os.makedirs(shards, exist_ok=True)
    raw = open(os.path.join(args.dir, "train.tok.u16"), "rb").read()
    probe = 2_000_000
    per_token = len(lzma.compress(raw[:2 * probe], preset=PRESET)) / probe
    n = int(0.95 * LIMIT / per_token) // 65536 * 65536  # 5% margin, whole 64k-token blocks
    jobs = [(raw[2 * i:2 * (i + n)], os.path.join(shards, f"train-{i // n:03d}.tok.u16.xz"))
            for i in range(0, len(raw) // 2, n)]
    val = open(os.path.join(args.dir, "validation.tok.u16"), "rb").read()
    jobs.append((val, os.path.join(shards, "validation.tok.u16.xz")))
    with ProcessPoolExecutor(2) as pool:
        done = list(pool.map(compress, jobs))
    too_big = [d["file"] for d in done if d["xz_bytes"] > LIMIT]
    if too_big:
        sys.exit(f"shards over {LIMIT} bytes: {too_big}")
    manifest = {"script": "analysis/corpus/pack_train_tokens.py", "tokens_per_shard": n,
                "train_tokens": len(raw) // 2, "train_tokens_sha256": sha(raw),
                "compression": "xz (lzma preset 9e) of little-endian uint16 ids",
                "shards": done[:-1], "validation": done[-1]}
    with open(args.manifest, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"{len(done) - 1} shards of {n} tokens (last {done[-2]['tokens']}), "
          f"largest {max(d['xz_bytes'] for d in done)} bytes; train {len(raw) // 2} tokens")


def unpack(args):
    m = json.load(open(args.manifest))
    shards = os.path.join(args.dir, "shards")

    def read(entry):
        data = lzma.decompress(open(os.path.join(shards, entry["file"]), "rb").read())
        if sha(data) != entry["tokens_sha256"]:
            sys.exit(f"{entry['file']}: tokens differ from the manifest")
        return data

    with open(os.path.join(args.dir, "validation.tok.u16"), "wb") as f:
        f.write(read(m["validation"]))
    count = 0
    with open(os.path.join(args.dir, "train.tok.u16"), "wb") as f:
        for entry in m["shards"]:
            if not os.path.exists(os.path.join(shards, entry["file"])):
                break
            f.write(read(entry))
            count += 1
    tokens = sum(e["tokens"] for e in m["shards"][:count])
    print(f"unpacked {count} of {len(m['shards'])} shards: {tokens} of {m['train_tokens']} train tokens")
    if count == 0:
        sys.exit("no train shard present")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("pack", "unpack"))
    ap.add_argument("--dir", default="build-corpus")
    ap.add_argument("--manifest", default="notebooks-data/corpus-bpe/shards.json")
    args = ap.parse_args()
    pack(args) if args.action == "pack" else unpack(args)


if __name__ == "__main__":
    main()
