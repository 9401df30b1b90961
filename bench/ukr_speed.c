/* How fast the active micro-kernel runs with its operands in the caches, against the
 * machine's FMA loop on the same thread: the ceiling every GEMM of that kernel sits under.
 * A GEMM at 88% of the FMA loop whose tile alone reaches 98% loses its 10% in packing and
 * memory traffic; one whose tile reaches 90% loses it in the tile. Three levels:
 *
 *   tile    one MR x k micro-panel of A, one k x NR of B, one C tile: all in L1/L2,
 *           the call repeated (the kernel's own loop and its stores)
 *   panel   8 A micro-panels down one B micro-panel (B stays in L1, A streams from L2):
 *           the macro-kernel's inner loop
 *   block   the macro-kernel: 8 A micro-panels x 16 B micro-panels, every tile of the
 *           block (A and B together stay within a 2 MiB L2 at k = 384 on AVX-512)
 *
 *   deepnet-ukr-speed [--asm] [k] [samples]   (default k = the table's K block, 9 samples)
 *
 * The ISA is DEEPNET_ISA's (or the best available); alpha 1, beta 1 (C read and written,
 * as in every K block after the first); full tiles only. Prints GFLOP/s (median of the
 * samples, ~50 ms each) and % of the FMA loop of the same ISA on this thread, measured in
 * between. --asm (AVX-512 kernels only) also times the candidate assembly k loops of
 * ukr_asm_avx512.c at each level, after checking that each gives the library tile's C bit
 * for bit over a whole block; the table then names the loop in a first column. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deepnet.h"
#include "internal.h"
#include "host_fma.h"
#if defined(__x86_64__)
#include "ukr_asm_avx512.h"
#endif

enum { PANEL_TILES = 8, BLOCK_PANELS = 16, MAX_SAMPLES = 99 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void fill(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u + seed) % 1000) / 500000.0f;
}

static float *filled(size_t n, unsigned seed) {
  float *x = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  if (x) fill(x, n, seed);
  return x;
}

/* The FMA loop of the ISA whose kernels run (host_fma.h picks it: x86, its vector width;
 * elsewhere the portable build), on this thread: the best of five ~20 ms runs. */
static double fma_loop_gflops(dn_isa isa) {
  const host_fma loop = host_fma_for(isa, 0.02);
  double best = 0;
  for (int s = 0; s < 5; s++) {
    const double g = host_fma_gflops(&loop, 1);
    if (g > best) best = g;
  }
  return best;
}

typedef struct level {
  const char *name;
  size_t tiles, panels; /* A micro-panels and B micro-panels the level walks */
} level;

/* A full tile at alpha 1, beta 1: the library's micro-kernel or a candidate loop. */
typedef void (*tile_fn)(size_t k, const float *Ap, const float *Bp, float *C, size_t ldc);
typedef struct loop {
  const char *name;
  tile_fn fn; /* NULL: the active table's sgemm_ukr */
} loop;

/* One pass of the level: every (panel, tile) pair once, as the macro-kernel orders them. */
static void pass(const dn_kernel_table *kt, const loop *lp, size_t k, const level *lv,
                 const float *Ap, const float *Bp, float *C, size_t ldc) {
  for (size_t j = 0; j < lv->panels; j++)
    for (size_t i = 0; i < lv->tiles; i++) {
      const float *a = Ap + i * kt->mr * k, *b = Bp + j * kt->nr * k;
      float *c = C + i * kt->mr + j * kt->nr * ldc;
      if (lp->fn)
        lp->fn(k, a, b, c, ldc);
      else
        kt->sgemm_ukr(k, 1.0f, a, b, 1.0f, c, ldc, kt->mr, kt->nr);
    }
}

static int usage(void) {
  fprintf(stderr, "usage: deepnet-ukr-speed [--asm] [k (1..4096)] [samples (1..%d)]\n", MAX_SAMPLES);
  return 2;
}

