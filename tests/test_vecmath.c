/* The vector math of every ISA this CPU runs (exp, the activations and their derivatives,
 * softmax, bias add, row sums, the optimizer updates): against libm in double, against
 * its scalar twin, at every tail length. The bounds are the ones docs/vecmath.md states. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deepnet.h"
#include "kernels.h"
#include "test_util.h"
#include "vecmath.h"

/* Error bounds, in ulps of the exact result (docs/vecmath.md). */
#define EXP_ULP 1.05
#define SIGMOID_ULP 2.5
#define TANH_ULP 1.5
/* Where the scalar twin cannot fuse multiply-adds cheaply (x86 without -mfma), it may
 * differ from the SIMD sets by this many ulps; where it can, they agree bit for bit. */
#ifdef FP_FAST_FMAF
#define TWIN_ULP 0
#else
#define TWIN_ULP 2
#endif

typedef void (*map_fn)(size_t n, const float *x, float *y);

typedef struct isa_case {
  const char *name;
  dn_isa isa;
  size_t width; /* floats per vector */
  void (*fill_act)(dn_kernel_table *kt);
  map_fn exp;
} isa_case;

static const isa_case isas[] = {
#if defined(__x86_64__)
    {"avx2", DN_ISA_AVX2, 8, dn_kernels_fill_act_avx2, dn_exp_avx2},
    {"avx512", DN_ISA_AVX512, 16, dn_kernels_fill_act_avx512, dn_exp_avx512},
#elif defined(__aarch64__)
    {"neon", DN_ISA_NEON, 4, dn_kernels_fill_act_neon, dn_exp_neon},
#endif
    {"scalar", DN_ISA_SCALAR, 1, NULL, dn_exp_scalar},
};
#define N_ISAS (sizeof isas / sizeof isas[0])

static bool runs_here(const isa_case *c) {
  return c->isa == DN_ISA_SCALAR || dn_isa_detected() >= c->isa;
}

static dn_kernel_table table_of(const isa_case *c) {
  dn_kernel_table kt;
  dn_kernels_fill_scalar(&kt);
  if (c->fill_act) c->fill_act(&kt);
  return kt;
}

static dn_kernel_table scalar_table(void) {
  dn_kernel_table kt;
  dn_kernels_fill_scalar(&kt);
  return kt;
}

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
/* Floats in order as integers: consecutive floats differ by 1 (+0 and -0 both 0). */
static int64_t ordinal(float x) {
  const uint32_t u = bits_of(x);
  return (u >> 31) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}
static float from_ordinal(int64_t o) {
  return from_bits(o < 0 ? (uint32_t)(-o) | 0x80000000u : (uint32_t)o);
}
static bool same_bits(float a, float b) { return bits_of(a) == bits_of(b) || (isnan(a) && isnan(b)); }

/* |y - ref| in ulps of ref (denormal spacing below FLT_MIN; an infinite y counts as
 * 2^128, so a result that overflows a hair early or late reads as what it is). */
static double ulp_error(float y, double ref) {
  if (isnan(ref) || isnan(y)) return isnan(ref) && isnan(y) ? 0.0 : INFINITY;
  if (isinf(y) && isinf((float)ref) && (y > 0) == (ref > 0)) return 0.0;
  const double yd = isinf(y) ? copysign(0x1p128, y) : (double)y;
  int e;
  frexp(fabs(ref), &e);
  const double ulp = fabs(ref) < 0x1p-126 ? 0x1p-149 : ldexp(1.0, e - 24);
  return fabs(yd - ref) / ulp;
}

/* The larger error; a NaN one wins (it is a failure). */
static double worse(double w, double e) { return e > w || isnan(e) ? e : w; }

