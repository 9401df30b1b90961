/* NEON (aarch64 Advanced SIMD) vector math: exp, the activations and their derivatives,
 * softmax, bias add, row sums and the optimizer updates, each the vector form of its scalar
 * twin (same operations in the same order; docs/vecmath.md). Tails go through a stack
 * buffer, so nothing past n is read or written. */
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
INLINE uint32x4_t gt0(vf z) { return vcgtq_f32(z, vdupq_n_f32(0.0f)); }

INLINE vf pow2i(int32x4_t k) { /* 2^k, k in [-126, 127] */
  return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(k, vdupq_n_s32(127)), 23));
}

INLINE vf exp_v(vf x) {
  x = vmaxq_f32(vminq_f32(x, set1(DN_EXP_X_MAX)), set1(DN_EXP_X_MIN)); /* NaN passes */
  const vf shifter = set1(DN_EXP_SHIFTER);
  const vf n = vsubq_f32(vfmaq_f32(shifter, x, set1(DN_EXP_LOG2E)), shifter);
  vf r = vfmaq_f32(x, n, set1(-DN_EXP_LN2_HI));
  r = vfmaq_f32(r, n, set1(-DN_EXP_LN2_LO));
  vf p = vfmaq_f32(set1(DN_EXP_C4), set1(DN_EXP_C5), r);
  p = vfmaq_f32(set1(DN_EXP_C3), p, r);
  p = vfmaq_f32(set1(DN_EXP_C2), p, r);
  p = vfmaq_f32(set1(DN_EXP_C1), p, r);
  p = vfmaq_f32(set1(DN_EXP_C0), p, r);
  const vf q = vfmaq_f32(r, p, vmulq_f32(r, r));
  const int32x4_t k = vcvtq_s32_f32(n), k1 = vshrq_n_s32(k, 1);
  const vf s1 = pow2i(k1);
  return vmulq_f32(vfmaq_f32(s1, q, s1), pow2i(vsubq_s32(k, k1)));
}

INLINE vf sigmoid_v(vf z) {
  const vf e = exp_v(vnegq_f32(vabsq_f32(z)));
  const vf num = vbslq_f32(vcgeq_f32(z, vdupq_n_f32(0.0f)), set1(1.0f), e);
  return vdivq_f32(num, vaddq_f32(set1(1.0f), e));
}

INLINE vf tanh_v(vf z) {
  const vf a = vabsq_f32(z), a2 = vmulq_f32(a, a);
  vf p = vfmaq_f32(set1(DN_TANH_C3), set1(DN_TANH_C4), a2);
  p = vfmaq_f32(set1(DN_TANH_C2), p, a2);
  p = vfmaq_f32(set1(DN_TANH_C1), p, a2);
  p = vfmaq_f32(set1(DN_TANH_C0), p, a2);
  const vf small = vfmaq_f32(a, vmulq_f32(p, a2), a);
  const vf e = exp_v(vmulq_f32(set1(-2.0f), a));
  const vf large = vsubq_f32(set1(1.0f), vdivq_f32(vaddq_f32(e, e), vaddq_f32(set1(1.0f), e)));
  const vf t = vbslq_f32(vcltq_f32(a, set1(DN_TANH_SMALL)), small, large);
  return vbslq_f32(vdupq_n_u32(0x80000000u), z, t); /* copysign(t, z) */
}

INLINE vf linear_v(vf z) { return z; }
INLINE vf relu_v(vf z) { /* z <= 0 is false for NaN: NaN passes */
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(z), vcleq_f32(z, vdupq_n_f32(0.0f))));
}
INLINE vf leaky_relu_v(vf z) { return vbslq_f32(gt0(z), z, vmulq_f32(set1(DN_LEAKY_SLOPE), z)); }

INLINE vf linear_d(vf z, vf a, vf da) {
  (void)z;
  (void)a;
  return da;
}
INLINE vf relu_d(vf z, vf a, vf da) {
  (void)a;
  return vreinterpretq_f32_u32(vandq_u32(gt0(z), vreinterpretq_u32_f32(da)));
}
INLINE vf leaky_relu_d(vf z, vf a, vf da) {
  (void)a;
  return vbslq_f32(gt0(z), da, vmulq_f32(set1(DN_LEAKY_SLOPE), da));
}
INLINE vf sigmoid_d(vf z, vf a, vf da) {
  (void)z;
  return vmulq_f32(vmulq_f32(da, a), vsubq_f32(set1(1.0f), a));
}
INLINE vf tanh_d(vf z, vf a, vf da) {
  (void)z;
  return vmulq_f32(da, vsubq_f32(set1(1.0f), vmulq_f32(a, a)));
}

/* A = g(Z) and dZ = dA * g'(Z) for each activation g, from its one-vector form. */
#define FWD_KERNEL(name, g)                                                                   \
  INLINE void name##_step(size_t i, vmask m, bool full, const float *Z, float *A) {          \
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

FWD_KERNEL(exp_neon, exp_v)
FWD_KERNEL(dn_linear_fwd_neon, linear_v)
FWD_KERNEL(dn_relu_fwd_neon, relu_v)
FWD_KERNEL(dn_leaky_relu_fwd_neon, leaky_relu_v)
FWD_KERNEL(dn_sigmoid_fwd_neon, sigmoid_v)
FWD_KERNEL(dn_tanh_fwd_neon, tanh_v)
BWD_KERNEL(dn_linear_bwd_neon, linear_d)
BWD_KERNEL(dn_relu_bwd_neon, relu_d)
BWD_KERNEL(dn_leaky_relu_bwd_neon, leaky_relu_d)
BWD_KERNEL(dn_sigmoid_bwd_neon, sigmoid_d)
BWD_KERNEL(dn_tanh_bwd_neon, tanh_d)

void dn_exp_neon(size_t n, const float *x, float *y) { exp_neon(n, x, y); }

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
#define v_max vmaxq_f32
#define v_hmax vmaxvq_f32
#define v_prefetch(p) ((void)0) /* the updates were not measured with prefetches here */
#define SIMD_NAME(f) f##_neon
#define SIMD_OWN_ROW_SUM /* below */
#include "simd_elementwise.h"

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
  kt->act_fwd[DN_ACT_LINEAR] = dn_linear_fwd_neon;
  kt->act_bwd[DN_ACT_LINEAR] = dn_linear_bwd_neon;
  kt->act_fwd[DN_ACT_RELU] = dn_relu_fwd_neon;
  kt->act_bwd[DN_ACT_RELU] = dn_relu_bwd_neon;
  kt->act_fwd[DN_ACT_LEAKY_RELU] = dn_leaky_relu_fwd_neon;
  kt->act_bwd[DN_ACT_LEAKY_RELU] = dn_leaky_relu_bwd_neon;
  kt->act_fwd[DN_ACT_SIGMOID] = dn_sigmoid_fwd_neon;
  kt->act_bwd[DN_ACT_SIGMOID] = dn_sigmoid_bwd_neon;
  kt->act_fwd[DN_ACT_TANH] = dn_tanh_fwd_neon;
  kt->act_bwd[DN_ACT_TANH] = dn_tanh_bwd_neon;
  kt->softmax_fwd = dn_softmax_fwd_neon;
  fill_simd_elementwise(kt);
  kt->row_sum = dn_row_sum_neon;
  kt->row_sum_acc = dn_row_sum_acc_neon;
}
