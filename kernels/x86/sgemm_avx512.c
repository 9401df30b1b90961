/* AVX-512 SGEMM micro-kernel, 32x12: two zmm of A per k, twelve broadcasts of B. */
#include <immintrin.h>

#include "x86/act_inline_avx512.h"
#include "x86/x86.h"

enum { MR = 32, NR = 12 };
/* Packed A is read this many floats (4 KiB, 32 k steps) ahead with a software prefetch:
 * the pipeline's packed weights are cold when a GEMM starts (the previous layer's work
 * evicted them from L2), and the first pass over an MC x KC block of A then streams
 * from L3 or DRAM faster than the hardware prefetcher, driven by misses, keeps up.
 * Measured, deep net step at one thread: forward 4.13-4.28 -> 3.52-4.02 ms; warm
 * dn_sgemm shapes unchanged or up to 5% faster. Past the panel it fetches the next one
 * (panels are contiguous); past the block, a prefetch never faults. */
#define A_PREFETCH_AHEAD 1024

/* The forward layer's bias and piecewise-linear activation, applied to a finished tile in
 * registers: b0, b1 hold the bias of the tile's 32 rows (zero past m). */
typedef struct tile_epilogue {
  __m512 b0, b1;
  dn_act act; /* DN_ACT_LINEAR, DN_ACT_RELU or DN_ACT_LEAKY_RELU */
} tile_epilogue;

static inline __attribute__((always_inline)) tile_epilogue tile_epilogue_of(const float *bias,
                                                                           dn_act act,
                                                                           __mmask16 k0,
                                                                           __mmask16 k1) {
  return (tile_epilogue){_mm512_maskz_loadu_ps(k0, bias), _mm512_maskz_loadu_ps(k1, bias + 16), act};
}

/* One column of the tile: alpha * acc + beta * C under the row masks; beta == 0
 * never reads C, and alpha == 1 (scale false) skips the multiply, which would return acc
 * unchanged (acc comes from FMAs: never a signalling NaN; under FTZ never a denormal).
 * Measured with K = 10 (the output layer's dA_prev, TN 256-10, 3 alternating runs):
 * 24 multiplies a tile against 240 FMAs, +3-5%; nothing measurable at larger K. */
static inline __attribute__((always_inline)) void store_col(float *c, __m512 r0, __m512 r1,
                                                            __m512 va, __m512 vb, bool read_c,
                                                            bool scale, __mmask16 k0, __mmask16 k1,
                                                            const tile_epilogue *ep) {
  if (scale) {
    r0 = _mm512_mul_ps(va, r0);
    r1 = _mm512_mul_ps(va, r1);
  }
  if (read_c) {
    r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, c), r0);
    r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, c + 16), r1);
  }
  if (ep) { /* C + b, then g: the operations of bias_add and act_fwd, in their order */
    r0 = _mm512_add_ps(r0, ep->b0);
    r1 = _mm512_add_ps(r1, ep->b1);
    if (ep->act == DN_ACT_RELU) {
      r0 = dn_relu_avx512(r0);
      r1 = dn_relu_avx512(r1);
    } else if (ep->act == DN_ACT_LEAKY_RELU) {
      r0 = dn_leaky_relu_avx512(r0);
      r1 = dn_leaky_relu_avx512(r1);
    }
  }
  _mm512_mask_storeu_ps(c, k0, r0);
  _mm512_mask_storeu_ps(c + 16, k1, r1);
}

/* An edge tile: NC (4, 8 or 12) columns and one or two zmm of rows (both constants after
 * inlining), so a panel of C's last 4 or 8 columns, or of its last 16 rows, costs that
 * many FMAs a k step instead of the full tile's 24 (N = 128 or 256 columns end in an
 * 8- or 4-column panel: a twelfth to a third of a panel's time saved, 2-3% of such a
 * GEMM). Per element the same chain, alpha and beta steps as the full tile. */
