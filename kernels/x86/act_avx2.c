/* AVX2+FMA vector math: exp, the activations and their derivatives, softmax, bias add,
 * row sums and the optimizer updates, each the vector form of its scalar twin (same
 * operations in the same order; docs/vecmath.md), with masked tails that touch nothing
 * past n. What is the same on every SIMD set is written once in simd_elementwise.h and
 * simd_activations.h, over the vocabulary this file defines; softmax, the finiteness scan
 * and the one-factor exp are AVX2's own. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels.h"
#include "vecmath.h"
#include "x86/x86.h"

#define V 8 /* floats per vector */
/* Software prefetch distance of the forward kernels, in floats (4 KiB), for Z and for the
 * output A: see act_avx512.c. */
#define PREFETCH_AHEAD 1024
#define INLINE static inline __attribute__((always_inline))

typedef __m256 vf;
typedef __m256i vmask;

/* Lanes [0, r) of a tail, r < V (a sliding window over this table). */
static const int32_t tail_bits[2 * V] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
INLINE vmask tail_mask(size_t r) { return _mm256_loadu_si256((const __m256i *)(tail_bits + V - r)); }
#define ALL _mm256_set1_epi32(-1)

/* A full vector, or the masked tail (maskload/maskstore leave the other lanes alone);
 * `full` is a constant after inlining, so the full-vector loop has no masks. */
INLINE vf ld(const float *p, vmask m, bool full) {
  return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
INLINE void st(float *p, vmask m, bool full, vf v) {
  if (full)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, m, v);
}

/* step(i, mask, full, ...) over [0, n): every full vector, then one masked tail. */
#define VLOOP(n, step, ...)                                          \
  do {                                                               \
    size_t i_ = 0;                                                   \
    for (; i_ + V <= (n); i_ += V) step(i_, ALL, true, __VA_ARGS__); \
    if (i_ < (n)) step(i_, tail_mask((n) - i_), false, __VA_ARGS__); \
  } while (0)

INLINE vf set1(float x) { return _mm256_set1_ps(x); }

/* The vector vocabulary of simd_elementwise.h and simd_activations.h. */
typedef __m256 vbool; /* all-ones or zero lanes */
INLINE float hmax(vf v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
INLINE float hsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
/* |x| with NaN as +Inf: min returns its second operand when the first is NaN. */
INLINE vf abs_or_inf(vf x) {
  return _mm256_min_ps(_mm256_andnot_ps(set1(-0.0f), x), set1(__builtin_inff()));
}
#define v_zero() _mm256_setzero_ps()
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_mul _mm256_mul_ps
#define v_div _mm256_div_ps
#define v_sqrt _mm256_sqrt_ps
#define v_fmadd _mm256_fmadd_ps
#define v_min _mm256_min_ps
#define v_max _mm256_max_ps
#define v_hmax hmax
#define v_prefetch(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define SIMD_NAME(f) f##_avx2
INLINE vbool v_gt0(vf z) { return _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ); }
INLINE vbool v_ge0(vf z) { return _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GE_OQ); }
INLINE vbool v_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
INLINE vf v_select(vbool c, vf t, vf f) { return _mm256_blendv_ps(f, t, c); }
INLINE vf v_keep(vbool c, vf x) { return _mm256_and_ps(c, x); }
INLINE vf v_abs(vf x) { return _mm256_andnot_ps(set1(-0.0f), x); }
INLINE vf v_neg_abs(vf x) { return _mm256_or_ps(x, set1(-0.0f)); }
INLINE vf v_sign_onto(vf t, vf z) { return _mm256_or_ps(t, _mm256_and_ps(z, set1(-0.0f))); }
INLINE vf v_relu(vf z) { /* z <= 0 is false for NaN: NaN passes */
  return _mm256_andnot_ps(_mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LE_OQ), z);
}
INLINE vf v_leaky_relu(vf z) {
  return _mm256_blendv_ps(_mm256_mul_ps(set1(DN_LEAKY_SLOPE), z), z, v_gt0(z));
}

INLINE vf pow2i(__m256i k) { /* 2^k, k in [-126, 127] */
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}
/* (1 + q) 2^n as q 2^k1 + 2^k1 (one rounding) times 2^(n - k1), k1 = n / 2: two factors,
 * each a normal float over exp's whole range. */
INLINE vf v_exp_scale(vf q, vf n) {
  const __m256i k = _mm256_cvtps_epi32(n), k1 = _mm256_srai_epi32(k, 1);
  const vf s1 = pow2i(k1);
  return _mm256_mul_ps(_mm256_fmadd_ps(q, s1, s1), pow2i(_mm256_sub_epi32(k, k1)));
}
/* tanh's exp(-2|z|) is of a non-positive argument: the one-factor form below. */
INLINE vf exp_nonpositive_v(vf x, bool zero_tiny);
#define TANH_EXP(x) exp_nonpositive_v(x, false)

