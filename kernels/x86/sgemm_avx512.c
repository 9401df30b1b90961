/* AVX-512 SGEMM micro-kernel, 32x12: two zmm of A per k, twelve broadcasts of B. */
#include <immintrin.h>

#include "x86/x86.h"

enum { MR = 32, NR = 12 };

/* One column of the tile: alpha * acc + beta * C under the row masks; beta == 0
 * never reads C. */
static inline __attribute__((always_inline)) void store_col(float *c, __m512 r0, __m512 r1,
                                                            __m512 va, __m512 vb, bool read_c,
                                                            __mmask16 k0, __mmask16 k1) {
  r0 = _mm512_mul_ps(va, r0);
  r1 = _mm512_mul_ps(va, r1);
  if (read_c) {
    r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, c), r0);
    r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, c + 16), r1);
  }
  _mm512_mask_storeu_ps(c, k0, r0);
  _mm512_mask_storeu_ps(c + 16, k1, r1);
}

/* 24 accumulators + 2 A vectors leave 6 of the 32 zmm free; each B value is an
 * embedded-broadcast memory operand, so a k step is 2 loads + 12 broadcasts for
 * 24 FMAs. Every C element is one accumulator chain over k in order, whatever
 * its place in the tile: the result never depends on how C was tiled. */
void dn_sgemm_ukr_avx512_32x12(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                               float *C, size_t ldc, size_t m, size_t n) {
#define DN_ACC(j) __m512 c0_##j = _mm512_setzero_ps(), c1_##j = _mm512_setzero_ps()
  DN_ACC(0); DN_ACC(1); DN_ACC(2); DN_ACC(3); DN_ACC(4); DN_ACC(5);
  DN_ACC(6); DN_ACC(7); DN_ACC(8); DN_ACC(9); DN_ACC(10); DN_ACC(11);
#undef DN_ACC

  for (size_t j = 0; j < n && j < NR; j++) _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);

#define DN_FMA(j)                                      \
  do {                                                 \
    const __m512 b = _mm512_set1_ps(Bp[j]);            \
    c0_##j = _mm512_fmadd_ps(a0, b, c0_##j);           \
    c1_##j = _mm512_fmadd_ps(a1, b, c1_##j);           \
  } while (0)
  for (size_t p = 0; p < k; p++) {
    const __m512 a0 = _mm512_loadu_ps(Ap), a1 = _mm512_loadu_ps(Ap + 16);
    DN_FMA(0); DN_FMA(1); DN_FMA(2); DN_FMA(3); DN_FMA(4); DN_FMA(5);
    DN_FMA(6); DN_FMA(7); DN_FMA(8); DN_FMA(9); DN_FMA(10); DN_FMA(11);
    Ap += MR;
    Bp += NR;
  }
#undef DN_FMA

  const size_t m0 = m < 16 ? m : 16, m1 = m > 16 ? m - 16 : 0;
  const __mmask16 k0 = (__mmask16)((1u << m0) - 1u), k1 = (__mmask16)((1u << m1) - 1u);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const bool read_c = beta != 0.0f;
#define DN_STORE(j) \
  if (n > j) store_col(C + j * ldc, c0_##j, c1_##j, va, vb, read_c, k0, k1)
  DN_STORE(0); DN_STORE(1); DN_STORE(2); DN_STORE(3); DN_STORE(4); DN_STORE(5);
  DN_STORE(6); DN_STORE(7); DN_STORE(8); DN_STORE(9); DN_STORE(10); DN_STORE(11);
#undef DN_STORE
}
