/* AVX2+FMA SGEMM micro-kernel, 16x6: two ymm of A per k, six broadcasts of B. */
#include <immintrin.h>

#include "x86/x86.h"

enum { MR = 16, NR = 6 };

/* Row masks for a partial column: lanes [0, r) set, for r = 0..8. */
static inline __m256i row_mask(size_t r) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - r));
}

/* Lanes that are not a prefix of the vector (the small-M kernel on a row range
 * starting inside it): stored through the mask. */
#define NOT_A_PREFIX ((size_t)-1)

/* One column of the tile: alpha * acc + beta * C for its live rows, the first m0 of
 * rows 0-7 and m1 of rows 8-15 (NOT_A_PREFIX: the lanes of k0 / k1 instead); beta == 0
 * never reads C. Full vectors load and store plainly, a prefix is stored in pieces
 * (dn_store_first_avx2), only other lane sets through vmaskmovps. */
static inline __attribute__((always_inline)) void store_col(float *c, __m256 r0, __m256 r1,
                                                            __m256 va, __m256 vb, bool read_c,
                                                            size_t m0, size_t m1, __m256i k0,
                                                            __m256i k1) {
  r0 = _mm256_mul_ps(va, r0);
  r1 = _mm256_mul_ps(va, r1);
  if (read_c) {
    r0 = _mm256_fmadd_ps(vb, m0 == 8 ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, k0), r0);
    r1 = _mm256_fmadd_ps(vb, m1 == 8 ? _mm256_loadu_ps(c + 8) : _mm256_maskload_ps(c + 8, k1), r1);
  }
  if (m0 <= 8)
    dn_store_first_avx2(c, r0, m0);
  else
    _mm256_maskstore_ps(c, k0, r0);
  if (m1 <= 8)
    dn_store_first_avx2(c + 8, r1, m1);
  else
    _mm256_maskstore_ps(c + 8, k1, r1);
}

/* An edge tile: NC (2, 4 or 6) columns and one or two ymm of rows (constants after
 * inlining), so C's last panel of 2 or 4 columns (N = 128 ends in 2), or of 8 rows, costs
 * only those FMAs. Per element the same chain, alpha and beta steps as the full tile. */
static inline __attribute__((always_inline)) void edge_tile(size_t k, float alpha,
                                                            const float *Ap, const float *Bp,
                                                            float beta, float *C, size_t ldc,
                                                            size_t m, size_t n, size_t NC,
                                                            bool two) {
  __m256 c0[NR], c1[NR];
#pragma GCC unroll 6
  for (size_t j = 0; j < NC; j++) c0[j] = c1[j] = _mm256_setzero_ps();
  for (size_t j = 0; j < n && j < NC; j++) _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);
  for (size_t p = 0; p < k; p++) {
    _mm_prefetch((const char *)(Ap + 8 * MR), _MM_HINT_T0);
    const __m256 a0 = _mm256_loadu_ps(Ap), a1 = two ? _mm256_loadu_ps(Ap + 8) : a0;
#pragma GCC unroll 6
    for (size_t j = 0; j < NC; j++) {
      const __m256 b = _mm256_broadcast_ss(Bp + j);
      c0[j] = _mm256_fmadd_ps(a0, b, c0[j]);
      if (two) c1[j] = _mm256_fmadd_ps(a1, b, c1[j]);
    }
    Ap += MR;
    Bp += NR;
  }
  const size_t m0 = m < 8 ? m : 8, m1 = two && m > 8 ? m - 8 : 0;
  const __m256i k0 = row_mask(m0), k1 = row_mask(m1);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
#pragma GCC unroll 6
  for (size_t j = 0; j < NC; j++)
    if (n > j) store_col(C + j * ldc, c0[j], c1[j], va, vb, read_c, m0, m1, k0, k1);
}

/* Columns of the unpacked op(A) = A are read this many k steps ahead by the fused
 * pack-and-multiply kernel, into L2 only (see sgemm_avx512.c). 32 rather than 16: the
 * fused tiles of NN 1024 x 128 x 1024 and 4096 x 128 x 4096 cost 6-7x a packed tile (perf),
 * waiting on A's lines; 32 ahead made dn_sgemm 1.01-1.04x on NN 512-4096 at m 128-256 on
 * the Zen 3 guest (deepnet-kernel-pair, 30 pairs; 8 ahead 0.95x, 48-64 no better). */
#define A_SOURCE_PREFETCH_COLUMNS 32