static inline __attribute__((always_inline)) void edge_tile(size_t k, float alpha,
                                                            const float *Ap, const float *Bp,
                                                            float beta, float *C, size_t ldc,
                                                            size_t m, size_t n, size_t NC,
                                                            bool two, const float *bias,
                                                            dn_act act) {
  __m512 c0[NR], c1[NR];
#pragma GCC unroll 12
  for (size_t j = 0; j < NC; j++) c0[j] = c1[j] = _mm512_setzero_ps();
  for (size_t j = 0; j < n && j < NC; j++) _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);
  for (size_t p = 0; p < k; p++) {
    _mm_prefetch((const char *)(Ap + A_PREFETCH_AHEAD), _MM_HINT_T0);
    if (two) _mm_prefetch((const char *)(Ap + A_PREFETCH_AHEAD + 16), _MM_HINT_T0);
    const __m512 a0 = _mm512_loadu_ps(Ap), a1 = two ? _mm512_loadu_ps(Ap + 16) : a0;
#pragma GCC unroll 12
    for (size_t j = 0; j < NC; j++) {
      const __m512 b = _mm512_set1_ps(Bp[j]);
      c0[j] = _mm512_fmadd_ps(a0, b, c0[j]);
      if (two) c1[j] = _mm512_fmadd_ps(a1, b, c1[j]);
    }
    Ap += MR;
    Bp += NR;
  }
  const size_t m0 = m < 16 ? m : 16, m1 = m > 16 ? m - 16 : 0;
  const __mmask16 k0 = (__mmask16)((1u << m0) - 1u), k1 = (__mmask16)((1u << m1) - 1u);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  tile_epilogue te;
  const tile_epilogue *ep = NULL;
  if (bias) {
    te = tile_epilogue_of(bias, act, k0, two ? k1 : 0);
    ep = &te;
  }
#pragma GCC unroll 12
  for (size_t j = 0; j < NC; j++)
    if (n > j) store_col(C + j * ldc, c0[j], c1[j], va, vb, read_c, alpha != 1.0f, k0, two ? k1 : 0, ep);
}

/* Columns of the unpacked op(A) = A are read this many k steps ahead by the fused
 * pack-and-multiply kernel, into L2 only: at an lda that is a multiple of 4 KiB every
 * column maps to the same L1 sets, and a dozen columns in flight in L1 would evict the
 * B micro-panel. */
#define A_SOURCE_PREFETCH_COLUMNS 16

/* The full 32 x 12 tile (n > 8, m > 16). With A_src (a constant after inlining) the tile
 * reads op(A) = A where it lies, column by column at stride lda, and stores each loaded
 * pair of vectors into Ap_out: the packed micro-panel the same block's other column panels
 * then read, so the driver's separate pass over A disappears. The loaded values, and so
 * the FMA chains, are the packed kernel's: the same bits.
 *
 * 24 accumulators + 2 A vectors leave 6 of the 32 zmm free; each B value is broadcast
 * once for its two FMAs (GCC emits a vbroadcastss each, not embedded {1to16} operands,
 * which would load it twice), so a k step is 2 loads + 12 broadcasts for 24 FMAs. Every C element is one accumulator chain over k in order, whatever
 * its place in the tile: the result never depends on how C was tiled. */
static inline __attribute__((always_inline)) void full_tile(size_t k, float alpha,
                                                            const float *Ap, const float *Bp,
                                                            float beta, float *C, size_t ldc,
                                                            size_t m, size_t n,
                                                            const float *A_src, size_t lda,
                                                            float *Ap_out, const float *bias,
                                                            dn_act act) {
  const size_t m0 = m < 16 ? m : 16, m1 = m > 16 ? m - 16 : 0;
  const __mmask16 k0 = (__mmask16)((1u << m0) - 1u), k1 = (__mmask16)((1u << m1) - 1u);
#define DN_ACC(j) __m512 c0_##j = _mm512_setzero_ps(), c1_##j = _mm512_setzero_ps()
  DN_ACC(0); DN_ACC(1); DN_ACC(2); DN_ACC(3); DN_ACC(4); DN_ACC(5);
  DN_ACC(6); DN_ACC(7); DN_ACC(8); DN_ACC(9); DN_ACC(10); DN_ACC(11);
#undef DN_ACC

  for (size_t j = 0; j < n && j < NR; j++) _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);

