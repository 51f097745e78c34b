#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, fuzzes the
# safetensors header parser for 60 s, and runs every test with ctest (last, so
# its summary closes the output). GPU tests report themselves as skipped where
# there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt
bash scripts/build.sh
bash scripts/run-fuzz.sh 60   # safetensors header parser, libFuzzer + ASan/UBSan; fails on a crash
ctest --test-dir build --output-on-failure -j "$(nproc)"