/* The full 16 x 6 tile. With A_src (a constant after inlining) the tile reads op(A) = A
 * where it lies, column by column at stride lda, and stores each loaded pair of vectors
 * into Ap_out, the packed micro-panel the block's other column panels read: the same
 * values in the same FMA chains as the packed kernel, so the same bits.
 *
 * 12 accumulators + 2 A vectors + 1 broadcast = 15 of the 16 ymm; a k step is
 * 2 loads + 6 broadcasts for 12 FMAs. Every C element is one accumulator chain
 * over k in order, whatever its place in the tile. */
static inline __attribute__((always_inline)) void full_tile(size_t k, float alpha,
                                                            const float *Ap, const float *Bp,
                                                            float beta, float *C, size_t ldc,
                                                            size_t m, size_t n,
                                                            const float *A_src, size_t lda,
                                                            float *Ap_out) {
  /* alpha and beta wait in memory: a 16th value live in registers over the loop made GCC
   * keep one accumulator on the stack instead (measured: 105 -> 70 GFLOP/s). */
  volatile float alpha_beta[2] = {alpha, beta};
#define DN_ACC(j) __m256 c0_##j = _mm256_setzero_ps(), c1_##j = _mm256_setzero_ps()
  DN_ACC(0); DN_ACC(1); DN_ACC(2); DN_ACC(3); DN_ACC(4); DN_ACC(5);
#undef DN_ACC

  for (size_t j = 0; j < n && j < NR; j++) _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);

/* Column j of the tile at one k step: b = op(B)(p, j) from the packed line Bs. */
#define DN_FMA_AT(Bs, j)                                                       \
  do {                                                                         \
    const __m256 b = _mm256_broadcast_ss((Bs) + j);                            \
    c0_##j = _mm256_fmadd_ps(a0, b, c0_##j);                                   \
    c1_##j = _mm256_fmadd_ps(a1, b, c1_##j);                                   \
  } while (0)
