#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install the dependencies,
# build, and train [784,512,256,10] on Fashion-MNIST (Debian's dataset-fashion-mnist).
# Extra arguments go to `deepnet train` (e.g. --epochs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
build/tools/deepnet info
exec build/tools/deepnet train "$@"
