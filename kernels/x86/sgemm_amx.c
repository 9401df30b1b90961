/* SGEMM through AMX tiles: fp32 products from bf16 pieces ("bf16x6").
 *
 * Every fp32 x in the operands is split into three bf16 pieces, x = x0 + x1 + x2 exactly
 * (x0 = bf16(x), x1 = bf16(x - x0), x2 = bf16(x - x0 - x1): 8 + 8 + 8 significant bits,
 * each residual exact in fp32). The product a * b is then the sum of the nine piece
 * products; the three smallest (a1 b2, a2 b1, a2 b2, each under 2^-24 |a b|) are dropped,
 * the six others go through TDPBF16PS, whose bf16 x bf16 products are exact in fp32 and
 * which accumulates in fp32. Measured against an fp64 reference (docs/kernels.md, "AMX"):
 * the error per element is below the fp32 FMA chain's (rms 0.11 against 0.24 eps |A||B|
 * on random normal operands, K = 784; 1.40 against 3.16 on positive ones), so the result
 * is an fp32 GEMM, not a bf16 one, while the tile unit does 16 times the multiply-adds of
 * the AVX-512 FMA ports: six of them a product still leave it ahead.
 *
 * The split needs every piece to be a normal bf16 and no piece product to underflow: the
 * inputs must be 0 or of magnitude in [2^-50, 2^50]. An operand outside that (Inf, NaN,
 * denormals, tiny or huge values) makes dn_sgemm_amx_range return false before it writes
 * anything, and the caller computes that product on the FMA path.
 *
 * Layouts (one array per piece). Tile roles: the accumulator tile holds 16 rows i of C by
 * 16 columns n, so the "A" tile operand is op(A) (rows i, 32 consecutive k: 64 bytes a
 * row) and the "B" operand is op(B) in pairs of k (rows: k pairs; 16 columns n of two
 * bf16 each). C's column-major layout is reached by transposing each 16 x 16 result.
 *   X[piece]: for each 32-row block of op(A) and each step of 32 k, 32 rows x 32 bf16.
 *   Y[piece]: for each 32-column block of op(B) and each step of 32 k, two 16-column
 *             halves of 16 k pairs x 16 columns x 2 bf16.
 * K is padded with zeros to a multiple of 32 and M, N to multiples of 32: padding adds
 * exact zeros (the operands are finite), and padded rows and columns are never stored. */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "x86/x86.h"

enum { BLK = 32, KSTEP = 32, PIECES = 3, TILE_BYTES = 1024 };

/* Pieces x (of op(A)) and y (of op(B)) multiplied, in this order at every k step: the six
 * products of pieces whose orders add up to at most 2. */
static const uint8_t pair_x[6] = {0, 0, 0, 1, 1, 2}, pair_y[6] = {0, 1, 2, 0, 1, 0};

/* ---- availability: CPUID, the OS's XSAVE state and the process's permission ---- */

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static bool amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void) {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = a & (1u << 5);
  if (!tile || !bf16 || !avx512_bf16) return;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0x60000u) != 0x60000u) return; /* XTILECFG and XTILEDATA state enabled by the OS */
  /* Linux keeps the 8 KiB tile state off until the process asks for it; without this the
   * first tile instruction raises SIGILL. A kernel without AMX support answers EINVAL. */
  amx_ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

bool dn_amx_available(void) {
  pthread_once(&amx_once, amx_probe);
  return amx_ok;
}

/* ---- splitting fp32 into bf16 pieces ---- */

static inline __m512 bf16_to_ps(__m256bh h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
}

/* The three pieces of 16 floats; bad |= lanes outside {0} U [2^-50, 2^50] (or NaN). */
static inline void split3(__m512 v, __m256bh p[PIECES], __mmask16 *bad) {
  const __m512 a = _mm512_abs_ps(v);
  const __mmask16 in_range = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0x1p-50f), _CMP_GE_OQ) &
                             _mm512_cmp_ps_mask(a, _mm512_set1_ps(0x1p50f), _CMP_LE_OQ);
  const __mmask16 zero = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ);
  *bad |= (__mmask16) ~(in_range | zero);
  p[0] = _mm512_cvtneps_pbh(v);
  const __m512 r1 = _mm512_sub_ps(v, bf16_to_ps(p[0]));
  p[1] = _mm512_cvtneps_pbh(r1);
  p[2] = _mm512_cvtneps_pbh(_mm512_sub_ps(r1, bf16_to_ps(p[1])));
}