#define DN_FMA(j) DN_FMA_AT(Bp, j)
  size_t p = 0;
  if (!A_src) {
    /* Packed A: the k loop in assembly, four k steps an iteration at constant offsets (the
     * loop's own instructions once per 48 FMAs) and then the k % 4 last steps, with the 12
     * accumulators pinned in registers from the first step to the last. No software
     * prefetch of A: the packed block streams in order and the hardware prefetchers follow
     * it (one k step a loop with a prefetch ran 0.78-0.92x on a Zen 3 EPYC whose dispatch
     * slots another guest's thread shared: docs/kernels.md, "Instructions per FMA").
     * Why assembly: GCC, given this loop in intrinsics, kept two accumulators on the stack
     * through the k % 4 steps after it (a store and a reload inside their FMA chains, a
     * fifth of the FMAs at K = 10, the dA_prev of a 10-unit layer), whatever form the tail
     * took. Each accumulator still gets one vfmadd231ps a k step, in k order: the chains of
     * the intrinsics form and of the scalar twin, so the same bits (test_gemm). 30 operands
     * is GCC's limit: k enters in the step counter and rcx keeps k % 4. */
#define DN_S(s, j) \
  "vbroadcastss " #s "*24+" #j "*4(%[bp]), %%ymm15\n\t" \
  "vfmadd231ps %%ymm15, %%ymm13, %[c0" #j "]\n\t" \
  "vfmadd231ps %%ymm15, %%ymm14, %[c1" #j "]\n\t"
#define DN_ASM_STEP(s) \
  "vmovups " #s "*64(%[ap]), %%ymm13\n\t" \
  "vmovups " #s "*64+32(%[ap]), %%ymm14\n\t" \
  DN_S(s, 0) DN_S(s, 1) DN_S(s, 2) DN_S(s, 3) DN_S(s, 4) DN_S(s, 5)
    size_t steps = k;
    __asm__ volatile(
        "mov %[n], %%rcx\n\t"
        "shr $2, %[n]\n\t"
        "jz 2f\n\t"
        ".p2align 5\n"
        "1:\n\t"
        DN_ASM_STEP(0) DN_ASM_STEP(1) DN_ASM_STEP(2) DN_ASM_STEP(3)
        "add $256, %[ap]\n\t"
        "add $96, %[bp]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "test $2, %%cl\n\t"
        "jz 3f\n\t"
        DN_ASM_STEP(0) DN_ASM_STEP(1)
        "add $128, %[ap]\n\t"
        "add $48, %[bp]\n"
        "3:\n\t"
        "test $1, %%cl\n\t"
        "jz 4f\n\t"
        DN_ASM_STEP(0)
        "4:\n\t"
        : [c00] "+x"(c0_0), [c10] "+x"(c1_0), [c01] "+x"(c0_1), [c11] "+x"(c1_1),
          [c02] "+x"(c0_2), [c12] "+x"(c1_2), [c03] "+x"(c0_3), [c13] "+x"(c1_3),
          [c04] "+x"(c0_4), [c14] "+x"(c1_4), [c05] "+x"(c0_5), [c15] "+x"(c1_5),
          [ap] "+r"(Ap), [bp] "+r"(Bp), [n] "+r"(steps)
        :
        : "rcx", "xmm13", "xmm14", "xmm15", "cc", "memory");
#undef DN_ASM_STEP
#undef DN_S
    p = k;
  }
  /* With A_src (m == MR: every row live) one k step an iteration: its loads come from
   * the unpacked source, A_SOURCE_PREFETCH_COLUMNS ahead of which the prefetch runs. */
  for (; A_src && p < k; p++) {
    _mm_prefetch((const char *)(A_src + A_SOURCE_PREFETCH_COLUMNS * lda), _MM_HINT_T1);
    _mm_prefetch((const char *)(A_src + A_SOURCE_PREFETCH_COLUMNS * lda + MR - 1), _MM_HINT_T1);
    /* The fused tiles of a block run back to back down its first column panel, each
     * reading one line of every column of A's block (16 floats at stride lda). The next
     * tile's line of this column is fetched too, a whole tile before it is needed: with a
     * large lda each line sits on a page of its own, which the hardware prefetchers do not
     * follow, and the 32-column lead alone is shorter than a DRAM miss. Both made dn_sgemm
     * NN 4096 x 128 x 4096 1.055x, x 256 1.033x, x 512 1.022x, 1024 x 256 x 1024 1.017x,
     * no shape slower (the next line alone: 1.02x; into L1 rather than L2: 0.98x; 12-16
     * alternating pairs a shape, one thread, Zen 3 guest, session 18; docs/kernels.md).
     * The block's last tile reaches below the block: a prefetch never faults. */
    _mm_prefetch((const char *)(A_src + MR), _MM_HINT_T1);
    _mm_prefetch((const char *)(A_src + 2 * MR - 1), _MM_HINT_T1);
    const __m256 a0 = _mm256_loadu_ps(A_src), a1 = _mm256_loadu_ps(A_src + 8);
    _mm256_storeu_ps(Ap_out, a0);
    _mm256_storeu_ps(Ap_out + 8, a1);
    A_src += lda;
    Ap_out += MR;
    DN_FMA(0); DN_FMA(1); DN_FMA(2); DN_FMA(3); DN_FMA(4); DN_FMA(5);
    Bp += NR;
  }
#undef DN_FMA
#undef DN_FMA_AT

  alpha = alpha_beta[0];
  beta = alpha_beta[1];
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  if (m == MR && n == NR) {
    /* The whole tile, without masks or per-column tests: at small K (dA_prev of a 10-unit
     * layer, K = 10) the store phase is a third of the tile. alpha 1 skips its multiply,
     * which leaves every value as it is (1 * x is x, bit for bit). The two common cases
     * (alpha 1, beta 0 or 1: every K block) each get a branch of their own: with one
     * sequence of selects for all four, GCC moved the 12 accumulators through the stack
     * between the assembly loop and the stores. */
    const bool scale = alpha != 1.0f;
#define DN_PUT(j)                                                                     \
  do {                                                                                \
    float *const c = C + j * ldc;                                                     \
    __m256 r0 = scale ? _mm256_mul_ps(va, c0_##j) : c0_##j;                           \
    __m256 r1 = scale ? _mm256_mul_ps(va, c1_##j) : c1_##j;                           \
    if (read_c) {                                                                     \
      r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), r0);                               \
      r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), r1);                           \
    }                                                                                 \
    _mm256_storeu_ps(c, r0);                                                          \
    _mm256_storeu_ps(c + 8, r1);                                                      \
  } while (0)
