/* The NEON kernel set (aarch64 Advanced SIMD). */
#ifndef DN_KERNELS_NEON_H
#define DN_KERNELS_NEON_H

#include <stddef.h>

void dn_sgemm_ukr_neon_8x12(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                            float *C, size_t ldc, size_t m, size_t n);

#endif
