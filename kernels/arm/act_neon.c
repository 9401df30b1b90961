/* NEON (aarch64 Advanced SIMD) vector math: exp, the activations and their derivatives,
 * softmax, bias add, row sums and the optimizer updates, each the vector form of its scalar
 * twin (same operations in the same order; docs/vecmath.md). Tails go through a stack
 * buffer, so nothing past n is read or written. What is the same on every SIMD set is
 * written once in simd_elementwise.h and simd_activations.h, over the vocabulary this file
 * defines; softmax and the row sums are NEON's own. */
#include <arm_neon.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "vecmath.h"

#define V 4 /* floats per vector */
#define INLINE static inline __attribute__((always_inline))

typedef float32x4_t vf;
typedef size_t vmask; /* live lanes of a tail: [0, r), r < V */

INLINE vmask tail_mask(size_t r) { return r; }
#define ALL ((vmask)V)

/* A full vector, or the tail's r lanes through a buffer (zeros in the other lanes);
 * `full` is a constant after inlining, so the full-vector loop has no copies. */
INLINE vf ld(const float *p, vmask r, bool full) {
  if (full) return vld1q_f32(p);
  float buf[V] = {0};
  memcpy(buf, p, r * sizeof *p);
  return vld1q_f32(buf);
}
INLINE void st(float *p, vmask r, bool full, vf v) {
  if (full) {
    vst1q_f32(p, v);
  } else {
    float buf[V];
    vst1q_f32(buf, v);
    memcpy(p, buf, r * sizeof *p);
  }
}

/* step(i, mask, full, ...) over [0, n): every full vector, then one tail. */
#define VLOOP(n, step, ...)                                          \
  do {                                                               \
    size_t i_ = 0;                                                   \
    for (; i_ + V <= (n); i_ += V) step(i_, ALL, true, __VA_ARGS__); \
    if (i_ < (n)) step(i_, tail_mask((n) - i_), false, __VA_ARGS__); \
  } while (0)

INLINE vf set1(float x) { return vdupq_n_f32(x); }

/* The vector vocabulary of simd_elementwise.h and simd_activations.h. */
typedef uint32x4_t vbool; /* all-ones or zero lanes */
/* |x| with NaN as +Inf (x == x is false only for NaN). */
INLINE vf abs_or_inf(vf x) {
  return vbslq_f32(vceqq_f32(x, x), vabsq_f32(x), set1(__builtin_inff()));
}
#define v_zero() vdupq_n_f32(0.0f)
#define v_add vaddq_f32
#define v_sub vsubq_f32
#define v_mul vmulq_f32
#define v_div vdivq_f32
#define v_sqrt vsqrtq_f32
#define v_min vminq_f32
#define v_max vmaxq_f32
#define v_hmax vmaxvq_f32
#define v_prefetch(p) ((void)0) /* the updates were not measured with prefetches here */
#define SIMD_NAME(f) f##_neon
#define SIMD_OWN_ROW_SUM /* below */
INLINE vf v_fmadd(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
INLINE vbool v_gt0(vf z) { return vcgtq_f32(z, vdupq_n_f32(0.0f)); }
INLINE vbool v_ge0(vf z) { return vcgeq_f32(z, vdupq_n_f32(0.0f)); }
INLINE vbool v_lt(vf a, vf b) { return vcltq_f32(a, b); }
INLINE vf v_select(vbool c, vf t, vf f) { return vbslq_f32(c, t, f); }
INLINE vf v_keep(vbool c, vf x) {
  return vreinterpretq_f32_u32(vandq_u32(c, vreinterpretq_u32_f32(x)));
}
INLINE vf v_abs(vf x) { return vabsq_f32(x); }
INLINE vf v_neg_abs(vf x) { return vnegq_f32(vabsq_f32(x)); }
INLINE vf v_sign_onto(vf t, vf z) { return vbslq_f32(vdupq_n_u32(0x80000000u), z, t); }
INLINE vf v_relu(vf z) { /* z <= 0 is false for NaN: NaN passes */
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(z), vcleq_f32(z, vdupq_n_f32(0.0f))));
}
INLINE vf v_leaky_relu(vf z) { return vbslq_f32(v_gt0(z), z, vmulq_f32(set1(DN_LEAKY_SLOPE), z)); }

INLINE vf pow2i(int32x4_t k) { /* 2^k, k in [-126, 127] */
  return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k, vdupq_n_s32(127)), 23));
}
/* (1 + q) 2^n as q 2^k1 + 2^k1 (one rounding) times 2^(n - k1), k1 = n / 2: two factors,
 * each a normal float over exp's whole range. */