#define DN_SET(j)                                                                     \
  do {                                                                                \
    _mm256_storeu_ps(C + j * ldc, c0_##j);                                            \
    _mm256_storeu_ps(C + j * ldc + 8, c1_##j);                                        \
  } while (0)
#define DN_ACCUM(j)                                                                   \
  do {                                                                                \
    float *const c = C + j * ldc;                                                     \
    _mm256_storeu_ps(c, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), c0_##j));             \
    _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), c1_##j));     \
  } while (0)
    if (!scale && !read_c) {
      DN_SET(0); DN_SET(1); DN_SET(2); DN_SET(3); DN_SET(4); DN_SET(5);
    } else if (!scale) {
      DN_ACCUM(0); DN_ACCUM(1); DN_ACCUM(2); DN_ACCUM(3); DN_ACCUM(4); DN_ACCUM(5);
    } else {
      DN_PUT(0); DN_PUT(1); DN_PUT(2); DN_PUT(3); DN_PUT(4); DN_PUT(5);
    }
#undef DN_SET
#undef DN_ACCUM
#undef DN_PUT
    return;
  }
  const size_t m0 = m < 8 ? m : 8, m1 = m > 8 ? m - 8 : 0;
  const __m256i k0 = row_mask(m0), k1 = row_mask(m1);
#define DN_STORE(j) \
  if (n > j) store_col(C + j * ldc, c0_##j, c1_##j, va, vb, read_c, m0, m1, k0, k1)
  DN_STORE(0); DN_STORE(1); DN_STORE(2); DN_STORE(3); DN_STORE(4); DN_STORE(5);
#undef DN_STORE
}

static void edge_tiles(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                       float *C, size_t ldc, size_t m, size_t n) {
  const bool two = m > 8;
  if (n <= 2 && two) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 2, true);
  else if (n <= 2) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 2, false);
  else if (n <= 4 && two) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 4, true);
  else if (n <= 4) edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, 4, false);
  else edge_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, NR, false);
}

void dn_sgemm_ukr_avx2_16x6(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                            float *C, size_t ldc, size_t m, size_t n) {
  if (n <= 4 || m <= 8)
    edge_tiles(k, alpha, Ap, Bp, beta, C, ldc, m, n);
  else
    full_tile(k, alpha, Ap, Bp, beta, C, ldc, m, n, NULL, 0, NULL);
}

/* Two full-height tiles of a panel 1 or 2 columns wide (N = 128 and 512 end in 2) at once:
 * 32 rows x 2 columns are 8 accumulator chains, enough for the FMA latency (4 cycles) on
 * two FMA ports, where one 16 x 2 tile's 4 chains ran the FMAs at half rate. Per element the
 * chain, alpha and beta steps of edge_tile, so each tile is bitwise dn_sgemm_ukr_avx2_16x6. */
static void narrow_pair(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                        float *C, size_t ldc, size_t n) {
  const float *Ap2 = Ap + MR * k;
  /* Named, not arrays: with __m256 c[4][2] GCC stored the accumulators to the stack every
   * k step. */
  __m256 c00 = _mm256_setzero_ps(), c10 = c00, c20 = c00, c30 = c00;
  __m256 c01 = c00, c11 = c00, c21 = c00, c31 = c00;
  for (size_t j = 0; j < n; j++) {
    _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(C + MR + j * ldc), _MM_HINT_T0);
  }
  for (size_t p = 0; p < k; p++, Ap += MR, Ap2 += MR, Bp += NR) {
    _mm_prefetch((const char *)(Ap + 8 * MR), _MM_HINT_T0);
    _mm_prefetch((const char *)(Ap2 + 8 * MR), _MM_HINT_T0);
    const __m256 a0 = _mm256_loadu_ps(Ap), a1 = _mm256_loadu_ps(Ap + 8);
    const __m256 a2 = _mm256_loadu_ps(Ap2), a3 = _mm256_loadu_ps(Ap2 + 8);
    const __m256 b0 = _mm256_broadcast_ss(Bp), b1 = _mm256_broadcast_ss(Bp + 1);
    c00 = _mm256_fmadd_ps(a0, b0, c00);
    c10 = _mm256_fmadd_ps(a1, b0, c10);
    c20 = _mm256_fmadd_ps(a2, b0, c20);
    c30 = _mm256_fmadd_ps(a3, b0, c30);
    c01 = _mm256_fmadd_ps(a0, b1, c01);
    c11 = _mm256_fmadd_ps(a1, b1, c11);
    c21 = _mm256_fmadd_ps(a2, b1, c21);
    c31 = _mm256_fmadd_ps(a3, b1, c31);
  }
  const __m256i all = row_mask(8);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool read_c = beta != 0.0f;
  store_col(C, c00, c10, va, vb, read_c, 8, 8, all, all);
  store_col(C + MR, c20, c30, va, vb, read_c, 8, 8, all, all);
  if (n > 1) {
    store_col(C + ldc, c01, c11, va, vb, read_c, 8, 8, all, all);
    store_col(C + MR + ldc, c21, c31, va, vb, read_c, 8, 8, all, all);
  }
}

