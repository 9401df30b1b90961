#!/usr/bin/env bash
# One command for a benchmark report of this machine: builds the bench suites if
# needed (release, build-bench/), runs them, and writes a report folder with the
# JSON, system facts, report.md (deepnet vs OpenBLAS vs oneDNN, % of measured peak)
# and PNG plots. About 8-10 minutes on a 2-core machine with the defaults.
#
#   tools/bench-report.sh [OUTDIR]            default OUTDIR: reports/<date>-<host>
#
# Environment:
#   BENCH_SUITES="peak gemm layer act train"  suites to run (in this order)
#   BENCH_MIN_TIME=0.02      --benchmark_min_time per repetition (seconds, plain number)
#   BENCH_REPETITIONS=3      repetitions; the report uses their medians
#   BENCH_FILTER=...         extra --benchmark_filter regex applied to every suite
#   BENCH_PYTORCH=1          also run tools/pytorch_compare.py (adds ~3 minutes)
#   BENCH_BUILD_DIR=build-bench
#   BENCH_GIT_REV=...        the revision to record when the tree is an export without .git
#   BENCH_GEMM_SEPARATE=0|1  each gemm library in its own process (default 1)
#   BENCH_GEMM_ROUNDS=N      run the gemm processes N times, alternating (default 3); the
#                            report takes each figure's median over the rounds
#   BENCH_INTERLEAVE=0|1     Google Benchmark's random interleaving of the repetitions
#                            (default 0): on a shared host whose speed moves for minutes at
#                            a time, a slow phase then falls on every library of the process
#                            instead of on one; with BENCH_GEMM_SEPARATE=0 and one thread
#                            the libraries compare inside one process (docs/benchmarks.md)
#   DEEPNET_BENCH_ISAS, DEEPNET_BENCH_THREADS   restrict the sweeps (see docs/benchmarks.md)
set -euo pipefail
case "${1:-}" in
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  -*) echo "bench-report: unknown option '$1' (tools/bench-report.sh --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
root=$(pwd)

build=${BENCH_BUILD_DIR:-build-bench}
suites=${BENCH_SUITES:-peak gemm layer act train}
min_time=${BENCH_MIN_TIME:-0.02}
reps=${BENCH_REPETITIONS:-3}
out=${1:-reports/$(date +%Y%m%d-%H%M%S)-$(hostname -s 2>/dev/null || echo host)}
py=/usr/bin/python3 # Debian's python: matplotlib (and torch) live there, not in pyenv's

die() { echo "bench-report: $*" >&2; exit 1; }
[ -x "$py" ] || die "$py not found (install python3 and python3-matplotlib)"

# ---- build -------------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dbench=enabled -Dtests=false >/dev/null ||
    die "meson setup failed: are g++ and libbenchmark-dev installed? (tools/install-deps.sh)"
fi
ninja -C "$build" >/dev/null || die "build failed: ninja -C $build"
for s in $suites; do
  [ -x "$build/bench/bench-$s" ] || die "$build/bench/bench-$s missing: is the bench option disabled?"
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "bench-report: writing $out"

# ---- system facts ------------------------------------------------------------
{
  echo "date: $(date -Is)"
  echo "host: $(hostname)"
  echo "kernel: $(uname -srm)"
  echo "git: ${BENCH_GIT_REV:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}"
  echo "compiler: $(${CC:-cc} --version 2>/dev/null | head -1)"
  echo "c++ compiler: $(${CXX:-c++} --version 2>/dev/null | head -1)"
  echo "OMP_NUM_THREADS: ${OMP_NUM_THREADS:-unset}  OMP_WAIT_POLICY: ${OMP_WAIT_POLICY:-unset}  OMP_PROC_BIND: ${OMP_PROC_BIND:-unset}"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  if command -v dpkg-query >/dev/null; then
    for p in libopenblas0-pthread libopenblas0 libdnnl2 libbenchmark1debian libhwloc15 python3-torch; do
      v=$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null || true)
      [ -n "$v" ] && echo "package $p: $v"
    done
  fi
} >"$out/system.txt"
lscpu >"$out/lscpu.txt" 2>/dev/null || true
if command -v lstopo-no-graphics >/dev/null; then
  lstopo-no-graphics --of console >"$out/lstopo.txt" 2>/dev/null || true
elif command -v hwloc-ls >/dev/null; then
  hwloc-ls >"$out/lstopo.txt" 2>/dev/null || true
fi
[ -x "$build/tools/deepnet" ] && "$build/tools/deepnet" info >"$out/deepnet-info.txt" 2>&1 || true