static double ref_exp(double x) { return exp(x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_tanh(double x) { return tanh(x); }

/* One elementwise function of a table as a map_fn, for the sweeps. */
typedef struct fn_case {
  const char *name;
  double (*ref)(double);
  double bound;
  float lo, hi; /* the sweep; beyond it the result is saturated (checked on its own) */
} fn_case;

static const fn_case fns[] = {
    {"exp", ref_exp, EXP_ULP, -105.0f, 90.0f},
    {"sigmoid", ref_sigmoid, SIGMOID_ULP, -110.0f, 110.0f},
    {"tanh", ref_tanh, TANH_ULP, -12.0f, 12.0f},
};

static map_fn map_of(const isa_case *c, size_t f) {
  if (f == 0) return c->exp;
  const dn_kernel_table kt = table_of(c);
  return kt.act_fwd[f == 1 ? DN_ACT_SIGMOID : DN_ACT_TANH];
}

/* Specials every function meets: zeros, infinities, NaN, denormals, the exp overflow and
 * underflow thresholds (0x42b17217 is the largest x with exp(x) finite, 0xc2cff1b4 the
 * smallest with exp(x) > 0), FLT_MIN's log, the tanh branch point and the saturations. */
static const float specials[] = {
    0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 0x1p-149f, -0x1p-149f, 0x1.fffffcp-127f,
    -0x1.fffffcp-127f, 0x1p-126f, -0x1p-126f, 1e-30f, -1e-30f, 88.72283172607421875f,
    88.7228393554688f, 88.8f, 89.0f, 89.5f, 100.0f, -87.3365478515625f, -87.5f,
    -103.97207641601562f, -103.97208404541016f, -104.0f, -110.0f, 0.625f, -0.625f,
    0x1.3ffffep-1f, -0x1.3ffffep-1f, 9.0f, 9.1f, 16.6f, 17.4f, -17.4f, 1e30f, -1e30f,
    3.4028235e38f, -3.4028235e38f, 0.5f, -0.5f, 1.0f, -1.0f, 1e-4f, -1e-4f,
};
#define N_SPECIALS (sizeof specials / sizeof specials[0])

#define CHUNK 4096

/* Sweeps f of c over about `points` floats evenly spaced in [lo, hi] (as integers), plus
 * the specials: the worst ulp error against libm in double, and the worst distance in
 * ulps from the scalar twin. */
static void sweep(const isa_case *c, size_t f, size_t points, double *worst, float *worst_x,
                  int64_t *twin_worst, float *twin_x) {
  const map_fn fn = map_of(c, f), twin = map_of(&isas[N_ISAS - 1], f);
  const int64_t o0 = ordinal(fns[f].lo), o1 = ordinal(fns[f].hi);
  const int64_t stride = ((o1 - o0) / (int64_t)points) | 1;
  float x[CHUNK], y[CHUNK], t[CHUNK];
  *worst = 0.0;
  *twin_worst = 0;
  for (int64_t o = o0 - (int64_t)N_SPECIALS * stride; o <= o1;) {
    size_t n = 0;
    for (; n < CHUNK && o <= o1; n++, o += stride)
      x[n] = o < o0 ? specials[(size_t)((o0 - o) / stride) - 1] : from_ordinal(o);
    fn(n, x, y);
    twin(n, x, t);
    for (size_t i = 0; i < n; i++) {
      const double e = ulp_error(y[i], fns[f].ref((double)x[i]));
      if (e > *worst || isnan(e)) {
        *worst = isnan(e) ? INFINITY : e;
        *worst_x = x[i];
      }
      const int64_t d = same_bits(y[i], t[i]) ? 0
                        : isnan(y[i]) || isnan(t[i]) ? INT64_MAX
                                                     : llabs(ordinal(y[i]) - ordinal(t[i]));
      if (d > *twin_worst) {
        *twin_worst = d;
        *twin_x = x[i];
      }
    }
  }
}

static void check_bound(size_t f) {
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    double worst;
    int64_t twin;
    float wx = 0.0f, tx = 0.0f;
    sweep(&isas[k], f, 3000000, &worst, &wx, &twin, &tx);
    cr_log_info("%s %s: worst %.3f ulp at %a; %lld ulp from the scalar twin", isas[k].name,
                fns[f].name, worst, (double)wx, (long long)twin);
    cr_expect(worst <= fns[f].bound, "%s %s: %.3f ulp at x = %a (bound %.2f)", isas[k].name,
              fns[f].name, worst, (double)wx, fns[f].bound);
    if (isas[k].isa != DN_ISA_SCALAR)
      cr_expect(twin <= TWIN_ULP, "%s %s differs from the scalar twin by %lld ulp at x = %a",
                isas[k].name, fns[f].name, (long long)twin, (double)tx);
  }
}

Test(vecmath, exp_is_within_its_ulp_bound_of_libm_over_a_dense_sweep_and_the_specials) {
  check_bound(0);
}
Test(vecmath, sigmoid_is_within_its_ulp_bound_of_libm_over_a_dense_sweep_and_the_specials) {
  check_bound(1);
}
Test(vecmath, tanh_is_within_its_ulp_bound_of_libm_over_a_dense_sweep_and_the_specials) {
  check_bound(2);
}

Test(vecmath, exp_overflows_and_underflows_exactly_at_the_float_thresholds) {
  const float x[] = {88.72283172607421875f, 88.7228393554688f, -103.97207641601562f,
                     -103.97208404541016f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 0x1p-149f,
                     -87.3365478515625f};
  /* libm agrees that these are the thresholds. */
  cr_assert(isfinite((float)exp((double)x[0])) && isinf((float)exp((double)x[1])));
  cr_assert((float)exp((double)x[2]) == 0x1p-149f && (float)exp((double)x[3]) == 0.0f);
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    float y[11];
    isas[k].exp(11, x, y);
    const char *s = isas[k].name;
    cr_expect(isfinite(y[0]) && y[0] > 3.4e38f, "%s: exp(%a) = %a", s, (double)x[0], (double)y[0]);
    cr_expect(isinf(y[1]) && y[1] > 0, "%s: exp(%a) = %a", s, (double)x[1], (double)y[1]);
    cr_expect(y[2] == 0x1p-149f, "%s: exp(%a) = %a", s, (double)x[2], (double)y[2]);
    cr_expect(y[3] == 0.0f && !signbit(y[3]), "%s: exp(%a) = %a", s, (double)x[3], (double)y[3]);
    cr_expect(isinf(y[4]) && y[4] > 0 && y[5] == 0.0f && !signbit(y[5]), "%s: exp(+-inf)", s);
    cr_expect(isnan(y[6]), "%s: exp(NaN) = %a", s, (double)y[6]);
    cr_expect(y[7] == 1.0f && y[8] == 1.0f && y[9] == 1.0f, "%s: exp(+-0), exp(denormal)", s);
    cr_expect(ulp_error(y[10], exp((double)x[10])) <= EXP_ULP, "%s: exp near FLT_MIN", s);
  }
}

