/* Where a threaded dn_sgemm's time goes, thread by thread: how late each thread starts on
 * a call, how long it computes, how long it waits (between the packing and the product
 * phase, or for the others at the end), and how fast its busy time runs against the same
 * product on one thread. On a machine whose threads scale less than its FMA units, this
 * says whether the loss is idle time (balance, late wake-ups, the phase barrier) or
 * slower busy time (memory traffic, a lower all-core clock, a vCPU the host shares).
 *
 *   deepnet-gemm-trace THREADS M N K [calls] [NN|NT|TN|TT]
 *
 * Runs `calls` (default 20) products at one thread, then at THREADS traced
 * (dn_pool_trace), after two warm-up calls each; prints one line per thread and a
 * summary. Columns: chunks and busy ms per call; busy as a share of the jobs' wall time;
 * the mean delay from the job's publication to the thread's first chunk (thread 0 is the
 * caller, which publishes it); and microseconds per chunk (the chunks of a phase differ by
 * at most one tile, so a slow thread shows as a high figure). The summary's busy speed is
 * the product's flops over all threads' busy time, against one thread's GFLOP/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deepnet.h"
#include "internal.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void) {
  fprintf(stderr, "usage: deepnet-gemm-trace THREADS M N K [calls] [NN|NT|TN|TT]\n");
  return 2;
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  const unsigned long long v = strtoull(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v == 0 || v > (1ull << 20)) return 1;
  *out = (size_t)v;
  return 0;
}

int main(int argc, char **argv) {
  size_t threads, M, N, K, calls = 20;
  if (argc < 5 || parse_size(argv[1], &threads) || parse_size(argv[2], &M) || parse_size(argv[3], &N) ||
      parse_size(argv[4], &K) || (argc > 5 && parse_size(argv[5], &calls)) || threads > DN_MAX_PLAN_THREADS)
    return usage();
  const char *op = argc > 6 ? argv[6] : "NN";
  if (strlen(op) != 2 || (op[0] != 'N' && op[0] != 'T') || (op[1] != 'N' && op[1] != 'T')) return usage();
  const char ta = op[0], tb = op[1];
  const size_t lda = ta == 'N' ? M : K, ldb = tb == 'N' ? K : N;
  float *A = malloc(M * K * sizeof *A), *B = malloc(K * N * sizeof *B), *C = malloc(M * N * sizeof *C);
  if (!A || !B || !C) {
    fprintf(stderr, "deepnet-gemm-trace: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < M * K; i++) A[i] = (float)(i % 61) / 61.0f - 0.5f;
  for (size_t i = 0; i < K * N; i++) B[i] = (float)(i % 53) / 53.0f - 0.5f;
  const double flops = 2.0 * (double)M * (double)N * (double)K;

  dn_set_num_threads(1);
  for (int w = 0; w < 2; w++) dn_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, M);
  double t = now_s();
  for (size_t c = 0; c < calls; c++) dn_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, M);
  const double one_thread = flops * (double)calls / (now_s() - t) * 1e-9;

  dn_set_num_threads((int)threads);
  for (int w = 0; w < 2; w++) dn_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, M);
  static dn_pool_trace trace;
  dn_pool_trace_begin(&trace);
  t = now_s();
  for (size_t c = 0; c < calls; c++) dn_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, M);
  const double wall = now_s() - t;
  dn_pool_trace_end();
  if (trace.jobs == 0) {
    printf("%s %zux%zux%zu at %zu threads ran on one thread (too small to split): %.1f GFLOP/s\n", op, M,
           N, K, threads, flops * (double)calls / wall * 1e-9);
    return 0;
  }

  double busy_total = 0;
  for (size_t i = 0; i < threads; i++) busy_total += trace.thread[i].busy_s;
  printf("%s %zux%zux%zu, %zu calls, %zu pool jobs: one thread %.1f GFLOP/s, %zu threads %.1f GFLOP/s "
         "(%.2fx)\n",
         op, M, N, K, calls, trace.jobs, one_thread, threads, flops * (double)calls / wall * 1e-9,
         flops * (double)calls / wall * 1e-9 / one_thread);
  printf("thread  chunks/call  busy ms/call  busy %%  start delay us  us/chunk\n");
  const double job_wall = trace.wall_s / (double)calls;
  for (size_t i = 0; i < threads; i++) {
    const double busy = trace.thread[i].busy_s / (double)calls;
    printf("%6zu  %11.2f  %12.3f  %6.1f  %14.1f  %8.1f\n", i,
           (double)trace.thread[i].chunks / (double)calls, busy * 1e3, job_wall > 0 ? 100.0 * busy / job_wall : 0,
           trace.thread[i].jobs ? trace.thread[i].delay_s / (double)trace.thread[i].jobs * 1e6 : 0.0,
           trace.thread[i].chunks ? trace.thread[i].busy_s / (double)trace.thread[i].chunks * 1e6 : 0.0);
  }
  const double mean_busy = busy_total / (double)threads / (double)calls;
  printf("per call: wall %.3f ms (in jobs %.3f), mean busy %.3f ms (%.1f%%); busy speed %.1f GFLOP/s a "
         "thread = %.2fx one thread\n",
         wall / (double)calls * 1e3, job_wall * 1e3, mean_busy * 1e3, 100.0 * mean_busy / job_wall,
         flops * (double)calls / busy_total * 1e-9, flops * (double)calls / busy_total * 1e-9 / one_thread);
  free(A), free(B), free(C);
  return 0;
}
