#!/usr/bin/env bash
# The whole test suite: builds if needed, then runs every Criterion binary.
# Extra arguments go to `meson test` (e.g. test_gemm to run one binary).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
meson test -C build --print-errorlogs "$@"