Test(vecmath, sigmoid_saturates_to_exactly_0_and_1_and_is_one_half_at_zero) {
  const float x[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 17.4f, 1e30f, -1e30f, -103.0f,
                     -110.0f, 0x1p-149f, -3.4028235e38f};
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    float y[12];
    kt.act_fwd[DN_ACT_SIGMOID](12, x, y);
    const char *s = isas[k].name;
    cr_expect(y[0] == 0.5f && y[1] == 0.5f && y[10] == 0.5f, "%s: sigmoid(+-0)", s);
    cr_expect(y[2] == 1.0f && y[3] == 0.0f, "%s: sigmoid(+-inf) = %a, %a", s, (double)y[2], (double)y[3]);
    cr_expect(isnan(y[4]), "%s: sigmoid(NaN)", s);
    cr_expect(y[5] == 1.0f && y[6] == 1.0f, "%s: sigmoid(17.4), sigmoid(1e30)", s);
    cr_expect(y[7] == 0.0f && y[11] == 0.0f && y[9] == 0.0f, "%s: sigmoid of very negative", s);
    cr_expect(y[8] > 0.0f && ulp_error(y[8], ref_sigmoid(-103.0)) <= SIGMOID_ULP,
              "%s: sigmoid(-103) = %a, a denormal", s, (double)y[8]);
  }
}

Test(vecmath, tanh_is_odd_exact_near_zero_and_saturates_to_exactly_one) {
  float x[2 * CHUNK], y[2 * CHUNK];
  tu_fill_uniform(x, CHUNK, -10.0f, 10.0f, 7);
  for (size_t i = 0; i < CHUNK; i++) x[CHUNK + i] = -x[i];
  const float sx[] = {0.0f, -0.0f, 0x1p-149f, -0x1.fffffcp-127f, 1e-30f, INFINITY, -INFINITY,
                      NAN, 9.02f, -9.02f, 50.0f, 3.4028235e38f};
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    const char *s = isas[k].name;
    kt.act_fwd[DN_ACT_TANH](2 * CHUNK, x, y);
    size_t asym = 0;
    for (size_t i = 0; i < CHUNK; i++) asym += !same_bits(y[CHUNK + i], -y[i]);
    cr_expect(asym == 0, "%s: tanh(-x) != -tanh(x) for %zu of %d x", s, asym, CHUNK);
    float sy[12];
    kt.act_fwd[DN_ACT_TANH](12, sx, sy);
    for (size_t i = 0; i < 5; i++)
      cr_expect(same_bits(sy[i], sx[i]), "%s: tanh(%a) = %a, not x itself", s, (double)sx[i], (double)sy[i]);
    cr_expect(sy[5] == 1.0f && sy[6] == -1.0f && isnan(sy[7]), "%s: tanh(+-inf), tanh(NaN)", s);
    cr_expect(sy[8] == 1.0f && sy[9] == -1.0f && sy[10] == 1.0f && sy[11] == 1.0f,
              "%s: tanh saturates: %a %a", s, (double)sy[8], (double)sy[9]);
  }
}

/* ---- Tails: every length 0 .. 2 * width + 1 and a long one, nothing written past n. */

#define GUARD 19
static const float CANARY = -1234.5f;

/* n floats of output between GUARD canaries each side. */
static float *guarded(size_t n) {
  float *b = malloc((n + 2 * GUARD) * sizeof *b);
  cr_assert_not_null(b);
  for (size_t i = 0; i < n + 2 * GUARD; i++) b[i] = CANARY;
  return b + GUARD;
}
static bool canaries_intact(const float *p, size_t n) {
  for (size_t i = 1; i <= GUARD; i++)
    if (bits_of(p[-(ptrdiff_t)i]) != bits_of(CANARY) || bits_of(p[n + i - 1]) != bits_of(CANARY))
      return false;
  return true;
}
static void free_guarded(float *p) { free(p - GUARD); }

/* Exactly n floats (ASan sees any read past them): uniform in [lo, hi) with the specials
 * sprinkled in. */
static float *input(size_t n, float lo, float hi, uint64_t seed) {
  float *x = tu_random(n, lo, hi, seed);
  cr_assert_not_null(x);
  for (size_t i = 0; i < n; i += 7) x[i] = specials[(i / 7 + seed) % N_SPECIALS];
  return x;
}

static size_t lengths(const isa_case *c, size_t *out) {
  size_t k = 0;
  for (size_t n = 0; n <= 2 * c->width + 1; n++) out[k++] = n;
  out[k++] = 1037;
  return k;
}

/* Agreement with the twin: bitwise, or within TWIN_ULP for the exp family. */
static bool twin_ok(const float *y, const float *t, size_t n, int64_t ulps) {
  for (size_t i = 0; i < n; i++) {
    if (same_bits(y[i], t[i])) continue;
    if (isnan(y[i]) || isnan(t[i]) || llabs(ordinal(y[i]) - ordinal(t[i])) > ulps) return false;
  }
  return true;
}