INLINE vf v_exp_scale(vf q, vf n) {
  const int32x4_t k = vcvtq_s32_f32(n), k1 = vshrq_n_s32(k, 1);
  const vf s1 = pow2i(k1);
  return vmulq_f32(vfmaq_f32(s1, q, s1), pow2i(vsubq_s32(k, k1)));
}
#define TANH_EXP exp_v

#include "simd_elementwise.h"
#include "simd_activations.h"

/* Softmax of one column in three passes: max, exp(z - max) with its sum, divide. The
 * tail's zero lanes are kept out of the max and the sum. */
INLINE void max_step(size_t i, vmask m, bool full, const float *z, vf *acc) {
  if (full) {
    *acc = vmaxq_f32(*acc, vld1q_f32(z + i));
  } else {
    float buf[V] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    memcpy(buf, z + i, m * sizeof *z);
    *acc = vmaxq_f32(*acc, vld1q_f32(buf));
  }
}
INLINE void exp_sum_step(size_t i, vmask m, bool full, const float *z, vf zmax, float *a, vf *sum) {
  vf e = exp_v(vsubq_f32(ld(z + i, m, full), zmax));
  st(a + i, m, full, e);
  if (!full) {
    static const uint32_t live[2 * V] = {~0u, ~0u, ~0u, ~0u, 0, 0, 0, 0};
    e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), vld1q_u32(live + V - m)));
  }
  *sum = vaddq_f32(*sum, e);
}
INLINE void div_step(size_t i, vmask m, bool full, float *a, vf sum) {
  st(a + i, m, full, vdivq_f32(ld(a + i, m, full), sum));
}
static void dn_softmax_fwd_neon(size_t rows, size_t cols, const float *Z, float *A) {
  for (size_t j = 0; j < cols; j++) {
    const float *z = Z + j * rows;
    float *a = A + j * rows;
    vf acc = set1(-INFINITY), sum = vdupq_n_f32(0.0f);
    VLOOP(rows, max_step, z, &acc);
    VLOOP(rows, exp_sum_step, z, set1(vmaxvq_f32(acc)), a, &sum);
    VLOOP(rows, div_step, a, set1(vaddvq_f32(sum)));
  }
}

/* The row sums (row_sum_step from simd_elementwise.h): four sums in flight per column,
 * then the last rows one vector at a time; a partial vector is a column walk of single
 * floats rather than a buffer copy per load. Each row's chain is the scalar twin's. */
INLINE void row_sum_impl(size_t rows, size_t cols, const float *X, size_t ldx, float scale,
                         float *out, bool acc) {
  const vf vs = set1(scale);
  size_t i = 0;
  for (; i + 4 * V <= rows; i += 4 * V) { /* four sums in flight per column */
    vf s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    if (acc) {
      s0 = vld1q_f32(out + i);
      s1 = vld1q_f32(out + i + V);
      s2 = vld1q_f32(out + i + 2 * V);
      s3 = vld1q_f32(out + i + 3 * V);
    }
    for (size_t j = 0; j < cols; j++) {
      const float *x = X + i + j * ldx;
      s0 = vaddq_f32(s0, vld1q_f32(x));
      s1 = vaddq_f32(s1, vld1q_f32(x + V));
      s2 = vaddq_f32(s2, vld1q_f32(x + 2 * V));
      s3 = vaddq_f32(s3, vld1q_f32(x + 3 * V));
    }
    vst1q_f32(out + i, acc ? s0 : vmulq_f32(s0, vs));
    vst1q_f32(out + i + V, acc ? s1 : vmulq_f32(s1, vs));
    vst1q_f32(out + i + 2 * V, acc ? s2 : vmulq_f32(s2, vs));
    vst1q_f32(out + i + 3 * V, acc ? s3 : vmulq_f32(s3, vs));
  }
  for (; i + V <= rows; i += V) row_sum_step(i, ALL, true, cols, X, ldx, vs, out, acc);
  for (; i < rows; i++) {
    float s = acc ? out[i] : 0.0f;
    for (size_t j = 0; j < cols; j++) s += X[i + j * ldx];
    out[i] = acc ? s : s * scale;
  }
}
static void dn_row_sum_neon(size_t rows, size_t cols, const float *X, size_t ldx, float scale,
                            float *out) {
  row_sum_impl(rows, cols, X, ldx, scale, out, false);
}
static void dn_row_sum_acc_neon(size_t rows, size_t cols, const float *X, size_t ldx, float *acc) {
  row_sum_impl(rows, cols, X, ldx, 1.0f, acc, true);
}

void dn_kernels_fill_act_neon(dn_kernel_table *kt) {
  fill_simd_activations(kt);
  kt->softmax_fwd = dn_softmax_fwd_neon;
  fill_simd_elementwise(kt);
  kt->row_sum = dn_row_sum_neon;
  kt->row_sum_acc = dn_row_sum_acc_neon;
}
