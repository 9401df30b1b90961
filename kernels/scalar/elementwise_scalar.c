/* Portable bias, reduction and optimizer-update kernels. */
#include <float.h>
#include <math.h>

#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "scalar/scalar.h"

/* Each kernel here rounds every multiply and add on its own, as the SIMD sets do, so they
 * agree bit for bit: no contraction (gcc in ISO C mode never does; clang would). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

void dn_bias_add_scalar(size_t rows, size_t cols, const float *b, float *Z) {
  for (size_t j = 0; j < cols; j++)
    for (size_t i = 0; i < rows; i++) Z[i + j * rows] += b[i];
}

void dn_row_sum_acc_scalar(size_t rows, size_t cols, const float *X, size_t ldx, float *acc) {
  for (size_t j = 0; j < cols; j++)
    for (size_t i = 0; i < rows; i++) acc[i] += X[i + j * ldx];
}

void dn_row_sum_scalar(size_t rows, size_t cols, const float *X, size_t ldx, float scale, float *out) {
  for (size_t i = 0; i < rows; i++) out[i] = 0.0f;
  dn_row_sum_acc_scalar(rows, cols, X, ldx, out);
  for (size_t i = 0; i < rows; i++) out[i] *= scale;
}

void dn_sub_scalar(size_t n, const float *a, const float *b, float *dst) {
  for (size_t i = 0; i < n; i++) dst[i] = a[i] - b[i];
}

bool dn_any_nonfinite_scalar(size_t n, const float *x) {
  uint32_t any = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], sizeof u);
    any |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
  }
  return any != 0;
}

/* |x|, with NaN as +Inf (so a running maximum keeps it). */
static float abs_or_inf(float x) {
  const float a = fabsf(x);
  return a <= FLT_MAX ? a : INFINITY;
}

static float max_abs(float m, float x) {
  const float a = abs_or_inf(x);
  return a > m ? a : m;
}

float dn_absmax_scalar(size_t n, const float *x) {
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) m = max_abs(m, x[i]);
  return m;
}

float dn_gd_update_scalar(size_t n, float lr, const float *g, float *p) {
  float mx = 0.0f;
  for (size_t i = 0; i < n; i++) {
    p[i] -= lr * g[i];
    mx = max_abs(mx, p[i]);
  }
  return mx;
}

float dn_momentum_update_scalar(size_t n, float lr, float beta, const float *g, float *v, float *p) {
  float mx = 0.0f;
  for (size_t i = 0; i < n; i++) {
    v[i] = beta * v[i] + (1.0f - beta) * g[i];
    p[i] -= lr * v[i];
    mx = max_abs(max_abs(mx, v[i]), p[i]);
  }
  return mx;
}

float dn_adam_update_scalar(size_t n, float lr_t, float b1, float b2, float eps_t, const float *g,
                            float *m, float *v, float *p) {
  float mx = 0.0f;
  for (size_t i = 0; i < n; i++) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps_t);
    mx = max_abs(max_abs(max_abs(mx, m[i]), v[i]), p[i]);
  }
  return mx;
}