Test(vecmath, every_activation_matches_its_scalar_twin_at_every_tail_length_and_writes_nothing_past_n) {
  const dn_kernel_table ref = scalar_table();
  for (size_t k = 0; k < N_ISAS - 1; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    size_t ns[40];
    const size_t count = lengths(&isas[k], ns);
    for (size_t c = 0; c < count; c++) {
      const size_t n = ns[c];
      for (int a = 0; a < DN_ACT_SOFTMAX; a++) {
        /* The exp family may differ from the unfused x86 twin; the rest is exact. */
        const int64_t ulps = (a == DN_ACT_SIGMOID || a == DN_ACT_TANH) ? TWIN_ULP : 0;
        float *Z = input(n, -12.0f, 12.0f, 11 + n), *dA = input(n, -2.0f, 2.0f, 12 + n);
        float *A = guarded(n), *At = guarded(n), *dZ = guarded(n), *dZt = guarded(n);
        kt.act_fwd[a](n, Z, A);
        ref.act_fwd[a](n, Z, At);
        cr_expect(canaries_intact(A, n), "%s act %d fwd n=%zu wrote past n", isas[k].name, a, n);
        cr_expect(twin_ok(A, At, n, ulps), "%s act %d fwd n=%zu differs from the twin", isas[k].name, a, n);
        /* Backward from the same cached A, so only the derivative is compared. */
        kt.act_bwd[a](n, Z, At, dA, dZ);
        ref.act_bwd[a](n, Z, At, dA, dZt);
        cr_expect(canaries_intact(dZ, n), "%s act %d bwd n=%zu wrote past n", isas[k].name, a, n);
        cr_expect(twin_ok(dZ, dZt, n, 0), "%s act %d bwd n=%zu differs from the twin", isas[k].name, a, n);
        free(Z);
        free(dA);
        free_guarded(A);
        free_guarded(At);
        free_guarded(dZ);
        free_guarded(dZt);
      }
      float *x = input(n, -105.0f, 90.0f, 13 + n), *y = guarded(n), *t = guarded(n);
      isas[k].exp(n, x, y);
      dn_exp_scalar(n, x, t);
      cr_expect(canaries_intact(y, n), "%s exp n=%zu wrote past n", isas[k].name, n);
      cr_expect(twin_ok(y, t, n, TWIN_ULP), "%s exp n=%zu differs from the twin", isas[k].name, n);
      free(x);
      free_guarded(y);
      free_guarded(t);
    }
  }
}

/* The fused GEMM epilogue and the threads call these kernels on arbitrary pieces of a
 * matrix: an element's bits must not depend on its place in the call (no scalar tails). */
Test(vecmath, an_elements_result_does_not_depend_on_where_the_call_cuts_the_array) {
  const size_t n = 1000;
  float *Z = input(n, -12.0f, 12.0f, 71), *dA = input(n, -2.0f, 2.0f, 72);
  float *whole = malloc(n * sizeof *whole), *pieces = malloc(n * sizeof *pieces);
  cr_assert(whole && pieces);
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    for (int a = 0; a <= DN_ACT_SOFTMAX; a++) { /* DN_ACT_SOFTMAX stands for exp here */
      const bool is_exp = a == DN_ACT_SOFTMAX;
      if (is_exp) isas[k].exp(n, Z, whole);
      else kt.act_fwd[a](n, Z, whole);
      for (size_t i = 0, cut = 1; i < n; i += cut, cut = cut % 37 + 3) { /* odd-sized pieces */
        const size_t len = i + cut <= n ? cut : n - i;
        if (is_exp) isas[k].exp(len, Z + i, pieces + i);
        else kt.act_fwd[a](len, Z + i, pieces + i);
      }
      cr_expect(twin_ok(whole, pieces, n, 0), "%s act %d: pieces differ from the whole", isas[k].name, a);
      if (is_exp) continue;
      kt.act_bwd[a](n, Z, whole, dA, whole);
      for (size_t i = 0, cut = 2; i < n; i += cut, cut = cut % 41 + 5) {
        const size_t len = i + cut <= n ? cut : n - i;
        kt.act_bwd[a](len, Z + i, pieces + i, dA + i, pieces + i);
      }
      cr_expect(twin_ok(whole, pieces, n, 0), "%s act %d bwd (in place): pieces differ", isas[k].name, a);
    }
  }
  free(Z);
  free(dA);
  free(whole);
  free(pieces);
}

/* A hidden layer keeps no Z (dn_layer_keeps_z): its activation runs in place over the GEMM's
 * output and backward hands A to the derivative where Z was. Both must give the same bits
 * as the separate buffers did, specials (NaN, +-0, denormals, infinities) included. */
Test(vecmath, in_place_activation_and_derivatives_from_A_alone_are_bitwise_the_separate_ones) {
  const size_t n = 1037;
  float *Z = input(n, -12.0f, 12.0f, 81), *dA = input(n, -2.0f, 2.0f, 82);
  float *A = malloc(n * sizeof *A), *in_place = malloc(n * sizeof *in_place);
  float *dZ = malloc(n * sizeof *dZ), *dZ_from_A = malloc(n * sizeof *dZ_from_A);
  cr_assert(A && in_place && dZ && dZ_from_A);
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    for (int a = 0; a < DN_ACT_SOFTMAX; a++) {
      kt.act_fwd[a](n, Z, A);
      memcpy(in_place, Z, n * sizeof *Z);
      kt.act_fwd[a](n, in_place, in_place);
      cr_expect(twin_ok(in_place, A, n, 0), "%s act %d: in place differs", isas[k].name, a);
      kt.act_bwd[a](n, Z, A, dA, dZ);
      kt.act_bwd[a](n, A, A, dA, dZ_from_A);
      cr_expect(twin_ok(dZ_from_A, dZ, n, 0), "%s act %d: g' from A differs from g' from Z",
                isas[k].name, a);
    }
  }
  free(Z);
  free(dA);
  free(A);
  free(in_place);
  free(dZ);
  free(dZ_from_A);
}

