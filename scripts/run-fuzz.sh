#!/usr/bin/env bash
# Fuzzes the input parsers with libFuzzer + ASan/UBSan for a bounded time
# each (about 160 s of fuzzing in all, plus the build):
#   safetensors_header 40 s   tokenizer_json 25 s   tokenizer_encode 25 s
#   model_config 30 s         npy 20 s              tokens 20 s
#   scripts/run-fuzz.sh [NAME=SECONDS ...]   (names given: only those run, for that long)
# Builds build-fuzz/fuzz_* with clang++ -fsanitize=fuzzer,address,undefined
# (outside the CMake build; each source compiled once, two at a time, and
# reused by later runs while it and its headers are unchanged), seeds
# them from tests/fuzz/corpus*/ (fuzz_model_config also with the key names of
# tests/fuzz/config.dict) and the tokenizer fixtures of
# tests/data/tokenizers/ (read-only; new inputs go to build-fuzz/), runs every
# target, and exits non-zero if any found a crash, leak, sanitizer report,
# undocumented exception or an allocation over 2 GiB (the reproducer is left in
# build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A seconds=([safetensors_header]=40 [tokenizer_json]=25 [tokenizer_encode]=25 [model_config]=30 [npy]=20 [tokens]=20)
order=(safetensors_header tokenizer_json tokenizer_encode model_config npy tokens)
if (($#)); then
  order=()
  for arg in "$@"; do
    name=${arg%%=*}
    if [[ -z ${seconds[$name]+x} || $arg != *=* || ! ${arg#*=} =~ ^[0-9]+$ ]]; then
      echo "run-fuzz: '$arg' is not NAME=SECONDS with NAME one of: ${!seconds[*]}" >&2
      exit 2
    fi
    seconds[$name]=${arg#*=}
    order+=("$name")
  done
fi
CXX=${FUZZ_CXX:-clang++}
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "run-fuzz: $CXX not found (install clang, e.g. apt-get install clang)" >&2
  exit 1
fi
out=build-fuzz
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc)
# quadmath.h (boost float128, in theory/) ships with GCC, not clang: searched after clang's own headers.
gcc_include=$(gcc -print-file-name=include 2>/dev/null || true)
[[ -f $gcc_include/quadmath.h ]] && flags+=(-idirafter "$gcc_include")

# Sources of each target (its fuzz_NAME.cpp comes first) and its libraries.
tokenizer=(src/tokenizer/utf8.cpp src/io/utf8_check.cpp src/tokenizer/regex.cpp src/tokenizer/bpe.cpp src/tokenizer/pipeline.cpp
           src/tokenizer/split_llama3.cpp src/tokenizer/tokenizer.cpp src/io/mapped_file.cpp)
declare -A sources=(
  [safetensors_header]="src/io/safetensors_header.cpp src/io/strict_json.cpp src/io/dtype.cpp src/io/utf8_check.cpp"
  [tokenizer_json]="${tokenizer[*]}"
  [tokenizer_encode]="${tokenizer[*]}"
  [model_config]="src/model/config.cpp src/model/architecture.cpp src/model/head_layout.cpp src/theory/rope_frequencies.cpp src/io/strict_json.cpp src/io/dtype.cpp src/io/mapped_file.cpp"
  [npy]="src/io/npy_read.cpp src/io/mapped_file.cpp"
  [tokens]="src/io/tokens.cpp src/io/npy_read.cpp src/io/mapped_file.cpp")
declare -A libs=([tokenizer_json]="-lonig -lutf8proc" [tokenizer_encode]="-lonig -lutf8proc" [model_config]="-lquadmath")
declare -A options=([model_config]="-dict=../tests/fuzz/config.dict")
declare -A max_len=([safetensors_header]=4096 [tokenizer_json]=65536 [tokenizer_encode]=4096 [model_config]=16384
                    [npy]=4096 [tokens]=4096)
declare -A seeds=([safetensors_header]="../tests/fuzz/corpus" [tokenizer_json]="seeds_tokenizer_json ../tests/fuzz/corpus_tokenizer"
                  [tokenizer_encode]="../tests/fuzz/corpus_tokenizer" [model_config]="../tests/fuzz/corpus_config"
                  [npy]="../tests/fuzz/corpus_npy" [tokens]="../tests/fuzz/corpus_tokens")

# Compile every needed source once (objects under build-fuzz/obj/), two at a
# time, then link. An object is reused while it is newer than its source and
# every header it includes (clang's -MMD list) and the flags are unchanged.
mkdir -p "$out/obj" "$out/seeds_tokenizer_json"
defines=(-DROPESCOPE_FIXTURES="\"$PWD/tests/data/tokenizers\"")
stamp="$CXX ${flags[*]} ${defines[*]}"
[[ -f $out/obj/flags && $(<"$out/obj/flags") == "$stamp" ]] || rm -f "$out"/obj/*.o
echo "$stamp" >"$out/obj/flags"
declare -A needed=()
for name in "${order[@]}"; do
  needed[tests/fuzz/fuzz_$name.cpp]=1
  for s in ${sources[$name]}; do needed[$s]=1; done
done
object() { local s=${1//\//_}; echo "$out/obj/${s%.cpp}.o"; }
up_to_date() {  # OBJECT: exists and is newer than everything in its dependency list
  local o=$1 d=${1%.o}.d f
  [[ -f $o && -f $d ]] || return 1
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do [[ $f -nt $o ]] && return 1; done
  return 0
}
running=()
for s in $(printf '%s\n' "${!needed[@]}" | sort); do
  o=$(object "$s")
  up_to_date "$o" && continue
  "$CXX" "${flags[@]}" "${defines[@]}" -MMD -MF "${o%.o}.d" -c "$s" -o "$o" &
  running+=($!)
  if ((${#running[@]} == 2)); then
    wait "${running[0]}"
    running=("${running[1]}")
  fi
done
for pid in "${running[@]}"; do wait "$pid"; done
for name in "${order[@]}"; do
  objects=("$(object "tests/fuzz/fuzz_$name.cpp")")
  for s in ${sources[$name]}; do objects+=("$(object "$s")"); done
  # shellcheck disable=SC2086  # libs is a word list
  "$CXX" "${flags[@]}" "${objects[@]}" ${libs[$name]:-} -lfmt -o "$out/fuzz_$name"
done
for d in tests/data/tokenizers/*/; do cp "$d/tokenizer.json" "$out/seeds_tokenizer_json/$(basename "$d").json"; done

cd "$out"
common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1)
failed=()
for name in "${order[@]}"; do
  mkdir -p "corpus_$name"
  echo "== fuzz_$name: ${seconds[$name]} s"
  # shellcheck disable=SC2086  # options and seeds are word lists
  if ! ./"fuzz_$name" -max_total_time="${seconds[$name]}" -max_len="${max_len[$name]}" "${common[@]}" ${options[$name]:-} \
      "corpus_$name" ${seeds[$name]} >"fuzz_$name.log" 2>&1; then
    failed+=("$name")
    tail -n 60 "fuzz_$name.log"
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' "fuzz_$name.log" || tail -n 5 "fuzz_$name.log"
  fi
done
if ((${#failed[@]})); then
  echo "run-fuzz: FAILED: ${failed[*]} (logs and reproducers in $out/)" >&2
  exit 1
fi
echo "run-fuzz: all ${#order[@]} targets passed"
