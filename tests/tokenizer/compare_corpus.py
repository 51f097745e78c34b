"""Every id of the C++ tokenizer against HF tokenizers (the pinned wheel of
tests/requirements.txt) on full-size vocabularies (real_vocabularies.py) and
this machine's own text (local_corpus.py) plus the edge cases and fuzz strings
of texts.py. Registered with ctest as tokenizer_real_vocabularies with a
12 MB corpus; the full-length run:

  ROPESCOPE_TOKENIZER_CORPUS_MB=50 build/test-venv/bin/python3 tests/tokenizer/compare_corpus.py \\
      --tool build/tests/tokenizer/tokenize_documents --work build/tokenizer-corpus

Documents that differ only where they hold code points assigned after Unicode
14.0 (Debian 12's Oniguruma tables; HF's wheel has Unicode 16) are reported
with those code points and do not fail the run; any other difference does.
Exit 77 (skipped) without tokenizers in this Python or without PyPI.
"""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import time
import unicodedata

sys.path.insert(0, os.path.dirname(__file__))
import local_corpus  # noqa: E402
import real_vocabularies  # noqa: E402
from texts import edge_cases, fuzz_texts  # noqa: E402


def newer_code_points(text):
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cn"})


def read_ids(path, count):
    data = open(path, "rb").read()
    out, pos = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        out.append(list(struct.unpack_from(f"<{n}I", data, pos)))
        pos += 4 * n
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True, help="the tokenize_documents program")
    parser.add_argument("--work", required=True, help="directory for downloads, vocabularies and the corpus")
    parser.add_argument("--mb", type=float, default=float(os.environ.get("ROPESCOPE_TOKENIZER_CORPUS_MB", "12")))
    parser.add_argument("--vocabularies", default=",".join(real_vocabularies.BUILDERS))
    args = parser.parse_args()
    try:
        import tokenizers
    except ImportError:
        print("SKIPPED: no tokenizers in this Python (install tests/requirements.txt)")
        return 77
    if tokenizers.__version__ != "0.23.3":
        print(f"tokenizers {tokenizers.__version__} is not the pinned 0.23.3")
        return 1
    started = time.time()
    os.makedirs(args.work, exist_ok=True)
    docs = list(local_corpus.documents(int(args.mb * 1e6)))
    machine_bytes = sum(len(d.encode()) for d in docs)
    docs += edge_cases() + fuzz_texts(random.Random(7), 2000)
    docs_path = os.path.join(args.work, "docs.jsonl")
    with open(docs_path, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    total_bytes = sum(len(d.encode()) for d in docs)
    print(f"corpus: {len(docs)} documents, {total_bytes / 1e6:.1f} MB ({machine_bytes / 1e6:.1f} MB from this "
          f"machine's translation catalogues and documentation, the rest edge cases and fuzz strings); "
          f"Unicode tables of this Python: {unicodedata.unidata_version}")
    failed = False
    for name in args.vocabularies.split(","):
        try:
            path = real_vocabularies.build(name, os.path.join(args.work, "wheels"), os.path.join(args.work, "vocab"))
        except real_vocabularies.Unavailable as e:
            print(f"SKIPPED: {e}")
            return 77
        hf = tokenizers.Tokenizer.from_file(path)
        t0 = time.time()
        expected = [e.ids for e in hf.encode_batch(docs)]
        hf_seconds = time.time() - t0
        out = os.path.join(args.work, name + ".ids")
        run = subprocess.run([args.tool, path, docs_path, "--out", out], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{name}: tokenize_documents failed: {run.stderr}")
            failed = True
            continue
        stats = json.loads(run.stdout)
        got = read_ids(out, len(docs))
        tokens = sum(len(e) for e in expected)
        unexplained, unicode_newer = [], []
        for i, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                newer = newer_code_points(docs[i])
                (unicode_newer if newer else unexplained).append((i, newer))
        print(f"{name}: {tokens} ids in {len(docs)} documents compared; {len(unexplained)} documents differ, "
              f"{len(unicode_newer)} differ where they hold code points newer than Unicode 14 "
              f"(HF {hf_seconds:.1f} s with its thread pool, C++ {stats['encode_seconds']:.1f} s on one thread, "
              f"load {stats['load_seconds']:.2f} s)")
        for i, newer in unicode_newer[:5]:
            print(f"  unicode-version difference in document {i}: {' '.join(newer[:12])}")
        for i, _ in unexplained[:5]:
            first = next(k for k, (a, b) in enumerate(zip(got[i] + [None], expected[i] + [None])) if a != b)
            print(f"  document {i} differs at id {first}: C++ {got[i][first:first + 8]} HF {expected[i][first:first + 8]}"
                  f" text {json.dumps(docs[i][:200])}")
        failed = failed or bool(unexplained)
    print(f"done in {time.time() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
