/* AVX2 packing for the GEMM driver: the copy and the 8x8-block transpose that lay
 * op(A) and op(B) out as micro-panels (used by the AVX2 and AVX-512 tables). */
#include <immintrin.h>
#include <stdbool.h>
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

/* Eight floats (k steps p0..p0+7) of rows 0..rows-1 (rows 6 or 8, a constant after
 * inlining; rows past `rows` are not read and come out as zero), transposed: c[p] holds step p of the eight rows.
 * The loads do the 128-bit half of the transpose (row i's four floats and row i+4's share
 * a register), which leaves 16 shuffles of the 24 an 8 x 8 transpose in registers takes. */
static inline __attribute__((always_inline)) void load_transposed8(const float *src, size_t ld,
                                                                   size_t rows, __m256 c[8]) {
  __m256 r[8];
  for (size_t i = 0; i < 4; i++) {
    const float *lo = src + i * ld, *hi = src + (i + 4) * ld;
    if (i + 4 < rows) {
      r[i] = _mm256_loadu2_m128(hi, lo);
      r[i + 4] = _mm256_loadu2_m128(hi + 4, lo + 4);
    } else {
      r[i] = _mm256_zextps128_ps256(_mm_loadu_ps(lo));
      r[i + 4] = _mm256_zextps128_ps256(_mm_loadu_ps(lo + 4));
    }
  }
  for (size_t h = 0; h < 8; h += 4) {
    const __m256 t0 = _mm256_unpacklo_ps(r[h], r[h + 1]), t1 = _mm256_unpackhi_ps(r[h], r[h + 1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[h + 2], r[h + 3]);
    const __m256 t3 = _mm256_unpackhi_ps(r[h + 2], r[h + 3]);
    c[h] = _mm256_shuffle_ps(t0, t2, 0x44);
    c[h + 1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    c[h + 2] = _mm256_shuffle_ps(t1, t3, 0x44);
    c[h + 3] = _mm256_shuffle_ps(t1, t3, 0xEE);
  }
}

/* A full panel of 16 rows (op(A) = A^T for the 16x6 tile), k8 a multiple of 8: both
 * halves of a k step at once, so each packed line (16 floats, one cache line) is written
 * whole, in order. */
static void pack_t_16(size_t k8, const float *src, size_t ld, float *dst) {
  for (size_t p0 = 0; p0 < k8; p0 += 8, dst += 8 * 16) {
    __m256 lo[8], hi[8];
    load_transposed8(src + p0, ld, 8, lo);
    load_transposed8(src + 8 * ld + p0, ld, 8, hi);
    for (size_t p = 0; p < 8; p++) {
      _mm256_storeu_ps(dst + p * 16, lo[p]);
      _mm256_storeu_ps(dst + p * 16 + 8, hi[p]);
    }
  }
}

/* A full panel of 6 rows (op(B) = B for the 16x6 tile), k8 a multiple of 8: each line of 6
 * floats stored as 8, whose last two the next line's store overwrites. The last line this
 * call writes is stored as 6 unless the caller packs more lines after it (more: the k % 8
 * tail, whose first line's store covers those two floats), so nothing past the panel is
 * written. */
static void pack_t_6(size_t k8, bool more, const float *src, size_t ld, float *dst) {
  for (size_t p0 = 0; p0 < k8; p0 += 8, dst += 8 * 6) {
    __m256 v[8];
    load_transposed8(src + p0, ld, 6, v);
    for (size_t p = 0; p < 7; p++) _mm256_storeu_ps(dst + p * 6, v[p]);
    if (more || p0 + 8 < k8)
      _mm256_storeu_ps(dst + 7 * 6, v[7]);
    else
      store_n(dst + 7 * 6, v[7], 6);
  }
}

/* The last kt < 8 steps of a full panel of `rows` rows (16 or 6): each row's kt floats read
 * under a mask (nothing past them), transposed in registers, kt packed lines written. A
 * 6-wide line is stored as 8 floats, the next line's store covering the last two, and the
 * panel's last line as 6. With K = 10 (dA_prev = W^T dZ of a 10-unit layer) these two steps
 * took the general loop below as long as the first eight took the loops above: TN 256 x 128
 * x 10 1.032x, x 256 1.026x, x 512 1.019x, NN 256 x 128 x 10 1.013x (20 alternating pairs,
 * one thread, Zen 3 guest, session 18). */
static void pack_t_tail(size_t kt, size_t rows, const float *src, size_t ld, float *dst) {
  const __m256i live = lanes(kt);
  for (size_t h = 0; h < rows; h += 8) {
    __m256 v[8];
    for (size_t i = 0; i < 8; i++)
      v[i] = h + i < rows ? _mm256_maskload_ps(src + (h + i) * ld, live) : _mm256_setzero_ps();
    dn_transpose8_avx2(v);
    if (rows == 16) {
      for (size_t p = 0; p < kt; p++) _mm256_storeu_ps(dst + p * 16 + h, v[p]);
    } else {
      for (size_t p = 0; p + 1 < kt; p++) _mm256_storeu_ps(dst + p * 6, v[p]);
      store_n(dst + (kt - 1) * 6, v[kt - 1], 6);
    }
  }
}

/* Full panels of the two widths the AVX2 table packs (r == w, 16 for op(A), 6 for op(B))
 * take the loops above, for their whole 8-step blocks and for the rest; the general loop
 * below (partial panels, other widths) has masks, a width test a line, and writes each
 * packed line of op(A) in two halves. The transposing pack was 9% of dn_sgemm TN 784 x 128
 * x 512 (perf); the 8-step loops made TN 512 x 128 x 256 1.019x, 784 x 128 x 512 1.009x,
 * 1024 x 128 x 1024 1.014x, 4096 x 128 x 4096 1.027x and NN 256 x 128 x 512 1.008x (16
 * alternating pairs each, one thread, Zen 3 guest, session 18, docs/kernels.md). */
void dn_sgemm_pack_t_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst) {
  if (r == w && (w == 16 || w == 6)) {
    const size_t k8 = k / 8 * 8;
    if (k8 && w == 16)
      pack_t_16(k8, src, ld, dst);
    else if (k8)
      pack_t_6(k8, k8 < k, src, ld, dst);
    if (k8 < k) pack_t_tail(k - k8, w, src + k8, ld, dst + k8 * w);
    return;
  }
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
