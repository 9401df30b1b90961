#!/usr/bin/env bash
# Where the pool's workers run (src/numa.c, "thread placement"), through
# tests/affinity_probe.c: with no binding they may run on every CPU the process started
# with, even when the thread that created them was narrowed (libgomp binds the initial
# thread under OMP_PROC_BIND; a host thread may pin itself); under the user's OpenMP
# binding each goes to its OpenMP place. Before session 21 they inherited their creator's
# mask and sat on CPU 0 next to it. Usage: affinity.sh PROBE
set -uo pipefail
probe=$1
failures=0
check() { # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
field() { sed -n "s/^$1 //p" <<<"$2"; }

# The probe's own architecture: under a cross build's qemu-user this script is the host's
# bash, but the probe and its libgomp are emulated, their affinity calls the host's.
# Runs without binding set DEEPNET_BIND=0 (on a NUMA machine deepnet pins by default);
# runs with the user's OpenMP binding unset it (DEEPNET_BIND=1 would override that).
unbound() { env -u OMP_PROC_BIND -u OMP_PLACES DEEPNET_BIND=0 OMP_NUM_THREADS=2 "$probe" "$@"; }
bound() { env -u DEEPNET_BIND "$@" OMP_NUM_THREADS=2 "$probe"; }
out=$(unbound) || { echo "probe failed (exit $?)"; exit 1; }
if [ "$(field arch "$out")" != x86_64 ]; then
  echo "skip: placement is checked on x86-64"
  exit 77
fi
# The CPUs the process may use, from a run without binding (under OMP_PROC_BIND libgomp
# has narrowed the main thread before the probe's main() can look).
cpus=$(field start "$out")
if [ "$(tr ',' '\n' <<<"$cpus" | wc -l)" -lt 2 ]; then
  echo "skip: the process may use one CPU ($cpus)"
  exit 77
fi

out=$(unbound) || { echo "probe failed"; exit 1; }
check "no binding: the worker may run on every CPU the process started with" \
  test "$(field worker "$out")" = "$(field start "$out")"

out=$(unbound pinned-first) || { echo "probe failed"; exit 1; }
check "no binding, first call from a thread pinned to CPU 0: the worker is not pinned with it" \
  test "$(field worker "$out")" = "$(field start "$out")"

for env in "OMP_PROC_BIND=close OMP_PLACES=cores" "OMP_PROC_BIND=true" "OMP_PLACES=cores" \
           "OMP_PROC_BIND=spread OMP_PLACES=cores"; do
  out=$(bound $env) || { echo "probe failed"; exit 1; }
  if [ "$(field places "$out")" -lt 2 ]; then
    echo "skip - $env: fewer than two OpenMP places here"
    continue
  fi
  main=$(field main "$out") worker=$(field worker "$out")
  check "$env: the main thread on one place, the worker on another (main $main, worker $worker)" \
    bash -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ] && [ "$1" != "$3" ] && [ "$2" != "$3" ]' _ \
    "$main" "$worker" "$cpus"
done

out=$(bound OMP_PROC_BIND=primary) || { echo "probe failed"; exit 1; }
check "OMP_PROC_BIND=primary: the worker on the main thread's place, as OpenMP would put it" \
  test "$(field worker "$out")" = "$(field main "$out")"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
