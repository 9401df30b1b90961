// Shared by the bench suites: which ISAs and thread counts to sweep, the measured
// FMA peak, aligned buffers, benchmark names and the run's context in the JSON.
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <vector>

extern "C" {
#include "deepnet.h"
}

namespace bench {

// ISAs to sweep: every one the CPU has (scalar up to dn_isa_detected()), or the
// comma list in DEEPNET_BENCH_ISAS ("avx2,avx512").
std::vector<dn_isa> isas();
// Thread counts: 1, 2, 4, ... up to the cores hwloc sees, plus that count; or the
// comma list in DEEPNET_BENCH_THREADS ("1,2").
std::vector<int> threads();
int num_cores();

// The peak loop variant that matches an ISA's kernels ("sse2" for scalar on x86,
// whose kernels are compiled for the baseline), its measured one-thread FMA
// peak in GFLOP/s (best of many short runs, cached; DEEPNET_BENCH_PEAK="avx512=222,..."
// fixes the one-thread figures instead) and the n-thread peak (all threads running the
// loop at once, wall time).
struct PeakFns {
  const char *name;  // "sse2", "avx2", "avx512", "generic"
  double (*fma)(long iters);
  double (*fma_flops)(void);
  void (*triad)(std::size_t n, float *a, const float *b, const float *c, float s, int threads);
  void (*copy)(std::size_t n, float *a, const float *b, int threads);
  void (*fill)(std::size_t n, float *x, float v, int threads);
};
PeakFns peak_fns(dn_isa isa);
double fma_peak_gflops(dn_isa isa, int threads);
// The % of peak denominator used by every suite: threads x one-thread peak.
double peak_for(dn_isa isa, int threads);
// The widest ISA of the sweep: OpenBLAS and oneDNN pick their own kernels, so
// their % of peak is against the best peak of the CPU.
dn_isa best_isa();

// 64-byte aligned float buffer, filled with uniform values in [lo, hi).
struct Buffer {
  explicit Buffer(std::size_t n, float lo = -1.0f, float hi = 1.0f, unsigned seed = 1);
  ~Buffer();
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  float *data() { return p; }
  const float *data() const { return p; }
  std::size_t size() const { return n; }
  float *p;
  std::size_t n;
};

// Rate counters (divided by the measured time of the run: real time with UseRealTime).
inline benchmark::Counter per_second(double per_iteration) {
  return benchmark::Counter(per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}
// The clock a benchmark is timed (and its rates computed) with: with one thread, the
// thread's CPU time, so time slices lost to other processes on a shared machine are not
// counted; with more, wall time (the CPU time of the main thread alone would miss the
// others' work, and waiting for a descheduled thread is part of the cost).
benchmark::internal::Benchmark *clock_for(benchmark::internal::Benchmark *b, int threads);

// Sets GFLOP/s, pct_peak (against peak_gflops) and the shape counters.
void set_flop_counters(benchmark::State &st, double flops_per_iter, double peak_gflops);

// Makes every later deepnet call use isa and threads, with the AMX GEMM path on or off;
// false (and the state skipped with a message) if the library refuses.
bool use(benchmark::State &st, dn_isa isa, int threads, bool amx = false);

// The kernel sets a suite sweeps: each ISA of isas() (its FMA kernels alone, the AMX path
// off), then "amx" (avx512 with the AMX GEMM path on) where the CPU has tiles and
// DEEPNET_BENCH_ISAS, if set, names it.
struct KernelSet {
  dn_isa isa;
  bool amx;
  std::string name;
};
std::vector<KernelSet> kernel_sets();

// "a/b/c" from the parts: benchmark names are suite/op/shape/lib/isa/threads:N so the
// report scripts can split them (see tools/bench-report.py).
std::string name(const std::vector<std::string> &parts);

// Machine and library facts into the JSON "context": CPU, cores, caches, NUMA nodes,
// deepnet version and ISAs, compiler, OpenBLAS/oneDNN versions, and the measured peaks
// (peak_gflops_<isa>_<threads>t) that the suite's pct_peak counters used.
void add_context();

// Initialize Google Benchmark, call register_fn, run, shut down: every suite's main.
int run_main(int argc, char **argv, void (*register_fn)());

}  // namespace bench

#endif  // BENCH_COMMON_H
