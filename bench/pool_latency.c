/* What one dispatch to deepnet's worker pool costs: the round trip of a job whose chunks do
 * (almost) nothing, so the time is waking the workers, handing out chunks and the join.
 * Every threaded GEMM and elementwise pass of a step pays it once; on a many-core machine
 * it decides how small a GEMM can still gain from all the cores.
 *
 *   deepnet-pool-latency [THREADS,...] [calls] [work_ns] [gap_us]
 *
 * For each thread count: `calls` jobs (default 2000) of two chunks per thread, each chunk
 * spinning work_ns (default 0), the caller busy for gap_us (default 0: back to back)
 * between them, as it is with its own work between two deepnet calls; prints the median,
 * 10th and 90th percentile microseconds per job and, from the pool's trace, how long after
 * a job's publication the first worker ran its first chunk (median over the jobs it ran a
 * chunk of, and in how many it did: a worker that wakes after the caller took every chunk
 * runs none; the trace's clock reads add about 0.2 us a job on the Zen 3 guest). Runs with
 * the process's OMP_WAIT_POLICY (passive by default: the workers
 * sleep between jobs, so each job pays their wake-up). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void spin_chunk(void *ctx, size_t begin, size_t end) {
  const double work_s = *(const double *)ctx * (double)(end - begin);
  if (work_s <= 0) return;
  const double until = now_s() + work_s;
  while (now_s() < until) {
  }
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void busy_for(double s) {
  const double until = now_s() + s;
  while (now_s() < until) {
  }
}

int main(int argc, char **argv) {
  const char *list = argc > 1 ? argv[1] : "1,2";
  const int calls = argc > 2 ? atoi(argv[2]) : 2000;
  double work_s = (argc > 3 ? atof(argv[3]) : 0.0) * 1e-9;
  const double gap_s = (argc > 4 ? atof(argv[4]) : 0.0) * 1e-6;
  bool list_ok = list[0] != '\0';
  for (const char *c = list; *c; c++) list_ok &= (*c >= '0' && *c <= '9') || *c == ',';
  if (!list_ok || calls < 10 || work_s < 0 || gap_s < 0) {
    fprintf(stderr, "usage: %s [THREADS,...] [calls >= 10] [work_ns >= 0] [gap_us >= 0]\n", argv[0]);
    return 2;
  }
  double *t = malloc((size_t)calls * sizeof *t), *delay = malloc((size_t)calls * sizeof *delay);
  char *copy = strdup(list);
  if (!t || !delay || !copy) return 1;
  printf("threads  median_us  p10_us  p90_us  worker_start_us  worker_ran  (%d jobs of 2 chunks per "
         "thread, %.0f ns each, %.0f us apart)\n", calls, work_s * 1e9, gap_s * 1e6);
  for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
    const int threads = atoi(tok);
    if (threads < 1) continue;
    const size_t n = 2 * (size_t)threads;
    for (int i = 0; i < 200; i++) dn_parallel_for(n, 1, threads, spin_chunk, &work_s);
    int ran = 0;
    static dn_pool_trace trace;
    for (int i = 0; i < calls; i++) {
      busy_for(gap_s);
      dn_pool_trace_begin(&trace);
      const double a = now_s();
      dn_parallel_for(n, 1, threads, spin_chunk, &work_s);
      t[i] = now_s() - a;
      dn_pool_trace_end();
      if (threads > 1 && trace.thread[1].jobs) delay[ran++] = trace.thread[1].delay_s;
    }
    qsort(t, (size_t)calls, sizeof *t, cmp_double);
    qsort(delay, (size_t)ran, sizeof *delay, cmp_double);
    char start[32] = "-";
    if (ran) snprintf(start, sizeof start, "%.2f", delay[ran / 2] * 1e6);
    printf("%7d  %9.2f  %6.2f  %6.2f  %15s  %10d\n", threads, t[calls / 2] * 1e6, t[calls / 10] * 1e6,
           t[calls * 9 / 10] * 1e6, start, ran);
  }
  free(copy);
  free(t);
  free(delay);
  return 0;
}
