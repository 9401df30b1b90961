/* The vector math shared by the scalar twins and every ISA (exp, sigmoid, tanh): one set
 * of constants and polynomials, so each ISA evaluates the same formulas in the same
 * order. The algorithms and their measured error bounds are in docs/vecmath.md. */
#ifndef DN_VECMATH_H
#define DN_VECMATH_H

#include <stddef.h>

#include "kernels.h"

/* exp(x) = 2^n exp(r), n = round(x log2e), r = x - n ln2 (Cody-Waite, ln2 in two parts).
 * x is clamped to [X_MIN, X_MAX] first (NaN passes): every float above X_MAX overflows
 * to +inf and every one below X_MIN underflows to 0, and the clamp keeps n in [-150, 128]
 * so 2^n splits into two normal factors (results down to the smallest denormal). */
#define DN_EXP_X_MAX 89.0f
#define DN_EXP_X_MIN (-104.0f)
#define DN_EXP_SHIFTER 0x1.8p23f /* x log2e + SHIFTER rounds to the nearest integer n */
#define DN_EXP_LOG2E 0x1.715476p+0f
#define DN_EXP_LN2_HI 0x1.62e4p-1f /* 15 significant bits: n * LN2_HI is exact */
#define DN_EXP_LN2_LO 0x1.7f7d1cp-20f
/* exp(r) = 1 + r + r^2 (C0 + C1 r + ... + C5 r^5) on |r| <= ln2/2 (Cephes expf). */
#define DN_EXP_C0 5.0000001201e-1f
#define DN_EXP_C1 1.6666665459e-1f
#define DN_EXP_C2 4.1665795894e-2f
#define DN_EXP_C3 8.3334519073e-3f
#define DN_EXP_C4 1.3981999507e-3f
#define DN_EXP_C5 1.9875691500e-4f

/* tanh(a), a = |x| < SMALL: a + a^3 (C0 + C1 a^2 + ... + C4 a^8) (Cephes tanhf); above:
 * 1 - 2e/(1 + e) with e = exp(-2a) <= 0.29, which never overflows or cancels. */
#define DN_TANH_SMALL 0.625f
#define DN_TANH_C0 (-3.33332819422e-1f)
#define DN_TANH_C1 1.33314422036e-1f
#define DN_TANH_C2 (-5.37397155531e-2f)
#define DN_TANH_C3 2.06390887954e-2f
#define DN_TANH_C4 (-5.70498872745e-3f)

#define DN_LEAKY_SLOPE 0.01f

/* y[i] = exp(x[i]) for i < n, per ISA: the exp under sigmoid, tanh and softmax, exported
 * for the tests. The SIMD ones exist only in builds for their architecture. */
void dn_exp_scalar(size_t n, const float *x, float *y);
void dn_exp_avx2(size_t n, const float *x, float *y);
void dn_exp_avx512(size_t n, const float *x, float *y);
void dn_exp_neon(size_t n, const float *x, float *y);

#endif /* DN_VECMATH_H */
