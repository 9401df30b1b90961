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

enum { PASSES = 20000, RUNS = 5 };

typedef struct ping {
  _Alignas(64) atomic_long turn; /* odd: the partner's move, even: the caller's */
  atomic_int abort;
  cpu_set_t at;
} ping;

static bool pin_to(const cpu_set_t *at) {
  return pthread_setaffinity_np(pthread_self(), sizeof *at, at) == 0;
}

static void *answer(void *arg) {
  ping *p = arg;
  if (!pin_to(&p->at)) {
    atomic_store(&p->abort, 1);
    return NULL;
  }
  for (long i = 0; i < (long)PASSES * RUNS; i++) {
    while (atomic_load_explicit(&p->turn, memory_order_acquire) != 2 * i + 1)
      if (atomic_load_explicit(&p->abort, memory_order_relaxed)) return NULL;
    atomic_store_explicit(&p->turn, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double host_line_round_trip_ns(void) {
  cpu_set_t allowed, mine, old;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return 0;
  static ping p; /* one probe at a time (the benchmarks' main thread) */
  int first = -1, second = -1;
  for (int c = 0; c < CPU_SETSIZE && second < 0; c++)
    if (CPU_ISSET(c, &allowed)) {
      if (first < 0)
        first = c;
      else
        second = c;
    }
  CPU_ZERO(&mine);
  CPU_SET(first, &mine);
  CPU_ZERO(&p.at);
  CPU_SET(second, &p.at);
  atomic_store(&p.turn, 0);
  atomic_store(&p.abort, 0);
  if (pthread_getaffinity_np(pthread_self(), sizeof old, &old) != 0) return 0;
  pthread_t partner;
  if (!pin_to(&mine)) return 0;
  if (pthread_create(&partner, NULL, answer, &p) != 0) {
    pin_to(&old);
    return 0;
  }
  double ns[RUNS];
  bool ok = true;
  for (long r = 0, i = 0; r < RUNS && ok; r++) {
    const double t0 = now_s();
    for (long n = 0; n < PASSES && ok; n++, i++) {
      atomic_store_explicit(&p.turn, 2 * i + 1, memory_order_release);
      while (atomic_load_explicit(&p.turn, memory_order_acquire) != 2 * i + 2)
        if (atomic_load_explicit(&p.abort, memory_order_relaxed)) {
          ok = false;
          break;
        }
    }
    ns[r] = (now_s() - t0) / PASSES * 1e9;
  }
  atomic_store(&p.abort, 1);
  pthread_join(partner, NULL);
  pin_to(&old);
  if (!ok) return 0;
  qsort(ns, RUNS, sizeof ns[0], by_value);
  return ns[RUNS / 2];
}