#include "simd_elementwise.h"
#include "simd_activations.h"

/* exp(x) for x <= 0 (or NaN) with one scaling factor instead of two: x is clamped at -87,
 * where exp is still a normal float (2^-125.5), so 2^n needs no second factor. Softmax
 * (zero_tiny) takes 0 below -87, an absolute error under 2^-125, far inside its absolute
 * bound (docs/vecmath.md); tanh takes the clamped value, which its 1 - 2e/(1+e) rounds to
 * 1 exactly, as the unclamped one did. Wherever exp(x) is a normal float this is bitwise
 * exp_v (the same reduction and polynomial, and (1 + q) 2^n rounded once in both). */
INLINE vf exp_nonpositive_v(vf x, bool zero_tiny) {
  const vf tiny = _mm256_cmp_ps(x, set1(-87.0f), _CMP_LT_OQ); /* false for NaN: NaN passes */
  x = _mm256_max_ps(set1(-87.0f), x);
  vf n, shifted;
  const vf q = exp_reduce(x, &n, &shifted);
  (void)n;
  /* n sits in the low mantissa bits of shifted (SHIFTER = 1.5 * 2^23 = 0x4B400000 as bits):
   * bits(shifted) - 0x4B400000 is n itself, so 2^n's exponent field is that + 127, in one
   * integer add, with no float-to-int conversion. */
  const vf s = _mm256_castsi256_ps(_mm256_slli_epi32(
      _mm256_add_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(127 - 0x4B400000)), 23));
  const vf e = _mm256_fmadd_ps(q, s, s);
  return zero_tiny ? _mm256_andnot_ps(tiny, e) : e;
}

/* Softmax of one column in three passes: max, exp(z - max) with its sum, divide. */
INLINE void max_step(size_t i, vmask m, bool full, const float *z, vf *acc) {
  vf x = ld(z + i, m, full);
  if (!full) x = _mm256_blendv_ps(set1(-INFINITY), x, _mm256_castsi256_ps(m));
  *acc = _mm256_max_ps(*acc, x);
}
INLINE void exp_sum_step(size_t i, vmask m, bool full, const float *z, vf zmax, float *a, vf *sum) {
  vf e = exp_v(_mm256_sub_ps(ld(z + i, m, full), zmax));
  st(a + i, m, full, e);
  if (!full) e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
  *sum = _mm256_add_ps(*sum, e);
}
INLINE void div_step(size_t i, vmask m, bool full, float *a, vf sum) {
  st(a + i, m, full, _mm256_div_ps(ld(a + i, m, full), sum));
}
/* The same steps for a column of rows <= NV * V (NV a constant after inlining) held in
 * registers from its load to its store: the passes above store exp(z - max) and load it
 * back for the division, and a masked load cannot take its data from a pending masked
 * store, so every column waited for its own stores. Same operations in the same order:
 * the same bits. */
INLINE void softmax_col_in_regs(size_t rows, const float *z, float *a, size_t NV) {
  vf x[4];
  const size_t last = NV - 1, r = rows - last * V; /* live lanes of the last vector, 1..V */
  const vmask m = r == V ? ALL : tail_mask(r);
  vf acc = set1(-INFINITY), sum = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (size_t k = 0; k < NV; k++) {
    const bool full = k < last || r == V;
    x[k] = ld(z + k * V, m, full);
    acc = _mm256_max_ps(acc, full ? x[k] : _mm256_blendv_ps(set1(-INFINITY), x[k], _mm256_castsi256_ps(m)));
  }
  const vf zmax = set1(hmax(acc));
#pragma GCC unroll 4
  for (size_t k = 0; k < NV; k++) {
    const bool full = k < last || r == V;
    x[k] = exp_v(_mm256_sub_ps(x[k], zmax));
    sum = _mm256_add_ps(sum, full ? x[k] : _mm256_and_ps(x[k], _mm256_castsi256_ps(m)));
  }
  const vf total = set1(hsum(sum));
#pragma GCC unroll 4
  for (size_t k = 0; k < NV; k++) st(a + k * V, m, k < last || r == V, _mm256_div_ps(x[k], total));
}

/* Up to V columns (cols of them) of rows < 2V at once, vectorized across the columns: each
 * column's two vectors (rows 0..7, 8..15) are transposed in 8x8 blocks so that one vector
 * holds one row of the columns; max, exp, the sum (sequential over the rows, as the scalar
 * twin's) and the division run on whole vectors; the blocks are transposed back. Per
 * column, the two horizontal reductions (shuffle chains) and a mostly empty second vector
 * for the usual 10 classes cost more than the shared transposes. Every operation is per
 * lane, so a column's bits do not depend on its block or lane: a short last block (missing
 * columns are zero lanes, never stored) gives what a full one would, and any split of the
 * columns over threads gives the same result. */
