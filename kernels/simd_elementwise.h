/* The elementwise kernels whose vector form is the same on every SIMD set: the difference,
 * the bias add, the row sums, absmax and the optimizer updates (plain, momentum, Adam),
 * written once. Each ISA's act_*.c includes this after defining its vector vocabulary, so
 * the sets keep one sequence of operations, the scalar twin's (kernels/scalar/; docs/
 * vecmath.md), and differ only in the instructions.
 *
 * The includer defines: vf, vmask, V, ALL, INLINE, ld, st, VLOOP, set1 (its loads, stores
 * and loop with tails), abs_or_inf (|x|, with NaN as +Inf, so a running max keeps any Inf
 * or NaN as +Inf: absmax's contract), and
 *   v_zero()  v_add  v_sub  v_mul  v_div  v_sqrt  v_max   lane-wise, one instruction each
 *   v_hmax(v)          the largest lane, as a float
 *   v_prefetch(p)      a software prefetch of p into L1, or nothing ((void)0, which
 *                      never evaluates p)
 *   PREFETCH_AHEAD     how many floats ahead the updates prefetch their streams (needed
 *                      only where v_prefetch uses its argument)
 *   SIMD_NAME(f)       f with the ISA's suffix (dn_absmax -> dn_absmax_avx2)
 *   SIMD_OWN_ROW_SUM   (optional) the includer builds its own row sums on row_sum_step
 *                      and fills kt->row_sum and kt->row_sum_acc itself: this file
 *                      leaves them out
 * No include guard: one inclusion per ISA file. */

INLINE void sub_step(size_t i, vmask m, bool full, const float *a, const float *b, float *dst) {
  st(dst + i, m, full, v_sub(ld(a + i, m, full), ld(b + i, m, full)));
}
static void SIMD_NAME(dn_sub)(size_t n, const float *a, const float *b, float *dst) {
  VLOOP(n, sub_step, a, b, dst);
}

INLINE void bias_step(size_t i, vmask m, bool full, const float *b, float *z) {
  st(z + i, m, full, v_add(ld(z + i, m, full), ld(b + i, m, full)));
}
static void SIMD_NAME(dn_bias_add)(size_t rows, size_t cols, const float *b, float *Z) {
  for (size_t j = 0; j < cols; j++) VLOOP(rows, bias_step, b, Z + j * rows);
}

/* Vectorized across rows, each row's sum still 0 + X(i,0) + X(i,1) + ... in j order:
 * bitwise the scalar twin's result, whatever rows the caller gives each thread. With acc
 * (row_sum_acc) each chain starts from out instead of 0 and is stored unscaled. */
INLINE void row_sum_step(size_t i, vmask m, bool full, size_t cols, const float *X, size_t ldx,
                         vf scale, float *out, bool acc) {
  vf s = acc ? ld(out + i, m, full) : v_zero();
  for (size_t j = 0; j < cols; j++) s = v_add(s, ld(X + i + j * ldx, m, full));
  st(out + i, m, full, acc ? s : v_mul(s, scale));
}
#ifndef SIMD_OWN_ROW_SUM
INLINE void row_sum_impl(size_t rows, size_t cols, const float *X, size_t ldx, float scale,
                         float *out, bool acc) {
  const vf vs = set1(scale);
  size_t i = 0;
  /* Eight sums in flight per column: each column of the block is 8 vectors read in one
   * go (whole lines, in address order), which the prefetchers follow better than two. */
  for (; i + 8 * V <= rows; i += 8 * V) {
    vf s[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) s[k] = acc ? ld(out + i + k * V, ALL, true) : v_zero();
    for (size_t j = 0; j < cols; j++) {
      const float *x = X + i + j * ldx;
#pragma GCC unroll 8
      for (int k = 0; k < 8; k++) s[k] = v_add(s[k], ld(x + k * V, ALL, true));
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) st(out + i + k * V, ALL, true, acc ? s[k] : v_mul(s[k], vs));
  }
  VLOOP(rows - i, row_sum_step, cols, X + i, ldx, vs, out + i, acc);
}
static void SIMD_NAME(dn_row_sum)(size_t rows, size_t cols, const float *X, size_t ldx, float scale,
                                  float *out) {
  row_sum_impl(rows, cols, X, ldx, scale, out, false);
}
static void SIMD_NAME(dn_row_sum_acc)(size_t rows, size_t cols, const float *X, size_t ldx,
                                      float *acc) {
  row_sum_impl(rows, cols, X, ldx, 1.0f, acc, true);
}
#endif

INLINE void absmax_step(size_t i, vmask m, bool full, const float *x, vf *acc) {
  *acc = v_max(*acc, abs_or_inf(ld(x + i, m, full)));
}
/* Four running maxima over four vectors a step: one would make every step wait for the
 * last max (4 cycles), four times slower than the finiteness scan it replaces in the dW
 * epilogue (the small net's backward lost 2-6% that way on AVX-512). */
