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

#endif
