/* The activations whose vector form is the same on every SIMD set, written once: exp (its
 * range reduction and polynomial), sigmoid, tanh, the piecewise-linear ones, the
 * derivatives, and the kernels A = g(Z), dZ = dA * g'(Z) and y = exp(x) built from them.
 * Like simd_elementwise.h, each ISA's act_*.c includes this after defining its vector
 * vocabulary, so the sets keep one sequence of operations, the scalar twin's (vecmath.h,
 * kernels/scalar/act_scalar.c; docs/vecmath.md), and differ only in the instructions.
 *
 * The includer defines simd_elementwise.h's vocabulary (vf, vmask, V, ALL, INLINE, ld, st,
 * VLOOP, set1, v_add, v_sub, v_mul, v_div, v_max, v_prefetch, PREFETCH_AHEAD, SIMD_NAME) and
 *   vbool               a lane predicate: a vector of all-ones/zero lanes or a mask register
 *   v_fmadd(a, b, c)    a * b + c, rounded once
 *   v_min(a, b)         lane-wise; with v_max, a NaN in b comes through (the x86
 *                       instructions return their second operand when either is NaN,
 *                       NEON's return NaN), which exp_v's clamp relies on
 *   v_gt0(z), v_ge0(z)  z > 0, z >= 0; v_lt(a, b) a < b (all false for NaN)
 *   v_select(c, t, f)   t where c, f elsewhere;  v_keep(c, x)  x where c, 0 elsewhere
 *   v_abs(x), v_neg_abs(x)   |x| and -|x| (sign-bit operations: NaN stays NaN)
 *   v_sign_onto(t, z)   t, whose sign bit is clear, with z's sign bit
 *   v_relu(z), v_leaky_relu(z)   max(z, 0) passing NaN, and z or DN_LEAKY_SLOPE z (on
 *                       AVX-512 shared with the GEMM epilogue, so both give the same bits)
 *   v_exp_scale(q, n)   (1 + q) 2^n rounded once, for integral n in [-150, 128]
 *   TANH_EXP(x)         the exp tanh takes of x = -2|z| <= 0 (or NaN): exp_v, or a
 *                       cheaper form valid for x <= 0 (AVX2's exp_nonpositive_v)
 * No include guard: one inclusion per ISA file. */

/* The reduction x = n ln2 + r (n = round(x log2e) by the shifter trick, whose sum *shifted
 * returns: n sits in its low mantissa bits) and q = exp(r) - 1 by the polynomial. */
INLINE vf exp_reduce(vf x, vf *n_out, vf *shifted_out) {
  const vf shifter = set1(DN_EXP_SHIFTER);
  const vf shifted = v_fmadd(x, set1(DN_EXP_LOG2E), shifter);
  const vf n = v_sub(shifted, shifter);
  vf r = v_fmadd(n, set1(-DN_EXP_LN2_HI), x);
  r = v_fmadd(n, set1(-DN_EXP_LN2_LO), r);
  vf p = v_fmadd(set1(DN_EXP_C5), r, set1(DN_EXP_C4));
  p = v_fmadd(p, r, set1(DN_EXP_C3));
  p = v_fmadd(p, r, set1(DN_EXP_C2));
  p = v_fmadd(p, r, set1(DN_EXP_C1));
  p = v_fmadd(p, r, set1(DN_EXP_C0));
  *n_out = n;
  *shifted_out = shifted;
  return v_fmadd(p, v_mul(r, r), r);
}

INLINE vf exp_v(vf x) {
  x = v_max(set1(DN_EXP_X_MIN), v_min(set1(DN_EXP_X_MAX), x)); /* NaN passes the clamp */
  vf n, shifted;
  const vf q = exp_reduce(x, &n, &shifted);
  (void)shifted;
  return v_exp_scale(q, n);
}

/* e = exp(-|z|) <= 1 never overflows: 1 / (1 + e) for z >= 0, e / (1 + e) below. */
INLINE vf sigmoid_v(vf z) {
  const vf e = exp_v(v_neg_abs(z));
  return v_div(v_select(v_ge0(z), set1(1.0f), e), v_add(set1(1.0f), e));
}

/* Odd: tanh(|z|) with z's sign, by the polynomial below DN_TANH_SMALL and 1 - 2e / (1 + e),
 * e = exp(-2|z|), above. */
INLINE vf tanh_v(vf z) {
  const vf a = v_abs(z), a2 = v_mul(a, a);
  vf p = v_fmadd(set1(DN_TANH_C4), a2, set1(DN_TANH_C3));
  p = v_fmadd(p, a2, set1(DN_TANH_C2));
  p = v_fmadd(p, a2, set1(DN_TANH_C1));
  p = v_fmadd(p, a2, set1(DN_TANH_C0));
  const vf small = v_fmadd(v_mul(p, a2), a, a);
  const vf e = TANH_EXP(v_mul(set1(-2.0f), a));
  const vf large = v_sub(set1(1.0f), v_div(v_add(e, e), v_add(set1(1.0f), e)));
  return v_sign_onto(v_select(v_lt(a, set1(DN_TANH_SMALL)), small, large), z);
}

INLINE vf linear_v(vf z) { return z; }
INLINE vf relu_v(vf z) { return v_relu(z); }
INLINE vf leaky_relu_v(vf z) { return v_leaky_relu(z); }

