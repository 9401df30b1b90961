/* Portable GEMM: the naive reference and the scalar micro-kernel (twin of the SIMD ones). */
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