Test(vecmath, relu_lets_nan_through_and_maps_minus_zero_to_plus_zero) {
  const float Z[] = {NAN, -0.0f, 0.0f, -1.0f, 2.0f, 0x1p-149f, -0x1p-149f, -INFINITY, INFINITY};
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    float A[9];
    kt.act_fwd[DN_ACT_RELU](9, Z, A);
    cr_expect(isnan(A[0]), "%s: relu(NaN) = %a", isas[k].name, (double)A[0]);
    cr_expect(same_bits(A[1], 0.0f) && same_bits(A[2], 0.0f) && A[3] == 0.0f && A[4] == 2.0f,
              "%s: relu of zeros and signs", isas[k].name);
    cr_expect(A[5] == 0x1p-149f && same_bits(A[6], 0.0f) && A[7] == 0.0f && isinf(A[8]),
              "%s: relu of denormals and infinities", isas[k].name);
  }
}

Test(vecmath, sigmoid_and_tanh_derivatives_from_the_cached_A_match_the_formulas_in_double) {
  const size_t n = 100000;
  float *Z = input(n, -9.0f, 9.0f, 21), *dA = input(n, -3.0f, 3.0f, 22);
  float *A = malloc(n * sizeof *A), *dZ = malloc(n * sizeof *dZ);
  cr_assert(A && dZ);
  for (size_t i = 0; i < n; i++) { /* finite: the specials' results are checked elsewhere */
    Z[i] = isfinite(Z[i]) ? Z[i] : 0.5f;
    dA[i] = fabsf(dA[i]) >= 1e-3f && isfinite(dA[i]) ? dA[i] : 1.0f;
  }
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    double worst_sig = 0.0, worst_tanh = 0.0;
    kt.act_fwd[DN_ACT_SIGMOID](n, Z, A);
    kt.act_bwd[DN_ACT_SIGMOID](n, Z, A, dA, dZ);
    for (size_t i = 0; i < n; i++) /* relative: 1 - A never cancels badly, A <= 1 */
      worst_sig = worse(worst_sig, ulp_error(dZ[i], (double)dA[i] * A[i] * (1.0 - A[i])));
    kt.act_fwd[DN_ACT_TANH](n, Z, A);
    kt.act_bwd[DN_ACT_TANH](n, Z, A, dA, dZ);
    for (size_t i = 0; i < n; i++) /* absolute, in units of |dA| 2^-24: 1 - A^2 cancels */
      worst_tanh = worse(worst_tanh, fabs(dZ[i] - (double)dA[i] * (1.0 - (double)A[i] * A[i])) /
                                        (fabs((double)dA[i]) * 0x1p-24));
    cr_log_info("%s: sigmoid' %.3f ulp, tanh' %.3f |dA| 2^-24", isas[k].name, worst_sig, worst_tanh);
    cr_expect(worst_sig <= 2.0, "%s: sigmoid' off by %.3f ulp", isas[k].name, worst_sig);
    cr_expect(worst_tanh <= 3.0, "%s: tanh' off by %.3f |dA| 2^-24", isas[k].name, worst_tanh);
  }
  free(Z);
  free(dA);
  free(A);
  free(dZ);
}

/* ---- Softmax. */

/* Per entry against double, and for each column's sum against 1: 4 ulps of 1 for the
 * exp, the division and exp's sensitivity to z - max, plus the float sum's error, which
 * grows with the column (sequential in the scalar twin, per lane in the SIMD sets). */
static double softmax_bound(size_t rows) { return (4.0 + (double)rows / 8.0) * 0x1p-24; }

Test(vecmath, softmax_columns_sum_to_one_and_match_double_at_every_height) {
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]), ref = scalar_table();
    size_t heights[40];
    size_t count = lengths(&isas[k], heights);
    heights[count - 1] = 1000; /* the long one */
    for (size_t c = 0; c < count; c++) {
      /* Whole blocks of 16 columns and every tail (the AVX-512 kernel transposes blocks of
       * 16 columns of fewer than 16 rows, and takes the rest one column at a time). */
      const size_t rows = heights[c], cols = 64 + (rows * 5) % 16, n = rows * cols;
      float *Z = tu_random(n, -30.0f, 30.0f, 31 + rows), *A = guarded(n), *At = guarded(n);
      if (n > 0) Z[0] = 1000.0f; /* huge logits: max subtraction keeps exp finite */
      if (n > 1) Z[n - 1] = -1000.0f;
      kt.softmax_fwd(rows, cols, Z, A);
      ref.softmax_fwd(rows, cols, Z, At);
      cr_expect(canaries_intact(A, n), "%s softmax rows=%zu wrote past the matrix", isas[k].name, rows);
      double worst = 0.0, worst_sum = 0.0, worst_twin = 0.0;
      for (size_t j = 0; j < cols; j++) {
        const float *z = Z + j * rows;
        double zmax = -INFINITY, s = 0.0, sum = 0.0;
        for (size_t i = 0; i < rows; i++) zmax = z[i] > zmax ? z[i] : zmax;
        for (size_t i = 0; i < rows; i++) s += exp(z[i] - zmax);
        for (size_t i = 0; i < rows; i++) {
          const size_t ij = i + j * rows;
          cr_expect(A[ij] >= 0.0f && A[ij] <= 1.0f);
          worst = worse(worst, fabs(A[ij] - exp(z[i] - zmax) / s));
          worst_twin = worse(worst_twin, fabs((double)A[ij] - At[ij]));
          sum += A[ij];
        }
        if (rows > 0) worst_sum = worse(worst_sum, fabs(sum - 1.0));
      }
      const double bound = softmax_bound(rows);
      cr_expect(worst <= bound, "%s softmax rows=%zu: %g from double", isas[k].name, rows, worst);
      cr_expect(worst_sum <= bound, "%s softmax rows=%zu: a column sums to 1 +- %g", isas[k].name,
                rows, worst_sum);
      cr_expect(worst_twin <= 2 * bound, "%s softmax rows=%zu: %g from the twin", isas[k].name,
                rows, worst_twin);
      free(Z);
      free_guarded(A);
      free_guarded(At);
    }
  }
}

