/* The kernel table: the only way the engine reaches a kernel. One table per ISA,
 * each starting from the scalar set and overriding what it implements. */
#ifndef DN_KERNELS_H
#define DN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deepnet.h"

/* GEMM micro-kernel contract (BLIS): C(m x n) = alpha * Ap(mr x k) * Bp(k x nr) + beta * C,
 * with Ap packed as k columns of mr floats and Bp as k rows of nr floats; C is
 * column-major with leading dimension ldc; m <= mr and n <= nr are the live edge
 * (the kernel never touches C outside it); beta == 0 never reads C. */
typedef void (*dn_sgemm_ukr_fn)(size_t k, float alpha, const float *Ap, const float *Bp,
                                float beta, float *C, size_t ldc, size_t m, size_t n);

/* The micro-kernel with the forward layer's epilogue in registers: the same tile as
 * sgemm_ukr, then C = g(C + bias[i]) for row i of the tile (bias points at the tile's first
 * row), with g linear, relu or leaky relu only: bitwise sgemm_ukr, bias_add, act_fwd. */
typedef void (*dn_sgemm_ukr_bias_act_fn)(size_t k, float alpha, const float *Ap, const float *Bp,
                                         float beta, float *C, size_t ldc, size_t m, size_t n,
                                         const float *bias, dn_act act);

/* Full-height MR x n tiles (1 <= n <= NR) down one column panel: tile t reads
 * Ap + t * MR * k and writes the rows C + t * MR, each bitwise sgemm_ukr(k, alpha,
 * Ap + t * MR * k, Bp, beta, C + t * MR, ldc, MR, n). One call per panel instead of one per
 * tile: at K = 10 (dA_prev of a 10-unit layer) the call and its setup were a tenth of a
 * tile's time; and a narrow last panel can take its tiles together (see the AVX2 one). */
typedef void (*dn_sgemm_ukr_rows_fn)(size_t k, float alpha, const float *Ap, size_t tiles,
                                     const float *Bp, float beta, float *C, size_t ldc,
                                     size_t n);

/* The micro-kernel fused with the packing of its A micro-panel: the same tile as
 * sgemm_ukr with Ap = the panel that sgemm_pack_n(k, m, mr, A, lda, Ap) would write, which
 * it writes as it goes, reading op(A) = A (rows i.. of A, k columns at stride lda) where it
 * lies. The driver calls it on a block's first column panel; the others read Ap. */
typedef void (*dn_sgemm_ukr_pack_a_fn)(size_t k, float alpha, const float *A, size_t lda,
                                       float *Ap, const float *Bp, float beta, float *C,
                                       size_t ldc, size_t m, size_t n);

/* The small-M GEMM kernel (M <= small_mr, e.g. a 10-unit output layer): C(rows [m_lo, m_hi)
 * x n) = alpha * Ap(small_mr x k) * op(B)(k x n) + beta * C, with Ap packed as k columns of
 * small_mr floats and op(B)(p, j) read in place at B[p * rsb + j * csb] (no packing of B);
 * C points at row 0 of the panel, any n. Same per-element operations as sgemm_ukr (one
 * chain over k in order, then alpha, then beta), so its C is bitwise the general path's. */
typedef void (*dn_sgemm_small_fn)(size_t k, float alpha, const float *Ap, const float *B,
                                  size_t rsb, size_t csb, float beta, float *C, size_t ldc,
                                  size_t m_lo, size_t m_hi, size_t n);

/* The small-M kernel for op(B)'s columns contiguous along k (rsb == 1: the forward
 * Z = W A_prev of a narrow output layer): C(m x n) = alpha * A(m x k) * B(k x n) + beta * C,
 * row i of A at A + i * rsa and column j of B at B + j * ldb, both contiguous along k; beta
 * == 0 never reads C. Vectors run along k, so no lane idles for m < 16, but the sum's order
 * is its own: lane l of 8 sums the steps p = l mod 8 in order (one FMA each, the last
 * partial vector with zeros in both operands), then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) +
 * (l6 + l7)), then alpha, then beta as one FMA (dn_sgemm_small_dot_scalar8, bitwise). It
 * depends on k and the element only, so any split of rows or columns gives the same bits. */
