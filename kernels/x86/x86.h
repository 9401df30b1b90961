/* The x86 kernel sets (AVX2, AVX-512): declarations shared by their files. */
#ifndef DN_KERNELS_X86_H
#define DN_KERNELS_X86_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
