#!/usr/bin/env bash
# The run.sh of a bench bundle (tools/bench-bundle.sh): run on the machine being measured,
# from wherever the bundle was unpacked. Writes RESULTS_DIR (default ./results) in the
# layout of tools/bench-report.sh, so tools/bench-report.py makes its report.md.
#
#   run.sh [RESULTS_DIR]
#
# Environment: BUNDLE_THREADS (thread counts to sweep, default 1,2,4,8,... up to the cores),
# BUNDLE_GEMM_FILTER (regex of gemm shapes, default the m256 MLP shapes and two squares),
# BUNDLE_STEPS ("tests peak ukr smt pool trace vs scaling midsize trainscale pair gemm
# train breakdown pytorch", the default: all, in this order), BUNDLE_DEADLINE_S (skip every step that would
# start this many seconds after the start: a lent machine's time is fixed),
# BUNDLE_MIN_TIME (default 0.02), BUNDLE_REPETITIONS (default 3), BUNDLE_GEMM_ROUNDS (default 1:
# with N, each gemm library runs N times, the libraries taking turns).
# About 5 minutes on 16 cores. The peak step's one-thread FMA figure becomes
# DEEPNET_BENCH_PEAK for the later suites (one basis for every % of peak). Each step has a time limit, and a failed step is reported
# and skipped, so one slow step cannot lose the others' results.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-results}
mkdir -p "$out" && out=$(cd "$out" && pwd)
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=$here/bin
t0=$(date +%s)
say() { echo "[$(($(date +%s) - t0)) s] $*"; }
steps=${BUNDLE_STEPS:-tests peak ukr smt pool trace vs scaling midsize trainscale pair gemm train breakdown pytorch}
want() {
  case " $steps " in *" $1 "*) ;; *) return 1 ;; esac
  if [ -n "${BUNDLE_DEADLINE_S:-}" ] && [ $(($(date +%s) - t0)) -ge "$BUNDLE_DEADLINE_S" ]; then
    say "step $1 skipped: past BUNDLE_DEADLINE_S=$BUNDLE_DEADLINE_S"
    return 1
  fi
}

n=$(nproc)
if [ -n "${BUNDLE_THREADS:-}" ]; then
  T=$BUNDLE_THREADS
else
  T=1; for t in 2 4 8 12 16 24 32 48 64 96 128; do [ "$t" -lt "$n" ] && T=$T,$t; done
  [ "$n" -gt 1 ] && T=$T,$n
fi
isa=scalar
grep -q -w avx2 /proc/cpuinfo && grep -q -w fma /proc/cpuinfo && isa=avx2
grep -q -w avx512f /proc/cpuinfo && grep -q -w avx512bw /proc/cpuinfo && isa=avx512

{
  echo "date: $(date -Is)"
  echo "host: $(hostname)"
  echo "kernel: $(uname -srm)"
  echo "git: $(cat "$here/VERSION" 2>/dev/null || echo unknown) (bench bundle)"
  echo "OMP_NUM_THREADS: ${OMP_NUM_THREADS:-unset}  OMP_WAIT_POLICY: ${OMP_WAIT_POLICY:-unset}  OMP_PROC_BIND: ${OMP_PROC_BIND:-unset}"
  echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-unset}"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  echo "thread counts: $T  ISA: $isa"
} >"$out/system.txt"
lscpu >"$out/lscpu.txt" 2>&1 || true
DEEPNET_VERBOSE=1 "$B/deepnet" info >"$out/deepnet-info.txt" 2>&1 || true
cat "$out/system.txt"; grep -E "Model name|^CPU\(s\)|Thread|NUMA node\(s\)" "$out/lscpu.txt"
grep -E "^(isa|placement|topology)" "$out/deepnet-info.txt"

if want tests; then
  # Bitwise the same results for 1 thread and each count up to the cores (and beyond).
  counts=2,3,4,7
  for t in 8 13 16 32 64; do [ "$t" -le $((n + 1)) ] && counts=$counts,$t; done
  [ "$n" -gt 7 ] && counts=$counts,$n
  say "tests at thread counts $counts"
  for t in test_threads test_numa test_train test_gradcheck test_gemm test_activations test_vecmath test_optim; do
    DN_TEST_THREAD_COUNTS=$counts OMP_WAIT_POLICY=passive timeout 300 "$B/$t" --jobs 2 \
      >"$out/test-$t.txt" 2>&1
    echo "  $t: exit $? $(tail -1 "$out/test-$t.txt")"
  done
  timeout 120 "$B/threads_stress" >"$out/test-threads_stress.txt" 2>&1
  echo "  threads_stress: exit $?"
