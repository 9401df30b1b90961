#!/usr/bin/env bash
# deepnet-pool-latency refuses bad arguments with exit 2 and a message, and a short run
# prints one row per thread count: the job's median, 10th and 90th percentile times, when
# the first worker started (none at one thread) and in how many jobs it ran a chunk.
# Usage: pool_latency.sh DEEPNET_POOL_LATENCY
set -uo pipefail
exe=$1 failed=0
. "$(dirname "$0")/refusal.sh"
expect_refusal "too few calls" 1,2 5
expect_refusal "negative work" 2 100 -5
expect_refusal "negative gap" 2 100 0 -1
out=$("$exe" 1,2 50 1000 5 2>&1); rc=$?
num='[0-9]+\.[0-9]{2}'
[ "$rc" -eq 0 ] || { echo "FAIL a short run exited $rc: $out"; failed=1; }
grep -Eq "^      1 +$num +$num +$num +- +0$" <<<"$out" || { echo "FAIL one thread's row (exit $rc): $out"; failed=1; }
row2=$(echo "$out" | grep -E "^      2 +$num +$num +$num +($num +[1-9][0-9]*|- +0)$")
[ -n "$row2" ] || { echo "FAIL two threads' row: $out"; failed=1; }
grep -q "(50 jobs of 2 chunks per thread, 1000 ns each, 5 us apart)" <<<"$out" || { echo "FAIL header: $out"; failed=1; }
if [ "$failed" -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