typedef void (*dn_sgemm_small_dot_fn)(size_t k, float alpha, const float *A, size_t rsa,
                                      const float *B, size_t ldb, float beta, float *C,
                                      size_t ldc, size_t m, size_t n);

/* AMX (x86, built with DN_HAVE_AMX): fp32 GEMM on tiles from bf16 pieces
 * (kernels/x86/sgemm_amx.c says why that is an fp32 GEMM: measured, more accurate than the
 * FMA chain). dn_amx_available: this CPU, its OS and this process can run tile
 * instructions (asks Linux for the tile state once).
 * dn_sgemm_amx_compute: T = alpha op(A) op(B) + beta T over rows [m0, m1) x columns
 * [n0, n1), T pointing at the range's first element, column-major with leading dimension
 * ldt (T may be C itself; beta 0 never reads it). work holds dn_sgemm_amx_workspace(K,
 * m1 - m0, n1 - n0) floats; NULL (no memory) takes a slow path with the same bits. Returns
 * false when AMX is not available or an operand in the range is not 0 or of magnitude in
 * [2^-50, 2^50] (Inf, NaN, tiny or huge values), T then partly written: that product must
 * take the FMA path. dn_sgemm_amx_can_split says beforehand whether it will refuse. Each
 * element is computed the same way whatever the range, so ranges split any way give the
 * same bits. dn_sgemm_amx_store: C = alpha T + beta C over rows x cols (beta 0 never reads
 * C), the same operations as compute's. dn_sgemm_amx_range: both, on a buffer of its own;
 * false leaves C as it was. */
bool dn_amx_available(void);
size_t dn_sgemm_amx_workspace(size_t K, size_t rows, size_t cols); /* SIZE_MAX: overflows */
bool dn_sgemm_amx_compute(char transa, char transb, size_t K, const float *A, size_t lda,
                          const float *B, size_t ldb, size_t m0, size_t m1, size_t n0, size_t n1,
                          float alpha, float beta, float *T, size_t ldt, float *work);
/* op(B) packed once for every thread of a product cut by rows: dn_sgemm_amx_pack_b lays out
 * its columns [n_begin, n_end) (n_begin a multiple of 32) in dst, which holds
 * dn_sgemm_amx_packed_b_bf16(K, N) bf16, and says whether they are all splittable;
 * dn_sgemm_amx_compute_packed_b is dn_sgemm_amx_compute reading op(B) from there (when not
 * both operands are transposed and n0 is a multiple of 32; else, or without work, it packs
 * op(B) itself): the same bits. */
size_t dn_sgemm_amx_packed_b_bf16(size_t K, size_t N); /* SIZE_MAX: overflows */
bool dn_sgemm_amx_pack_b(char transb, size_t K, const float *B, size_t ldb, size_t N,
                         size_t n_begin, size_t n_end, uint16_t *dst);
bool dn_sgemm_amx_compute_packed_b(char transa, char transb, size_t K, const float *A, size_t lda,
                                   const float *B, size_t ldb, const uint16_t *packedB, size_t N,
                                   size_t m0, size_t m1, size_t n0, size_t n1, float alpha,
                                   float beta, float *T, size_t ldt, float *work);
bool dn_sgemm_amx_can_split(char transa, char transb, size_t K, const float *A, size_t lda,
                            const float *B, size_t ldb, size_t m0, size_t m1, size_t n0, size_t n1);
void dn_sgemm_amx_store(const float *T, size_t ldt, float alpha, float beta, float *C, size_t ldc,
                        size_t rows, size_t cols);
/* The store with the forward layer's epilogue: C = g(alpha T + beta C + bias[i]) for g
 * linear, relu or leaky relu, bitwise dn_sgemm_amx_store, bias_add, act_fwd (bias points
 * at the rows' first bias). */
void dn_sgemm_amx_store_bias_act(const float *T, size_t ldt, float alpha, float beta, float *C,
                                 size_t ldc, size_t rows, size_t cols, const float *bias,
                                 dn_act act);
bool dn_sgemm_amx_range(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                        const float *A, size_t lda, const float *B, size_t ldb, float beta,
                        float *C, size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1);

