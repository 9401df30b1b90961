/* NEON sgemm micro-kernel, 8x12: C's tile lives in 24 of the 32 q registers, a column of
 * Ap in 2 and a row of Bp in 3, so each k step is 5 loads for 24 FMAs (by lane). */
#include <arm_neon.h>
#include <math.h>

#include "kernels.h"
#include "arm/neon.h"

enum { MR = 8, NR = 12 };

/* C(:, j) += Ap(:, p) * Bp(p, j) for the 12 columns, b[j / 4] holding Bp(p, j) in lane j % 4. */
#define DN_FMA_COL(j, bv, lane)                                 \
  do {                                                          \
    c[j][0] = vfmaq_laneq_f32(c[j][0], a0, bv, lane);           \
    c[j][1] = vfmaq_laneq_f32(c[j][1], a1, bv, lane);           \
  } while (0)

/* The live m x n corner of a finished tile (t[j][i]: column j, row i) to C, with the same
 * roundings as the full tile's vector stores (fmaf is one fused instruction here, like
 * vfmaq); only that corner of C is read or written. */
static inline __attribute__((always_inline)) void store_corner(float t[][MR], float alpha,
                                                               float beta, float *C, size_t ldc,
                                                               size_t m, size_t n) {
  for (size_t j = 0; j < n; j++) {
    float *cj = C + j * ldc;
    if (beta == 0.0f)
      for (size_t i = 0; i < m; i++) cj[i] = t[j][i] * alpha;
    else
      for (size_t i = 0; i < m; i++) cj[i] = fmaf(t[j][i], alpha, cj[i] * beta);
  }
}

/* A tile of at most NC (4 or 8, a constant after inlining) columns: C's last panel when N
 * leaves 4 or 8 columns (N = 128 and 256 end so), at 8 or 16 FMAs a k step instead of the
 * full tile's 24. Per element the same chain as the full tile, so the same bits. */
static inline __attribute__((always_inline)) void edge_cols(size_t k, float alpha, const float *Ap,
                                                            const float *Bp, float beta, float *C,
                                                            size_t ldc, size_t m, size_t n,
                                                            int NC) {
  float32x4_t c[8][2];
#pragma GCC unroll 8
  for (int j = 0; j < NC; j++) c[j][0] = c[j][1] = vdupq_n_f32(0.0f);
  for (size_t p = 0; p < k; p++, Ap += MR, Bp += NR) {
    const float32x4_t a0 = vld1q_f32(Ap), a1 = vld1q_f32(Ap + 4);
    const float32x4_t b0 = vld1q_f32(Bp);
    DN_FMA_COL(0, b0, 0);
    DN_FMA_COL(1, b0, 1);
    DN_FMA_COL(2, b0, 2);
    DN_FMA_COL(3, b0, 3);
    if (NC > 4) {
      const float32x4_t b1 = vld1q_f32(Bp + 4);
      DN_FMA_COL(4, b1, 0);
      DN_FMA_COL(5, b1, 1);
      DN_FMA_COL(6, b1, 2);
      DN_FMA_COL(7, b1, 3);
    }
  }
  float t[8][MR];
#pragma GCC unroll 8
  for (int j = 0; j < NC; j++) {
    vst1q_f32(&t[j][0], c[j][0]);
    vst1q_f32(&t[j][4], c[j][1]);
  }
  store_corner(t, alpha, beta, C, ldc, m, n);
}

void dn_sgemm_ukr_neon_8x12(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                            float *C, size_t ldc, size_t m, size_t n) {
  if (n <= 4) {
    edge_cols(k, alpha, Ap, Bp, beta, C, ldc, m, n, 4);
    return;
  }
  if (n <= 8) {
    edge_cols(k, alpha, Ap, Bp, beta, C, ldc, m, n, 8);
    return;
  }
  float32x4_t c[NR][2];
#pragma GCC unroll 12
  for (int j = 0; j < NR; j++) c[j][0] = c[j][1] = vdupq_n_f32(0.0f);

  for (size_t p = 0; p < k; p++, Ap += MR, Bp += NR) {
    const float32x4_t a0 = vld1q_f32(Ap), a1 = vld1q_f32(Ap + 4);
    const float32x4_t b0 = vld1q_f32(Bp), b1 = vld1q_f32(Bp + 4), b2 = vld1q_f32(Bp + 8);
    DN_FMA_COL(0, b0, 0);
    DN_FMA_COL(1, b0, 1);
    DN_FMA_COL(2, b0, 2);
    DN_FMA_COL(3, b0, 3);
    DN_FMA_COL(4, b1, 0);
    DN_FMA_COL(5, b1, 1);
    DN_FMA_COL(6, b1, 2);
    DN_FMA_COL(7, b1, 3);
    DN_FMA_COL(8, b2, 0);
    DN_FMA_COL(9, b2, 1);
    DN_FMA_COL(10, b2, 2);
    DN_FMA_COL(11, b2, 3);
  }

  if (m == MR && n == NR) {
    /* C = alpha AB + beta C; beta == 0 must not read C (it may hold NaN). */
    if (beta == 0.0f) {
#pragma GCC unroll 12
      for (int j = 0; j < NR; j++) {
        vst1q_f32(C + j * ldc, vmulq_n_f32(c[j][0], alpha));
        vst1q_f32(C + j * ldc + 4, vmulq_n_f32(c[j][1], alpha));
      }
    } else {
#pragma GCC unroll 12
      for (int j = 0; j < NR; j++) {
        float *cj = C + j * ldc;
        vst1q_f32(cj, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(cj), beta), c[j][0], alpha));
        vst1q_f32(cj + 4, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(cj + 4), beta), c[j][1], alpha));
      }
    }
    return;
  }

  /* A partial tile of 9-12 columns or fewer than 8 rows. */
  float t[NR][MR];
#pragma GCC unroll 12
  for (int j = 0; j < NR; j++) {
    vst1q_f32(&t[j][0], c[j][0]);
    vst1q_f32(&t[j][4], c[j][1]);
  }
  store_corner(t, alpha, beta, C, ldc, m, n);
}
