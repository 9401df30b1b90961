/* The peak loops of the bench suites: FMA throughput and STREAM-like bandwidth,
 * one set per ISA (bench/peak_loops.c compiled with each ISA's flags). */
#ifndef BENCH_PEAK_H
#define BENCH_PEAK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Each peak_fma_<isa>(iters) runs iters rounds of PEAK_ACCS independent
 * multiply-add chains on vectors of its ISA's width, in the calling thread, and
 * returns a value that depends on all of them. peak_fma_flops_<isa>() is the
 * number of floating-point operations (2 per lane per chain) in one round. */
#define PEAK_DECLARE(sfx)                                                                   \
  double peak_fma_##sfx(long iters);                                                        \
  double peak_fma_flops_##sfx(void);                                                        \
  /* a[i] = b[i] + s * c[i] over n floats, OpenMP static split over threads */              \
  void peak_triad_##sfx(size_t n, float *a, const float *b, const float *c, float s,        \
                        int threads);                                                       \
  /* a[i] = b[i] */                                                                         \
  void peak_copy_##sfx(size_t n, float *a, const float *b, int threads);                    \
  /* first touch of x by the threads that will use it, with the same static split */       \
  void peak_fill_##sfx(size_t n, float *x, float v, int threads);

PEAK_DECLARE(sse2)
PEAK_DECLARE(avx2)
PEAK_DECLARE(avx512)
PEAK_DECLARE(generic)

#ifdef __cplusplus
}
#endif
#endif /* BENCH_PEAK_H */