/* Elementwise activation kernels over n contiguous floats. */
typedef void (*dn_act_fwd_fn)(size_t n, const float *Z, float *A);
/* dZ = dA * g'(Z); A = g(Z) is passed too, since several derivatives are cheaper from it. */
typedef void (*dn_act_bwd_fn)(size_t n, const float *Z, const float *A, const float *dA,
                              float *dZ);

typedef struct dn_kernel_table {
  dn_isa isa;
  const char *sgemm_ukr_name; /* e.g. "dn_sgemm_ukr_avx512_32x12" */
  size_t mr, nr;              /* micro-tile of sgemm_ukr */
  dn_sgemm_ukr_fn sgemm_ukr;
  dn_sgemm_ukr_rows_fn sgemm_ukr_rows;     /* NULL: the driver calls sgemm_ukr per tile */
  dn_sgemm_ukr_pack_a_fn sgemm_ukr_pack_a; /* NULL: the driver packs A in its own pass */
  /* sgemm_ukr_pack_a also at an lda that is a multiple of 4 KiB. Set by the dispatcher
   * from the CPU, not by the table: Intel cores lose 11-13% there (4 KiB aliasing of the
   * kernel's column loads), AMD Zen 3 gained 14-16% at m128 in session 13 and lost 5-11%
   * in session 15's loaded phase (docs/kernels.md, Blocking and Session 15). */
  bool ukr_pack_a_any_lda;
  dn_sgemm_ukr_bias_act_fn sgemm_ukr_bias_act; /* NULL: the epilogue is a pass over the panel */
  /* Largest K block of the GEMM driver (0: the driver's default). Fixed per ISA, never
   * read from the cache sizes: it sets each C element's summation order, which must be
   * the same on every machine and topology (HWLOC_SYNTHETIC included). */
  size_t sgemm_kc;
#define DN_SGEMM_KC_DEFAULT 256
  /* Packing of one micro-panel of width w (MR or NR) and depth k from r <= w live
   * lines of src, lines r..w-1 zero (NULL: the driver's portable C). pack_n copies,
   * dst[p*w + i] = src[i + p*ld]; pack_t transposes, dst[p*w + i] = src[p + i*ld]. */
  void (*sgemm_pack_n)(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
  void (*sgemm_pack_t)(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);
  /* Small-M path (NULL: none; the general path serves every M). */
  const char *sgemm_small_name;
  size_t small_mr;
  dn_sgemm_small_fn sgemm_small;
  /* With op(B)'s columns contiguous (transb 'N'), the small-M path multiplies with this
   * instead for M <= small_dot_max_m, op(A)'s rows along k (NULL: sgemm_small serves
   * both). Its bits are its own, not the general path's (see dn_sgemm_small_dot_fn). */
  const char *sgemm_small_dot_name;
  dn_sgemm_small_dot_fn sgemm_small_dot;
  size_t small_dot_max_m; /* up to this M; above, sgemm_small (its tile's lanes are full) */

  dn_act_fwd_fn act_fwd[DN_ACT_SOFTMAX]; /* every activation except softmax */
  dn_act_bwd_fn act_bwd[DN_ACT_SOFTMAX];
  /* A = softmax of each of the cols columns of Z (rows x cols, ld = rows). */
  void (*softmax_fwd)(size_t rows, size_t cols, const float *Z, float *A);
  /* Z(:, j) += b for each of the cols columns (rows x cols, ld = rows). */
  void (*bias_add)(size_t rows, size_t cols, const float *b, float *Z);
  /* out[i] = scale * sum_j X(i, j), j ascending (fixed order: bitwise reproducible);
   * X is rows x cols with leading dimension ldx, so callers can split the rows. */
  void (*row_sum)(size_t rows, size_t cols, const float *X, size_t ldx, float scale, float *out);
  /* acc[i] += X(i, j) for j ascending, one chain per row continuing from acc[i]: row_sum
   * taken in column pieces, in order, from acc = 0 (then times scale) is bitwise row_sum. */
  void (*row_sum_acc)(size_t rows, size_t cols, const float *X, size_t ldx, float *acc);
  /* dst[i] = a[i] - b[i] */
  void (*sub)(size_t n, const float *a, const float *b, float *dst);
  /* Whether any of x[0..n) is Inf or NaN (exponent bits all ones): the finiteness checks
   * of inputs and gradients, one read of x with no early exit. */
  bool (*any_nonfinite)(size_t n, const float *x);
  /* max |x[i]| over [0, n) (0 when n is 0), +Inf when any x[i] is Inf or NaN: the
   * gradients' magnitude for the optimizer's overflow bound, read by the same scans. */
  float (*absmax)(size_t n, const float *x);

  /* Optimizer updates on n parameters p with gradient g (L2 already in g). Each returns
   * the absmax (as above) of every value it wrote, p and its state alike: the bound on
   * the next step's inputs, and a check that this one stayed finite. */
  float (*gd_update)(size_t n, float lr, const float *g, float *p);
  /* v = beta v + (1 - beta) g; p -= lr v */
  float (*momentum_update)(size_t n, float lr, float beta, const float *g, float *v, float *p);
  /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr_t m / (sqrt(v) + eps_t)
   * where the caller folds bias correction into lr_t and eps_t. */
  float (*adam_update)(size_t n, float lr_t, float b1, float b2, float eps_t, const float *g,
                       float *m, float *v, float *p);
} dn_kernel_table;

/* Fill kt with an ISA's kernel set (the scalar set, then that ISA's overrides).
 * Called once by the dispatcher (src/dispatch.c), never concurrently. The
 * SIMD ones exist only in builds for their architecture. */
void dn_kernels_fill_scalar(dn_kernel_table *kt);
void dn_kernels_fill_avx2(dn_kernel_table *kt);
void dn_kernels_fill_avx512(dn_kernel_table *kt);
void dn_kernels_fill_neon(dn_kernel_table *kt);
/* Each ISA's vector math (kernels/x86/act_*.c, kernels/arm/act_neon.c): the elementwise
 * entries, called at the end of that ISA's fill. */
void dn_kernels_fill_act_avx2(dn_kernel_table *kt);
void dn_kernels_fill_act_avx512(dn_kernel_table *kt);
void dn_kernels_fill_act_neon(dn_kernel_table *kt);

/* Naive triple-loop GEMM: the reference every optimized path is tested against. */
void dn_sgemm_ref_scalar(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                         const float *A, size_t lda, const float *B, size_t ldb, float beta,
                         float *C, size_t ldc);

/* The GEMM driver shared by all ISAs (kernels/gemm.c): BLIS-style blocking and
 * packing around kt's micro-kernel. Arguments are already validated. */
void dn_gemm(const dn_kernel_table *kt, char transa, char transb, size_t M, size_t N, size_t K,
             float alpha, const float *A, size_t lda, const float *B, size_t ldb, float beta,
             float *C, size_t ldc);

/* The same product restricted to rows [m_begin, m_end) and columns [n_begin, n_end) of C:
 * the hook for callers that split one GEMM over threads. Each C element comes out
 * bitwise identical to dn_gemm's, whatever the ranges, since the blocking of K and the
 * small-M choice depend on the global (M, K) only. */
void dn_gemm_range(const dn_kernel_table *kt, char transa, char transb, size_t M, size_t N,
                   size_t K, float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc, size_t m_begin, size_t m_end, size_t n_begin,
                   size_t n_end);

/* Portable twin of sgemm_small_dot: the same 8 lanes, FMAs and order, so bitwise. */
void dn_sgemm_small_dot_scalar8(size_t k, float alpha, const float *A, size_t rsa, const float *B,
                                size_t ldb, float beta, float *C, size_t ldc, size_t m, size_t n);

/* Portable twin of the small-M kernels (panel width 16, mul + add instead of FMA). */
void dn_sgemm_small_scalar_16(size_t k, float alpha, const float *Ap, const float *B, size_t rsb,
                              size_t csb, float beta, float *C, size_t ldc, size_t m_lo,
                              size_t m_hi, size_t n);

/* Offset of the first Inf/NaN among x[0..n), or n: kt->any_nonfinite first (one vector
 * read, no early exit), the position only when there is one. */
size_t dn_kernels_first_nonfinite(const dn_kernel_table *kt, const float *x, size_t n);
/* *max = the larger of *max and v (both >= 0, +Inf allowed), atomically (__atomic). */
void dn_kernels_raise_max(float *max, float v);
/* dn_kernels_first_nonfinite that also raises *max (if not NULL) to x's absmax, in the
 * same one read (absmax is +Inf exactly when there is an Inf/NaN): the gradient scans. */
size_t dn_kernels_scan(const dn_kernel_table *kt, const float *x, size_t n, float *max);

/* ---- pre-packed op(A) and the fused epilogue ---- */

/* What the driver does to each part of C after its last K block, while it is in cache:
 * Z(i, j) += bias[i] (kt->bias_add), then out(i, j) = g(Z(i, j)) (kt->act_fwd[act], out
 * with C's ld), one tile column (contiguous rows) per call. Bitwise the same as GEMM, then
 * bias_add, then act_fwd over the whole matrix, because those kernels give each element
 * the same bits wherever it sits in the call (masked tails, same formula).
 * With first_nonfinite set, the driver then scans that part of C for Inf/NaN and lowers
 * *first_nonfinite to the smallest offset i + j * ldc it finds (an atomic minimum, so the
 * answer does not depend on how threads split C); the backward pass checks dW so, in
 * cache, instead of in one more pass over it. */
typedef struct dn_gemm_epilogue {
  const float *bias; /* NULL: no bias */
  dn_act act;        /* any but DN_ACT_SOFTMAX (needs whole columns: a separate pass) */
  float *out;        /* NULL: no activation; may be C itself (the activation in place) */
  /* Backward form (with bias NULL): out = C * g'(A) for g = act, where grad_of is the
   * cached A = g(Z), laid out like C: dZ = dA * g'(A) of a hidden layer, on the dA tile
   * the GEMM just wrote (kt->act_bwd with A in place of Z; out may be C). */
  const float *grad_of;
  /* NULL, or row_acc[i] += the epilogue's result (out, or C when out is NULL) at (i, j) for
   * each finished column j, in ascending j per row (kt->row_sum_acc): the db sums of that
   * dZ, taken while it is in cache. The order holds within one range call; threads must
   * split C by rows (the dispatcher does), so each row's chain stays on one thread. */
  float *row_acc;
  size_t *first_nonfinite; /* NULL: no scan; else start it at SIZE_MAX (updated with the
                            * __atomic builtins: kernels.h is also read by C++) */
  /* With first_nonfinite: NULL, or raised (an atomic maximum, from 0) to the absmax of the
   * scanned C (kt->absmax: +Inf if it holds an Inf or NaN), read by the same scan: the
   * gradients' magnitude, for the optimizer's overflow bound. */
  float *absmax;
  /* NULL, or set to true (never reset; __atomic store) when op(B) holds an Inf or NaN:
   * each packed panel of op(B) is scanned right after it is written, in L1, so a caller
   * that must refuse such an input (the forward pass's X) needs no pass over it. Only
   * the general path packs B (dn_gemm_packs_b); on the small-M path nothing is scanned. */
  bool *b_nonfinite;
} dn_gemm_epilogue;

/* The epilogue alone over rows [m0, m1) x columns [n0, n1) of a finished C, as the
 * driver runs it after the product (its in-register form gives the same bits): for a
 * product computed elsewhere (the AMX path). */
void dn_gemm_epilogue_range(const dn_kernel_table *kt, const dn_gemm_epilogue *ep, float *C,
                            size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1);

/* op(A) (M x K) laid out exactly as the driver packs it, for every K block: block by block
 * (the same K blocking as dn_gemm), each a column of panels of w rows (w: the panel width
 * below) and kb columns, zero-padded to a multiple of w rows. Packed once (per weight
 * update), it replaces the per-call packing of A with bitwise the same C. */
size_t dn_gemm_packed_a_width(const dn_kernel_table *kt, size_t M);
/* Floats of the packed op(A); SIZE_MAX if that overflows. */
size_t dn_gemm_packed_a_floats(const dn_kernel_table *kt, size_t M, size_t K);
void dn_gemm_pack_a(const dn_kernel_table *kt, char transa, size_t M, size_t K, const float *A,
                    size_t lda, float *dst);
/* Rows [m_begin, m_end) only (m_begin a multiple of the panel width): lets callers pack
 * over threads. */
void dn_gemm_pack_a_rows(const dn_kernel_table *kt, char transa, size_t M, size_t K,
                         const float *A, size_t lda, float *dst, size_t m_begin, size_t m_end);
/* Rows [m_begin, m_end) and depths [k_begin, k_end) only (m_begin a multiple of the panel
 * width, m_end too unless it is M): lets the optimizer re-pack each part of W right after
 * updating it, while it is still in cache. Zero padding of the last panel is written with
 * the rows it pads, so disjoint blocks can be packed by different threads. */
void dn_gemm_pack_a_block(const dn_kernel_table *kt, char transa, size_t M, size_t K,
                          const float *A, size_t lda, float *dst, size_t m_begin, size_t m_end,
                          size_t k_begin, size_t k_end);

/* dn_gemm_range with op(A) pre-packed (packedA from dn_gemm_pack_a for this kt, M and K),
 * m_begin a multiple of the panel width, and an optional epilogue (ep may be NULL); C
 * (before the epilogue) is bitwise that of dn_gemm_range on the unpacked A. */
void dn_gemm_range_packed(const dn_kernel_table *kt, size_t M, size_t N, size_t K, float alpha,
                          const float *packedA, char transb, const float *B, size_t ldb,
                          float beta, float *C, size_t ldc, size_t m_begin, size_t m_end,
                          size_t n_begin, size_t n_end, const dn_gemm_epilogue *ep);

/* A 64-byte aligned buffer of at least floats floats, one per calling thread and slot,
 * grown on demand and kept between calls (so packing does not map and fault in fresh
 * pages every call); freed when the thread ends. NULL when out of memory. */
enum { DN_BUF_PANELS, DN_BUF_SHARED, DN_BUF_AMX_B, DN_BUF_SLOTS }; /* AMX_B: op(B) in bf16 pieces */
float *dn_gemm_thread_buffer(int slot, size_t floats);

/* op(B) (K x N) laid out as the driver packs it: K block after K block, each a row of
 * NR-wide panels of kb lines, zero-padded to a multiple of NR columns (panel of columns
 * j0.. of block pc at pc * round_up(N, NR) + j0 * kb). Threads that split C by rows all
 * read the whole op(B): packed once, shared, it is not packed once per thread. Only the
 * general path packs B (dn_gemm_packs_b: false on the small-M path, which reads B in place). */
bool dn_gemm_packs_b(const dn_kernel_table *kt, size_t M);
size_t dn_gemm_packed_b_floats(const dn_kernel_table *kt, size_t N, size_t K);
/* This core's share of its L2 cache in bytes (hwloc; 1 MiB when unknown). */
size_t dn_gemm_l2_bytes(void);
/* Columns [n_begin, n_end) (n_begin a multiple of NR, n_end too unless it is N); with
 * nonfinite not NULL, set *nonfinite when any of them holds an Inf or NaN (as b_nonfinite). */
void dn_gemm_pack_b_cols(const dn_kernel_table *kt, char transb, size_t N, size_t K,
                         const float *B, size_t ldb, float *dst, size_t n_begin, size_t n_end,
                         bool *nonfinite);
/* The general range entry: op(A) from packedA when not NULL (else A, lda, transa), op(B)
 * from packedB when not NULL (else B, ldb, transb), an optional epilogue. Bitwise
 * dn_gemm_range's C whatever is pre-packed. */
void dn_gemm_range_prepacked(const dn_kernel_table *kt, char transa, char transb, size_t M,
                             size_t N, size_t K, float alpha, const float *A, size_t lda,
                             const float *packedA, const float *B, size_t ldb,
                             const float *packedB, float beta, float *C, size_t ldc,
                             size_t m_begin, size_t m_end, size_t n_begin, size_t n_end,
                             const dn_gemm_epilogue *ep);

/* The kernel a GEMM with this global M runs (the small-M or the general micro-kernel). */
const char *dn_gemm_kernel_name(const dn_kernel_table *kt, char transb, size_t M);

#endif /* DN_KERNELS_H */
