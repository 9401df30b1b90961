/* The AVX-512 forms of the piecewise-linear activations, shared by the elementwise kernels
 * (act_avx512.c) and the GEMM micro-kernel's in-register epilogue (sgemm_avx512.c), so
 * both give the same bits. */
#ifndef DN_KERNELS_X86_ACT_INLINE_AVX512_H
#define DN_KERNELS_X86_ACT_INLINE_AVX512_H

#include <immintrin.h>

#include "vecmath.h"

static inline __attribute__((always_inline)) __mmask16 dn_gt0_avx512(__m512 z) {
  return _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
}
/* !(z <= 0) is true for NaN: NaN passes. */
static inline __attribute__((always_inline)) __m512 dn_relu_avx512(__m512 z) {
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_NLE_UQ), z);
}
static inline __attribute__((always_inline)) __m512 dn_leaky_relu_avx512(__m512 z) {
  return _mm512_mask_blend_ps(dn_gt0_avx512(z), _mm512_mul_ps(_mm512_set1_ps(DN_LEAKY_SLOPE), z), z);
}

#endif
