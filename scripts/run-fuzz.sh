#!/usr/bin/env bash
# Fuzzes the safetensors header parser with libFuzzer for a bounded time.
#   scripts/run-fuzz.sh [SECONDS]   (default 60)
# Builds build-fuzz/fuzz_safetensors_header with clang++ -fsanitize=fuzzer,address,undefined
# (outside the CMake build), seeds it from tests/fuzz/corpus/ (read-only; new
# inputs go to build-fuzz/corpus/), and exits non-zero on any crash, leak or
# sanitizer report (the reproducer is left in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
CXX=${FUZZ_CXX:-clang++}
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "run-fuzz: $CXX not found (install clang, e.g. apt-get install clang)" >&2
  exit 1
fi
out=build-fuzz
mkdir -p "$out/corpus"
"$CXX" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Isrc tests/fuzz/fuzz_safetensors_header.cpp \
  src/io/safetensors_header.cpp src/io/strict_json.cpp src/io/dtype.cpp \
  -lfmt -o "$out/fuzz_safetensors_header"
cd "$out"
./fuzz_safetensors_header -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus ../tests/fuzz/corpus 2>&1 | tail -n 25