/* Full-height tiles down a column panel. n = NR: the full tile inlined (at K = 10, TN 256-10,
 * 1.05-1.08x the call per tile, at K = 512-784 1.01x: paired runs in one process,
 * docs/kernels.md). n <= 2: tiles in pairs (narrow_pair); other n, the tile kernel. */
void dn_sgemm_ukr_rows_avx2_16x6(size_t k, float alpha, const float *Ap, size_t tiles,
                                 const float *Bp, float beta, float *C, size_t ldc, size_t n) {
  size_t t = 0;
  if (n == NR) {
    for (; t < tiles; t++, Ap += MR * k, C += MR)
      full_tile(k, alpha, Ap, Bp, beta, C, ldc, MR, NR, NULL, 0, NULL);
    return;
  }
  if (n <= 2)
    for (; t + 2 <= tiles; t += 2, Ap += 2 * MR * k, C += 2 * MR)
      narrow_pair(k, alpha, Ap, Bp, beta, C, ldc, n);
  for (; t < tiles; t++, Ap += MR * k, C += MR)
    dn_sgemm_ukr_avx2_16x6(k, alpha, Ap, Bp, beta, C, ldc, MR, n);
}

void dn_sgemm_ukr_pack_a_avx2_16x6(size_t k, float alpha, const float *A, size_t lda, float *Ap,
                                   const float *Bp, float beta, float *C, size_t ldc, size_t m,
                                   size_t n) {
  if (n <= 4 || m < MR) { /* an edge tile: pack, then the packed kernel */
    dn_sgemm_pack_n_avx2(k, m, MR, A, lda, Ap);
    dn_sgemm_ukr_avx2_16x6(k, alpha, Ap, Bp, beta, C, ldc, m, n);
  } else {
    full_tile(k, alpha, NULL, Bp, beta, C, ldc, m, n, A, lda, Ap);
  }
}

enum { SMALL_NR = 6 };

/* Lanes [lo, hi) of the eight starting at row o. */
static inline __m256i rows_between(size_t lo, size_t hi, size_t o) {
  const size_t a = lo > o ? (lo - o < 8 ? lo - o : 8) : 0, b = hi > o ? (hi - o < 8 ? hi - o : 8) : 0;
  return _mm256_andnot_si256(row_mask(a), row_mask(b));
}

/* The same lanes as a prefix length for store_col: 0..8, or NOT_A_PREFIX. */
static inline size_t prefix_rows(size_t lo, size_t hi, size_t o) {
  const size_t a = lo > o ? (lo - o < 8 ? lo - o : 8) : 0, b = hi > o ? (hi - o < 8 ? hi - o : 8) : 0;
  return a == 0 || a >= b ? (a >= b ? 0 : b) : NOT_A_PREFIX;
}

/* NC (a constant after inlining) columns of the small-M kernel: two ymm of A per k, op(B)
 * broadcast from where it lies. Per element the same chain, alpha and beta steps as
 * dn_sgemm_ukr_avx2_16x6, so the bits match the general path's. */
