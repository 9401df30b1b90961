/* AVX-512 (F, DQ) vector math: exp, the activations and their derivatives, softmax, bias
 * add, row sums and the optimizer updates, each the vector form of its scalar twin (same
 * operations in the same order; docs/vecmath.md), with masked tails that touch nothing
 * past n. What is the same on every SIMD set is written once in simd_elementwise.h and
 * simd_activations.h, over the vocabulary this file defines; softmax and the finiteness
 * scan are AVX-512's own. */
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

/* The vector vocabulary of simd_elementwise.h and simd_activations.h. */
typedef __mmask16 vbool;
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
#define v_fmadd _mm512_fmadd_ps
#define v_min _mm512_min_ps
#define v_max _mm512_max_ps
#define v_hmax _mm512_reduce_max_ps
#define v_prefetch(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define SIMD_NAME(f) f##_avx512
INLINE vbool v_gt0(vf z) { return dn_gt0_avx512(z); }
INLINE vbool v_ge0(vf z) { return _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GE_OQ); }
INLINE vbool v_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
INLINE vf v_select(vbool c, vf t, vf f) { return _mm512_mask_blend_ps(c, f, t); }
INLINE vf v_keep(vbool c, vf x) { return _mm512_maskz_mov_ps(c, x); }
INLINE vf v_abs(vf x) { return _mm512_andnot_ps(set1(-0.0f), x); }
INLINE vf v_neg_abs(vf x) { return _mm512_or_ps(x, set1(-0.0f)); }
INLINE vf v_sign_onto(vf t, vf z) { return _mm512_or_ps(t, _mm512_and_ps(z, set1(-0.0f))); }
#define v_relu dn_relu_avx512
#define v_leaky_relu dn_leaky_relu_avx512
/* (1 + q) 2^n rounded once, by scalef: bitwise the scalar twin's two-factor scaling. */
INLINE vf v_exp_scale(vf q, vf n) { return _mm512_scalef_ps(_mm512_add_ps(q, set1(1.0f)), n); }
#define TANH_EXP exp_v

#include "simd_elementwise.h"
#include "simd_activations.h"

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

void dn_kernels_fill_act_avx512(dn_kernel_table *kt) {
  fill_simd_activations(kt);
  kt->softmax_fwd = dn_softmax_fwd_avx512;
  kt->any_nonfinite = dn_any_nonfinite_avx512;
  fill_simd_elementwise(kt);
}
