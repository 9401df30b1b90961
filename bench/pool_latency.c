/* What one dispatch to deepnet's worker pool costs: the round trip of a job whose chunks do
 * (almost) nothing, so the time is waking the workers, handing out chunks and the join.
 * Every threaded GEMM and elementwise pass of a step pays it once; on a many-core machine
 * it decides how small a GEMM can still gain from all the cores.
 *
 *   deepnet-pool-latency [THREADS,...] [calls] [work_ns]
 *
 * For each thread count: `calls` back-to-back jobs (default 2000) of two chunks per thread,
 * each chunk spinning work_ns (default 0); prints the median, 10th and 90th percentile
 * microseconds per job. Runs with the process's OMP_WAIT_POLICY (passive by default: the
 * workers sleep between jobs, so each job pays their wake-up). */
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

int main(int argc, char **argv) {
  const char *list = argc > 1 ? argv[1] : "1,2";
  const int calls = argc > 2 ? atoi(argv[2]) : 2000;
  double work_s = (argc > 3 ? atof(argv[3]) : 0.0) * 1e-9;
  if (calls < 10) {
    fprintf(stderr, "usage: %s [THREADS,...] [calls >= 10] [work_ns]\n", argv[0]);
    return 2;
  }
  double *t = malloc((size_t)calls * sizeof *t);
  if (!t) return 1;
  char *copy = strdup(list);
  printf("threads  median_us  p10_us  p90_us  (%d jobs of 2 chunks per thread, %.0f ns each)\n",
         calls, work_s * 1e9);
  for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
    const int threads = atoi(tok);
    if (threads < 1) continue;
    const size_t n = 2 * (size_t)threads;
    for (int i = 0; i < 200; i++) dn_parallel_for(n, 1, threads, spin_chunk, &work_s);
    for (int i = 0; i < calls; i++) {
      const double a = now_s();
      dn_parallel_for(n, 1, threads, spin_chunk, &work_s);
      t[i] = now_s() - a;
    }
    qsort(t, (size_t)calls, sizeof *t, cmp_double);
    printf("%7d  %9.2f  %6.2f  %6.2f\n", threads, t[calls / 2] * 1e6, t[calls / 10] * 1e6,
           t[calls * 9 / 10] * 1e6);
  }
  free(copy);
  free(t);
  return 0;
}
