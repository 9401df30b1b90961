/* The x86 kernel sets (AVX2, AVX-512): declarations shared by their files. */
#ifndef DN_KERNELS_X86_H
#define DN_KERNELS_X86_H

#include <stdbool.h>
#include <stddef.h>

#include <immintrin.h>
#include <math.h>

#include "kernels.h"

void dn_sgemm_ukr_avx2_16x6(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                            float *C, size_t ldc, size_t m, size_t n);
void dn_sgemm_ukr_rows_avx2_16x6(size_t k, float alpha, const float *Ap, size_t tiles,
                                 const float *Bp, float beta, float *C, size_t ldc, size_t n);
void dn_sgemm_ukr_pack_a_avx2_16x6(size_t k, float alpha, const float *A, size_t lda, float *Ap,
                                   const float *Bp, float beta, float *C, size_t ldc, size_t m,
                                   size_t n);
void dn_sgemm_ukr_avx512_32x12(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                               float *C, size_t ldc, size_t m, size_t n);
void dn_sgemm_ukr_bias_act_avx512_32x12(size_t k, float alpha, const float *Ap, const float *Bp,
                                        float beta, float *C, size_t ldc, size_t m, size_t n,
                                        const float *bias, dn_act act);
void dn_sgemm_ukr_pack_a_avx512_32x12(size_t k, float alpha, const float *A, size_t lda,
                                      float *Ap, const float *Bp, float beta, float *C,
                                      size_t ldc, size_t m, size_t n);
void dn_sgemm_small_avx2_16x6(size_t k, float alpha, const float *Ap, const float *B, size_t rsb,
                              size_t csb, float beta, float *C, size_t ldc, size_t m_lo,
                              size_t m_hi, size_t n);
void dn_sgemm_small_dot_avx2(size_t k, float alpha, const float *A, size_t rsa, const float *B,
                             size_t ldb, float beta, float *C, size_t ldc, size_t m, size_t n);
void dn_sgemm_small_avx512_16x12(size_t k, float alpha, const float *Ap, const float *B,
                                 size_t rsb, size_t csb, float beta, float *C, size_t ldc,
                                 size_t m_lo, size_t m_hi, size_t n);

/* The driver's packing hooks (kernels.h: sgemm_pack_n, sgemm_pack_t). */
void dn_sgemm_pack_n_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
void dn_sgemm_pack_t_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
void dn_sgemm_pack_n_avx512(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
void dn_sgemm_pack_t_avx512(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);

/* For the x86 files (all built with at least AVX2). */

/* The first n (0..8) floats of v to p with plain stores, the rest of p untouched: one
 * vector store, or 4 + 2 + 1 pieces. Not vmaskmovps: with a memory destination it is
 * microcoded on AMD Zen 2/3 (on a Zen 3 EPYC the 16x6 tile's 12 masked column stores made
 * dn_sgemm TN 256-10, K = 10, slower than the scalar kernels: docs/kernels.md). */
static inline void dn_store_first_avx2(float *p, __m256 v, size_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  __m128 x = _mm256_castps256_ps128(v);
  if (n & 4) {
    _mm_storeu_ps(p, x);
    p += 4;
    x = _mm256_extractf128_ps(v, 1);
  }
  if (n & 2) {
    _mm_storel_pi((__m64 *)(void *)p, x);
    p += 2;
    x = _mm_movehl_ps(x, x);
  }
  if (n & 1) _mm_store_ss(p, x);
}

/* In place: v[i][j] becomes v[j][i]. */
/* C(i, c) = out[i * ld_out + c] (alpha * the chain, already) + beta * C(i, c) as one FMA,
 * for the R x n tile the small-M kernels leave transposed (rows i of out are C's rows):
 * the general kernels' beta step, element by element (beta 0 never reads C). */
static inline void dn_small_store_rows(const float *out, size_t ld_out, size_t R, size_t n,
                                       float beta, float *C, size_t ldc) {
  for (size_t c = 0; c < n; c++)
    for (size_t i = 0; i < R; i++) {
      float *const e = C + i + c * ldc;
      *e = beta != 0.0f ? fmaf(beta, *e, out[i * ld_out + c]) : out[i * ld_out + c];
    }
}

static inline void dn_transpose8_avx2(__m256 v[8]) {
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

#ifdef __AVX512F__
/* In place: v[i] lane j becomes v[j] lane i. Four rounds of two-source shuffles
 * (32-bit, 64-bit, 128-bit, 256-bit pairs), 64 shuffles for 256 floats. */
static inline void dn_transpose16_avx512(__m512 v[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    v[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    v[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    v[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(v[i], v[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(v[i], v[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(v[i + 8], v[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(v[i + 8], v[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; i++) {
    v[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    v[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    v[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    v[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
  }
}
#endif

#endif