fi

common=(--benchmark_min_time="${BUNDLE_MIN_TIME:-0.02}" --benchmark_repetitions="${BUNDLE_REPETITIONS:-3}"
        --benchmark_report_aggregates_only=true --benchmark_out_format=json)
export DEEPNET_BENCH_ISAS=$isa DEEPNET_BENCH_THREADS=$T

if want peak; then
  say "peak (FMA loop and bandwidth)"
  timeout 120 "$B/bench-peak" "${common[@]}" --benchmark_out="$out/peak.json" >"$out/peak.txt" 2>&1 ||
    echo "  bench-peak failed or timed out: $out/peak.txt"
  grep "fma.*median" "$out/peak.txt" | awk '{print "  " $1, $(NF-2)}'
  # Every later suite runs in its own process and would measure its own one-thread peak
  # for its % column; one figure for all keeps the percentages comparable.
  p1=$(sed -n "s|^peak/fma/-/$isa/$isa/threads:1_median .*GFLOPS=\([0-9.]*\).*|\1|p" "$out/peak.txt")
  if [ -n "$p1" ]; then
    export DEEPNET_BENCH_PEAK="$isa=$p1"
    echo "DEEPNET_BENCH_PEAK set by run.sh: $DEEPNET_BENCH_PEAK" >>"$out/system.txt"
  fi
fi

if want ukr; then
  # Each ISA's micro-kernel alone with its operands in the caches, against that ISA's FMA
  # loop on the same thread (deepnet-ukr-speed): the ceiling of every GEMM on that kernel.
  say "micro-kernels in the caches (deepnet-ukr-speed)"
  for i in avx2 avx512; do
    [ "$i" = avx512 ] && [ "$isa" != avx512 ] && continue
    [ "$isa" = scalar ] && continue
    DEEPNET_ISA=$i timeout 60 "$B/deepnet-ukr-speed" 2>&1
  done | tee "$out/ukr.txt" | sed 's/^/  /'
  # On AVX-512 CPUs, the tile's candidate assembly k loops beside it (session 19: written
  # on a machine without AVX-512; each is timed only if its C is the library tile's).
  if [ "$isa" = avx512 ]; then
    DEEPNET_ISA=avx512 timeout 120 "$B/deepnet-ukr-speed" --asm 2>&1 | tee "$out/ukr-asm.txt" | sed 's/^/  /'
  fi
fi

if want smt && [ "$n" -gt 1 ] && command -v taskset >/dev/null; then
  # Which CPUs share one core's FMA units: a hypervisor may show SMT siblings (or vCPUs
  # time-sliced on fewer physical cores) as separate one-thread cores, and then no code
  # scales with the CPU count. The one-thread FMA loop on CPU 0 alone, then on CPU 0 and
  # CPU j at once for every j: a pair sharing a core gets about half each. Last, one copy
  # on every CPU at once: the machine's total FMA rate against n times one CPU's.
  say "which CPUs share FMA units (the FMA loop pinned to CPU 0 and CPU j at once)"
  fma_on() { DEEPNET_BENCH_THREADS=1 taskset -c "$1" "$B/bench-peak" \
      --benchmark_filter="fma/-/$isa/$isa/threads:1\$" --benchmark_min_time=0.3 2>/dev/null |
      sed -n 's/.*GFLOPS=\([0-9.]*\).*/\1/p'; }
  {
    echo "solo cpu0 $(fma_on 0)"
    for j in $(seq 1 $((n - 1))); do
      fma_on 0 >"$out/.smt0" & fma_on "$j" >"$out/.smtj"; wait
      echo "pair cpu0+cpu$j $(cat "$out/.smt0") $(cat "$out/.smtj")"
    done
    for j in $(seq 0 $((n - 1))); do fma_on "$j" >"$out/.all$j" & done; wait
    echo "all $n at once: $(for j in $(seq 0 $((n - 1))); do printf 'cpu%s %s  ' "$j" "$(cat "$out/.all$j")"; done)"
    echo "sum $(cat "$out"/.all* | awk '{s += $1} END {printf "%.1f", s}')"
    rm -f "$out"/.smt0 "$out"/.smtj "$out"/.all*
    for c in /sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list; do
      [ -r "$c" ] && echo "siblings $(basename "$(dirname "$(dirname "$c")")") $(cat "$c")"
    done
  } | tee "$out/smt.txt" | grep -v '^siblings' | sed 's/^/  /'
