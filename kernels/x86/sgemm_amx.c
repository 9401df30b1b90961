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
 * denormals, tiny or huge values) makes the product refused (false), and the caller
 * computes it on the FMA path; the dispatcher (src/dispatch.c) writes C only from a
 * product that passed: through a buffer, or after checking the operands first.
 *
 * Layouts (one array per piece). The accumulator tiles hold 16 x 16 fp32; the "rows"
 * operand (tiles 4-5) is 16 rows of 32 consecutive k (64 bytes a row), the "pairs" operand
 * (tiles 6-7) 16 k pairs x 16 columns x 2 bf16 (VNNI). The rows side is op(B), whose rows
 * are C's columns, so a result row is a column of C, and the pairs side op(A); only when
 * both are transposed do the roles swap (each 16 x 16 result is then transposed on its
 * way to C). Each side is laid out per 32-wide block and step of 32 k: two 16-wide
 * half-tiles of 1 KiB. K is padded with zeros to a multiple of 32 and M, N to multiples
 * of 32: padding adds exact zeros (the operands are finite), and padded rows and columns
 * are never stored. */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "x86/act_inline_avx512.h"
#include "x86/x86.h"

enum { BLK = 32, KSTEP = 32, PIECES = 3, TILE_BYTES = 1024 };

/* Pieces x (of the rows side) and y (of the pairs side) multiplied, in this order at every
 * k step: the six products of pieces whose orders add up to at most 2. */
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

/* ---- splitting fp32 into bf16 pieces ----
 * In integer arithmetic on the fp32 bits: x0 = x rounded to 8 significant bits (to nearest,
 * ties to even: add 0x7FFF plus the lowest kept bit, clear the low half), r = x - x0 (exact),
 * x1 = r rounded the same way, x2 = r - x1 (exact, at most 8 significant bits). Each piece
 * is an fp32 value whose low 16 bits are zero: its bf16 is its high half, which
 * vpermt2w gathers from two vectors at a time. The range check keeps the largest
 * |x| bits and the smallest |x| bits - 1 (unsigned: zeros wrap to the top and drop out). */

typedef struct range {
  __m512i min_less1, max; /* per lane: min(|x| bits - 1), max(|x| bits) */
} range;

static inline __m512 round_bf16(__m512 x) {
  const __m512i b = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  const __m512i up = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), lsb);
  return _mm512_castsi512_ps(_mm512_and_si512(up, _mm512_set1_epi32((int)0xFFFF0000u)));
}

static inline void split3(__m512 x, __m512 p[PIECES], range *rg) {
  const __m512i mag = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF));
  rg->min_less1 = _mm512_min_epu32(rg->min_less1, _mm512_sub_epi32(mag, _mm512_set1_epi32(1)));
  rg->max = _mm512_max_epu32(rg->max, mag);
  p[0] = round_bf16(x);
  const __m512 r = _mm512_sub_ps(x, p[0]);
  p[1] = round_bf16(r);
  p[2] = _mm512_sub_ps(r, p[1]);
}

/* 32 bf16 picked from the high halves of a's and b's floats: word w of the result is
 * 16-bit word idx[w] of a (0-31) then b (32-63), whose odd words are the high halves. */
