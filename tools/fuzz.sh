#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs each for
# SECONDS seconds (default 60) from its seed corpus in tests/fuzz/corpus/NAME.
# New inputs go to build-fuzz/corpus/NAME; a crash leaves crash-* files in
# build-fuzz/ and fails the script. Usage: tools/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_model_load fuzz_idx fuzz_csv fuzz_cli_args)

if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Dbench=disabled \
    -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=all'
fi
ninja -C build-fuzz "${targets[@]/#/tests/fuzz/}"

status=0
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/${t#fuzz_}
  work=build-fuzz/corpus/${t#fuzz_}
  mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s (seeds: $seeds)"
  if ! (cd build-fuzz && OMP_NUM_THREADS=1 ./tests/fuzz/"$t" -max_total_time="$seconds" \
        -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "../$work" "../$seeds" 2>&1 | tail -n 12); then
    echo "fuzz: $t FAILED (reproducer: build-fuzz/crash-*)" >&2
    status=1
  fi
done
exit $status