/* Rows of a 16-wide fp32 panel: line p holds 16 consecutive rows at one depth. */
static void panel16(bool contiguous_rows, const float *X, size_t ld, size_t r0, size_t rows,
                    size_t p0, size_t kb, float *dst) {
  if (rows == 0) { /* a block's padding past the last row */
    memset(dst, 0, KSTEP * 16 * sizeof(float));
    return;
  }
  if (contiguous_rows) dn_sgemm_pack_n_avx512(kb, rows, 16, X + r0 + p0 * ld, ld, dst);
  else dn_sgemm_pack_t_avx512(kb, rows, 16, X + p0 + r0 * ld, ld, dst);
  memset(dst + kb * 16, 0, (KSTEP - kb) * 16 * sizeof(float));
}

/* X for rows [r0, r0 + rows) (at most 16) of op(A) at depths [p0, p0 + kb): row r of the
 * half-tile at out + r * 32 (bf16), per piece at stride piece_stride. */
static void pack_x16(char transa, const float *A, size_t lda, size_t r0, size_t rows, size_t p0,
                     size_t kb, uint16_t *out, size_t piece_stride, __mmask16 *bad) {
  float line[KSTEP * 16] __attribute__((aligned(64)));
  panel16(transa == 'N', A, lda, r0, rows, p0, kb, line);
  for (size_t half = 0; half < 2; half++) {
    __m512 v[16];
    for (size_t p = 0; p < 16; p++) v[p] = _mm512_load_ps(line + (16 * half + p) * 16);
    dn_transpose16_avx512(v); /* v[r] lane p = op(A)(r0 + r, p0 + 16 half + p) */
    for (size_t r = 0; r < 16; r++) {
      __m256bh pc[PIECES];
      split3(v[r], pc, bad);
      for (size_t q = 0; q < PIECES; q++)
        _mm256_store_si256((__m256i *)(out + q * piece_stride + r * 32 + 16 * half), (__m256i)pc[q]);
    }
  }
}

/* Y for columns [c0, c0 + cols) (at most 16) of op(B) at depths [p0, p0 + kb): 16 k pairs
 * x 16 columns x 2 at out, per piece at stride piece_stride. */
static void pack_y16(char transb, const float *B, size_t ldb, size_t c0, size_t cols, size_t p0,
                     size_t kb, uint16_t *out, size_t piece_stride, __mmask16 *bad) {
  float line[KSTEP * 16] __attribute__((aligned(64)));
  /* op(B)^T's rows are op(B)'s columns: contiguous when B is transposed */
  panel16(transb == 'T', B, ldb, c0, cols, p0, kb, line);
  static const uint16_t interleave[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                          8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i idx = _mm512_loadu_si512(interleave);
  for (size_t kp = 0; kp < KSTEP / 2; kp++) {
    __m256bh even[PIECES], odd[PIECES];
    split3(_mm512_load_ps(line + (2 * kp) * 16), even, bad);
    split3(_mm512_load_ps(line + (2 * kp + 1) * 16), odd, bad);
    for (size_t q = 0; q < PIECES; q++) {
      const __m512i e = _mm512_castsi256_si512((__m256i)even[q]);
      const __m512i o = _mm512_castsi256_si512((__m256i)odd[q]);
      _mm512_store_si512(out + q * piece_stride + kp * 32, _mm512_permutex2var_epi16(e, idx, o));
    }
  }
}

/* ---- the product ---- */

typedef struct __attribute__((packed)) tile_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

/* 32 x 32 of C from X (one 32-row block, ks steps) and Y (one 32-column block): tiles 0-3
 * accumulate (rows 0-15 / 16-31 of the block x columns 0-15 / 16-31), 4-5 hold X's two
 * halves and 6-7 Y's. T receives the block row-major (row i, 32 columns n). */
static void block32(size_t ks, const uint16_t *X, size_t x_piece, const uint16_t *Y,
                    size_t y_piece, float *T) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (size_t s = 0; s < ks; s++) {
    const char *x = (const char *)(X + s * BLK * KSTEP), *y = (const char *)(Y + s * BLK * KSTEP);
    size_t loaded_x = PIECES;
    for (size_t q = 0; q < 6; q++) {
      if (pair_x[q] != loaded_x) {
        loaded_x = pair_x[q];
        _tile_loadd(4, x + loaded_x * x_piece * 2, 64);
        _tile_loadd(5, x + loaded_x * x_piece * 2 + TILE_BYTES, 64);
      }
      const char *yq = y + pair_y[q] * y_piece * 2;
      _tile_loadd(6, yq, 64);
      _tile_loadd(7, yq + TILE_BYTES, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, T, BLK * 4);
  _tile_stored(1, T + 16, BLK * 4);
  _tile_stored(2, T + 16 * BLK, BLK * 4);
  _tile_stored(3, T + 16 * BLK + 16, BLK * 4);
}

/* C(rows i0 + [0, m), columns n0 + [0, n)) = alpha T + beta C, T row-major 32 x 32. */
static void store_block(const float *T, size_t m, size_t n, float alpha, float beta, float *C,
                        size_t ldc) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (size_t h = 0; 16 * h < m; h++) {
    const size_t mh = m - 16 * h < 16 ? m - 16 * h : 16;
    const __mmask16 rows = (__mmask16)(mh == 16 ? 0xFFFFu : (1u << mh) - 1u);
    for (size_t g = 0; 16 * g < n; g++) {
      __m512 v[16];
      for (size_t r = 0; r < 16; r++) v[r] = _mm512_load_ps(T + (16 * h + r) * BLK + 16 * g);
      dn_transpose16_avx512(v); /* v[c] = column 16 g + c, rows 16 h .. 16 h + 15 */
      for (size_t c = 0; c < 16 && 16 * g + c < n; c++) {
        float *col = C + 16 * h + (16 * g + c) * ldc;
        __m512 r = alpha != 1.0f ? _mm512_mul_ps(va, v[c]) : v[c];
        if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(rows, col), r);
        _mm512_mask_storeu_ps(col, rows, r);
      }
    }
  }
}