/* A column's softmax does not depend on where the call starts: columns computed in pieces
 * (cut off the SIMD sets' blocks of columns) are bitwise those of one call over all of
 * them, which the threaded forward pass relies on (it splits the columns). */
Test(vecmath, softmax_of_a_column_is_the_same_in_any_piece_of_the_matrix) {
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    const size_t cols = 50, cuts[] = {0, 7, 29, 30, cols};
    for (size_t rows = 1; rows <= 40; rows += rows < 20 ? 1 : 7) {
      const size_t n = rows * cols;
      float *Z = tu_random(n, -20.0f, 20.0f, 77 + rows), *whole = malloc(n * sizeof(float));
      float *pieces = malloc(n * sizeof(float));
      cr_assert(Z && whole && pieces);
      kt.softmax_fwd(rows, cols, Z, whole);
      for (size_t p = 0; p + 1 < sizeof cuts / sizeof *cuts; p++)
        kt.softmax_fwd(rows, cuts[p + 1] - cuts[p], Z + cuts[p] * rows, pieces + cuts[p] * rows);
      cr_expect(memcmp(whole, pieces, n * sizeof(float)) == 0,
                "%s softmax rows=%zu: pieces differ from the whole", isas[k].name, rows);
      free(Z), free(whole), free(pieces);
    }
  }
}

Test(vecmath, softmax_of_one_row_is_exactly_one) {
  const float Z[] = {-3.0f, 0.0f, 88.0f, -1e30f};
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    float A[4];
    kt.softmax_fwd(1, 4, Z, A);
    cr_expect(A[0] == 1.0f && A[1] == 1.0f && A[2] == 1.0f && A[3] == 1.0f, "%s", isas[k].name);
  }
}

/* ---- Bias add, row sums, sub, scale: bitwise the scalar twin's. */

Test(vecmath, bias_add_sub_and_scale_are_bitwise_the_scalar_twins) {
  const dn_kernel_table ref = scalar_table();
  for (size_t k = 0; k < N_ISAS - 1; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    size_t ns[40];
    const size_t count = lengths(&isas[k], ns);
    for (size_t c = 0; c < count; c++) {
      const size_t rows = ns[c], cols = 3, n = rows * cols;
      float *b = input(rows, -2.0f, 2.0f, 41 + rows), *Z0 = input(n, -5.0f, 5.0f, 42 + rows);
      float *Z = guarded(n), *Zt = guarded(n);
      if (n) memcpy(Z, Z0, n * sizeof *Z);
      if (n) memcpy(Zt, Z0, n * sizeof *Z);
      kt.bias_add(rows, cols, b, Z);
      ref.bias_add(rows, cols, b, Zt);
      cr_expect(canaries_intact(Z, n) && twin_ok(Z, Zt, n, 0), "%s bias_add rows=%zu", isas[k].name, rows);

      kt.sub(n, Z0, Zt, Z);
      ref.sub(n, Z0, Zt, Zt);
      cr_expect(canaries_intact(Z, n) && twin_ok(Z, Zt, n, 0), "%s sub n=%zu", isas[k].name, n);
      free(b);
      free(Z0);
      free_guarded(Z);
      free_guarded(Zt);
    }
  }
}

/* n random floats in [lo, hi) with NaNs in the GUARD floats on either side (a read past
 * either end would see them); free *buf. */
static float *nan_guarded(size_t n, float lo, float hi, unsigned seed, float **buf) {
  *buf = malloc((n + 2 * GUARD) * sizeof **buf);
  cr_assert_not_null(*buf);
  for (size_t i = 0; i < n + 2 * GUARD; i++) (*buf)[i] = NAN;
  float *x = *buf + GUARD, *r = tu_random(n, lo, hi, seed);
  for (size_t i = 0; i < n; i++) x[i] = r[i];
  free(r);
  return x;
}

/* any_nonfinite: false on finite data of every length (FLT_MAX, denormals, -0 included),
 * also when NaNs lie just outside the array (a read past either end would see them);
 * true with one NaN, +Inf or -Inf at any position, tails included; as the scalar twin.
 * absmax on the same data: the largest |x| exactly (one of the inputs; -FLT_MAX in the
 * tail beats the rest), 0 for n = 0, +Inf wherever any_nonfinite is true. */