int main(int argc, char **argv) {
  const dn_kernel_table *kt = dn_kernels();
  size_t k = kt->sgemm_kc ? kt->sgemm_kc : DN_SGEMM_KC_DEFAULT, samples = 9;
  const bool asm_loops = argc > 1 && strcmp(argv[1], "--asm") == 0;
  char **args = argv + asm_loops;
  const int nargs = argc - asm_loops;
  if (nargs > 3 || (nargs > 1 && (k = strtoul(args[1], NULL, 10)) == 0) ||
      (nargs > 2 && ((samples = strtoul(args[2], NULL, 10)) == 0 || samples > MAX_SAMPLES)) ||
      k > 4096)
    return usage();
  loop loops[3] = {{kt->sgemm_ukr_name, NULL}};
  size_t n_loops = 1;
  if (asm_loops) {
#if defined(__x86_64__)
    if (kt->isa == DN_ISA_AVX512) {
      loops[n_loops++] = (loop){"asm, B broadcast", ukr_asm_avx512_broadcast};
      loops[n_loops++] = (loop){"asm, B {1to16}", ukr_asm_avx512_embedded};
    }
#endif
    if (n_loops == 1) {
      fprintf(stderr, "deepnet-ukr-speed: --asm times candidate loops of the AVX-512 32x12 tile; "
              "the active kernels are %s's (DEEPNET_ISA, or the CPU)\n", dn_isa_name(kt->isa));
      return 2;
    }
  }
  const level levels[] = {{"tile", 1, 1}, {"panel", PANEL_TILES, 1}, {"block", PANEL_TILES, BLOCK_PANELS}};
  const size_t ldc = PANEL_TILES * kt->mr, c_floats = ldc * BLOCK_PANELS * kt->nr;
  float *Ap = filled(PANEL_TILES * kt->mr * k, 1), *Bp = filled(BLOCK_PANELS * kt->nr * k, 2),
        *C = filled(c_floats, 3), *C_ref = filled(c_floats, 3);
  if (!Ap || !Bp || !C || !C_ref) {
    fprintf(stderr, "deepnet-ukr-speed: out of memory\n");
    return 1;
  }
  /* A candidate is timed only if its block pass leaves C as the library tile's does. */
  pass(kt, &loops[0], k, &levels[2], Ap, Bp, C_ref, ldc);
  for (size_t v = 1; v < n_loops; v++) {
    fill(C, c_floats, 3); /* C_ref's start */
    pass(kt, &loops[v], k, &levels[2], Ap, Bp, C, ldc);
    if (memcmp(C, C_ref, c_floats * sizeof *C) != 0) {
      fprintf(stderr, "deepnet-ukr-speed: the loop '%s' gives another C than %s: not timed\n",
              loops[v].name, kt->sgemm_ukr_name);
      return 1;
    }
  }
  const double peak = fma_loop_gflops(kt->isa);
  printf("deepnet-ukr-speed: %s (%zu x %zu), k = %zu, alpha 1, beta 1; FMA loop %.1f GFLOP/s on this thread\n",
         kt->sgemm_ukr_name, kt->mr, kt->nr, k, peak);
  if (asm_loops)
    printf("| loop | level | A + B KiB | GFLOP/s | %% of FMA loop |\n|---|---|---|---|---|\n");
  else
    printf("| level | A + B KiB | GFLOP/s | %% of FMA loop |\n|---|---|---|---|\n");
  for (size_t l = 0; l < sizeof levels / sizeof *levels; l++)
    for (size_t v = 0; v < n_loops; v++) {
      const level *lv = &levels[l];
      const loop *lp = &loops[v];
      const double per_pass = 2.0 * (double)(lv->tiles * kt->mr) * (double)(lv->panels * kt->nr) * (double)k;
      size_t reps = 1;
      for (double t0 = now_s(); now_s() - t0 < 0.01; reps *= 2) /* warm-up and calibration */
        for (size_t r = 0; r < reps; r++) pass(kt, lp, k, lv, Ap, Bp, C, ldc);
      double g[MAX_SAMPLES];
      for (size_t s = 0; s < samples; s++) {
        const double t0 = now_s();
        for (size_t r = 0; r < reps * 4; r++) pass(kt, lp, k, lv, Ap, Bp, C, ldc);
        g[s] = per_pass * (double)(reps * 4) / (now_s() - t0) * 1e-9;
      }
      qsort(g, samples, sizeof *g, by_value);
      const double kib = (double)((lv->tiles * kt->mr + lv->panels * kt->nr) * k * sizeof(float)) / 1024.0;
      if (asm_loops) printf("| %s ", lp->name);
      printf("| %s | %.0f | %.1f | %.1f |\n", lv->name, kib, g[samples / 2], 100.0 * g[samples / 2] / peak);
    }
  free(Ap), free(Bp), free(C), free(C_ref);
  return 0;
}
