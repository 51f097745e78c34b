#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, fuzzes the input
# parsers for 160 s in all (scripts/run-fuzz.sh: safetensors header,
# tokenizer.json loader and encoder, config.json, .npy, token files), and runs every test with ctest (last, so its summary
# closes the output; the tokenizer comparison on full-size vocabularies takes
# about a minute of it; the Python package's pytest suite is one ctest test).
# GPU tests report themselves as skipped where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The Python side of the tests (numpy, safetensors, nanobind, pytest, pandas,
# tqdm from PyPI) lives in a venv under build/, so a system Python that
# refuses pip installs (PEP 668) is fine. It comes first: the build compiles
# the Python extension (python/) against it, and ctest runs its pytest suite.
[[ -x build/test-venv/bin/python3 ]] || python3 -m venv build/test-venv
build/test-venv/bin/python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
bash scripts/build.sh -DROPESCOPE_PYTHON=ON -DPython_EXECUTABLE="$PWD/build/test-venv/bin/python3"
export PATH="$PWD/build/test-venv/bin:$PATH"
bash scripts/run-fuzz.sh   # six parsers, 20-40 s each; libFuzzer + ASan/UBSan; fails on a crash or an undocumented exception
ctest --test-dir build --output-on-failure -j "$(nproc)"
