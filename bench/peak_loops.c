/* Peak loops compiled once per ISA (see bench/meson.build): PEAK_SUFFIX names the
 * variant, PEAK_VBYTES is its vector width; the ISA flags come from the build. */
#include <stddef.h>

#include "peak.h"

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, PEAK_SUFFIX)

enum { LANES = PEAK_VBYTES / 4 };
/* Independent chains: enough to cover FMA latency (4-5 cycles) times two FMA ports. */
enum { PEAK_ACCS = 12 };

typedef float vf __attribute__((vector_size(PEAK_VBYTES)));

double FN(peak_fma_flops)(void) { return 2.0 * LANES * PEAK_ACCS; }

double FN(peak_fma)(long iters) {
  vf acc[PEAK_ACCS];
  /* x slightly below 1 and y small keep every chain finite and normal: it converges
   * to y / (1 - x) without overflow or denormals. */
  vf x, y;
  for (int l = 0; l < LANES; l++) {
    x[l] = 0.999999f;
    y[l] = 1e-6f;
  }
  for (int a = 0; a < PEAK_ACCS; a++)
    for (int l = 0; l < LANES; l++) acc[a][l] = (float)(a + l) * 0.01f;
  for (long i = 0; i < iters; i++) {
    /* Keeps x and y in registers but opaque, so the chains cannot be folded. */
    __asm__ volatile("" : "+x"(x), "+x"(y));
    for (int a = 0; a < PEAK_ACCS; a++) acc[a] = acc[a] * x + y;
  }
  double s = 0.0;
  for (int a = 0; a < PEAK_ACCS; a++)
    for (int l = 0; l < LANES; l++) s += acc[a][l];
  return s;
}

void FN(peak_triad)(size_t n, float *restrict a, const float *restrict b, const float *restrict c,
                    float s, int threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

void FN(peak_copy)(size_t n, float *restrict a, const float *restrict b, int threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) a[i] = b[i];
}

void FN(peak_fill)(size_t n, float *x, float v, int threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) x[i] = v;
}