static inline __attribute__((always_inline)) void small_cols(size_t k, float alpha,
                                                             const float *Ap, const float *B,
                                                             size_t rsb, size_t csb, float beta,
                                                             float *C, size_t ldc, size_t m0,
                                                             size_t m1, __m256i k0, __m256i k1,
                                                             size_t NC) {
  __m256 acc0[SMALL_NR], acc1[SMALL_NR];
#pragma GCC unroll 6
  for (size_t j = 0; j < NC; j++) acc0[j] = acc1[j] = _mm256_setzero_ps();
  for (size_t p = 0; p < k; p++, Ap += MR, B += rsb) {
    const __m256 a0 = _mm256_loadu_ps(Ap), a1 = _mm256_loadu_ps(Ap + 8);
#pragma GCC unroll 6
    for (size_t j = 0; j < NC; j++) {
      const __m256 b = _mm256_broadcast_ss(B + j * csb);
      acc0[j] = _mm256_fmadd_ps(a0, b, acc0[j]);
      acc1[j] = _mm256_fmadd_ps(a1, b, acc1[j]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (size_t j = 0; j < NC; j++)
    store_col(C + j * ldc, acc0[j], acc1[j], va, vb, beta != 0.0f, m0, m1, k0, k1);
}

/* The cases 1..6 of a switch on a row count, each calling KERNEL(args..., r) with r a
 * constant, so the small kernels inline with their row loops unrolled. */
#define ROW_COUNT_CASES(KERNEL, ...)                                                     \
  case 1: KERNEL(__VA_ARGS__, 1); break;                                                 \
  case 2: KERNEL(__VA_ARGS__, 2); break;                                                 \
  case 3: KERNEL(__VA_ARGS__, 3); break;                                                 \
  case 4: KERNEL(__VA_ARGS__, 4); break;                                                 \
  case 5: KERNEL(__VA_ARGS__, 5); break;                                                 \
  case 6: KERNEL(__VA_ARGS__, 6); break;

/* R (a constant after inlining, <= 6) rows x up to 16 columns when op(B)'s rows are
 * contiguous (csb == 1: the dW = dZ A_prev^T of a small output layer): each k step loads 16
 * columns of op(B) as two vectors and multiplies them by R broadcasts of A, so every lane is
 * a column of C, where small_cols fills 10 of its 16 rows for a 10-unit layer. 2R + 2 + 1 of
 * the 16 ymm. Each C element is the general kernel's FMA chain over k in order, then alpha,
 * then beta as one FMA, so the bits match; the rows are transposed into C's columns
 * (dn_transpose8_avx2) at the end of the K block. The AVX-512 kernel's small_t at this width. */
static inline __attribute__((always_inline)) void small_rows_t(size_t k, float alpha,
                                                               const float *Ap, const float *B,
                                                               size_t rsb, float beta, float *C,
                                                               size_t ldc, size_t n, size_t R) {
  __m256 acc0[6], acc1[6];
#pragma GCC unroll 6
  for (size_t i = 0; i < R; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
  const size_t n0 = n < 8 ? n : 8, n1 = n > 8 ? n - 8 : 0;
  const __m256i cols0 = row_mask(n0), cols1 = row_mask(n1);
  const bool whole = n == 16;
  for (size_t p = 0; p < k; p++, Ap += MR, B += rsb) {
    const __m256 b0 = whole ? _mm256_loadu_ps(B) : _mm256_maskload_ps(B, cols0);
    const __m256 b1 = whole ? _mm256_loadu_ps(B + 8) : _mm256_maskload_ps(B + 8, cols1);
#pragma GCC unroll 6
    for (size_t i = 0; i < R; i++) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      acc0[i] = _mm256_fmadd_ps(a, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(a, b1, acc1[i]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const __m256i rows = row_mask(R);
#pragma GCC unroll 2
  for (size_t q = 0; q < 2; q++) { /* columns 8q .. 8q+7 */
    if (8 * q >= n) break;
    __m256 v[8];
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; i++) v[i] = i < R ? _mm256_mul_ps(va, q ? acc1[i] : acc0[i]) : _mm256_setzero_ps();
    dn_transpose8_avx2(v); /* v[c] lane i = row i of column 8q + c */
    for (size_t c = 0; c < 8 && 8 * q + c < n; c++) {
      float *col = C + (8 * q + c) * ldc;
      __m256 r = v[c];
      if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(col, rows), r);
      dn_store_first_avx2(col, r, R);
    }
  }
}

/* Rows [m_lo, m_hi) in groups of at most 6 (10 rows as 5 + 5) over blocks of 16 columns
 * (op(B)'s rows contiguous). */
static void small_t(size_t k, float alpha, const float *Ap, const float *B, size_t rsb, float beta,
                    float *C, size_t ldc, size_t m_lo, size_t m_hi, size_t n) {
  for (size_t j = 0; j < n; j += 16) {
    const size_t nj = n - j < 16 ? n - j : 16;
    for (size_t i = m_lo; i < m_hi;) {
      const size_t left = m_hi - i;
      const size_t R = left <= 6 ? left : left >= 12 ? 6 : (left + 1) / 2;
      float *c = C + i + j * ldc;
      const float *a = Ap + i, *b = B + j;
      switch (R) {
        ROW_COUNT_CASES(small_rows_t, k, alpha, a, b, rsb, beta, c, ldc, nj)
        default: break;
      }
      i += R;
    }
  }
}

/* The 16x6 register tile of the general kernel with op(B) read in place: a k step is
 * 2 loads + 6 broadcasts for 12 FMAs, as there. With op(B)'s rows contiguous, small_t
 * instead. With its columns contiguous the driver calls this only for M = 13-16 (below, the
 * dot kernel, dn_sgemm_small_dot_avx2, which replaced a transposing form for M <= 6). */
void dn_sgemm_small_avx2_16x6(size_t k, float alpha, const float *Ap, const float *B, size_t rsb,
                              size_t csb, float beta, float *C, size_t ldc, size_t m_lo,
                              size_t m_hi, size_t n) {
  if (csb == 1) { /* op(B)'s rows contiguous: vectors along N */
    small_t(k, alpha, Ap, B, rsb, beta, C, ldc, m_lo, m_hi, n);
    return;
  }
  const __m256i k0 = rows_between(m_lo, m_hi, 0), k1 = rows_between(m_lo, m_hi, 8);
  const size_t m0 = prefix_rows(m_lo, m_hi, 0), m1 = prefix_rows(m_lo, m_hi, 8);
  size_t j = 0;
  for (; j + SMALL_NR <= n; j += SMALL_NR)
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, m0, m1, k0, k1, SMALL_NR);
  if (n - j >= 4) {
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, m0, m1, k0, k1, 4);
    j += 4;
  }
  if (n - j >= 2) {
    small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, m0, m1, k0, k1, 2);
    j += 2;
  }
  if (n - j >= 1) small_cols(k, alpha, Ap, B + j * csb, rsb, csb, beta, C + j * ldc, ldc, m0, m1, k0, k1, 1);
}

/* ---- the small-M product along k: op(B)'s columns contiguous (rsb == 1) ---- */

/* One vector of the eight sums of v[0..7]'s lanes, each ((x0 + x1) + (x2 + x3)) +
 * ((x4 + x5) + (x6 + x7)): the order dn_sgemm_small_dot_scalar8 follows. */
static inline __m256 sum_lanes8(const __m256 v[8]) {
  const __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  /* u0: the low and high halves' sums of v[0..3], u1 those of v[4..7] */
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static inline __attribute__((always_inline)) __m256 dn_in_register(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}

/* Eight steps of k into accumulators from nh held vectors (H + h * sh) and ns streamed
 * ones (S + s * ss): acc[h * ah + s * as] += held h x streamed s (all constants after
 * inlining; the first lanes only, through masked loads, when masked). The side with fewer
 * vectors is the held one, so R * NC + min(R, NC) + 1 <= 15 ymm stay live. Each vector is
 * loaded once into a register: left to itself GCC folded the held side's loads into every
 * FMA that used it, 12 loads per 10 FMAs at R = 5, which the two load ports could not feed
 * (7 this way). */
static inline __attribute__((always_inline)) void dot_step(const float *H, size_t sh, size_t nh,
                                                           const float *S, size_t ss, size_t ns,
                                                           size_t ah, size_t as, __m256 acc[12],
                                                           bool masked, __m256i live) {
#define DN_LOAD(x) dn_in_register(masked ? _mm256_maskload_ps((x), live) : _mm256_loadu_ps(x))
  __m256 held[6];
#pragma GCC unroll 6
  for (size_t h = 0; h < nh; h++) held[h] = DN_LOAD(H + h * sh);
#pragma GCC unroll 8
  for (size_t s = 0; s < ns; s++) {
    const __m256 v = DN_LOAD(S + s * ss);
#pragma GCC unroll 6
    for (size_t h = 0; h < nh; h++) acc[h * ah + s * as] = _mm256_fmadd_ps(held[h], v, acc[h * ah + s * as]);
  }
#undef DN_LOAD
}

/* Eight steps of the R x NC tile (acc[j * R + i] for row i, column j), holding A's rows or
 * B's columns, whichever are fewer (a x b and b x a are the same bits). */
static inline __attribute__((always_inline)) void dot_steps(const float *A, size_t rsa,
                                                            const float *B, size_t ldb,
                                                            __m256 acc[12], bool masked,
                                                            __m256i live, size_t R, size_t NC) {
  if (R <= NC)
    dot_step(A, rsa, R, B, ldb, NC, 1, R, acc, masked, live);
  else
    dot_step(B, ldb, NC, A, rsa, R, R, 1, acc, masked, live);
}

/* R rows x NC columns of C (constants after inlining, R * NC <= 12): each accumulator a
 * vector along k, lane l summing the steps p = l mod 8 in order; the tail of k through
 * masked loads (zeros in both operands). Then the lanes summed (sum_lanes8), times alpha,
 * plus beta * C as one FMA. Registers: R * NC accumulators + min(R, NC) + 1 operands. */
static inline __attribute__((always_inline)) void dot_tile(size_t k, float alpha, const float *A,
                                                           size_t rsa, const float *B,
                                                           size_t ldb, float beta, float *C,
                                                           size_t ldc, size_t R, size_t NC) {
  __m256 acc[12];
#pragma GCC unroll 12
  for (size_t q = 0; q < R * NC; q++) acc[q] = _mm256_setzero_ps();
  size_t p = 0;
  for (; p + 8 <= k; p += 8) dot_steps(A + p, rsa, B + p, ldb, acc, false, _mm256_setzero_si256(), R, NC);
  if (p < k) dot_steps(A + p, rsa, B + p, ldb, acc, true, row_mask(k - p), R, NC);
  float sums[16] __attribute__((aligned(32)));
  {
    __m256 v[8];
#pragma GCC unroll 8
    for (size_t q = 0; q < 8; q++) v[q] = q < R * NC ? acc[q] : _mm256_setzero_ps();
    _mm256_store_ps(sums, sum_lanes8(v));
  }
  if (R * NC > 8) {
    __m256 v[8];
#pragma GCC unroll 8
    for (size_t q = 0; q < 8; q++) v[q] = 8 + q < R * NC ? acc[8 + q] : _mm256_setzero_ps();
    _mm256_store_ps(sums + 8, sum_lanes8(v));
  }
  /* Column j's R sums are sums[j * R ..], as its rows are in C: one vector each. */
  const __m256i rows = row_mask(R);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
  for (size_t j = 0; j < NC; j++) {
    float *const c = C + j * ldc;
    __m256 r = _mm256_maskload_ps(sums + j * R, rows);
    if (alpha != 1.0f) r = _mm256_mul_ps(va, r);
    if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, rows), r);
    dn_store_first_avx2(c, r, R);
  }
}

/* R rows (a constant after inlining) over all n columns: tiles of as many columns as keep
 * 8 or more accumulators in flight (the FMA latency times the two FMA ports) within 12,
 * then one column at a time. */
static inline __attribute__((always_inline)) void dot_rows(size_t k, float alpha, const float *A,
                                                           size_t rsa, const float *B,
                                                           size_t ldb, float beta, float *C,
                                                           size_t ldc, size_t n, size_t R) {
  const size_t NC = R == 1 ? 8 : R == 2 ? 6 : R == 3 ? 3 : 2;
  size_t j = 0;
  for (; j + NC <= n; j += NC)
    dot_tile(k, alpha, A, rsa, B + j * ldb, ldb, beta, C + j * ldc, ldc, R, NC);
  for (; j < n; j++) dot_tile(k, alpha, A, rsa, B + j * ldb, ldb, beta, C + j * ldc, ldc, R, 1);
}

/* Columns of B each row group reads before the next group reads them again, when there are
 * several groups: 12 (a multiple of the tile widths 6, 3 and 2; 8 is one row's, always a
 * single group) columns of up to 384 steps, 18 KiB, stay in L1 (with every group over all
 * n columns, a 10 x 512 x 256 product read B twice from L3 and ran 0.9x the 16-row kernel;
 * paired runs, docs/kernels.md). One group reads B once and takes all n columns: in blocks
 * of 12 a single row's 8-column tiles left 4 of every 12 columns to one-accumulator tiles. */
enum { DOT_COLUMN_BLOCK = 12 };

/* C(m x n) = alpha * A B + beta * C for m <= 16 when op(B)'s columns are contiguous along
 * k (Z = W A_prev of a 10-unit output layer): vectors run along k, so every lane is a
 * useful product, where the 16-row tile left 6 of 16 lanes idle for a 10-row C. Rows in
 * groups of at most 6 (10 as 5 + 5), each over a block of columns. */
void dn_sgemm_small_dot_avx2(size_t k, float alpha, const float *A, size_t rsa, const float *B,
                             size_t ldb, float beta, float *C, size_t ldc, size_t m, size_t n) {
  const size_t groups = (m + 5) / 6, block = groups == 1 ? n : DOT_COLUMN_BLOCK;
  for (size_t j = 0; j < n; j += block) {
    const size_t nb = n - j < block ? n - j : block;
    const float *b = B + j * ldb;
    for (size_t g = 0, i = 0; g < groups; g++) {
      const size_t R = (m - i) / (groups - g) + ((m - i) % (groups - g) != 0);
      const float *a = A + i * rsa;
      float *c = C + i + j * ldc;
      switch (R) {
        ROW_COUNT_CASES(dot_rows, k, alpha, a, rsa, b, ldb, beta, c, ldc, nb)
        default: break;
      }
      i += R;
    }
  }
}