Test(vecmath, any_nonfinite_and_absmax_find_every_inf_and_nan_and_read_nothing_outside) {
  const dn_kernel_table ref = scalar_table();
  const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
  for (size_t k = 0; k < N_ISAS; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = k == N_ISAS - 1 ? ref : table_of(&isas[k]);
    size_t ns[40];
    const size_t count = lengths(&isas[k], ns);
    for (size_t c = 0; c < count; c++) {
      const size_t n = ns[c];
      float *buf, *x = nan_guarded(n, -1e38f, 1e38f, 61 + (unsigned)n, &buf);
      float want = 0.0f;
      for (size_t i = 0; i < n; i++) want = fabsf(x[i]) > want ? fabsf(x[i]) : want;
      cr_expect_eq(kt.absmax(n, x), want, "%s n=%zu: absmax %g, want %g", isas[k].name, n,
                   (double)kt.absmax(n, x), (double)want);
      if (n) { /* the largest at the last position (the tail), negative */
        const float saved = x[n - 1];
        x[n - 1] = -FLT_MAX;
        cr_expect_eq(kt.absmax(n, x), FLT_MAX, "%s n=%zu: -FLT_MAX last", isas[k].name, n);
        x[n - 1] = saved;
      }
      const float edge[] = {FLT_MAX, -FLT_MAX, 1e-45f, -0.0f, FLT_MIN};
      for (size_t i = 0; i < n; i += 5) x[i] = edge[(i / 5) % 5];
      cr_expect(!kt.any_nonfinite(n, x), "%s n=%zu: finite data reported", isas[k].name, n);
      cr_expect(!ref.any_nonfinite(n, x));
      const size_t step = n > 64 ? 37 : 1;
      for (size_t at = 0; at < n; at += step) {
        const float saved = x[at];
        x[at] = bad[at % 4];
        cr_expect(kt.any_nonfinite(n, x), "%s n=%zu: %g at %zu missed", isas[k].name, n,
                  (double)x[at], at);
        cr_expect(kt.absmax(n, x) == INFINITY, "%s n=%zu: absmax with %g at %zu gave %g",
                  isas[k].name, n, (double)x[at], at, (double)kt.absmax(n, x));
        x[at] = saved;
      }
      free(buf);
    }
  }
}

Test(vecmath, row_sum_and_row_sum_acc_are_bitwise_the_scalar_twins_whatever_split) {
  const dn_kernel_table ref = scalar_table();
  for (size_t k = 0; k < N_ISAS - 1; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    size_t ns[40];
    size_t count = lengths(&isas[k], ns);
    ns[count++] = 4 * isas[k].width + 3; /* the four-vector block and a tail */
    for (size_t c = 0; c < count; c++) {
      const size_t rows = ns[c], ldx = rows + 5, cols = 129;
      float *X = input(ldx * cols, -3.0f, 3.0f, 51 + rows);
      for (size_t i = 0; i < ldx * cols; i++) X[i] = isfinite(X[i]) ? X[i] * 1e3f : 1.0f;
      float *out = guarded(rows), *want = guarded(rows), *split = guarded(rows);
      kt.row_sum(rows, cols, X, ldx, 1.0f / 129.0f, out);
      ref.row_sum(rows, cols, X, ldx, 1.0f / 129.0f, want);
      cr_expect(canaries_intact(out, rows), "%s row_sum rows=%zu wrote past out", isas[k].name, rows);
      cr_expect(twin_ok(out, want, rows, 0), "%s row_sum rows=%zu differs from the twin", isas[k].name, rows);
      for (size_t cut = 0; cut <= rows; cut += 1 + rows / 5) { /* two callers, any split */
        kt.row_sum(cut, cols, X, ldx, 1.0f / 129.0f, split);
        kt.row_sum(rows - cut, cols, X + cut, ldx, 1.0f / 129.0f, split + cut);
        cr_expect(twin_ok(split, want, rows, 0), "%s row_sum rows=%zu split at %zu", isas[k].name, rows, cut);
      }
      cr_expect(canaries_intact(split, rows));
      /* row_sum_acc over the columns in pieces, in order, from 0, then scaled: row_sum. */
      for (size_t i = 0; i < rows; i++) split[i] = 0.0f;
      for (size_t j = 0, piece = 1; j < cols; j += piece, piece = piece % 11 + 2) {
        const size_t w = j + piece <= cols ? piece : cols - j;
        kt.row_sum_acc(rows, w, X + j * ldx, ldx, split);
      }
      for (size_t i = 0; i < rows; i++) split[i] *= 1.0f / 129.0f;
      cr_expect(canaries_intact(split, rows), "%s row_sum_acc rows=%zu wrote past acc", isas[k].name, rows);
      cr_expect(twin_ok(split, want, rows, 0), "%s row_sum_acc rows=%zu in pieces differs from row_sum",
                isas[k].name, rows);
      /* From a non-zero start: the twin's chain exactly. */
      for (size_t i = 0; i < rows; i++) split[i] = out[i] = X[i] * 0.5f;
      kt.row_sum_acc(rows, cols, X, ldx, split);
      ref.row_sum_acc(rows, cols, X, ldx, out);
      cr_expect(twin_ok(split, out, rows, 0), "%s row_sum_acc rows=%zu differs from the twin", isas[k].name, rows);
      free(X);
      free_guarded(out);
      free_guarded(want);
      free_guarded(split);
    }
  }
}

/* ---- Optimizer updates: bitwise the scalar twin's, step after step. */

