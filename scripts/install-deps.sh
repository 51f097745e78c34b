#!/usr/bin/env bash
# Installs everything ropescope needs to build and test, from Debian 12
# packages (apt-get) and, for the test generators, PyPI (pip). Idempotent:
# does nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev libboost-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libgsl-dev
  gnuplot-nox libgnuplot-iostream-dev libboost-iostreams-dev libboost-filesystem-dev zlib1g-dev
  python3 python3-pip python3-venv python3-dev
  clang libclang-rt-14-dev
  libonig-dev libutf8proc-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=sudo
    else
      echo "install-deps: these Debian packages are missing: ${missing[*]}" >&2
      echo "install-deps: run this script as root (su -c 'bash scripts/install-deps.sh') or install them with apt-get." >&2
      exit 1
    fi
  else
    SUDO=
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