fi

if want pool; then
  # What one dispatch to the worker pool costs at each thread count: jobs of two chunks
  # per thread, each chunk 5 or 20 us of work (ideal: 10 and 40 us a job).
  say "pool round trip (deepnet-pool-latency)"
  for w in 5000 20000; do
    timeout 60 "$B/deepnet-pool-latency" "$T" 1500 "$w"
  done 2>&1 | tee "$out/pool.txt" | sed 's/^/  /'
fi

if want trace; then
  # Where a threaded GEMM's time goes at the most threads: per-thread chunks, busy share,
  # start delay and time per chunk, against the same product on one thread
  # (deepnet-gemm-trace; docs/benchmarks.md, "Reading a trace").
  say "threaded GEMM trace at $n threads (deepnet-gemm-trace)"
  for shape in "4096 256 4096 8 NN" "4096 256 4096 8 TN" "2048 2048 2048 5 NN" "1024 512 1024 20 NN"; do
    timeout 60 "$B/deepnet-gemm-trace" "$n" $shape
  done 2>&1 | tee "$out/trace.txt" | grep -E "GFLOP/s|per call" | sed 's/^/  /'
fi

if want vs; then
  # dn_sgemm against OpenBLAS and oneDNN, one thread, the libraries alternated round by round
  # in one process (bench-gemm-vs): every MLP shape and the squares with the product's
  # default kernels, then, where the CPU has AMX tiles, the same with the tile path on
  # (DEEPNET_AMX=1, off by default) and the FMA kernels as a reference in the same rounds.
  # Needs OPENBLAS_CORETYPE as the gemm step sets it (below) on CPUs OpenBLAS 0.3.21 does
  # not know.
  if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q -w avx512f /proc/cpuinfo; then
    model=$(awk -F: '/^model[[:space:]]*:/{gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
    case "$model" in 143 | 207 | 173 | 174) # Sapphire/Emerald/Granite Rapids: unknown to 0.3.21
      export OPENBLAS_CORETYPE=SkylakeX
      echo "OPENBLAS_CORETYPE set by run.sh for bench-gemm-vs: SkylakeX (model $model)" >>"$out/system.txt" ;;
    esac
  fi
  rounds=${BUNDLE_VS_ROUNDS:-9}
  say "bench-gemm-vs, one thread, every shape ($rounds rounds)"
  timeout 300 "$B/bench-gemm-vs" --rounds "$rounds" NN/ NT/ TN/ >"$out/vs-1t.txt" 2>&1 ||
    echo "  bench-gemm-vs failed or timed out: $out/vs-1t.txt"
  grep -E "^vs |^bench-gemm-vs" "$out/vs-1t.txt" | sed 's/^/  /'
  if grep -q -w amx_tile /proc/cpuinfo; then
    say "bench-gemm-vs, one thread, every shape, the AMX path on (DEEPNET_AMX=1) against the FMA kernels"
    DEEPNET_AMX=1 timeout 300 "$B/bench-gemm-vs" --rounds "$rounds" --refs deepnet-fma,openblas,onednn \
      NN/ NT/ TN/ >"$out/vs-1t-amx.txt" 2>&1 || echo "  bench-gemm-vs failed or timed out: $out/vs-1t-amx.txt"
    grep -E "^vs " "$out/vs-1t-amx.txt" | sed 's/^/  /'
  fi
fi

if want scaling && [ "$n" -gt 1 ]; then
  # dn_sgemm's speed-up over one thread, the thread counts alternated round by round in one
  # process (bench-gemm-vs --scaling): a speed-up from two runs divides two moments of a
  # host whose speed moves by up to 2x.
  say "bench-gemm-vs --scaling $T (large shapes)"
  timeout 240 "$B/bench-gemm-vs" --scaling "$T" --rounds "${BUNDLE_SCALING_ROUNDS:-5}" --settle-ms 50 \
    4096-4096_m256 4096-4096_m512 1024-1024_m512 sq1024 sq2048 >"$out/scaling.txt" 2>&1 ||
    echo "  bench-gemm-vs --scaling failed or timed out: $out/scaling.txt"
  # Each row ends in the speed-ups over one thread, the % of peak, then the host's own
  # speed-ups (one column per count after the first): the last of each.
  hosts=$(($(echo "$T" | tr ',' '\n' | wc -l) - 1))
  grep "^| [NT][NT]/" "$out/scaling.txt" | awk -F'|' -v h="$hosts" \
    '{print "  " $2 "| 1 thr" $3 "| " $(NF-2-h) "x at the most threads | host" $(NF-1) "x |"}'