#define DN_FMA(j)                                      \
  do {                                                 \
    const __m512 b = _mm512_set1_ps(Bp[j]);            \
    c0_##j = _mm512_fmadd_ps(a0, b, c0_##j);           \
    c1_##j = _mm512_fmadd_ps(a1, b, c1_##j);           \
  } while (0)
  for (size_t p = 0; p < k; p++) {
    __m512 a0, a1;
    if (A_src) {
      const float *ahead = A_src + A_SOURCE_PREFETCH_COLUMNS * lda;
      _mm_prefetch((const char *)ahead, _MM_HINT_T1);
      _mm_prefetch((const char *)(ahead + m - 1), _MM_HINT_T1);
      a0 = _mm512_maskz_loadu_ps(k0, A_src);
      a1 = _mm512_maskz_loadu_ps(k1, A_src + 16);
      _mm512_storeu_ps(Ap_out, a0);
      _mm512_storeu_ps(Ap_out + 16, a1);
      A_src += lda;
      Ap_out += MR;
    } else {
      _mm_prefetch((const char *)(Ap + A_PREFETCH_AHEAD), _MM_HINT_T0);
      _mm_prefetch((const char *)(Ap + A_PREFETCH_AHEAD + 16), _MM_HINT_T0);
      a0 = _mm512_loadu_ps(Ap);
      a1 = _mm512_loadu_ps(Ap + 16);
      Ap += MR;
    }
    DN_FMA(0); DN_FMA(1); DN_FMA(2); DN_FMA(3); DN_FMA(4); DN_FMA(5);
    DN_FMA(6); DN_FMA(7); DN_FMA(8); DN_FMA(9); DN_FMA(10); DN_FMA(11);
    Bp += NR;
  }
#undef DN_FMA

  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  tile_epilogue te;
  const tile_epilogue *ep = NULL;
  if (bias) {
    te = tile_epilogue_of(bias, act, k0, k1);
    ep = &te;
  }
#define DN_STORE(j) \
  if (n > j) store_col(C + j * ldc, c0_##j, c1_##j, va, vb, read_c, alpha != 1.0f, k0, k1, ep)
  DN_STORE(0); DN_STORE(1); DN_STORE(2); DN_STORE(3); DN_STORE(4); DN_STORE(5);
  DN_STORE(6); DN_STORE(7); DN_STORE(8); DN_STORE(9); DN_STORE(10); DN_STORE(11);
#undef DN_STORE
}

static void edge_tiles(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                       float *C, size_t ldc, size_t m, size_t n, const float *bias, dn_act act) {
  const bool two = m > 16;
  if (n <= 4 && two) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 4, true, bias, act);
  else if (n <= 4) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 4, false, bias, act);
  else if (n <= 8 && two) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 8, true, bias, act);
  else if (n <= 8) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 8, false, bias, act);
  else edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, NR, false, bias, act);
}

void dn_sgemm_ukr_avx512_32x12(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                               float *C, size_t ldc, size_t m, size_t n) {
  if (n <= 8 || m <= 16)
    edge_tiles(k, alpha, Ap, Bp, beta, C, ldc, m, n, NULL, DN_ACT_LINEAR);
  else
    full_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, NULL, 0, NULL, NULL, DN_ACT_LINEAR);
}

/* The tile, then C = g(C + bias) while it is in registers: the forward layer's epilogue
 * (bias_add, then act_fwd in place) on the last K block, at the cost of a few vector
 * operations per column instead of another pass over the tile. */
