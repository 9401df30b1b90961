#!/usr/bin/env bash
# deepnet-step-breakdown refuses bad arguments (both forms) with exit 2 and a usage line, and
# a short run prints one row per thread count: the step's time and samples/s, its speed-up
# over the first count (exactly 1 for that count) and the host's FMA loop on as many
# threads beside it (positive GFLOP/s, the host's speed-up exactly 1 for the first count),
# then a cache line's round trip between two CPUs (or "not measured" on one CPU).
# Usage: step_breakdown.sh DEEPNET_STEP_BREAKDOWN
set -uo pipefail
exe=$1 failed=0
. "$(dirname "$0")/refusal.sh"
refusal_pattern='^usage:'
expect_refusal "one thread count" --scaling 1
expect_refusal "count 0" --scaling 0,2
expect_refusal "count not a number" --scaling 1,x
expect_refusal "rounds 0" --scaling 1,2 --rounds 0
expect_refusal "steps not a number" --scaling 1,2 --steps many
expect_refusal "unknown option" --scaling 1,2 --fast
expect_refusal "no list" --scaling
expect_refusal "empty item" --scaling 1,,2
expect_refusal "signed count" --scaling 1,+2
expect_refusal "threads not a number" x
expect_refusal "batch 0" 1 0 0
expect_refusal "deep not 0 or 1" 1 2
expect_refusal "steps within the warm-up" 1 0 16 50
out=$("$exe" --scaling 1,2 --rounds 2 --steps 2 --batch 32 2>&1); rc=$?
first=$(echo "$out" | grep -E '^\| 1 \| [0-9.]+ \| [0-9]+ \| 1\.00 \[1\.00 1\.00\] \| ([1-9][0-9]*\.[0-9]|0\.[1-9]) \| 1\.00 \[1\.00 1\.00\] \| 1\.00 \|$')
second=$(echo "$out" | grep -E '^\| 2 \| [0-9.]+ \| [0-9]+ \| [0-9.]+ \[[0-9.]+ [0-9.]+\] \| ([1-9][0-9]*\.[0-9]|0\.[1-9]) \| [0-9.]+ \[[0-9.]+ [0-9.]+\] \| [0-9.]+ \|$')
trip=$(echo "$out" | grep -E '^  a cache line to a second CPU and back(, once a round: median [1-9][0-9]* ns, lowest [1-9][0-9]*, highest [1-9][0-9]*|: not measured)$')
if [ "$rc" -ne 0 ] || [ -z "$first" ] || [ -z "$second" ] || [ -z "$trip" ] || ! grep -q '^deepnet-step-breakdown --scaling: small net, batch 32' <<<"$out"; then
  echo "FAIL short run: exit $rc, output:"; echo "$out"; failed=1
fi
# The one-count form still runs (the breakdown line).
out=$("$exe" 1 0 16 52 2>&1)
grep -q '^small net, batch 16, 1 thread(s): forward [0-9.]*  backward' <<<"$out" || { echo "FAIL breakdown: $out"; failed=1; }
if [ "$failed" -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
