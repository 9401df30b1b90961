/* Portable activation kernels, forward and backward side by side, and the softmax. */
#include <math.h>

#include "kernels.h"
#include "scalar/scalar.h"

#define LEAKY_SLOPE 0.01f

void dn_linear_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = Z[i];
}
void dn_linear_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)Z;
  (void)A;
  for (size_t i = 0; i < n; i++) dZ[i] = dA[i];
}

void dn_relu_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = Z[i] > 0.0f ? Z[i] : 0.0f;
}
void dn_relu_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)A;
  for (size_t i = 0; i < n; i++) dZ[i] = Z[i] > 0.0f ? dA[i] : 0.0f;
}

void dn_leaky_relu_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = Z[i] > 0.0f ? Z[i] : LEAKY_SLOPE * Z[i];
}
void dn_leaky_relu_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)A;
  for (size_t i = 0; i < n; i++) dZ[i] = Z[i] > 0.0f ? dA[i] : LEAKY_SLOPE * dA[i];
}

/* Evaluated on -|z| so exp never overflows, then reflected: sigma(z) = 1 - sigma(-z). */
float dn_sigmoid1_scalar(float z) {
  const float e = expf(-fabsf(z));
  const float s = 1.0f / (1.0f + e);
  return z >= 0.0f ? s : e * s;
}
void dn_sigmoid_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = dn_sigmoid1_scalar(Z[i]);
}
void dn_sigmoid_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)Z;
  for (size_t i = 0; i < n; i++) dZ[i] = dA[i] * A[i] * (1.0f - A[i]);
}

void dn_tanh_fwd_scalar(size_t n, const float *Z, float *A) {
  for (size_t i = 0; i < n; i++) A[i] = tanhf(Z[i]);
}
void dn_tanh_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {
  (void)Z;
  for (size_t i = 0; i < n; i++) dZ[i] = dA[i] * (1.0f - A[i] * A[i]);
}

/* Max subtracted first, so exp never overflows and the largest term is exp(0) = 1. */
void dn_softmax_fwd_scalar(size_t rows, size_t cols, const float *Z, float *A) {
  for (size_t j = 0; j < cols; j++) {
    const float *z = Z + j * rows;
    float *a = A + j * rows;
    float zmax = z[0];
    for (size_t i = 1; i < rows; i++) zmax = z[i] > zmax ? z[i] : zmax;
    float sum = 0.0f;
    for (size_t i = 0; i < rows; i++) {
      a[i] = expf(z[i] - zmax);
      sum += a[i];
    }
    const float inv = 1.0f / sum;
    for (size_t i = 0; i < rows; i++) a[i] *= inv;
  }
}
