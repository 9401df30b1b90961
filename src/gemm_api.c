/* dn_sgemm: the public BLAS-style entry, validated, then the dispatched driver. */
#include <ctype.h>
#include <stdio.h>

#include "internal.h"

/* A column-major (rows x cols) operand with leading dimension ld must have
 * ld >= max(1, rows) and (cols-1)*ld + rows elements addressable in size_t. */
static dn_status check_operand(const char *name, const float *X, size_t rows, size_t cols, size_t ld,
                               bool read) {
  const size_t min_ld = rows > 0 ? rows : 1;
  if (ld < min_ld) return dn_fail(DN_ERR_SHAPE, "dn_sgemm: ld%s = %zu < %zu", name, ld, min_ld);
  if (rows == 0 || cols == 0 || !read) return DN_OK;
  if (!X) return dn_fail(DN_ERR_ARG, "dn_sgemm: %s is NULL", name);
  size_t span;
  if (!dn_mul_ok(cols - 1, ld, &span) || __builtin_add_overflow(span, rows, &span) ||
      !dn_floats_bytes(span, &span))
    return dn_fail(DN_ERR_SHAPE, "dn_sgemm: %s (%zu x %zu, ld %zu) overflows size_t", name, rows, cols, ld);
  return DN_OK;
}

dn_status dn_sgemm(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                   const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                   size_t ldc) {
  const char given_a = transa, given_b = transb;
  transa = (char)toupper((unsigned char)transa);
  transb = (char)toupper((unsigned char)transb);
  if ((transa != 'N' && transa != 'T') || (transb != 'N' && transb != 'T')) {
    /* The character as given, and its code: '\0' would end the message, 'c' read as 'C'. */
    const bool a_bad = transa != 'N' && transa != 'T';
    const unsigned char bad = (unsigned char)(a_bad ? given_a : given_b);
    char shown[8] = "";
    if (isprint(bad)) snprintf(shown, sizeof shown, " ('%c')", bad);
    return dn_fail(DN_ERR_ARG, "dn_sgemm: %s must be 'N' or 'T' (either case), got character code "
                   "%d%s", a_bad ? "transa" : "transb", bad, shown);
  }
  dn_status s;
  const bool ta = transa == 'T', tb = transb == 'T';
  /* A and B matter only when they contribute (K > 0, alpha != 0). */
  const bool uses_ab = K > 0 && alpha != 0.0f;
  if ((s = check_operand("C", C, M, N, ldc, true)) ||
      (s = check_operand("A", A, ta ? K : M, ta ? M : K, lda, uses_ab && M > 0 && N > 0)) ||
      (s = check_operand("B", B, tb ? N : K, tb ? K : N, ldb, uses_ab && M > 0 && N > 0)))
    return s;
  if (M == 0 || N == 0) return DN_OK;
  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  if (!uses_ab) {
    for (size_t j = 0; j < N; j++)
      for (size_t i = 0; i < M; i++) C[i + j * ldc] = beta == 0.0f ? 0.0f : beta * C[i + j * ldc];
  } else {
    dn_gemm_run("sgemm", 0, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
  }
  dn_fpenv_leave(&fpenv);
  return DN_OK;
}