static size_t up(size_t a, size_t b) { return (a + b - 1) / b * b; }

bool dn_sgemm_amx_range(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                        const float *A, size_t lda, const float *B, size_t ldb, float beta,
                        float *C, size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1) {
  (void)M;
  (void)N;
  if (!dn_amx_available() || m0 >= m1 || n0 >= n1 || K == 0) return false;
  const size_t rows = m1 - m0, cols = n1 - n0, Kp = up(K, KSTEP), ks = Kp / KSTEP;
  const size_t Mp = up(rows, BLK), Np = up(cols, BLK);
  const size_t x_piece = Mp * Kp, y_piece = Np * Kp; /* bf16 per piece */
  if (rows > SIZE_MAX / 4 || Kp > SIZE_MAX / 2 / (Mp + Np) / PIECES / 2) return false;
  uint16_t *X = aligned_alloc(64, (x_piece + y_piece) * PIECES * sizeof(uint16_t));
  if (!X) return false;
  uint16_t *Y = X + x_piece * PIECES;
  /* Split and lay out both operands first: an input outside the split's range is found
   * before C is touched. */
  __mmask16 bad = 0;
  for (size_t ib = 0; ib < Mp; ib += BLK)
    for (size_t s = 0; s < ks; s++) {
      const size_t kb = K - s * KSTEP < KSTEP ? K - s * KSTEP : KSTEP;
      uint16_t *out = X + (ib / BLK * ks + s) * BLK * KSTEP;
      for (size_t half = 0; half < 2; half++) {
        const size_t r0 = ib + 16 * half, live = r0 < rows ? (rows - r0 < 16 ? rows - r0 : 16) : 0;
        pack_x16(transa, A, lda, m0 + r0, live, s * KSTEP, kb, out + half * 16 * KSTEP, x_piece, &bad);
      }
    }
  for (size_t jb = 0; jb < Np; jb += BLK)
    for (size_t s = 0; s < ks; s++) {
      const size_t kb = K - s * KSTEP < KSTEP ? K - s * KSTEP : KSTEP;
      uint16_t *out = Y + (jb / BLK * ks + s) * BLK * KSTEP;
      for (size_t half = 0; half < 2; half++) {
        const size_t c0 = jb + 16 * half, live = c0 < cols ? (cols - c0 < 16 ? cols - c0 : 16) : 0;
        pack_y16(transb, B, ldb, n0 + c0, live, s * KSTEP, kb, out + half * 16 * KSTEP, y_piece, &bad);
      }
    }
  if (bad) {
    free(X);
    return false;
  }
  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (size_t t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  float T[BLK * BLK] __attribute__((aligned(64)));
  for (size_t ib = 0; ib < Mp; ib += BLK)
    for (size_t jb = 0; jb < Np; jb += BLK) {
      block32(ks, X + ib * Kp, x_piece, Y + jb * Kp, y_piece, T);
      const size_t m = rows - ib < BLK ? rows - ib : BLK, n = cols - jb < BLK ? cols - jb : BLK;
      store_block(T, m, n, alpha, beta, C + (m0 + ib) + (n0 + jb) * ldc, ldc);
    }
  _tile_release();
  free(X);
  return true;
}
