/* The x86 kernel sets (AVX2, AVX-512): declarations shared by their files. */
#ifndef DN_KERNELS_X86_H
#define DN_KERNELS_X86_H

#include <stdbool.h>
#include <stddef.h>

#include <immintrin.h>

#include "kernels.h"

void dn_sgemm_ukr_avx2_16x6(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                            float *C, size_t ldc, size_t m, size_t n);
void dn_sgemm_ukr_avx512_32x12(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                               float *C, size_t ldc, size_t m, size_t n);
void dn_sgemm_small_avx2_16x6(size_t k, float alpha, const float *Ap, const float *B, size_t rsb,
                              size_t csb, float beta, float *C, size_t ldc, size_t m_lo,
                              size_t m_hi, size_t n);
void dn_sgemm_small_avx512_16x12(size_t k, float alpha, const float *Ap, const float *B,
                                 size_t rsb, size_t csb, float beta, float *C, size_t ldc,
                                 size_t m_lo, size_t m_hi, size_t n);

/* The driver's packing hooks (kernels.h: sgemm_pack_n, sgemm_pack_t). */
void dn_sgemm_pack_n_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
void dn_sgemm_pack_t_avx2(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
void dn_sgemm_pack_n_avx512(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
void dn_sgemm_pack_t_avx512(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);

/* For the x86 files (all built with at least AVX2). */
/* In place: v[i][j] becomes v[j][i]. */
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

#endif
