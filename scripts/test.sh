#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, fuzzes the input
# parsers for 160 s in all (scripts/run-fuzz.sh: safetensors header,
# tokenizer.json loader and encoder, config.json, .npy, token files), and runs every test with ctest (last, so its summary
# closes the output; the tokenizer comparison on full-size vocabularies takes
# about a minute of it). GPU tests report themselves as skipped where
# there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# The Python side of the tests (numpy, safetensors from PyPI) lives in a venv
# under build/, so a system Python that refuses pip installs (PEP 668) is fine.
[[ -x build/test-venv/bin/python3 ]] || python3 -m venv build/test-venv
build/test-venv/bin/python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
export PATH="$PWD/build/test-venv/bin:$PATH"
bash scripts/run-fuzz.sh   # six parsers, 20-40 s each; libFuzzer + ASan/UBSan; fails on a crash or an undocumented exception
ctest --test-dir build --output-on-failure -j "$(nproc)"
