// peak suite: this CPU's ceilings, against which the other suites are read. FMA
// throughput per ISA (independent multiply-add chains at the ISA's width, every
// thread at once) and STREAM-like triad a = b + s c and copy a = b at sizes that sit in
// L2, in L3 and in memory (bytes counted as STREAM does: no write-allocate traffic).
#include <omp.h>

#include <cstdlib>
#include <string>

#include "bench_common.h"

namespace {

volatile double sink;

void fma(benchmark::State &st, dn_isa isa, int threads) {
  const bench::PeakFns f = bench::peak_fns(isa);
  const long iters = 1 << 16;
  for (auto _ : st) {
    double s = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    s += f.fma(iters);
    sink = s;
  }
  st.counters["threads"] = threads;
  bench::set_flop_counters(st, f.fma_flops() * iters * threads, bench::peak_for(isa, threads));
}

void stream(benchmark::State &st, dn_isa isa, int threads, std::size_t n, bool triad) {
  const bench::PeakFns f = bench::peak_fns(isa);
  // First touch by the threads that use each part, as STREAM does.
  struct Array {
    float *p;
    ~Array() { std::free(p); }
  } a{}, b{}, c{};
  for (Array *x : {&a, &b, &c}) {
    x->p = static_cast<float *>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64));
    if (!x->p) {
      st.SkipWithError("out of memory");
      return;
    }
    f.fill(n, x->p, 1.0f, threads);
  }
  for (auto _ : st) {
    if (triad)
      f.triad(n, a.p, b.p, c.p, 0.5f, threads);
    else
      f.copy(n, a.p, b.p, threads);
    benchmark::ClobberMemory();
  }
  st.counters["threads"] = threads;
  st.counters["bytes"] = (triad ? 12.0 : 8.0) * n;
  st.counters["GBps"] = bench::per_second((triad ? 12.0 : 8.0) * n * 1e-9);
}

// Per array: 256 KiB (L2), 4 MiB (L2/L3 edge), 64 MiB (mostly memory).
const std::size_t kSizes[] = {1u << 16, 1u << 20, 1u << 24};

void register_all() {
  for (int t : bench::threads())
    for (dn_isa isa : bench::isas()) {
      const std::string variant = bench::peak_fns(isa).name;
      const std::string thr = "threads:" + std::to_string(t);
      bench::clock_for(benchmark::RegisterBenchmark(
          bench::name({"peak", "fma", "-", variant, dn_isa_name(isa), thr}).c_str(), fma, isa, t), t);
      for (std::size_t n : kSizes)
        for (bool triad : {true, false})
          bench::clock_for(benchmark::RegisterBenchmark(
              bench::name({"peak", triad ? "triad" : "copy", "n" + std::to_string(n), variant,
                           dn_isa_name(isa), thr}).c_str(),
              stream, isa, t, n, triad), t)
              ->Unit(benchmark::kMicrosecond);
    }
}

}  // namespace

int main(int argc, char **argv) { return bench::run_main(argc, argv, register_all); }