fi

if want midsize && [ "$n" -gt 2 ]; then
  # The MLP's mid-size layers on many threads, where session 17 found oneDNN 1.3-2x ahead
  # at 16 threads (a third of the wall idle, busy time at half speed): which thread count
  # runs them fastest (--scaling, paired), whether workers that spin between back-to-back
  # calls (OMP_WAIT_POLICY=active) close the gap to the libraries, and the traces both ways.
  say "mid-size layers on many threads (bench-gemm-vs --scaling, OMP_WAIT_POLICY, traces)"
  mids="784-512_m256 512-256_m256 784-512_m128 512-256_m128"
  timeout 120 "$B/bench-gemm-vs" --scaling "$T" --rounds 5 --settle-ms 50 $mids \
    >"$out/midsize-scaling.txt" 2>&1 || echo "  failed or timed out: $out/midsize-scaling.txt"
  grep "^| [NT][NT]/" "$out/midsize-scaling.txt" | sed 's/^/  /'
  # One reference library a process: with both in one process at 16 threads, oneDNN's
  # column read 25-50 GFLOP/s on some shapes (session 17), its threads starved by the
  # other library's.
  for policy in passive active; do
    for ref in openblas onednn; do
      OMP_WAIT_POLICY=$policy timeout 120 "$B/bench-gemm-vs" --threads "$n" --rounds 5 --refs $ref $mids \
        >"$out/midsize-vs-$policy-$ref.txt" 2>&1 || echo "  failed or timed out: $out/midsize-vs-$policy-$ref.txt"
      echo "  OMP_WAIT_POLICY=$policy, $n threads: $(grep '^vs ' "$out/midsize-vs-$policy-$ref.txt")"
    done
    for shape in "512 256 784 40 NN" "256 256 512 40 NN" "784 256 512 40 TN" "512 784 256 40 NT"; do
      OMP_WAIT_POLICY=$policy timeout 30 "$B/deepnet-gemm-trace" "$n" $shape
    done >"$out/midsize-trace-$policy.txt" 2>&1
    grep -E "^[NT][NT] |per call" "$out/midsize-trace-$policy.txt" | sed 's/^/    /'
  done
fi

