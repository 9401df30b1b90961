/* Portable GEMM: the naive reference and the scalar micro-kernel (twin of the SIMD ones). */
#include <math.h>

#include "kernels.h"

static inline float op_at(const float *X, size_t ld, char trans, size_t i, size_t j) {
  return (trans == 'N') ? X[i + j * ld] : X[j + i * ld];
}

void dn_sgemm_ref_scalar(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                         const float *A, size_t lda, const float *B, size_t ldb, float beta,
                         float *C, size_t ldc) {
  for (size_t j = 0; j < N; j++) {
    for (size_t i = 0; i < M; i++) {
      float acc = 0.0f;
      for (size_t p = 0; p < K; p++) acc += op_at(A, lda, transa, i, p) * op_at(B, ldb, transb, p, j);
      float *c = &C[i + j * ldc];
      *c = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * *c;
    }
  }
}

enum { MR = 4, NR = 4 };

void dn_sgemm_ukr_scalar_4x4(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                             float *C, size_t ldc, size_t m, size_t n);

void dn_sgemm_ukr_scalar_4x4(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                             float *C, size_t ldc, size_t m, size_t n) {
  float acc[NR][MR] = {{0}};
  for (size_t p = 0; p < k; p++) {
    for (size_t j = 0; j < NR; j++) {
      const float bj = Bp[p * NR + j];
      for (size_t i = 0; i < MR; i++) acc[j][i] += Ap[p * MR + i] * bj;
    }
  }
  for (size_t j = 0; j < n; j++) {
    for (size_t i = 0; i < m; i++) {
      float *c = &C[i + j * ldc];
      *c = (beta == 0.0f) ? alpha * acc[j][i] : alpha * acc[j][i] + beta * *c;
    }
  }
}

enum { SMALL_MR = 16 };

void dn_sgemm_small_scalar_16(size_t k, float alpha, const float *Ap, const float *B, size_t rsb,
                              size_t csb, float beta, float *C, size_t ldc, size_t m_lo,
                              size_t m_hi, size_t n) {
  for (size_t j = 0; j < n; j++) {
    for (size_t i = m_lo; i < m_hi; i++) {
      float acc = 0.0f;
      for (size_t p = 0; p < k; p++) acc += Ap[p * SMALL_MR + i] * B[p * rsb + j * csb];
      float *c = &C[i + j * ldc];
      *c = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * *c;
    }
  }
}

/* The twin of the SIMD small-M dot kernels (dn_sgemm_small_dot_fn): 8 lanes along k, each
 * an FMA chain over the steps p = l mod 8, past k an FMA of zeros (as the masked loads give),
 * then the lanes' fixed tree, alpha, and beta as one FMA. */
void dn_sgemm_small_dot_scalar8(size_t k, float alpha, const float *A, size_t rsa, const float *B,
                                size_t ldb, float beta, float *C, size_t ldc, size_t m, size_t n) {
  const size_t steps = (k + 7) / 8 * 8;
  for (size_t j = 0; j < n; j++)
    for (size_t i = 0; i < m; i++) {
      float lane[8] = {0};
      for (size_t p = 0; p < steps; p++) {
        const float a = p < k ? A[i * rsa + p] : 0.0f, b = p < k ? B[j * ldb + p] : 0.0f;
        lane[p % 8] = fmaf(a, b, lane[p % 8]);
      }
      const float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                      ((lane[4] + lane[5]) + (lane[6] + lane[7]));
      const float r = alpha * s;
      float *c = &C[i + j * ldc];
      *c = beta != 0.0f ? fmaf(beta, *c, r) : r;
    }
}
