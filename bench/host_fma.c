/* The host's FMA capacity on T threads (host_fma.h). */
#include "host_fma.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "peak.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile double sink; /* keeps the loops' results alive (written by the caller only) */

host_fma host_fma_for(dn_isa isa, double seconds) {
  host_fma h = {0};
#if defined(__x86_64__)
  if (isa == DN_ISA_AVX512) h.loop = peak_fma_avx512, h.flops = peak_fma_flops_avx512;
  else if (isa == DN_ISA_AVX2) h.loop = peak_fma_avx2, h.flops = peak_fma_flops_avx2;
  else h.loop = peak_fma_sse2, h.flops = peak_fma_flops_sse2;
#else
  (void)isa;
  h.loop = peak_fma_generic, h.flops = peak_fma_flops_generic;
#endif
  /* Double until a run takes a tenth of the target, then scale: the fastest of three
   * runs sets the rate, as other processes only ever slow a run down. */
  long iters = 1000;
  double dt = 0;
  for (;;) {
    const double t0 = now_s();
    sink = h.loop(iters);
    dt = now_s() - t0;
    if (dt >= seconds / 10 || iters > LONG_MAX / 4) break;
    iters *= 2;
  }
  for (int r = 0; r < 2; r++) {
    const double t0 = now_s();
    sink = h.loop(iters);
    const double t = now_s() - t0;
    if (t < dt) dt = t;
  }
  const double scaled = dt > 0 ? (double)iters * seconds / dt : (double)iters;
  h.iters = scaled < 1000 ? 1000 : scaled > (double)(LONG_MAX / 2) ? LONG_MAX / 2 : (long)scaled;
  return h;
}

typedef struct probe_run {
  const host_fma *h;
  atomic_int *go; /* 0: wait, 1: run, -1: leave without running */
  double result;  /* the loop's value, kept alive through sink by the caller */
  double end;     /* when this thread's run finished */
} probe_run;

static void *run_loop(void *arg) {
  probe_run *r = arg;
  int go;
  /* Yield while waiting: with more threads than CPUs the spinners would otherwise take
   * the CPU from the caller that is still creating the rest. */
  while ((go = atomic_load(r->go)) == 0) sched_yield();
  if (go > 0) {
    r->result = r->h->loop(r->h->iters);
    r->end = now_s();
  }
  return NULL;
}

double host_fma_gflops(const host_fma *h, int threads) {
  if (threads < 1 || !h->loop) return 0;
  probe_run *runs = calloc((size_t)threads, sizeof *runs);
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  if (!runs || !ids) {
    free(runs), free(ids);
    return 0;
  }
  /* The others spin until every thread exists, then all start at once: the caller is
   * thread 0, and the clock starts at the release (a thread the host runs late counts
   * as the host's slowness, which is what is measured). */
  atomic_int go = 0;
  int started = 1;
  for (int i = 0; i < threads; i++) runs[i] = (probe_run){.h = h, .go = &go};
  for (; started < threads; started++)
    if (pthread_create(&ids[started], NULL, run_loop, &runs[started]) != 0) break;
  double gflops = 0;
  const bool all = started == threads;
  const double t0 = now_s();
  atomic_store(&go, all ? 1 : -1);
  if (all) {
    runs[0].result = h->loop(h->iters);
    runs[0].end = now_s();
  }
  double last = runs[0].end, results = runs[0].result;
  for (int i = 1; i < started; i++) {
    pthread_join(ids[i], NULL);
    if (runs[i].end > last) last = runs[i].end;
    results += runs[i].result;
  }
  sink = results;
  if (all && last > t0) gflops = h->flops() * (double)h->iters * threads / (last - t0) * 1e-9;
  free(runs), free(ids);
  return gflops;
}