# ---- suites ------------------------------------------------------------------
start=$(date +%s)
# With many cores, one library's idle threads (OpenBLAS's spin after a call, OpenMP's
# default wait) take cores from the next library measured in the same process (on a
# 16-core machine oneDNN fell to 0-67 GFLOP/s at 12-16 threads after OpenBLAS): there the
# gemm suite runs each library in its own process (gemm-<lib>.json; the report merges them).
cpus=$(nproc 2>/dev/null || echo 1)
# Each library in its own process by default, on 2 cores too: there OpenBLAS's threads,
# spinning after its calls, cost deepnet's 2-thread runs in the same process (session 9:
# 43 of 49 shapes ahead of OpenBLAS in one process, 46 of 49 in separate ones, 3 rounds).
separate=${BENCH_GEMM_SEPARATE:-1}
rounds=${BENCH_GEMM_ROUNDS:-3}
case "$rounds" in '' | *[!0-9]* | 0*) die "BENCH_GEMM_ROUNDS must be a positive integer, not '$rounds'" ;; esac
for s in $suites; do
  echo "bench-report: suite $s ($(($(date +%s) - start)) s so far)"
  args=(--benchmark_min_time="$min_time" --benchmark_repetitions="$reps"
        --benchmark_report_aggregates_only=true --benchmark_out_format=json)
  [ "${BENCH_INTERLEAVE:-0}" = 1 ] && args+=(--benchmark_enable_random_interleaving=true)
  # A folder measured before keeps its files: the report would merge an old gemm run's
  # files with this one's as if they were rounds of one measurement.
  [ "$s" = gemm ] && rm -f "$out"/gemm.json "$out"/gemm.txt "$out"/gemm-*.json "$out"/gemm-*.txt
  if [ "$s" = gemm ] && { [ "$separate" = 1 ] || [ "$rounds" -gt 1 ]; }; then
    # Rounds: the machine's speed drifts by 5-10% between two processes a minute apart
    # (docs/benchmarks.md, "Noise"), so a ratio of two libraries from one process each is
    # mostly that drift; with N rounds each library runs N times, the libraries taking
    # turns, and the report takes the median of each figure (files gemm[-lib]-rK.json).
    libs="deepnet openblas onednn"; [ "$separate" = 1 ] || libs=all
    for round in $(seq 1 "$rounds"); do
      for lib in $libs; do
        tag=$s; [ "$lib" = all ] || tag=$tag-$lib
        [ "$rounds" -gt 1 ] && tag=$tag-r$round
        filter="/$lib/"
        [ -n "${BENCH_FILTER:-}" ] && filter="(${BENCH_FILTER}).*/$lib/|/$lib/.*(${BENCH_FILTER})"
        [ "$lib" = all ] && filter=${BENCH_FILTER:-.}
        "$build/bench/bench-$s" "${args[@]}" --benchmark_filter="$filter" \
          --benchmark_out="$out/$tag.json" >"$out/$tag.txt" 2>&1 ||
          die "bench-$s ($lib) failed; see $out/$tag.txt"
        # The first process's measured FMA peaks serve the others, so every % of peak in
        # the report has one basis (each process would otherwise measure its own).
        if [ -z "${DEEPNET_BENCH_PEAK:-}" ]; then
          peaks=$("$py" -c 'import json,sys
c = json.load(open(sys.argv[1])).get("context", {})
print(",".join(k[len("peak_gflops_"):-3] + "=" + str(v) for k, v in sorted(c.items())
               if k.startswith("peak_gflops_") and k.endswith("_1t")))' "$out/$tag.json")
          [ -n "$peaks" ] && export DEEPNET_BENCH_PEAK=$peaks
        fi
      done
    done
    continue
  fi
  args+=(--benchmark_out="$out/$s.json")
  [ -n "${BENCH_FILTER:-}" ] && args+=(--benchmark_filter="$BENCH_FILTER")
  "$build/bench/bench-$s" "${args[@]}" >"$out/$s.txt" 2>&1 ||
    die "bench-$s failed; see $out/$s.txt"
done

if [ "${BENCH_PYTORCH:-0}" = 1 ]; then
  echo "bench-report: tools/pytorch_compare.py"
  "$py" tools/pytorch_compare.py --build "$build" --json "$out/pytorch.json" >"$out/pytorch.txt" 2>&1 ||
    echo "bench-report: pytorch_compare failed (see $out/pytorch.txt); continuing" >&2
fi
echo "bench-report: suites took $(($(date +%s) - start)) s"

# ---- report and plots ---------------------------------------------------------
cmd="tools/bench-report.sh $*"
"$py" tools/plot_bench.py "$out" || die "tools/plot_bench.py failed (python3-matplotlib installed?)"
settings="BENCH_MIN_TIME=$min_time BENCH_REPETITIONS=$reps BENCH_GEMM_ROUNDS=$rounds"
[ "$separate" = 1 ] || settings="$settings BENCH_GEMM_SEPARATE=0"
[ "${BENCH_INTERLEAVE:-0}" = 1 ] && settings="$settings BENCH_INTERLEAVE=1"
[ -n "${DEEPNET_BENCH_THREADS:-}" ] && settings="$settings DEEPNET_BENCH_THREADS=$DEEPNET_BENCH_THREADS"
[ -n "${DEEPNET_BENCH_ISAS:-}" ] && settings="$settings DEEPNET_BENCH_ISAS=$DEEPNET_BENCH_ISAS"
"$py" tools/bench-report.py "$out" --command "$settings $cmd" \
  >"$out/report.md" || die "tools/bench-report.py failed"
echo "bench-report: done: $out/report.md, $(cd "$out" && ls ./*.png 2>/dev/null | wc -l) plots"
