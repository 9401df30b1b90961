/* What the host gives this process right now: the FMA loop on T threads at once, timed
 * next to each sample of a threaded benchmark. On a shared or virtual machine the
 * capacity of T threads moves from minute to minute (on the 2-vCPU Zen 3 guest the two
 * vCPUs ran the loop at 1.94-1.99x one thread in some minutes and at 1.00x in others,
 * with no steal time shown: docs/benchmarks.md, "Session 18"), so a speed-up measured
 * with threads means little without the host's own speed-up measured in the same rounds.
 * Plain C with POSIX threads, independent of OpenMP and of deepnet's pool. */
#ifndef BENCH_HOST_FMA_H
#define BENCH_HOST_FMA_H

#include "deepnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct host_fma {
  double (*loop)(long iters); /* the peak FMA loop of one ISA (bench/peak.h) */
  double (*flops)(void);      /* its floating-point operations per iteration */
  long iters;                 /* one run: about the calibrated time on one thread */
} host_fma;

/* The FMA loop of the ISA `isa`'s kernels use (x86: its vector width; elsewhere the
 * portable loop), calibrated so that one run takes about `seconds` on one thread. */
host_fma host_fma_for(dn_isa isa, double seconds);

/* GFLOP/s of `threads` threads (the caller one of them) each running the loop once, all
 * released together: total operations over the time from the release to the last one's
 * end. 0 if the threads could not be started (threads < 1, or out of resources). */
double host_fma_gflops(const host_fma *h, int threads);

/* Nanoseconds a cache line takes from one thread to another and back (a counter passed to
 * and fro, median of 5 runs of 20000), the two pinned to the first two CPUs this process
 * may run on. On the Zen 3 guest: ~70 ns in the minutes its two vCPUs were the two hardware
 * threads of one core, ~100 ns where they shared a cache, 440-490 ns where they shared
 * none (where an operand one thread packed and the other reads crosses between them:
 * docs/benchmarks.md, "Session 19"). 0 with fewer than two CPUs, or if the threads could
 * not be started or pinned. */
double host_line_round_trip_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* BENCH_HOST_FMA_H */
