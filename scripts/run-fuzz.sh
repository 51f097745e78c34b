#!/usr/bin/env bash
# Fuzzes the safetensors header parser, the tokenizer.json loader and the
# tokenizer's encoder with libFuzzer for a bounded time each.
#   scripts/run-fuzz.sh [SECONDS [TOKENIZER_SECONDS]]   (defaults 60 and 30)
# Builds build-fuzz/fuzz_* with clang++ -fsanitize=fuzzer,address,undefined
# (outside the CMake build), seeds them from tests/fuzz/corpus/ and the
# tokenizer fixtures of tests/data/tokenizers/ (read-only; new inputs go to
# build-fuzz/), and exits non-zero on any crash, leak or sanitizer report (the
# reproducer is left in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
tokenizer_seconds=${2:-30}
CXX=${FUZZ_CXX:-clang++}
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "run-fuzz: $CXX not found (install clang, e.g. apt-get install clang)" >&2
  exit 1
fi
out=build-fuzz
mkdir -p "$out/corpus" "$out/corpus_tokenizer_json" "$out/corpus_tokenizer_encode" "$out/seeds_tokenizer_json"
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc)
"$CXX" "${flags[@]}" tests/fuzz/fuzz_safetensors_header.cpp \
  src/io/safetensors_header.cpp src/io/strict_json.cpp src/io/dtype.cpp \
  -lfmt -o "$out/fuzz_safetensors_header"
tokenizer_sources=(src/tokenizer/utf8.cpp src/tokenizer/regex.cpp src/tokenizer/bpe.cpp src/tokenizer/pipeline.cpp src/tokenizer/split_llama3.cpp
                   src/tokenizer/tokenizer.cpp)
"$CXX" "${flags[@]}" tests/fuzz/fuzz_tokenizer_json.cpp "${tokenizer_sources[@]}" -lonig -lutf8proc -lfmt \
  -o "$out/fuzz_tokenizer_json"
"$CXX" "${flags[@]}" -DROPESCOPE_FIXTURES="\"$PWD/tests/data/tokenizers\"" tests/fuzz/fuzz_tokenizer_encode.cpp \
  "${tokenizer_sources[@]}" -lonig -lutf8proc -lfmt -o "$out/fuzz_tokenizer_encode"
for d in tests/data/tokenizers/*/; do cp "$d/tokenizer.json" "$out/seeds_tokenizer_json/$(basename "$d").json"; done
cd "$out"
common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
./fuzz_safetensors_header -max_total_time="$seconds" -max_len=4096 "${common[@]}" \
  corpus ../tests/fuzz/corpus 2>&1 | tail -n 25
./fuzz_tokenizer_json -max_total_time="$tokenizer_seconds" -max_len=65536 "${common[@]}" \
  corpus_tokenizer_json seeds_tokenizer_json ../tests/fuzz/corpus_tokenizer 2>&1 | tail -n 12
./fuzz_tokenizer_encode -max_total_time="$tokenizer_seconds" -max_len=4096 "${common[@]}" \
  corpus_tokenizer_encode ../tests/fuzz/corpus_tokenizer 2>&1 | tail -n 12