static const uint16_t in_order[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                      23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
                                      45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
static const uint16_t side_by_side[32] = {1,  33, 3,  35, 5,  37, 7,  39, 9,  41, 11,
                                          43, 13, 45, 15, 47, 17, 49, 19, 51, 21, 53,
                                          23, 55, 25, 57, 27, 59, 29, 61, 31, 63};

static inline __m512i high_halves(__m512 a, const uint16_t idx[32], __m512 b) {
  return _mm512_permutex2var_epi16(_mm512_castps_si512(a), _mm512_loadu_si512(idx),
                                   _mm512_castps_si512(b));
}

static inline __mmask16 first16(size_t n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* A source operand S seen as S(r, k): k_contiguous means S(r, k) = S[k + r ld], else
 * S[r + k ld]. */
typedef struct source {
  const float *S;
  size_t ld;
  bool k_contiguous;
} source;

/* 32 lines of depth [k0, k0 + kb) x 16 r of S (r from r0, live of them), zero-padded: line
 * p, lane j = S(r0 + j, k0 + p). */
static void lines_of(const source *src, size_t r0, size_t live, size_t k0, size_t kb,
                     float *dst) {
  if (live == 0) {
    memset(dst, 0, KSTEP * 16 * sizeof(float));
    return;
  }
  if (src->k_contiguous) dn_sgemm_pack_t_avx512(kb, live, 16, src->S + k0 + r0 * src->ld, src->ld, dst);
  else dn_sgemm_pack_n_avx512(kb, live, 16, src->S + r0 + k0 * src->ld, src->ld, dst);
  memset(dst + kb * 16, 0, (KSTEP - kb) * 16 * sizeof(float));
}

/* Rows-side half-tile: 16 rows r of S (r from r0, live of them) x 32 k from k0 (kb of them),
 * each row 32 bf16; per piece at stride piece_stride. */
static void pack_rows16(const source *src, size_t r0, size_t live, size_t k0, size_t kb,
                        uint16_t *out, size_t piece_stride, range *rg) {
  __m512 v[2][16];
  if (src->k_contiguous) { /* each row is already along k */
    const __mmask16 m0 = first16(kb), m1 = first16(kb > 16 ? kb - 16 : 0);
    for (size_t r = 0; r < 16; r++) {
      const float *row = src->S + k0 + (r0 + r) * src->ld;
      v[0][r] = r < live ? _mm512_maskz_loadu_ps(m0, row) : _mm512_setzero_ps();
      v[1][r] = r < live ? _mm512_maskz_loadu_ps(m1, row + 16) : _mm512_setzero_ps();
    }
  } else {
    float lines[KSTEP * 16] __attribute__((aligned(64)));
    lines_of(src, r0, live, k0, kb, lines);
    for (size_t h = 0; h < 2; h++) {
      for (size_t p = 0; p < 16; p++) v[h][p] = _mm512_load_ps(lines + (16 * h + p) * 16);
      dn_transpose16_avx512(v[h]); /* v[h][r] lane p = S(r0 + r, k0 + 16 h + p) */
    }
  }
  for (size_t r = 0; r < 16; r++) {
    __m512 lo[PIECES], hi[PIECES];
    split3(v[0][r], lo, rg);
    split3(v[1][r], hi, rg);
    for (size_t q = 0; q < PIECES; q++)
      _mm512_storeu_si512(out + q * piece_stride + r * KSTEP, high_halves(lo[q], in_order, hi[q]));
  }
}

/* Pairs-side half-tile: 16 k pairs x 16 columns c of S (c from c0, live of them) x 2; per
 * piece at stride piece_stride. */
static void pack_pairs16(const source *src, size_t c0, size_t live, size_t k0, size_t kb,
                         uint16_t *out, size_t piece_stride, range *rg) {
  float lines[KSTEP * 16] __attribute__((aligned(64)));
  const bool direct = !src->k_contiguous && live == 16 && kb == KSTEP;
  if (!direct) lines_of(src, c0, live, k0, kb, lines);
  for (size_t kp = 0; kp < KSTEP / 2; kp++) {
    __m512 even[PIECES], odd[PIECES];
    const float *e = direct ? src->S + c0 + (k0 + 2 * kp) * src->ld : lines + 2 * kp * 16;
    const float *o = direct ? e + src->ld : e + 16;
    split3(_mm512_loadu_ps(e), even, rg);
    split3(_mm512_loadu_ps(o), odd, rg);
    for (size_t q = 0; q < PIECES; q++)
      _mm512_storeu_si512(out + q * piece_stride + kp * 32, high_halves(even[q], side_by_side, odd[q]));
  }
}

/* ---- the product ---- */

typedef struct __attribute__((packed)) tile_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

/* A 32 x 32 block of the result accumulates in tiles 0-3 (rows 0-15 / 16-31 x columns
 * 0-15 / 16-31) over the k steps, each step one call of tiles_step on the rows side's two
 * half-tiles R (tiles 4-5) and the pairs side's P (tiles 6-7), every piece at its stride
 * (bf16). The tiles stay in the unit between calls, so the steps may come from whole
 * packed operands or from one step packed at a time: the same instructions, the same bits. */
static inline void tiles_zero(void) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

static inline void tiles_step(const uint16_t *R, size_t r_piece, const uint16_t *P, size_t p_piece) {
  const char *x = (const char *)R, *y = (const char *)P;
  size_t loaded_x = PIECES;
  for (size_t q = 0; q < 6; q++) {
    if (pair_x[q] != loaded_x) {
      loaded_x = pair_x[q];
      _tile_loadd(4, x + loaded_x * r_piece * 2, 64);
      _tile_loadd(5, x + loaded_x * r_piece * 2 + TILE_BYTES, 64);
    }
    const char *yq = y + pair_y[q] * p_piece * 2;
    _tile_loadd(6, yq, 64);
    _tile_loadd(7, yq + TILE_BYTES, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
}

/* The block, row-major into T (stride ldt floats). */
static inline void tiles_store(float *T, size_t ldt) {
  _tile_stored(0, T, ldt * 4);
  _tile_stored(1, T + 16, ldt * 4);
  _tile_stored(2, T + 16 * ldt, ldt * 4);
  _tile_stored(3, T + 16 * ldt + 16, ldt * 4);
}

/* C = alpha T + beta C where T's rows are C's columns (row t of T, at stride ldt, is
 * column t of C): rows [0, m) of C, columns [0, n). beta == 0 never reads C. */
static void store_columns(const float *T, size_t ldt, size_t m, size_t n, float alpha, float beta,
                          float *C, size_t ldc) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (size_t t = 0; t < n; t++) {
    float *col = C + t * ldc;
    const float *row = T + t * ldt;
    for (size_t i = 0; i < m; i += 16) {
      const __mmask16 live = first16(m - i);
      __m512 r = _mm512_maskz_loadu_ps(live, row + i);
      if (alpha != 1.0f) r = _mm512_mul_ps(va, r);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(live, col + i), r);
      _mm512_mask_storeu_ps(col + i, live, r);
    }
  }
}

/* The same where T's rows are C's rows (both operands transposed): 16 x 16 blocks are
 * transposed on the way. */
static void store_rows(const float *T, size_t ldt, size_t m, size_t n, float alpha, float beta,
                       float *C, size_t ldc) {
  float Tt[16 * 16] __attribute__((aligned(64)));
  for (size_t i = 0; i < m; i += 16)
    for (size_t j = 0; j < n; j += 16) {
      __m512 v[16];
      for (size_t r = 0; r < 16; r++) v[r] = _mm512_load_ps(T + (i + r) * ldt + j);
      dn_transpose16_avx512(v); /* v[c] = column j + c of C, rows i .. i + 15 */
      for (size_t c = 0; c < 16; c++) _mm512_store_ps(Tt + c * 16, v[c]);
      store_columns(Tt, 16, m - i < 16 ? m - i : 16, n - j < 16 ? n - j : 16, alpha, beta,
                    C + i + j * ldc, ldc);
    }
}

static size_t up(size_t a, size_t b) { return (a + b - 1) / b * b; }

/* Whether every value the range saw is 0 or of magnitude in [2^-50, 2^50]. */
static bool range_ok(const range *rg) {
  const uint32_t lo = _mm512_reduce_min_epu32(rg->min_less1), hi = _mm512_reduce_max_epu32(rg->max);
  const uint32_t lo_ok = 0x26800000u - 1u /* 2^-50 */, hi_ok = 0x58800000u /* 2^50 */;
  return lo >= lo_ok && hi <= hi_ok;
}

/* Blocks of the larger side packed together (their source read in runs of SUPER * 32
 * floats where it is contiguous across blocks), then multiplied by every block of the
 * smaller side, which is packed whole first and stays in L2. */
enum { SUPER = 4 };

/* Blocks [first_block, first_block + blocks) of one side at k steps [s0, s1), each block's
 * steps contiguous (2 half-tiles a step). */
static void pack_side(bool rows_side, const source *src, size_t n_live, size_t first_block,
                      size_t blocks, size_t K, size_t s0, size_t s1, uint16_t *out,
                      size_t piece_stride, range *rg) {
  for (size_t s = s0; s < s1; s++) {
    const size_t kb = K - s * KSTEP < KSTEP ? K - s * KSTEP : KSTEP;
    for (size_t b = 0; b < blocks; b++)
      for (size_t h = 0; h < 2; h++) {
        const size_t r0 = (first_block + b) * BLK + 16 * h;
        const size_t live = r0 < n_live ? (n_live - r0 < 16 ? n_live - r0 : 16) : 0;
        uint16_t *o = out + ((b * (s1 - s0) + (s - s0)) * 2 + h) * 16 * KSTEP;
        if (rows_side) pack_rows16(src, r0, live, s * KSTEP, kb, o, piece_stride, rg);
        else pack_pairs16(src, r0, live, s * KSTEP, kb, o, piece_stride, rg);
      }
  }
}

/* Blocking of the smaller ("inner") side: a chunk of ic of its rows and a K block of
 * `steps` k steps, whose pieces stay under INNER_BYTES (in L2 while every block of the
 * larger side is multiplied by them). Two ways to get there, chosen by a cost model in
 * cycles: narrower chunks (each re-packs the whole larger side, ~1.3 cycles a value) or
 * shorter K blocks (each stores and reloads the accumulators of every 32 x 32 block, 8
 * bytes a result, ~0.4 cycles). Neither changes a bit of C: a chunk is a set of whole
 * blocks, and between K blocks each block's fp32 accumulators are stored and loaded back
 * exactly. */
#define INNER_BYTES ((size_t)1 << 20)

typedef struct blocking {
  size_t ic, steps; /* inner chunk (a multiple of 32), k steps per K block */
} blocking;

static size_t steps_for(size_t ic, size_t ks) {
  const size_t steps = INNER_BYTES / (ic * KSTEP * PIECES * sizeof(uint16_t));
  return steps == 0 ? 1 : steps < ks ? steps : ks;
}

static blocking plan_blocking(size_t inner_p, size_t outer_p, size_t ks) {
  blocking best = {inner_p, steps_for(inner_p, ks)};
  double best_cost = -1.0;
  for (size_t ic = inner_p;; ic = up(ic / 2, BLK)) {
    const size_t steps = steps_for(ic, ks);
    const double chunks = (double)((inner_p + ic - 1) / ic), kblocks = (double)((ks + steps - 1) / steps);
    const double cost = (chunks - 1.0) * (double)outer_p * (double)(ks * KSTEP) * 1.3 +
                        (kblocks - 1.0) * (double)inner_p * (double)outer_p * 0.4;
    if (best_cost < 0.0 || cost < best_cost) {
      best = (blocking){ic, steps};
      best_cost = cost;
    }
    if (ic <= 8 * BLK) break;
  }
  return best;
}

size_t dn_sgemm_amx_workspace(size_t K, size_t rows, size_t cols) {
  const size_t Kp = up(K, KSTEP), Rp = up(rows, BLK), Pp = up(cols, BLK);
  const size_t inner = Rp < Pp ? Rp : Pp, outer = Rp < Pp ? Pp : Rp;
  if (Kp > SIZE_MAX / 8 / PIECES / (inner + SUPER * BLK) || inner > SIZE_MAX / 8 / outer)
    return SIZE_MAX;
  const blocking bl = plan_blocking(inner, outer, Kp / KSTEP);
  const size_t kcp = bl.steps * KSTEP;
  /* the bf16 pieces of one K block of an inner chunk and of an outer super-block (as
   * floats), the accumulators carried between K blocks when there are several, and 16 to
   * align them to a cache line: a tile row that straddles two lines costs two accesses
   * (measured: 0.8x on NN 512 x 128 x 784) */
  const size_t partials = kcp < Kp ? inner * outer : 0;
  return (bl.ic + SUPER * BLK) * kcp * PIECES / 2 + partials + 16;
}

typedef struct amx_call {
  bool rows_are_columns;
  source rows_src, pairs_src;
  /* op(B), the rows side, packed beforehand over the whole product (dn_sgemm_amx_pack_b),
   * or NULL: its blocks from rows_block0 on, each with all its k steps, pieces at
   * rows_piece bf16 apart */
  const uint16_t *rows_packed;
  size_t rows_piece, rows_block0;
  size_t n_rows, n_pairs, K, Kp, ks;
  float alpha, beta;
  float *T;
  size_t ldt;
} amx_call;

static amx_call call_of(char transa, char transb, size_t K, const float *A, size_t lda,
                        const float *B, size_t ldb, size_t m0, size_t m1, size_t n0, size_t n1,
                        float alpha, float beta, float *T, size_t ldt) {
  /* Tile roles: the rows side (tiles 4-5, 32 consecutive k a row) is op(B), its rows being
   * C's columns, so a result row is a column of C; op(A) is the pairs side. Only when both
   * are transposed the roles swap (op(A) then lies along k; a result row is a row of C). */
  amx_call c = {.rows_are_columns = !(transa == 'T' && transb == 'T'), .K = K,
                .Kp = up(K, KSTEP), .alpha = alpha, .beta = beta, .T = T, .ldt = ldt};
  c.ks = c.Kp / KSTEP;
  const source a_src = {transa == 'N' ? A + m0 : A + m0 * lda, lda, transa == 'T'};
  const source b_src = {transb == 'N' ? B + n0 * ldb : B + n0, ldb, transb == 'N'};
  c.rows_src = c.rows_are_columns ? b_src : a_src;
  c.pairs_src = c.rows_are_columns ? a_src : b_src;
  c.n_rows = c.rows_are_columns ? n1 - n0 : m1 - m0;
  c.n_pairs = c.rows_are_columns ? m1 - m0 : n1 - n0;
  return c;
}

/* T (or C) = alpha * the block + beta * what it holds, for result block (rb, pb). */
static void store_result(const amx_call *c, const float *blk, size_t rb, size_t pb) {
  const size_t nr = c->n_rows - rb < BLK ? c->n_rows - rb : BLK;
  const size_t np = c->n_pairs - pb < BLK ? c->n_pairs - pb : BLK;
  if (c->rows_are_columns)
    store_columns(blk, BLK, np, nr, c->alpha, c->beta, c->T + pb + rb * c->ldt, c->ldt);
  else
    store_rows(blk, BLK, nr, np, c->alpha, c->beta, c->T + rb + pb * c->ldt, c->ldt);
}

static void load_tile_config(void) {
  tile_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (size_t t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

static inline void tiles_load(const float *T, size_t ldt) {
  _tile_loadd(0, T, ldt * 4);
  _tile_loadd(1, T + 16, ldt * 4);
  _tile_loadd(2, T + 16 * ldt, ldt * 4);
  _tile_loadd(3, T + 16 * ldt + 16, ldt * 4);
}

/* With the workspace: per K block and chunk of the smaller side, that chunk packed, then
 * the larger side a super-block at a time. */
static bool compute_packed(const amx_call *c, uint16_t *work) {
  const size_t Rp = up(c->n_rows, BLK), Pp = up(c->n_pairs, BLK), ks = c->ks;
  /* equal sides: the rows side outer, so consecutive blocks are stored down the same
   * columns of C (a 4096 x 4096 C stored across 32 columns a block: NT 4096-4096 m128 0.78x) */
  const bool rows_outer = Rp >= Pp;
  const size_t outer_p = rows_outer ? Rp : Pp, inner_p = rows_outer ? Pp : Rp;
  const blocking bl = plan_blocking(inner_p, outer_p, ks);
  const size_t kcp = bl.steps * KSTEP;
  const size_t in_piece = bl.ic * kcp, out_piece = SUPER * BLK * kcp; /* bf16 per piece */
  uint16_t *In = work, *Out = In + in_piece * PIECES;
  float *partials = (float *)(Out + out_piece * PIECES); /* 64-byte aligned: kcp % 32 == 0 */
  const source *in_src = rows_outer ? &c->pairs_src : &c->rows_src;
  const source *out_src = rows_outer ? &c->rows_src : &c->pairs_src;
  const size_t in_live = rows_outer ? c->n_pairs : c->n_rows;
  const size_t out_live = rows_outer ? c->n_rows : c->n_pairs;
  range rg = {_mm512_set1_epi32(-1), _mm512_setzero_si512()};
  float blk[BLK * BLK] __attribute__((aligned(64)));
  bool configured = false;
  for (size_t s0 = 0; s0 < ks; s0 += bl.steps) {
    const size_t s1 = s0 + bl.steps < ks ? s0 + bl.steps : ks, steps = s1 - s0;
    const size_t kb_floats = steps * KSTEP; /* pack_side lays each block's steps out contiguously */
    const bool first = s0 == 0, last = s1 == ks;
    for (size_t c0 = 0; c0 < inner_p; c0 += bl.ic) {
      const size_t ic = inner_p - c0 < bl.ic ? inner_p - c0 : bl.ic;
      if (!(c->rows_packed && !rows_outer))
        pack_side(!rows_outer, in_src, in_live, c0 / BLK, ic / BLK, c->K, s0, s1, In, in_piece, &rg);
      if (first && c0 == 0 && !range_ok(&rg)) return false;
      if (!configured) {
        load_tile_config();
        configured = true;
      }
      for (size_t sb = 0; sb < outer_p / BLK; sb += SUPER) {
        const size_t blocks = outer_p / BLK - sb < SUPER ? outer_p / BLK - sb : SUPER;
        if (!(c->rows_packed && rows_outer))
          pack_side(rows_outer, out_src, out_live, sb, blocks, c->K, s0, s1, Out, out_piece, &rg);
        for (size_t b = 0; b < blocks; b++)
          for (size_t ib = 0; ib < ic; ib += BLK) {
            const size_t ob = (sb + b) * BLK, nb = c0 + ib; /* outer and inner block */
            const size_t rb = rows_outer ? ob : nb, pb = rows_outer ? nb : ob;
            const uint16_t *Ob = Out + b * BLK * kb_floats, *Ib = In + ib * kb_floats;
            const uint16_t *Rb = rows_outer ? Ob : Ib, *Pb = rows_outer ? Ib : Ob;
            size_t r_piece = rows_outer ? out_piece : in_piece;
            const size_t p_piece = rows_outer ? in_piece : out_piece;
            if (c->rows_packed) { /* the rows side's block rb, from step s0 */
              Rb = c->rows_packed + (c->rows_block0 + rb / BLK) * BLK * c->Kp + s0 * BLK * KSTEP;
              r_piece = c->rows_piece;
            }
            float *acc = partials + ((rb / BLK) * (Pp / BLK) + pb / BLK) * BLK * BLK;
            if (first) tiles_zero();
            else tiles_load(acc, BLK);
            for (size_t s = 0; s < steps; s++)
              tiles_step(Rb + s * BLK * KSTEP, r_piece, Pb + s * BLK * KSTEP, p_piece);
            if (last) {
              tiles_store(blk, BLK);
              store_result(c, blk, rb, pb);
            } else {
              tiles_store(acc, BLK);
            }
          }
      }
    }
  }
  _tile_release();
  return range_ok(&rg);
}

/* Without one (no memory): each block packs one k step of each side at a time on the stack
 * and feeds the tiles the same steps in the same order: slow, the same bits. */
static bool compute_on_stack(const amx_call *c) {
  uint16_t x[PIECES * BLK * KSTEP] __attribute__((aligned(64)));
  uint16_t y[PIECES * BLK * KSTEP] __attribute__((aligned(64)));
  float blk[BLK * BLK] __attribute__((aligned(64)));
  range rg = {_mm512_set1_epi32(-1), _mm512_setzero_si512()};
  load_tile_config();
  for (size_t rb = 0; rb < c->n_rows; rb += BLK)
    for (size_t pb = 0; pb < c->n_pairs; pb += BLK) {
      tiles_zero();
      for (size_t s = 0; s < c->ks; s++) {
        const size_t kb = c->K - s * KSTEP < KSTEP ? c->K - s * KSTEP : KSTEP;
        for (size_t h = 0; h < 2; h++) {
          const size_t r0 = rb + 16 * h, c0 = pb + 16 * h;
          const size_t rlive = r0 < c->n_rows ? (c->n_rows - r0 < 16 ? c->n_rows - r0 : 16) : 0;
          const size_t clive = c0 < c->n_pairs ? (c->n_pairs - c0 < 16 ? c->n_pairs - c0 : 16) : 0;
          pack_rows16(&c->rows_src, r0, rlive, s * KSTEP, kb, x + h * 16 * KSTEP, BLK * KSTEP, &rg);
          pack_pairs16(&c->pairs_src, c0, clive, s * KSTEP, kb, y + h * 16 * KSTEP, BLK * KSTEP, &rg);
        }
        tiles_step(x, BLK * KSTEP, y, BLK * KSTEP);
      }
      tiles_store(blk, BLK);
      store_result(c, blk, rb, pb);
    }
  _tile_release();
  return range_ok(&rg);
}

bool dn_sgemm_amx_compute(char transa, char transb, size_t K, const float *A, size_t lda,
                          const float *B, size_t ldb, size_t m0, size_t m1, size_t n0, size_t n1,
                          float alpha, float beta, float *T, size_t ldt, float *work) {
  return dn_sgemm_amx_compute_packed_b(transa, transb, K, A, lda, B, ldb, NULL, 0, m0, m1, n0,
                                       n1, alpha, beta, T, ldt, work);
}

size_t dn_sgemm_amx_packed_b_bf16(size_t K, size_t N) {
  const size_t Kp = up(K, KSTEP), Np = up(N, BLK);
  if (Kp > SIZE_MAX / 4 / PIECES / Np) return SIZE_MAX;
  return Np * Kp * PIECES;
}

bool dn_sgemm_amx_pack_b(char transb, size_t K, const float *B, size_t ldb, size_t N,
                         size_t n_begin, size_t n_end, uint16_t *dst) {
  const size_t Kp = up(K, KSTEP), piece = up(N, BLK) * Kp;
  const source b_src = {B, ldb, transb == 'N'};
  range rg = {_mm512_set1_epi32(-1), _mm512_setzero_si512()};
  const size_t b0 = n_begin / BLK, b1 = (n_end + BLK - 1) / BLK;
  if (b0 < b1)
    pack_side(true, &b_src, N, b0, b1 - b0, K, 0, Kp / KSTEP, dst + b0 * BLK * Kp, piece, &rg);
  return range_ok(&rg);
}

bool dn_sgemm_amx_compute_packed_b(char transa, char transb, size_t K, const float *A, size_t lda,
                                   const float *B, size_t ldb, const uint16_t *packedB, size_t N,
                                   size_t m0, size_t m1, size_t n0, size_t n1, float alpha,
                                   float beta, float *T, size_t ldt, float *work) {
  if (!dn_amx_available() || m0 >= m1 || n0 >= n1 || K == 0) return false;
  amx_call c = call_of(transa, transb, K, A, lda, B, ldb, m0, m1, n0, n1, alpha, beta, T, ldt);
  if (!work) return compute_on_stack(&c); /* packs op(B) itself: the same bits */
  if (packedB && c.rows_are_columns && n0 % BLK == 0) {
    c.rows_packed = packedB;
    c.rows_piece = up(N, BLK) * c.Kp;
    c.rows_block0 = n0 / BLK;
  }
  return compute_packed(&c, (uint16_t *)(((uintptr_t)work + 63) & ~(uintptr_t)63));
}

/* The range check alone over columns of rows contiguous floats at stride ld. */
static void scan_range(const float *S, size_t ld, size_t rows, size_t cols, range *rg) {
  for (size_t j = 0; j < cols; j++)
    for (size_t i = 0; i < rows; i += 16) {
      const __m512 v = _mm512_maskz_loadu_ps(first16(rows - i), S + i + j * ld);
      const __m512i mag = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF));
      rg->min_less1 = _mm512_min_epu32(rg->min_less1, _mm512_sub_epi32(mag, _mm512_set1_epi32(1)));
      rg->max = _mm512_max_epu32(rg->max, mag);
    }
}

bool dn_sgemm_amx_can_split(char transa, char transb, size_t K, const float *A, size_t lda,
                            const float *B, size_t ldb, size_t m0, size_t m1, size_t n0, size_t n1) {
  range rg = {_mm512_set1_epi32(-1), _mm512_setzero_si512()};
  if (transa == 'N') scan_range(A + m0, lda, m1 - m0, K, &rg);
  else scan_range(A + m0 * lda, lda, K, m1 - m0, &rg);
  if (transb == 'N') scan_range(B + n0 * ldb, ldb, K, n1 - n0, &rg);
  else scan_range(B + n0, ldb, n1 - n0, K, &rg);
  return range_ok(&rg);
}

bool dn_sgemm_amx_range(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                        const float *A, size_t lda, const float *B, size_t ldb, float beta,
                        float *C, size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1) {
  (void)M;
  (void)N;
  if (m0 >= m1 || n0 >= n1) return false;
  const size_t rows = m1 - m0, cols = n1 - n0, work = dn_sgemm_amx_workspace(K, rows, cols);
  if (work == SIZE_MAX || rows > SIZE_MAX / sizeof(float) / cols ||
      work > SIZE_MAX / sizeof(float) - rows * cols)
    return false;
  float *T = aligned_alloc(64, up((work + rows * cols) * sizeof(float), 64));
  if (!T) return false;
  const bool ok = dn_sgemm_amx_compute(transa, transb, K, A, lda, B, ldb, m0, m1, n0, n1, 1.0f,
                                       0.0f, T, rows, T + rows * cols);
  if (ok) dn_sgemm_amx_store(T, rows, alpha, beta, C + m0 + n0 * ldc, ldc, rows, cols);
  free(T);
  return ok;
}

/* C = g(alpha T + beta C + bias[i]) over rows x cols; no bias: the plain store. */
static void store_to(const float *T, size_t ldt, float alpha, float beta, float *C, size_t ldc,
                     size_t rows, size_t cols, const float *bias, dn_act act) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (size_t j = 0; j < cols; j++)
    for (size_t i = 0; i < rows; i += 16) {
      const __mmask16 live = first16(rows - i);
      __m512 r = _mm512_maskz_loadu_ps(live, T + i + j * ldt);
      if (alpha != 1.0f) r = _mm512_mul_ps(va, r);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(live, C + i + j * ldc), r);
      if (bias) { /* C + b, then g: bias_add's and act_fwd's operations, in their order */
        r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(live, bias + i));
        if (act == DN_ACT_RELU) r = dn_relu_avx512(r);
        else if (act == DN_ACT_LEAKY_RELU) r = dn_leaky_relu_avx512(r);
      }
      _mm512_mask_storeu_ps(C + i + j * ldc, live, r);
    }
}

void dn_sgemm_amx_store_bias_act(const float *T, size_t ldt, float alpha, float beta, float *C,
                                 size_t ldc, size_t rows, size_t cols, const float *bias,
                                 dn_act act) {
  store_to(T, ldt, alpha, beta, C, ldc, rows, cols, bias, act);
}

void dn_sgemm_amx_store(const float *T, size_t ldt, float alpha, float beta, float *C, size_t ldc,
                        size_t rows, size_t cols) {
  store_to(T, ldt, alpha, beta, C, ldc, rows, cols, NULL, DN_ACT_LINEAR);
}