static float SIMD_NAME(dn_absmax)(size_t n, const float *x) {
  vf acc = v_zero(), a1 = acc, a2 = acc, a3 = acc;
  size_t i = 0;
  for (; i + 4 * V <= n; i += 4 * V) {
    acc = v_max(acc, abs_or_inf(ld(x + i, ALL, true)));
    a1 = v_max(a1, abs_or_inf(ld(x + i + V, ALL, true)));
    a2 = v_max(a2, abs_or_inf(ld(x + i + 2 * V, ALL, true)));
    a3 = v_max(a3, abs_or_inf(ld(x + i + 3 * V, ALL, true)));
  }
  VLOOP(n - i, absmax_step, x + i, &acc);
  return v_hmax(v_max(v_max(acc, a1), v_max(a2, a3)));
}

/* The optimizer updates prefetch every stream PREFETCH_AHEAD floats ahead: they walk four to
 * seven arrays beyond L2 at once (Adam at 64 MiB +8-9%, the deep net's update 3.9 -> 3.6 ms;
 * docs/vecmath.md). Each keeps the absmax of what it writes (tail lanes past n are 0). */
INLINE void gd_step(size_t i, vmask m, bool full, vf lr, const float *g, float *p, vf *acc) {
  v_prefetch(g + i + PREFETCH_AHEAD);
  v_prefetch(p + i + PREFETCH_AHEAD);
  const vf pn = v_sub(ld(p + i, m, full), v_mul(lr, ld(g + i, m, full)));
  st(p + i, m, full, pn);
  *acc = v_max(*acc, abs_or_inf(pn));
}
static float SIMD_NAME(dn_gd_update)(size_t n, float lr, const float *g, float *p) {
  vf acc = v_zero();
  VLOOP(n, gd_step, set1(lr), g, p, &acc);
  return v_hmax(acc);
}

INLINE void momentum_step(size_t i, vmask m, bool full, vf lr, vf beta, const float *g, float *v,
                          float *p, vf *acc) {
  v_prefetch(g + i + PREFETCH_AHEAD);
  v_prefetch(v + i + PREFETCH_AHEAD);
  v_prefetch(p + i + PREFETCH_AHEAD);
  const vf vn = v_add(v_mul(beta, ld(v + i, m, full)), v_mul(v_sub(set1(1.0f), beta), ld(g + i, m, full)));
  st(v + i, m, full, vn);
  const vf pn = v_sub(ld(p + i, m, full), v_mul(lr, vn));
  st(p + i, m, full, pn);
  *acc = v_max(*acc, v_max(abs_or_inf(vn), abs_or_inf(pn)));
}
static float SIMD_NAME(dn_momentum_update)(size_t n, float lr, float beta, const float *g, float *v,
                                           float *p) {
  vf acc = v_zero();
  VLOOP(n, momentum_step, set1(lr), set1(beta), g, v, p, &acc);
  return v_hmax(acc);
}

INLINE void adam_step(size_t i, vmask m, bool full, vf lr_t, vf b1, vf b2, vf eps_t, const float *g,
                      float *m1, float *v2, float *p, vf *acc) {
  v_prefetch(g + i + PREFETCH_AHEAD);
  v_prefetch(m1 + i + PREFETCH_AHEAD);
  v_prefetch(v2 + i + PREFETCH_AHEAD);
  v_prefetch(p + i + PREFETCH_AHEAD);
  const vf gi = ld(g + i, m, full), one = set1(1.0f);
  const vf mn = v_add(v_mul(b1, ld(m1 + i, m, full)), v_mul(v_sub(one, b1), gi));
  const vf vn = v_add(v_mul(b2, ld(v2 + i, m, full)), v_mul(v_mul(v_sub(one, b2), gi), gi));
  st(m1 + i, m, full, mn);
  st(v2 + i, m, full, vn);
  const vf step = v_div(v_mul(lr_t, mn), v_add(v_sqrt(vn), eps_t));
  const vf pn = v_sub(ld(p + i, m, full), step);
  st(p + i, m, full, pn);
  *acc = v_max(*acc, v_max(abs_or_inf(mn), v_max(abs_or_inf(vn), abs_or_inf(pn))));
}
static float SIMD_NAME(dn_adam_update)(size_t n, float lr_t, float b1, float b2, float eps_t,
                                       const float *g, float *m, float *v, float *p) {
  vf acc = v_zero();
  VLOOP(n, adam_step, set1(lr_t), set1(b1), set1(b2), set1(eps_t), g, m, v, p, &acc);
  return v_hmax(acc);
}

/* This file's kernels into the ISA's table. */
INLINE void fill_simd_elementwise(dn_kernel_table *kt) {
  kt->sub = SIMD_NAME(dn_sub);
  kt->bias_add = SIMD_NAME(dn_bias_add);
#ifndef SIMD_OWN_ROW_SUM
  kt->row_sum = SIMD_NAME(dn_row_sum);
  kt->row_sum_acc = SIMD_NAME(dn_row_sum_acc);
#endif
  kt->absmax = SIMD_NAME(dn_absmax);
  kt->gd_update = SIMD_NAME(dn_gd_update);
  kt->momentum_update = SIMD_NAME(dn_momentum_update);
  kt->adam_update = SIMD_NAME(dn_adam_update);
}