void dn_sgemm_ukr_bias_act_avx512_32x12(size_t k, float alpha, const float *Ap, const float *Bp,
                                        float beta, float *C, size_t ldc, size_t m, size_t n,
                                        const float *bias, dn_act act) {
  if (n <= 8 || m <= 16)
    edge_tiles(k, alpha, Ap, Bp, beta, C, ldc, m, n, bias, act);
  else
    full_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, NULL, 0, NULL, bias, act);
}

void dn_sgemm_ukr_pack_a_avx512_32x12(size_t k, float alpha, const float *A, size_t lda,
                                      float *Ap, const float *Bp, float beta, float *C,
                                      size_t ldc, size_t m, size_t n) {
  if (n <= 8 || m <= 16) { /* an edge tile: pack, then the packed kernel */
    dn_sgemm_pack_n_avx512(k, m, MR, A, lda, Ap);
    edge_tiles(k, alpha, Ap, Bp, beta, C, ldc, m, n, NULL, DN_ACT_LINEAR);
  } else {
    full_tile(k, alpha, NULL, Bp, beta, C, ldc, m, n, A, lda, Ap, NULL, DN_ACT_LINEAR);
  }
}

enum { SMALL_MR = 16, SMALL_NR = 12 };

/* NC (a constant after inlining) columns of the small-M kernel: one zmm of A per k, op(B)
 * broadcast from where it lies. Per element the same chain, alpha and beta steps as
 * dn_sgemm_ukr_avx512_32x12, so the bits match the general path's. */
static inline __attribute__((always_inline)) void small_cols(size_t k, float alpha,
                                                             const float *Ap, const float *B,
                                                             size_t rsb, size_t csb, float beta,
                                                             float *C, size_t ldc,
                                                             __mmask16 rows, size_t NC) {
  __m512 acc[SMALL_NR];
#pragma GCC unroll 12
  for (size_t j = 0; j < NC; j++) acc[j] = _mm512_setzero_ps();
  for (size_t p = 0; p < k; p++, Ap += SMALL_MR, B += rsb) {
    const __m512 a = _mm512_loadu_ps(Ap);
#pragma GCC unroll 12
    for (size_t j = 0; j < NC; j++) acc[j] = _mm512_fmadd_ps(a, _mm512_set1_ps(B[j * csb]), acc[j]);
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (size_t j = 0; j < NC; j++) {
    float *c = C + j * ldc;
    __m512 r = _mm512_mul_ps(va, acc[j]);
    if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(rows, c), r);
    _mm512_mask_storeu_ps(c, rows, r);
  }
}

/* Lanes [0, r) of eight, r = 0..8. */
static inline __m256i first_lanes(size_t r) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - r));
}

/* R (a constant after inlining, <= 12) rows x up to 32 columns when op(B)'s rows are
 * contiguous (csb == 1, the dW of a 10-unit layer): two zmm of op(B) per k, read in place,
 * times R broadcasts of A, every lane useful; the tile goes back to column-major C through
 * 8x8 transposes. Per element the same FMA chain, alpha and beta steps as the general
 * kernel (a * b == b * a), so the bits still match. */