if want trainscale; then
  # The training step (Adam, batch 256, synthetic data) at each thread count, two rounds,
  # the counts taking turns: thousand samples/s of the median epoch; then
  # deepnet-step-breakdown --scaling (trainscale-host*.txt).
  say "training step at $T threads, small and deep net (deepnet-train-bench)"
  for round in 1 2; do
    for net in "784,512,256,10 16384" "784,1024,1024,512,10 8192"; do
      set -- $net
      for t in ${T//,/ }; do
        r=$(timeout 60 "$B/deepnet-train-bench" --synthetic --dims "$1" --batch 256 --threads "$t" \
              --m "$2" --epochs 3 2>&1 | sed -n 's/.*"samples_per_s_median": *\([0-9.]*\).*/\1/p')
        echo "round $round dims $1 threads $t samples/s ${r:-failed}"
      done
    done
  done | tee "$out/trainscale.txt" | sed 's/^/  /'
  # The same steps paired with the host's own speed-up: the thread counts take turns in one
  # process, and the FMA loop runs on as many threads after each sample (needs two counts
  # or more, at most 16).
  counts=$(echo "$T" | tr ',' '\n' | wc -l)
  [ "$counts" -ge 2 ] && [ "$counts" -le 16 ] && for net in "" --deep; do
    timeout 120 "$B/deepnet-step-breakdown" --scaling "$T" --rounds 3 --steps 20 $net \
      >"$out/trainscale-host${net:+-deep}.txt" 2>&1 ||
      echo "  deepnet-step-breakdown --scaling failed or timed out: $out/trainscale-host${net:+-deep}.txt"
    grep -E "^(deepnet-step|\| [0-9])" "$out/trainscale-host${net:+-deep}.txt" | sed 's/^/  /'
  done
fi

if want pair; then
  # One-call-per-panel tiles against a call per tile, and the other optional kernels, paired
  # in one process (deepnet-kernel-pair: with/without < 1 means the entry is faster).
  say "paired kernel entries (deepnet-kernel-pair)"
  for c in "ukr_rows TN 256 128 10" "ukr_rows TN 256 256 10" "ukr_rows TN 256 512 10" \
           "ukr_rows NN 512 256 784" "ukr_pack_a NN 512 128 784" "small NN 10 256 256"; do
    timeout 60 "$B/deepnet-kernel-pair" $c 30 2>&1 | tail -1 | sed "s|^|$c: |"
  done | tee "$out/pair.txt" | sed 's/^/  /'
fi

if want gemm; then
  # OpenBLAS 0.3.21's DYNAMIC_ARCH does not know some newer CPUs (Emerald Rapids, model
  # 207, was one) and falls back to its SSE3 'Prescott' kernels, a tenth of the speed:
  # name the matching core type for it unless the user chose one.
  if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ "$isa" != scalar ]; then
    core=$("$B/bench-gemm" --benchmark_filter='NN/256-10_m128/openblas/own/threads:1$' \
      --benchmark_min_time=0.001 2>&1 | sed -n 's/^openblas: .* \([A-Za-z0-9]*\) MAX_THREADS.*/\1/p')
    if [ "$core" = Prescott ] || [ "$core" = Nehalem ] || [ "$core" = Core2 ]; then
      want_core=Haswell; [ "$isa" = avx512 ] && want_core=SkylakeX
      echo "  OpenBLAS chose its $core kernels on this $isa CPU: using OPENBLAS_CORETYPE=$want_core"
      echo "OPENBLAS_CORETYPE set by run.sh: $want_core (OpenBLAS chose $core)" >>"$out/system.txt"
      export OPENBLAS_CORETYPE=$want_core
    fi
  fi
  # Each library in its own process: a library's idle threads (OpenBLAS spins after a
  # call, OpenMP may) would otherwise take cores from the next one measured.
  # BUNDLE_GEMM_ROUNDS=N: each library N times, taking turns (the report takes medians).
  shapes=${BUNDLE_GEMM_FILTER:-(m256|sq1024|sq2048)}
  rounds=${BUNDLE_GEMM_ROUNDS:-1}
  case "$rounds" in '' | *[!0-9]* | 0*)
    echo "  BUNDLE_GEMM_ROUNDS must be a positive integer, not '$rounds': one round"; rounds=1 ;;
  esac
  # Files of an earlier run into the same folder would be merged as extra rounds.
  rm -f "$out"/gemm-*.json "$out"/gemm-*.txt
  for round in $(seq 1 "$rounds"); do
    for lib in "deepnet/$isa" openblas onednn; do
      name=${lib%%/*}; [ "$rounds" -gt 1 ] && name=$name-r$round
      say "gemm $name"
      timeout 300 "$B/bench-gemm" "${common[@]}" --benchmark_filter="$shapes.*/$lib/" \
        --benchmark_out="$out/gemm-$name.json" >"$out/gemm-$name.txt" 2>&1 ||
        echo "  bench-gemm ($name) failed or timed out: $out/gemm-$name.txt"
    done
  done
fi

if want train; then
  say "train (step and epoch)"
  timeout 300 "$B/bench-train" "${common[@]}" --benchmark_filter="deepnet/$isa/" \
    --benchmark_out="$out/train.json" >"$out/train.txt" 2>&1 ||
    echo "  bench-train failed or timed out: $out/train.txt"
fi

if want breakdown; then
  say "where a step goes (batch 256)"
  for deep in 0 1; do
    for t in 1 "$n"; do
      timeout 60 "$B/deepnet-step-breakdown" "$t" "$deep" 256 200 2>&1 | sed 's/^/  /'
    done
  done | tee "$out/breakdown.txt"
fi

if want pytorch; then
  py=
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import torch' 2>/dev/null; then py=$(command -v "$c"); break; fi
  done
  if [ -n "$py" ]; then
    say "PyTorch ($py)"
    PYTHONUNBUFFERED=1 timeout 600 "$py" "$here/pytorch_compare.py" --synthetic \
      --driver "$B/deepnet-train-bench" --threads "1,$n" --batch 256 --m 8192 --epochs 3 \
      --json "$out/pytorch.json" 2>&1 | tee "$out/pytorch.txt"
  else
    say "no python3 with torch here: PyTorch comparison skipped"
  fi
fi
say "done: $out"
