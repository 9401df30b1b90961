/* The GEMM driver shared by all ISAs (first version: delegates to the reference). */
#include "kernels.h"

void dn_gemm(const dn_kernel_table *kt, char transa, char transb, size_t M, size_t N, size_t K,
             float alpha, const float *A, size_t lda, const float *B, size_t ldb, float beta,
             float *C, size_t ldc) {
  (void)kt;
  dn_sgemm_ref_scalar(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
