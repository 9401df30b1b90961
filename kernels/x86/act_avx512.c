/* AVX-512 (F, DQ) vector math: exp, the activations and their derivatives, softmax, bias
 * add, row sums and the optimizer updates, each the vector form of its scalar twin (same
 * operations in the same order; docs/vecmath.md), with masked tails that touch nothing
 * past n. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels.h"
#include "vecmath.h"
#include "x86/act_inline_avx512.h"
#include "x86/x86.h"

#define V 16 /* floats per vector */
/* The forward kernels read Z this many floats (4 KiB) ahead with a software prefetch, and
 * touch the output A as far ahead (measured at 64 MiB, medians of 3 alternating runs: AVX2
 * tanh 8.9 -> 10.0 GB/s, sigmoid 10.9 -> 11.9, relu 12.5 -> 13.4; AVX-512 tanh 11.1 -> 12.1,
 * relu 13.1 -> 13.8; the output stream's misses otherwise stall the stores). The
 * exp family spends so long per vector that the hardware prefetcher, paced by demand
 * misses, falls behind on arrays beyond L2: measured at 64 MiB per array, sigmoid went from
 * 11.3 to 14.5 GB/s and tanh from 9.8 to 13.5 GB/s (relu, a copy: 14.3-15.3); in cache
 * and for relu it changes nothing measurable. A prefetch never faults, so reading past
 * the end is harmless. */
#define PREFETCH_AHEAD 1024
#define INLINE static inline __attribute__((always_inline))

typedef __m512 vf;
typedef __mmask16 vmask;

INLINE vmask tail_mask(size_t r) { return (vmask)((1u << r) - 1u); } /* lanes [0, r), r < V */
#define ALL ((vmask)0xFFFF)

/* A full vector, or the masked tail (masked-off lanes are neither read nor written);
 * `full` is a constant after inlining, so the full-vector loop has no masks. */
INLINE vf ld(const float *p, vmask m, bool full) {
  return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
INLINE void st(float *p, vmask m, bool full, vf v) {
  if (full)
    _mm512_storeu_ps(p, v);
  else
    _mm512_mask_storeu_ps(p, m, v);
}

/* step(i, mask, full, ...) over [0, n): every full vector, then one masked tail. */
#define VLOOP(n, step, ...)                                          \
  do {                                                               \
    size_t i_ = 0;                                                   \
    for (; i_ + V <= (n); i_ += V) step(i_, ALL, true, __VA_ARGS__); \
    if (i_ < (n)) step(i_, tail_mask((n) - i_), false, __VA_ARGS__); \
  } while (0)

INLINE vf set1(float x) { return _mm512_set1_ps(x); }
INLINE vmask gt0(vf z) { return dn_gt0_avx512(z); }

INLINE vf exp_v(vf x) {
  /* min/max return their second operand when one is NaN: NaN passes the clamp. */
  x = _mm512_max_ps(set1(DN_EXP_X_MIN), _mm512_min_ps(set1(DN_EXP_X_MAX), x));
  const vf shifter = set1(DN_EXP_SHIFTER);
  const vf n = _mm512_sub_ps(_mm512_fmadd_ps(x, set1(DN_EXP_LOG2E), shifter), shifter);
  vf r = _mm512_fmadd_ps(n, set1(-DN_EXP_LN2_HI), x);
  r = _mm512_fmadd_ps(n, set1(-DN_EXP_LN2_LO), r);
  vf p = _mm512_fmadd_ps(set1(DN_EXP_C5), r, set1(DN_EXP_C4));
  p = _mm512_fmadd_ps(p, r, set1(DN_EXP_C3));
  p = _mm512_fmadd_ps(p, r, set1(DN_EXP_C2));
  p = _mm512_fmadd_ps(p, r, set1(DN_EXP_C1));
  p = _mm512_fmadd_ps(p, r, set1(DN_EXP_C0));
  const vf q = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  /* (1 + q) 2^n rounded once: bitwise the scalar twin's two-factor scaling. */
  return _mm512_scalef_ps(_mm512_add_ps(q, set1(1.0f)), n);
}

INLINE vf sigmoid_v(vf z) {
  const vf e = exp_v(_mm512_or_ps(z, set1(-0.0f)));
  const vmask nonneg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GE_OQ);
  return _mm512_div_ps(_mm512_mask_blend_ps(nonneg, e, set1(1.0f)), _mm512_add_ps(set1(1.0f), e));
}

