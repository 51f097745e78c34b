#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs every test
# with ctest. GPU tests report themselves as skipped where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
