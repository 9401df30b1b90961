/* AVX2 packing for the GEMM driver: the copy and the 8x8-block transpose that lay
 * op(A) and op(B) out as micro-panels (used by the AVX2 and AVX-512 tables). */
#include <immintrin.h>

#include "x86/x86.h"

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Lanes [0, r) set, for r = 0..8. */
static inline __m256i lanes(size_t r) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - r));
}

/* Eight floats of dst, or its first n < 8 without touching the rest. */
static inline void store_n(float *dst, __m256 v, size_t n) {
  if (n == 8)
    _mm256_storeu_ps(dst, v);
  else
    _mm256_maskstore_ps(dst, lanes(n), v);
}

void dn_sgemm_pack_n_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst) {
  for (size_t p = 0; p < k; p++, src += ld, dst += w)
    for (size_t i0 = 0; i0 < w; i0 += 8) {
      const size_t live = r > i0 ? min_sz(8, r - i0) : 0;
      const __m256 v = live == 8 ? _mm256_loadu_ps(src + i0)
                                 : _mm256_maskload_ps(src + i0, lanes(live));
      store_n(dst + i0, v, min_sz(8, w - i0));
    }
}

/* In place: v[i][j] becomes v[j][i]. */
static inline void transpose8(__m256 v[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void dn_sgemm_pack_t_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst) {
  for (size_t i0 = 0; i0 < w; i0 += 8) {
    const size_t live = r > i0 ? min_sz(8, r - i0) : 0, width = min_sz(8, w - i0);
    for (size_t p0 = 0; p0 < k; p0 += 8) {
      const size_t pb = min_sz(8, k - p0);
      const __m256i pmask = lanes(pb);
      __m256 v[8];
      for (size_t i = 0; i < 8; i++) {
        const float *s = src + (i0 + i) * ld + p0;
        v[i] = i >= live ? _mm256_setzero_ps()
               : pb == 8 ? _mm256_loadu_ps(s)
                         : _mm256_maskload_ps(s, pmask);
      }
      transpose8(v);
      for (size_t p = 0; p < pb; p++) store_n(dst + (p0 + p) * w + i0, v[p], width);
    }
  }
}