INLINE void softmax_cols_across(size_t rows, size_t cols, const float *Z, float *A) {
  for (size_t i = 0; i < cols * rows; i += 16) {
    _mm_prefetch((const char *)(Z + PREFETCH_AHEAD + i), _MM_HINT_T0);
    _mm_prefetch((const char *)(A + PREFETCH_AHEAD + i), _MM_HINT_T0);
  }
  const size_t upper = rows > V ? rows - V : 0; /* rows in the second vector, < V */
  const __m256i col_start = _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm256_set1_epi32((int)rows));
  const vf live_cols = _mm256_castsi256_ps(cols >= V ? ALL : tail_mask(cols));
  vf r[2 * V]; /* r[i]: row i of the columns */
  size_t first_gathered = 0;
  if (rows >= V && cols == V) { /* rows 0..7 of each column: whole loads, one transpose */
#pragma GCC unroll 8
    for (size_t c = 0; c < V; c++) r[c] = _mm256_loadu_ps(Z + c * rows);
    dn_transpose8_avx2(r);
    first_gathered = V;
  }
  for (size_t i = first_gathered; i < rows; i++)
    r[i] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), Z,
                                    _mm256_add_epi32(col_start, _mm256_set1_epi32((int)i)), live_cols, 4);
  vf zmax = r[0], sum = _mm256_setzero_ps();
  for (size_t i = 1; i < rows; i++) zmax = _mm256_max_ps(zmax, r[i]);
  for (size_t i = 0; i < rows; i++) {
    r[i] = exp_nonpositive_v(_mm256_sub_ps(r[i], zmax), true);
    sum = _mm256_add_ps(sum, r[i]);
  }
  const vf inv = _mm256_div_ps(set1(1.0f), sum);
  for (size_t i = 0; i < rows; i++) r[i] = _mm256_mul_ps(r[i], inv);
  for (size_t i = rows; i < 2 * V; i++) r[i] = _mm256_setzero_ps();
  dn_transpose8_avx2(r);
  if (upper) dn_transpose8_avx2(r + V);
#pragma GCC unroll 8
  for (size_t c = 0; c < V && c < cols; c++) {
    dn_store_first_avx2(A + c * rows, r[c], rows); /* plain stores: see its comment */
    if (upper) dn_store_first_avx2(A + c * rows + V, r[V + c], upper);
  }
}

static void dn_softmax_fwd_avx2(size_t rows, size_t cols, const float *Z, float *A) {
  const size_t vectors = (rows + V - 1) / V;
  if (rows > 0 && rows < 2 * V) {
    for (size_t j = 0; j < cols; j += V)
      if (rows == 10) /* the usual class count: a constant row count keeps r[] in registers */
        softmax_cols_across(10, cols - j < V ? cols - j : V, Z + j * rows, A + j * rows);
      else
        softmax_cols_across(rows, cols - j < V ? cols - j : V, Z + j * rows, A + j * rows);
    return;
  }
  for (size_t j = 0; j < cols; j++) {
    const float *z = Z + j * rows;
    float *a = A + j * rows;
    switch (vectors) {
      case 1: softmax_col_in_regs(rows, z, a, 1); continue;
      case 2: softmax_col_in_regs(rows, z, a, 2); continue;
      case 3: softmax_col_in_regs(rows, z, a, 3); continue;
      case 4: softmax_col_in_regs(rows, z, a, 4); continue;
      default: break;
    }
    vf acc = set1(-INFINITY), sum = _mm256_setzero_ps();
    VLOOP(rows, max_step, z, &acc);
    VLOOP(rows, exp_sum_step, z, set1(hmax(acc)), a, &sum);
    VLOOP(rows, div_step, a, set1(hsum(sum)));
  }
}

/* Exponent bits all ones; masked-off tail lanes load as 0 (finite). */
INLINE void nonfinite_step(size_t i, vmask m, bool full, const float *x, __m256i *any) {
  const __m256i e = _mm256_set1_epi32(0x7f800000);
  const __m256i u = _mm256_castps_si256(ld(x + i, m, full));
  *any = _mm256_or_si256(*any, _mm256_cmpeq_epi32(_mm256_and_si256(u, e), e));
}
static bool dn_any_nonfinite_avx2(size_t n, const float *x) {
  __m256i any = _mm256_setzero_si256();
  VLOOP(n, nonfinite_step, x, &any);
  return !_mm256_testz_si256(any, any);
}

void dn_kernels_fill_act_avx2(dn_kernel_table *kt) {
  fill_simd_activations(kt);
  kt->softmax_fwd = dn_softmax_fwd_avx2;
  kt->any_nonfinite = dn_any_nonfinite_avx2;
  fill_simd_elementwise(kt);
}
