/* Portable activation kernels, forward and backward side by side, the softmax, and the
 * exp under them: the reference each SIMD set mirrors operation for operation. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "scalar/scalar.h"
#include "vecmath.h"

/* No contraction behind our back: the kernels that promise bitwise equality with the SIMD
 * sets fuse exactly where FMA() says. gcc in ISO C mode (-std=c11) never contracts; clang
 * does by default. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* Fused where the CPU fuses in one instruction (every aarch64): there the exp family
 * matches the SIMD kernels bit for bit. Elsewhere a libm fmaf call per step would cost
 * more than the whole kernel, so the multiply and add round separately (docs/vecmath.md). */
#ifdef FP_FAST_FMAF
#define FMA(a, b, c) fmaf(a, b, c)
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif

static float pow2i(int32_t k) { /* 2^k for k in [-126, 127] */
  const uint32_t bits = (uint32_t)(k + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float dn_exp1_scalar(float x) {
  if (x != x) return x + x;
  x = x > DN_EXP_X_MAX ? DN_EXP_X_MAX : x;
  x = x < DN_EXP_X_MIN ? DN_EXP_X_MIN : x;
  const float n = FMA(x, DN_EXP_LOG2E, DN_EXP_SHIFTER) - DN_EXP_SHIFTER;
  float r = FMA(n, -DN_EXP_LN2_HI, x);
  r = FMA(n, -DN_EXP_LN2_LO, r);
  float p = FMA(DN_EXP_C5, r, DN_EXP_C4);
  p = FMA(p, r, DN_EXP_C3);
  p = FMA(p, r, DN_EXP_C2);
  p = FMA(p, r, DN_EXP_C1);
  p = FMA(p, r, DN_EXP_C0);
  const float q = FMA(p, r * r, r); /* exp(r) - 1 */
  /* 2^n as two normal factors: the first scaling is exact, the second rounds once, into
   * the denormals or to +inf where exp does. */
  const int32_t k = (int32_t)n, k1 = k / 2;
  const float s1 = pow2i(k1);
  return FMA(q, s1, s1) * pow2i(k - k1);
}

void dn_exp_scalar(size_t n, const float *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = dn_exp1_scalar(x[i]);
}

void dn_linear_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = Z[i];
}
void dn_linear_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)Z;
  (void)A;
  for (size_t i = 0; i < n; i++) dZ[i] = dA[i];
}

/* NaN passes through (a NaN weight must not hide behind a zero). */
void dn_relu_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = Z[i] <= 0.0f ? 0.0f : Z[i];
}
/* c ? a : b by bit masks, as the SIMD sets select: gcc compiles a plain ?: whose sides
 * cost anything into a branch, which random signs mispredict every other element. */
static float pick(int c, float a, float b) {
  uint32_t ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  const uint32_t m = -(uint32_t)(c != 0), r = (ua & m) | (ub & ~m);
  float f;
  memcpy(&f, &r, sizeof f);
  return f;
}

void dn_relu_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)A;
  for (size_t i = 0; i < n; i++) dZ[i] = pick(Z[i] > 0.0f, dA[i], 0.0f);
}

void dn_leaky_relu_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = pick(Z[i] > 0.0f, Z[i], DN_LEAKY_SLOPE * Z[i]);
}
void dn_leaky_relu_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)A;
  for (size_t i = 0; i < n; i++) dZ[i] = pick(Z[i] > 0.0f, dA[i], DN_LEAKY_SLOPE * dA[i]);
}

/* exp of -|z| only, so it never overflows; sigma(z) = 1/(1+e) for z >= 0, e/(1+e) below. */
float dn_sigmoid1_scalar(float z) {
  const float e = dn_exp1_scalar(-fabsf(z));
  return (z >= 0.0f ? 1.0f : e) / (1.0f + e);
}
void dn_sigmoid_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = dn_sigmoid1_scalar(Z[i]);
}
void dn_sigmoid_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)Z;
  for (size_t i = 0; i < n; i++) dZ[i] = dA[i] * A[i] * (1.0f - A[i]);
}

/* Odd polynomial near 0 (1 - 2e/(1+e) would cancel there), exp(-2|z|) elsewhere. */
float dn_tanh1_scalar(float z) {
  const float a = fabsf(z);
  float t;
  if (a < DN_TANH_SMALL) {
    const float a2 = a * a;
    float p = FMA(DN_TANH_C4, a2, DN_TANH_C3);
    p = FMA(p, a2, DN_TANH_C2);
    p = FMA(p, a2, DN_TANH_C1);
    p = FMA(p, a2, DN_TANH_C0);
    t = FMA(p * a2, a, a);
  } else {
    const float e = dn_exp1_scalar(-2.0f * a);
    t = 1.0f - (e + e) / (1.0f + e);
  }
  return copysignf(t, z);
}
void dn_tanh_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = dn_tanh1_scalar(Z[i]);
}
void dn_tanh_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)Z;
  for (size_t i = 0; i < n; i++) dZ[i] = dA[i] * (1.0f - A[i] * A[i]);
}

/* Max subtracted first, so exp never overflows and the largest term is exp(0) = 1. */
void dn_softmax_fwd_scalar(size_t rows, size_t cols, const float *Z, float *A) {
  if (rows == 0) return;
  for (size_t j = 0; j < cols; j++) {
    const float *z = Z + j * rows;
    float *a = A + j * rows;
    float zmax = z[0];
    for (size_t i = 1; i < rows; i++) zmax = z[i] > zmax ? z[i] : zmax;
    float sum = 0.0f;
    for (size_t i = 0; i < rows; i++) {
      a[i] = dn_exp1_scalar(z[i] - zmax);
      sum += a[i];
    }
    for (size_t i = 0; i < rows; i++) a[i] /= sum;
  }
}
