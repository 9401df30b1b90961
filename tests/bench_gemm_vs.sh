#!/usr/bin/env bash
# bench-gemm-vs refuses bad arguments with exit 2 and a message, and a short run prints the
# table row of the shape it was given, with a ratio per linked reference library.
# Usage: bench_gemm_vs.sh BENCH_GEMM_VS
set -uo pipefail
exe=$1 failed=0
. "$(dirname "$0")/refusal.sh"
expect_refusal "rounds 0" --rounds 0
expect_refusal "threads not a number" --threads many
expect_refusal "unknown option" --fast
expect_refusal "unknown library" --refs opneblas
expect_refusal "no shape matches" --rounds 1 NN/no-such-shape
expect_refusal "scaling count not a number" --scaling 1,x
expect_refusal "scaling count 0" --scaling 0,2
expect_refusal "scaling with references" --scaling 1,2 --refs none
out=$("$exe" --rounds 2 --sample-ms 1 TN/256-10_m128 2>&1); rc=$?
refs=$(echo "$out" | grep -c '^  \(openblas\|onednn\) ')
row=$(echo "$out" | grep '^| TN/256-10_m128 |')
cells=$(echo "$row" | awk -F'|' '{print NF - 2}')
if [ "$rc" -ne 0 ] || [ -z "$row" ] || [ "$cells" -ne $((3 + 2 * refs)) ]; then
  echo "FAIL short run: exit $rc, $refs reference libraries, row '$row'"; failed=1
fi
out=$("$exe" --rounds 1 --sample-ms 1 --refs none NN/256-10_m128 2>&1)
grep -q '^| NN/256-10_m128 | [0-9.]* | [0-9]* |$' <<<"$out" || { echo "FAIL --refs none: $out"; failed=1; }
# Two threads: the host's FMA loop on two threads against one, at the start and at the end,
# and a cache line's round trip between two CPUs (not measured where there is only one).
out=$("$exe" --threads 2 --rounds 1 --sample-ms 1 --settle-ms 1 --refs none NN/256-10_m128 2>&1)
grep -Eq "^  OMP_WAIT_POLICY=[^ ]+ GOMP_SPINCOUNT=[^ ]+; deepnet's idle workers [a-z]" <<<"$out" ||
  { echo "FAIL --threads 2, the wait policy line: $out"; failed=1; }
for when in start end; do
  grep -Eq "^  host at the $when: the FMA loop on 2 threads at once [0-9]+\.[0-9] GFLOP/s, [0-9]+\.[0-9]{2}x one thread; a cache line to a second CPU and back ([1-9][0-9]* ns|not measured)$" <<<"$out" ||
    { echo "FAIL --threads 2, the host's line at the $when: $out"; failed=1; }
done
# OMP_WAIT_POLICY=active with oneDNN linked: a warning that libgomp's threads spin without
# end (they took a core from the other libraries), none once GOMP_SPINCOUNT bounds them.
if "$exe" --rounds 1 --sample-ms 1 --refs onednn NN/256-10_m128 >/dev/null 2>&1; then
  warning='^  warning: OMP_WAIT_POLICY=active: oneDNN.s OpenMP threads (libgomp) spin without end'
  out=$(env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active "$exe" --threads 2 --rounds 1 --sample-ms 1 --settle-ms 1 --refs onednn NN/256-10_m128 2>&1)
  grep -q "$warning" <<<"$out" || { echo "FAIL no warning under OMP_WAIT_POLICY=active: $out"; failed=1; }
  out=$(OMP_WAIT_POLICY=active GOMP_SPINCOUNT=300000 "$exe" --threads 2 --rounds 1 --sample-ms 1 --settle-ms 1 --refs onednn NN/256-10_m128 2>&1)
  if grep -q "$warning" <<<"$out"; then echo "FAIL a warning with GOMP_SPINCOUNT set: $out"; failed=1; fi
fi
# --scaling 1,2: a row with both speeds, the 2/1 ratio with quartiles, the % of peak and
# the host's own 2/1 (its FMA loop on two threads against one, a positive ratio).
out=$("$exe" --scaling 1,2 --rounds 2 --sample-ms 1 --settle-ms 1 NN/256-10_m128 2>&1)
grep -Eq '^\| NN/256-10_m128 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \[[0-9.]+ [0-9.]+\] \| [0-9]+ \| (0\.[0-9]*[1-9]|[1-9][0-9]*\.)[0-9]* \[[0-9.]+ [0-9.]+\] \|$' <<<"$out" ||
  { echo "FAIL --scaling 1,2: $out"; failed=1; }
if [ "$failed" -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