INLINE vf tanh_v(vf z) {
  const vf sign = _mm512_and_ps(z, set1(-0.0f)), a = _mm512_andnot_ps(set1(-0.0f), z);
  const vf a2 = _mm512_mul_ps(a, a);
  vf p = _mm512_fmadd_ps(set1(DN_TANH_C4), a2, set1(DN_TANH_C3));
  p = _mm512_fmadd_ps(p, a2, set1(DN_TANH_C2));
  p = _mm512_fmadd_ps(p, a2, set1(DN_TANH_C1));
  p = _mm512_fmadd_ps(p, a2, set1(DN_TANH_C0));
  const vf small = _mm512_fmadd_ps(_mm512_mul_ps(p, a2), a, a);
  const vf e = exp_v(_mm512_mul_ps(set1(-2.0f), a));
  const vf large = _mm512_sub_ps(set1(1.0f), _mm512_div_ps(_mm512_add_ps(e, e), _mm512_add_ps(set1(1.0f), e)));
  const vmask is_small = _mm512_cmp_ps_mask(a, set1(DN_TANH_SMALL), _CMP_LT_OQ);
  return _mm512_or_ps(_mm512_mask_blend_ps(is_small, large, small), sign);
}

INLINE vf linear_v(vf z) { return z; }
INLINE vf relu_v(vf z) { return dn_relu_avx512(z); }
INLINE vf leaky_relu_v(vf z) { return dn_leaky_relu_avx512(z); }

INLINE vf linear_d(vf z, vf a, vf da) {
  (void)z;
  (void)a;
  return da;
}
INLINE vf relu_d(vf z, vf a, vf da) {
  (void)a;
  return _mm512_maskz_mov_ps(gt0(z), da);
}
INLINE vf leaky_relu_d(vf z, vf a, vf da) {
  (void)a;
  return _mm512_mask_blend_ps(gt0(z), _mm512_mul_ps(set1(DN_LEAKY_SLOPE), da), da);
}
INLINE vf sigmoid_d(vf z, vf a, vf da) {
  (void)z;
  return _mm512_mul_ps(_mm512_mul_ps(da, a), _mm512_sub_ps(set1(1.0f), a));
}
INLINE vf tanh_d(vf z, vf a, vf da) {
  (void)z;
  return _mm512_mul_ps(da, _mm512_sub_ps(set1(1.0f), _mm512_mul_ps(a, a)));
}

