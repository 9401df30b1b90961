#!/usr/bin/env bash
# Installs what deepnet needs to build, test, benchmark and train, from Debian's
# registry (Debian 12, as root). Idempotent.
set -euo pipefail

packages=(
  meson ninja-build pkg-config gcc g++ clang libomp-dev libclang-rt-14-dev
  libhwloc-dev hwloc zlib1g-dev libcriterion-dev
  libbenchmark-dev libopenblas-dev libdnnl-dev
  dataset-fashion-mnist valgrind linux-perf python3-matplotlib
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
