/* AVX2 packing for the GEMM driver: the copy and the 8x8-block transpose that lay
 * op(A) and op(B) out as micro-panels (used by the AVX2 and AVX-512 tables). */
#include <immintrin.h>
#include <string.h>

#include "x86/x86.h"

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Lanes [0, r) set, for r = 0..8. */
static inline __m256i lanes(size_t r) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - r));
}

/* Eight floats of dst, or its first n < 8 without touching the rest (the 6-wide panels
 * of op(B) for the 16x6 tile end every line so). */
static inline void store_n(float *dst, __m256 v, size_t n) { dn_store_first_avx2(dst, v, n); }

/* Full panels (r == w) of the two widths the AVX2 table packs, 6 (op(B) for the 16x6 tile)
 * and 16 (op(A)), take a loop with no masks or width tests: the general loop below spent
 * three times as long per line (a mask load, a masked load and the store's branches each
 * line), and with op(B) = B^T that pass was 11-17% of dn_sgemm NT 512 x 784 x 512 and
 * 256 x 512 x 512 by rdtsc around it (docs/kernels.md, session 16). */
void dn_sgemm_pack_n_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst) {
  if (r == w && w == 6) {
    for (size_t p = 0; p < k; p++, src += ld, dst += 6) memcpy(dst, src, 6 * sizeof(float));
    return;
  }
  if (r == w && w % 8 == 0) {
    for (size_t p = 0; p < k; p++, src += ld, dst += w)
      for (size_t i = 0; i < w; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    return;
  }
  for (size_t p = 0; p < k; p++, src += ld, dst += w)
    for (size_t i0 = 0; i0 < w; i0 += 8) {
      const size_t live = r > i0 ? min_sz(8, r - i0) : 0;
      const __m256 v = live == 8 ? _mm256_loadu_ps(src + i0)
                                 : _mm256_maskload_ps(src + i0, lanes(live));
      store_n(dst + i0, v, min_sz(8, w - i0));
    }
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
      dn_transpose8_avx2(v);
      for (size_t p = 0; p < pb; p++) store_n(dst + (p0 + p) * w + i0, v[p], width);
    }
  }
}