/* A = g(Z) and dZ = dA * g'(Z) for each activation g, from its one-vector form. */
#define FWD_KERNEL(name, g)                                                                   \
  INLINE void name##_step(size_t i, vmask m, bool full, const float *Z, float *A) {          \
    _mm_prefetch((const char *)(Z + i + PREFETCH_AHEAD), _MM_HINT_T0);                        \
    _mm_prefetch((const char *)(A + i + PREFETCH_AHEAD), _MM_HINT_T0);                        \
    st(A + i, m, full, g(ld(Z + i, m, full)));                                                \
  }                                                                                           \
  static void name(size_t n, const float *Z, float *A) { VLOOP(n, name##_step, Z, A); }
#define BWD_KERNEL(name, gd)                                                                  \
  INLINE void name##_step(size_t i, vmask m, bool full, const float *Z, const float *A,      \
                          const float *dA, float *dZ) {                                       \
    st(dZ + i, m, full, gd(ld(Z + i, m, full), ld(A + i, m, full), ld(dA + i, m, full)));    \
  }                                                                                           \
  static void name(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {    \
    VLOOP(n, name##_step, Z, A, dA, dZ);                                                      \
  }

FWD_KERNEL(exp_avx512, exp_v)
FWD_KERNEL(dn_linear_fwd_avx512, linear_v)
FWD_KERNEL(dn_relu_fwd_avx512, relu_v)
FWD_KERNEL(dn_leaky_relu_fwd_avx512, leaky_relu_v)
FWD_KERNEL(dn_sigmoid_fwd_avx512, sigmoid_v)
FWD_KERNEL(dn_tanh_fwd_avx512, tanh_v)
BWD_KERNEL(dn_linear_bwd_avx512, linear_d)
BWD_KERNEL(dn_relu_bwd_avx512, relu_d)
BWD_KERNEL(dn_leaky_relu_bwd_avx512, leaky_relu_d)
BWD_KERNEL(dn_sigmoid_bwd_avx512, sigmoid_d)
BWD_KERNEL(dn_tanh_bwd_avx512, tanh_d)

void dn_exp_avx512(size_t n, const float *x, float *y) { exp_avx512(n, x, y); }

/* Softmax of one column in three passes: max, exp(z - max) with its sum, divide. */
INLINE void max_step(size_t i, vmask m, bool full, const float *z, vf *acc) {
  *acc = full ? _mm512_max_ps(*acc, ld(z + i, m, full)) : _mm512_mask_max_ps(*acc, m, *acc, ld(z + i, m, full));
}
INLINE void exp_sum_step(size_t i, vmask m, bool full, const float *z, vf zmax, float *a, vf *sum) {
  const vf e = exp_v(_mm512_sub_ps(ld(z + i, m, full), zmax));
  st(a + i, m, full, e);
  *sum = full ? _mm512_add_ps(*sum, e) : _mm512_mask_add_ps(*sum, m, *sum, e);
}
INLINE void div_step(size_t i, vmask m, bool full, float *a, vf sum) {
  st(a + i, m, full, _mm512_div_ps(ld(a + i, m, full), sum));
}
/* The same steps for a column of rows <= NV * V (NV a constant after inlining) held in
 * registers from its load to its store. The passes above store exp(z - max) and load it
 * back for the division: a masked load cannot take its data from a pending masked store,
 * so every column waited for its own stores (2.7 ns per element at 10 rows, a tenth of
 * the copy's speed). Same operations in the same order: the same bits. */
INLINE void softmax_col_in_regs(size_t rows, const float *z, float *a, size_t NV) {
  vf x[4];
  const size_t last = NV - 1, r = rows - last * V; /* live lanes of the last vector, 1..V */
  const vmask m = r == V ? ALL : tail_mask(r);
  vf acc = set1(-INFINITY), sum = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (size_t k = 0; k < NV; k++) {
    const bool full = k < last || r == V;
    x[k] = ld(z + k * V, m, full);
    acc = full ? _mm512_max_ps(acc, x[k]) : _mm512_mask_max_ps(acc, m, acc, x[k]);
  }
  const vf zmax = set1(_mm512_reduce_max_ps(acc));
#pragma GCC unroll 4
  for (size_t k = 0; k < NV; k++) {
    const bool full = k < last || r == V;
    x[k] = exp_v(_mm512_sub_ps(x[k], zmax));
    sum = full ? _mm512_add_ps(sum, x[k]) : _mm512_mask_add_ps(sum, m, sum, x[k]);
  }
  const vf total = set1(_mm512_reduce_add_ps(sum));
#pragma GCC unroll 4
  for (size_t k = 0; k < NV; k++) st(a + k * V, m, k < last || r == V, _mm512_div_ps(x[k], total));
}

/* Up to V columns (cols of them) of rows < V at once, vectorized across the columns: the
 * block is transposed so that vector i holds row i of the columns, the max, exp, sum
 * (sequential over the rows, as the scalar twin's) and division run on whole vectors, and
 * the block is transposed back. A column of 10 (the usual class count) fills 10 of 16
 * lanes on its own and needs two horizontal reductions, each a chain of shuffles; here the
 * shuffles are the two transposes, shared by V columns. Every operation is per lane, so a
 * column's bits do not depend on its block or lane: a short last block (missing columns
 * are zero lanes, never stored) gives what a full one would, and any split of the columns
 * over threads gives the same result. */
INLINE void softmax_cols_across(size_t rows, size_t cols, const float *Z, float *A) {
  for (size_t i = 0; i < cols * rows; i += 16) {
    _mm_prefetch((const char *)(Z + PREFETCH_AHEAD + i), _MM_HINT_T0);
    _mm_prefetch((const char *)(A + PREFETCH_AHEAD + i), _MM_HINT_T0);
  }
  const vmask m = tail_mask(rows);
  vf v[V];
  const __m512i col_start = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32((int)rows));
  const vmask live_cols = tail_mask(cols);
  for (size_t i = 0; i < rows; i++)
    v[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live_cols,
                                    _mm512_add_epi32(col_start, _mm512_set1_epi32((int)i)), Z, 4);
  vf zmax = v[0], sum = _mm512_setzero_ps();
  for (size_t i = 1; i < rows; i++) zmax = _mm512_max_ps(zmax, v[i]);
  for (size_t i = 0; i < rows; i++) {
    v[i] = exp_v(_mm512_sub_ps(v[i], zmax));
    sum = _mm512_add_ps(sum, v[i]);
  }
  const vf inv = _mm512_div_ps(set1(1.0f), sum);
  for (size_t i = 0; i < rows; i++) v[i] = _mm512_mul_ps(v[i], inv);
  for (size_t i = rows; i < V; i++) v[i] = _mm512_setzero_ps();
  dn_transpose16_avx512(v);
#pragma GCC unroll 16
  for (size_t c = 0; c < V; c++)
    if (c < cols) _mm512_mask_storeu_ps(A + c * rows, m, v[c]);
}

static void dn_softmax_fwd_avx512(size_t rows, size_t cols, const float *Z, float *A) {
  const size_t vectors = (rows + V - 1) / V;
  if (rows > 0 && rows < V) {
    for (size_t j = 0; j < cols; j += V)
      if (rows == 10) /* the usual class count: a constant row count keeps v[] in registers */
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
    vf acc = set1(-INFINITY), sum = _mm512_setzero_ps();
    VLOOP(rows, max_step, z, &acc);
    VLOOP(rows, exp_sum_step, z, set1(_mm512_reduce_max_ps(acc)), a, &sum);
    VLOOP(rows, div_step, a, set1(_mm512_reduce_add_ps(sum)));
  }
}

/* fpclass 0x99: QNaN, SNaN, +Inf, -Inf. Masked-off tail lanes load as 0 (finite). */
INLINE void nonfinite_step(size_t i, vmask m, bool full, const float *x, vmask *any) {
  *any |= _mm512_fpclass_ps_mask(ld(x + i, m, full), 0x99);
}
static bool dn_any_nonfinite_avx512(size_t n, const float *x) {
  vmask any = 0;
  VLOOP(n, nonfinite_step, x, &any);
  return any != 0;
}

/* |x| with NaN as +Inf: min returns its second operand when the first is NaN. */
INLINE vf abs_or_inf(vf x) {
  return _mm512_min_ps(_mm512_abs_ps(x), set1(__builtin_inff()));
}
#define v_zero() _mm512_setzero_ps()
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_mul _mm512_mul_ps
#define v_div _mm512_div_ps
#define v_sqrt _mm512_sqrt_ps
#define v_max _mm512_max_ps
#define v_hmax _mm512_reduce_max_ps
#define v_prefetch(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define SIMD_NAME(f) f##_avx512
#include "simd_elementwise.h"

void dn_kernels_fill_act_avx512(dn_kernel_table *kt) {
  kt->act_fwd[DN_ACT_LINEAR] = dn_linear_fwd_avx512;
  kt->act_bwd[DN_ACT_LINEAR] = dn_linear_bwd_avx512;
  kt->act_fwd[DN_ACT_RELU] = dn_relu_fwd_avx512;
  kt->act_bwd[DN_ACT_RELU] = dn_relu_bwd_avx512;
  kt->act_fwd[DN_ACT_LEAKY_RELU] = dn_leaky_relu_fwd_avx512;
  kt->act_bwd[DN_ACT_LEAKY_RELU] = dn_leaky_relu_bwd_avx512;
  kt->act_fwd[DN_ACT_SIGMOID] = dn_sigmoid_fwd_avx512;
  kt->act_bwd[DN_ACT_SIGMOID] = dn_sigmoid_bwd_avx512;
  kt->act_fwd[DN_ACT_TANH] = dn_tanh_fwd_avx512;
  kt->act_bwd[DN_ACT_TANH] = dn_tanh_bwd_avx512;
  kt->softmax_fwd = dn_softmax_fwd_avx512;
  kt->any_nonfinite = dn_any_nonfinite_avx512;
  fill_simd_elementwise(kt);
}