/* The derivatives as dZ = dA * g'(Z), each from whichever of Z and A = g(Z) it needs. */
INLINE vf linear_d(vf z, vf a, vf da) {
  (void)z;
  (void)a;
  return da;
}
INLINE vf relu_d(vf z, vf a, vf da) {
  (void)a;
  return v_keep(v_gt0(z), da);
}
INLINE vf leaky_relu_d(vf z, vf a, vf da) {
  (void)a;
  return v_select(v_gt0(z), da, v_mul(set1(DN_LEAKY_SLOPE), da));
}
INLINE vf sigmoid_d(vf z, vf a, vf da) {
  (void)z;
  return v_mul(v_mul(da, a), v_sub(set1(1.0f), a));
}
INLINE vf tanh_d(vf z, vf a, vf da) {
  (void)z;
  return v_mul(da, v_sub(set1(1.0f), v_mul(a, a)));
}

/* A = g(Z) and dZ = dA * g'(Z) for each activation g, from its one-vector form. The forward
 * kernels prefetch Z and A PREFETCH_AHEAD floats ahead (where v_prefetch does anything):
 * the exp family spends so long per vector that the hardware prefetcher falls behind on
 * arrays beyond L2 (docs/vecmath.md). The outer macros expand SIMD_NAME(...) before the
 * inner ones paste names onto it. */
#define SIMD_FWD_KERNEL_(name, g)                                                    \
  INLINE void name##_step(size_t i, vmask m, bool full, const float *Z, float *A) { \
    v_prefetch(Z + i + PREFETCH_AHEAD);                                              \
    v_prefetch(A + i + PREFETCH_AHEAD);                                              \
    st(A + i, m, full, g(ld(Z + i, m, full)));                                       \
  }                                                                                  \
  static void name(size_t n, const float *Z, float *A) { VLOOP(n, name##_step, Z, A); }
#define SIMD_BWD_KERNEL_(name, gd)                                                               \
  INLINE void name##_step(size_t i, vmask m, bool full, const float *Z, const float *A,         \
                          const float *dA, float *dZ) {                                          \
    st(dZ + i, m, full, gd(ld(Z + i, m, full), ld(A + i, m, full), ld(dA + i, m, full)));       \
  }                                                                                              \
  static void name(size_t n, const float *Z, const float *A, const float *dA, float *dZ) {       \
    VLOOP(n, name##_step, Z, A, dA, dZ);                                                         \
  }
#define SIMD_FWD_KERNEL(name, g) SIMD_FWD_KERNEL_(name, g)
#define SIMD_BWD_KERNEL(name, gd) SIMD_BWD_KERNEL_(name, gd)

SIMD_FWD_KERNEL(SIMD_NAME(exp), exp_v)
SIMD_FWD_KERNEL(SIMD_NAME(dn_linear_fwd), linear_v)
SIMD_FWD_KERNEL(SIMD_NAME(dn_relu_fwd), relu_v)
SIMD_FWD_KERNEL(SIMD_NAME(dn_leaky_relu_fwd), leaky_relu_v)
SIMD_FWD_KERNEL(SIMD_NAME(dn_sigmoid_fwd), sigmoid_v)
SIMD_FWD_KERNEL(SIMD_NAME(dn_tanh_fwd), tanh_v)
SIMD_BWD_KERNEL(SIMD_NAME(dn_linear_bwd), linear_d)
SIMD_BWD_KERNEL(SIMD_NAME(dn_relu_bwd), relu_d)
SIMD_BWD_KERNEL(SIMD_NAME(dn_leaky_relu_bwd), leaky_relu_d)
SIMD_BWD_KERNEL(SIMD_NAME(dn_sigmoid_bwd), sigmoid_d)
SIMD_BWD_KERNEL(SIMD_NAME(dn_tanh_bwd), tanh_d)

/* The exported exp (vecmath.h: the tests hold each ISA's to the scalar twin's). */
void SIMD_NAME(dn_exp)(size_t n, const float *x, float *y) { SIMD_NAME(exp)(n, x, y); }

/* This file's kernels into the ISA's table. */
INLINE void fill_simd_activations(dn_kernel_table *kt) {
  kt->act_fwd[DN_ACT_LINEAR] = SIMD_NAME(dn_linear_fwd);
  kt->act_bwd[DN_ACT_LINEAR] = SIMD_NAME(dn_linear_bwd);
  kt->act_fwd[DN_ACT_RELU] = SIMD_NAME(dn_relu_fwd);
  kt->act_bwd[DN_ACT_RELU] = SIMD_NAME(dn_relu_bwd);
  kt->act_fwd[DN_ACT_LEAKY_RELU] = SIMD_NAME(dn_leaky_relu_fwd);
  kt->act_bwd[DN_ACT_LEAKY_RELU] = SIMD_NAME(dn_leaky_relu_bwd);
  kt->act_fwd[DN_ACT_SIGMOID] = SIMD_NAME(dn_sigmoid_fwd);
  kt->act_bwd[DN_ACT_SIGMOID] = SIMD_NAME(dn_sigmoid_bwd);
  kt->act_fwd[DN_ACT_TANH] = SIMD_NAME(dn_tanh_fwd);
  kt->act_bwd[DN_ACT_TANH] = SIMD_NAME(dn_tanh_bwd);
}