static inline __attribute__((always_inline)) void small_rows_t(size_t k, float alpha,
                                                               const float *Ap, const float *B,
                                                               size_t rsb, float beta, float *C,
                                                               size_t ldc, size_t n, size_t R) {
  const __mmask16 cols0 = (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
  const __mmask16 cols1 = (__mmask16)(n >= 32 ? 0xFFFFu : n > 16 ? (1u << (n - 16)) - 1u : 0u);
  __m512 acc0[12], acc1[12];
#pragma GCC unroll 12
  for (size_t i = 0; i < R; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (size_t p = 0; p < k; p++, Ap += SMALL_MR, B += rsb) {
    const __m512 b0 = _mm512_maskz_loadu_ps(cols0, B), b1 = _mm512_maskz_loadu_ps(cols1, B + 16);
#pragma GCC unroll 12
    for (size_t i = 0; i < R; i++) {
      const __m512 a = _mm512_set1_ps(Ap[i]);
      acc0[i] = _mm512_fmadd_ps(a, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(a, b1, acc1[i]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 2
  for (size_t h = 0; 8 * h < R; h++) { /* rows 8h .. 8h+7 (unrolled: acc stays in registers) */
    const size_t rh = R - 8 * h < 8 ? R - 8 * h : 8;
    const __m256i rows = first_lanes(rh);
#pragma GCC unroll 4
    for (size_t q = 0; q < 4; q++) { /* columns 8q .. 8q+7 */
      if (8 * q >= n) continue;
      __m256 v[8];
#pragma GCC unroll 8
      for (size_t i = 0; i < 8; i++) {
        if (i >= rh) {
          v[i] = _mm256_setzero_ps();
          continue;
        }
        const __m512 r = _mm512_mul_ps(va, q < 2 ? acc0[8 * h + i] : acc1[8 * h + i]);
        v[i] = q % 2 ? _mm512_extractf32x8_ps(r, 1) : _mm512_castps512_ps256(r);
      }
      dn_transpose8_avx2(v);
      for (size_t c = 0; c < 8 && 8 * q + c < n; c++) {
        float *col = C + 8 * h + (8 * q + c) * ldc;
        __m256 r = v[c];
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(col, rows), r);
        _mm256_maskstore_ps(col, rows, r);
      }
    }
  }
}

/* Rows [m_lo, m_hi) in groups of 12, 10, 8, 4, 2, 1 (10: the usual class count) over blocks
 * of 32 columns. */
static void small_t(size_t k, float alpha, const float *Ap, const float *B, size_t rsb, float beta,
                    float *C, size_t ldc, size_t m_lo, size_t m_hi, size_t n) {
  for (size_t j = 0; j < n; j += 32) {
    const size_t nj = n - j < 32 ? n - j : 32;
    for (size_t i = m_lo; i < m_hi;) {
      const size_t left = m_hi - i;
      const size_t R = left >= 12 ? 12 : left >= 10 ? 10 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      float *c = C + i + j * ldc;
      const float *a = Ap + i, *b = B + j;
      switch (R) {
        case 12: small_rows_t(k, alpha, a, b, rsb, beta, c, ldc, nj, 12); break;
        case 10: small_rows_t(k, alpha, a, b, rsb, beta, c, ldc, nj, 10); break;
        case 8: small_rows_t(k, alpha, a, b, rsb, beta, c, ldc, nj, 8); break;
        case 4: small_rows_t(k, alpha, a, b, rsb, beta, c, ldc, nj, 4); break;
        case 2: small_rows_t(k, alpha, a, b, rsb, beta, c, ldc, nj, 2); break;
        default: small_rows_t(k, alpha, a, b, rsb, beta, c, ldc, nj, 1); break;
      }
      i += R;
    }
  }
}

/* R (a constant after inlining, <= 12) rows x up to 16 columns when op(B)'s columns are
 * contiguous (rsb == 1: the forward of a 1- to 12-unit output layer, Z = W A_prev): sixteen
 * columns' next 16 steps of k are loaded and transposed in registers (dn_transpose16_avx512),
 * so each k step is one vector of 16 columns times R broadcasts of A: every lane useful,
 * where small_cols fills R of its 16 (1 of 16 for a one-unit layer). Per element the same
 * FMA chain over k in order, then alpha, then beta, as the general kernel (the tail of k is
 * never multiplied by padding: a * 0 would turn -0 into +0 and Inf into NaN), so the bits
 * still match. Measured: see docs/kernels.md (small M). */
static inline __attribute__((always_inline)) void small_rows_n(size_t k, float alpha,
                                                               const float *Ap, const float *B,
                                                               size_t ldb, float beta, float *C,
                                                               size_t ldc, size_t n, size_t R) {
  __m512 acc[12];
#pragma GCC unroll 12
  for (size_t i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
  for (size_t p0 = 0; p0 < k; p0 += 16, Ap += 16 * SMALL_MR) {
    const size_t pb = k - p0 < 16 ? k - p0 : 16;
    const __mmask16 steps = (__mmask16)(pb == 16 ? 0xFFFFu : (1u << pb) - 1u);
    __m512 v[16];
#pragma GCC unroll 16
    for (size_t c = 0; c < 16; c++)
      v[c] = c < n ? _mm512_maskz_loadu_ps(steps, B + p0 + c * ldb) : _mm512_setzero_ps();
    dn_transpose16_avx512(v); /* v[p] lane c = op(B)(p0 + p, c) */
#pragma GCC unroll 16
    for (size_t p = 0; p < 16; p++) {
      if (p >= pb) break;
#pragma GCC unroll 12
      for (size_t i = 0; i < R; i++)
        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(Ap[p * SMALL_MR + i]), v[p], acc[i]);
    }
  }
  float out[12][16] __attribute__((aligned(64)));
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 12
  for (size_t i = 0; i < R; i++) _mm512_store_ps(out[i], _mm512_mul_ps(va, acc[i]));
  dn_small_store_rows(out[0], 16, R, n, beta, C, ldc);
}

/* Rows [m_lo, m_hi), at most 12 of them, over blocks of 16 columns (op(B)'s columns
 * contiguous). */
static void small_n(size_t k, float alpha, const float *Ap, const float *B, size_t ldb, float beta,
                    float *C, size_t ldc, size_t m_lo, size_t m_hi, size_t n) {
  const float *a = Ap + m_lo;
  for (size_t j = 0; j < n; j += 16) {
    const size_t nj = n - j < 16 ? n - j : 16;
    float *c = C + m_lo + j * ldc;
    const float *b = B + j * ldb;
    switch (m_hi - m_lo) {
#define SMALL_N_CASE(R) \
  case R: small_rows_n(k, alpha, a, b, ldb, beta, c, ldc, nj, R); break;
      SMALL_N_CASE(1) SMALL_N_CASE(2) SMALL_N_CASE(3) SMALL_N_CASE(4) SMALL_N_CASE(5)
      SMALL_N_CASE(6) SMALL_N_CASE(7) SMALL_N_CASE(8) SMALL_N_CASE(9) SMALL_N_CASE(10)
      SMALL_N_CASE(11) SMALL_N_CASE(12)
#undef SMALL_N_CASE
      default: break;
    }
  }
}

/* 12 accumulators + 1 A vector; a k step is 1 load + 12 broadcasts (memory operands of
 * the FMAs) for 12 FMAs, about what two load ports feed to two FMA ports. With op(B)'s
 * rows contiguous, small_t instead; with its columns contiguous and at most 12 rows,
 * small_n. */
void dn_sgemm_small_avx512_16x12(size_t k, float alpha, const float *Ap, const float *B,
                                 size_t rsb, size_t csb, float beta, float *C, size_t ldc,
                                 size_t m_lo, size_t m_hi, size_t n) {
  if (csb == 1) {
    small_t(k, alpha, Ap, B, rsb, beta, C, ldc, m_lo, m_hi, n);
    return;
  }
  if (rsb == 1 && m_hi - m_lo <= 12) {
    small_n(k, alpha, Ap, B, csb, beta, C, ldc, m_lo, m_hi, n);
    return;
  }
  const __mmask16 rows = (__mmask16)(((1u << m_hi) - 1u) & ~((1u << m_lo) - 1u));
  size_t j = 0;
  for (; j + SMALL_NR <= n; j += SMALL_NR)
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, rows, SMALL_NR);
  if (n - j >= 8) {
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, rows, 8);
    j += 8;
  }
  if (n - j >= 4) {
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, rows, 4);
    j += 4;
  }
  if (n - j >= 2) {
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, rows, 2);
    j += 2;
  }
  if (n - j >= 1) small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, rows, 1);
}
