/* Paired runs of one GEMM in one process: the active kernel table as it is, against the
 * same table with one optional kernel taken out, alternating ~20 ms samples of each.
 * On a shared host whose speed moves by tens of percent between processes for minutes at
 * a time, two builds timed one after the other compare the host's phases, not the code;
 * within one process, neighbouring samples see the same phase, and the median of the
 * per-pair ratios (with its quartiles) is the comparison docs/kernels.md reports.
 *
 *   deepnet-kernel-pair VARIANT OP M N K [pairs]
 *
 * VARIANT names the table entry removed in the "without" runs:
 *   small_dot   the small-M dot kernel (sgemm_small_dot): the 16-row small kernel instead
 *   ukr_rows    one call per column panel (sgemm_ukr_rows): a call per tile instead
 *   ukr_pack_a  the micro-kernel that packs op(A) = A as it reads it: a packing pass instead
 *   small       the small-M path (sgemm_small and sgemm_small_dot): the general path
 * OP is NN, NT, TN or TT; one thread (dn_gemm on the calling thread), alpha 1, beta 0,
 * operands 64-byte aligned, lda/ldb/ldc the minimum. The ISA is DEEPNET_ISA's (or the
 * best available). Prints both speeds' medians and with/without as "ratio [p25 p75]". */
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

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int usage(void) {
  fprintf(stderr, "usage: deepnet-kernel-pair small_dot|ukr_rows|ukr_pack_a|small NN|NT|TN|TT M N K [pairs]\n");
  return 2;
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  const unsigned long long v = strtoull(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v == 0 || v > (1ull << 16)) return 1;
  *out = (size_t)v;
  return 0;
}

static float *filled(size_t n, unsigned seed) {
  float *x = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  if (x)
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u + seed) % 1000) / 500.0f - 1.0f;
  return x;
}

int main(int argc, char **argv) {
  if (argc < 6 || argc > 7 || strlen(argv[2]) != 2) return usage();
  const char ta = argv[2][0], tb = argv[2][1];
  size_t M, N, K, pairs = 40;
  if ((ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T') || parse_size(argv[3], &M) ||
      parse_size(argv[4], &N) || parse_size(argv[5], &K) || (argc == 7 && parse_size(argv[6], &pairs)))
    return usage();
  const dn_kernel_table *with = dn_kernels();
  dn_kernel_table without = *with;
  if (strcmp(argv[1], "small_dot") == 0) {
    without.sgemm_small_dot = NULL;
  } else if (strcmp(argv[1], "ukr_rows") == 0) {
    without.sgemm_ukr_rows = NULL;
  } else if (strcmp(argv[1], "ukr_pack_a") == 0) {
    without.sgemm_ukr_pack_a = NULL;
  } else if (strcmp(argv[1], "small") == 0) {
    without.sgemm_small = NULL;
    without.sgemm_small_dot = NULL;
  } else {
    return usage();
  }
  if (memcmp(&without, with, sizeof without) == 0)
    fprintf(stderr, "note: the %s table has no %s entry: both sides run the same code\n",
            dn_isa_name(with->isa), argv[1]);
  const size_t lda = ta == 'N' ? M : K, ldb = tb == 'N' ? K : N;
  float *A = filled(M * K, 1), *B = filled(K * N, 2), *C = filled(M * N, 3);
  double *ratio = malloc(pairs * sizeof(double)), *speed[2] = {malloc(pairs * sizeof(double)),
                                                                malloc(pairs * sizeof(double))};
  if (!A || !B || !C || !ratio || !speed[0] || !speed[1]) {
    fprintf(stderr, "deepnet-kernel-pair: out of memory\n");
    return 1;
  }
  const dn_kernel_table *table[2] = {with, &without};
  /* Calls per sample: about 20 ms of the table as it is, after a warm-up. */
  size_t reps = 0;
  for (const double t0 = now_s(); now_s() - t0 < 0.02; reps++)
    dn_gemm(with, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, M);
  const double flops = 2.0 * (double)M * (double)N * (double)K * (double)reps;
  for (size_t p = 0; p < pairs; p++) {
    double seconds[2];
    for (int i = 0; i < 2; i++) {
      const int v = (p % 2) ? 1 - i : i; /* alternate which side goes first */
      const double t0 = now_s();
      for (size_t r = 0; r < reps; r++)
        dn_gemm(table[v], ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, M);
      seconds[v] = now_s() - t0;
    }
    ratio[p] = seconds[1] / seconds[0];
    speed[0][p] = flops / seconds[0] / 1e9;
    speed[1][p] = flops / seconds[1] / 1e9;
  }
  qsort(ratio, pairs, sizeof *ratio, by_value);
  qsort(speed[0], pairs, sizeof(double), by_value);
  qsort(speed[1], pairs, sizeof(double), by_value);
  printf("%s %c%c %zux%zux%zu %s, %zu pairs: with %.1f, without %.1f GFLOP/s (medians); "
         "with/without %.3f [%.3f %.3f]\n",
         argv[1], ta, tb, M, N, K, dn_isa_name(with->isa), pairs, speed[0][pairs / 2],
         speed[1][pairs / 2], ratio[pairs / 2], ratio[pairs / 4], ratio[3 * pairs / 4]);
  free(A), free(B), free(C), free(ratio), free(speed[0]), free(speed[1]);
  return 0;
}