Test(vecmath, gd_momentum_and_adam_updates_are_bitwise_the_scalar_twins) {
  const dn_kernel_table ref = scalar_table();
  for (size_t k = 0; k < N_ISAS - 1; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    size_t ns[40];
    const size_t count = lengths(&isas[k], ns);
    for (size_t c = 0; c < count; c++) {
      const size_t n = ns[c];
      float *s[2][3]; /* [ISA, twin][p, m, v] */
      for (int w = 0; w < 2; w++)
        for (int a = 0; a < 3; a++) {
          s[w][a] = guarded(n);
          for (size_t i = 0; i < n; i++) s[w][a][i] = a == 0 ? 0.1f * (float)i - 3.0f : 0.0f;
        }
      for (int step = 0; step < 3; step++) {
        float *g = tu_random(n, -1.0f, 1.0f, 61 + 7 * n + (size_t)step);
        if (n > 2) g[1] = 0x1p-140f; /* a denormal moment */
        /* Each returns the absmax of what it wrote: the twin's, and absmax's of the arrays. */
        float got = kt.gd_update(n, 0.01f, g, s[0][0]);
        cr_expect_eq(got, ref.gd_update(n, 0.01f, g, s[1][0]), "%s gd n=%zu", isas[k].name, n);
        cr_expect_eq(got, ref.absmax(n, s[1][0]), "%s gd n=%zu", isas[k].name, n);
        got = kt.momentum_update(n, 0.01f, 0.9f, g, s[0][1], s[0][0]);
        cr_expect_eq(got, ref.momentum_update(n, 0.01f, 0.9f, g, s[1][1], s[1][0]),
                     "%s momentum n=%zu", isas[k].name, n);
        cr_expect_eq(got, fmaxf(ref.absmax(n, s[1][0]), ref.absmax(n, s[1][1])));
        got = kt.adam_update(n, 0.003f, 0.9f, 0.999f, 1e-8f, g, s[0][1], s[0][2], s[0][0]);
        cr_expect_eq(got, ref.adam_update(n, 0.003f, 0.9f, 0.999f, 1e-8f, g, s[1][1], s[1][2], s[1][0]),
                     "%s adam n=%zu", isas[k].name, n);
        cr_expect_eq(got, fmaxf(ref.absmax(n, s[1][0]),
                                fmaxf(ref.absmax(n, s[1][1]), ref.absmax(n, s[1][2]))));
        free(g);
      }
      for (int a = 0; a < 3; a++) {
        cr_expect(canaries_intact(s[0][a], n), "%s update n=%zu wrote past n", isas[k].name, n);
        cr_expect(twin_ok(s[0][a], s[1][a], n, 0), "%s update n=%zu: array %d differs", isas[k].name, n, a);
      }
      if (n) { /* an update that overflows reports +Inf */
        float *g = tu_random(n, -1.0f, 1.0f, 3 + n);
        g[n - 1] = 1e30f;
        cr_expect(kt.gd_update(n, 1e10f, g, s[0][0]) == INFINITY, "%s gd n=%zu", isas[k].name, n);
        cr_expect(kt.adam_update(n, 0.003f, 0.9f, 0.999f, 1e-8f, g, s[0][1], s[0][2], s[0][0]) ==
                  INFINITY, "%s adam n=%zu: g^2 overflows v", isas[k].name, n);
        cr_expect(kt.momentum_update(n, FLT_MAX, 0.9f, g, s[0][1], s[0][0]) == INFINITY,
                  "%s momentum n=%zu", isas[k].name, n);
        free(g);
      }
      for (int w = 0; w < 2; w++)
        for (int a = 0; a < 3; a++) free_guarded(s[w][a]);
    }
  }
}

/* ---- The ISA tables use this vector math. */

Test(vecmath, each_isa_fill_overrides_every_elementwise_entry_and_its_table_uses_them) {
  const dn_kernel_table ref = scalar_table();
  for (size_t k = 0; k < N_ISAS - 1; k++) {
    if (!runs_here(&isas[k])) continue;
    const dn_kernel_table kt = table_of(&isas[k]);
    for (int a = 0; a < DN_ACT_SOFTMAX; a++)
      cr_expect(kt.act_fwd[a] != ref.act_fwd[a] && kt.act_bwd[a] != ref.act_bwd[a], "%s act %d",
                isas[k].name, a);
    cr_expect(kt.softmax_fwd != ref.softmax_fwd && kt.bias_add != ref.bias_add &&
              kt.row_sum != ref.row_sum && kt.row_sum_acc != ref.row_sum_acc && kt.sub != ref.sub &&
              kt.gd_update != ref.gd_update && kt.momentum_update != ref.momentum_update &&
              kt.absmax != ref.absmax &&
              kt.adam_update != ref.adam_update, "%s", isas[k].name);
    dn_kernel_table full;
#if defined(__x86_64__)
    if (isas[k].isa == DN_ISA_AVX2) dn_kernels_fill_avx2(&full);
    else dn_kernels_fill_avx512(&full);
#elif defined(__aarch64__)
    dn_kernels_fill_neon(&full);
#endif
    cr_expect(full.act_fwd[DN_ACT_TANH] == kt.act_fwd[DN_ACT_TANH] && full.adam_update == kt.adam_update,
              "dn_kernels_fill_%s does not call dn_kernels_fill_act_%s", isas[k].name, isas[k].name);
  }
}
