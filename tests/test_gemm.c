/* The GEMM driver and every micro-kernel the CPU can run agree with a double-precision
 * reference on edge, K-block, prime and large shapes, never touch C outside M x N, and
 * give bitwise the same C however the work is split. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepnet.h"
#include "internal.h"
#include "test_util.h"

/* Error bound: |C - C_ref| <= GAMMA * (K + 2) * eps * (|alpha| (|A||B|)_ij + |beta C0_ij|).
 * K + 2 rounding steps (the K-term sum, alpha, beta) each within eps; GAMMA = 2 leaves
 * room for the different summation order of split K blocks. A dropped, doubled or
 * misplaced term is of the order of |A||B| itself, far above it. */
#define GAMMA 2.0
#define GUARD 64               /* canary floats before and after C's buffer */
#define CANARY 12345.678f

/* The table of one ISA, or skip the test when this CPU or build lacks it. */
static const dn_kernel_table *table_or_skip(dn_isa isa) {
  if (dn_isa_set(isa) != DN_OK) cr_skip_test("%s is not available here", dn_isa_name(isa));
  const dn_kernel_table *kt = dn_kernels();
  cr_assert_eq(kt->isa, isa);
  return kt;
}

static size_t kc_of(const dn_kernel_table *kt) {
  return kt->sgemm_kc ? kt->sgemm_kc : DN_SGEMM_KC_DEFAULT;
}

typedef struct gemm_case {
  char ta, tb;
  size_t M, N, K;
  float alpha, beta;
  size_t pad;    /* ld = rows + pad for A, B and C */
  size_t offset; /* floats added to each base pointer: 1 misaligns every row/column */
} gemm_case;

typedef struct operands {
  size_t ar, ac, lda, br, bc, ldb, ldc;
  float *a_buf, *b_buf, *c_buf; /* c_buf holds GUARD canaries on each side */
  float *A, *B, *C, *C0;
} operands;

static void operands_make(operands *o, const gemm_case *c, uint64_t seed) {
  o->ar = c->ta == 'N' ? c->M : c->K;
  o->ac = c->ta == 'N' ? c->K : c->M;
  o->br = c->tb == 'N' ? c->K : c->N;
  o->bc = c->tb == 'N' ? c->N : c->K;
  o->lda = o->ar + c->pad;
  o->ldb = o->br + c->pad;
  o->ldc = c->M + c->pad;
  o->a_buf = tu_random(o->lda * o->ac + c->offset, -1.0f, 1.0f, seed);
  o->b_buf = tu_random(o->ldb * o->bc + c->offset, -1.0f, 1.0f, seed + 1);
  const size_t c_floats = 2 * GUARD + c->offset + o->ldc * c->N;
  o->c_buf = malloc(c_floats * sizeof(float));
  o->C0 = tu_random(o->ldc * c->N, -1.0f, 1.0f, seed + 2);
  cr_assert(o->a_buf && o->b_buf && o->c_buf && o->C0);
  for (size_t i = 0; i < c_floats; i++) o->c_buf[i] = CANARY;
  o->A = o->a_buf + c->offset;
  o->B = o->b_buf + c->offset;
  o->C = o->c_buf + GUARD + c->offset;
  for (size_t j = 0; j < c->N; j++)
    for (size_t i = 0; i < c->M; i++)
      o->C[i + j * o->ldc] = c->beta == 0.0f ? NAN : o->C0[i + j * o->ldc];
}

static void operands_free(operands *o) {
  free(o->a_buf);
  free(o->b_buf);
  free(o->c_buf);
  free(o->C0);
}

static double op_at(const float *X, size_t ld, char trans, size_t i, size_t j) {
  return trans == 'N' ? X[i + j * ld] : X[j + i * ld];
}

/* Checks C against the double reference and the canaries; returns the failures. */
static size_t check(const gemm_case *c, const operands *o, const char *who) {
  size_t bad = 0;
  const double eps = FLT_EPSILON;
  for (size_t j = 0; j < c->N; j++) {
    for (size_t i = 0; i < c->M; i++) {
      double s = 0.0, abs_s = 0.0;
      if (c->alpha != 0.0f) {
        for (size_t p = 0; p < c->K; p++) {
          const double t = op_at(o->A, o->lda, c->ta, i, p) * op_at(o->B, o->ldb, c->tb, p, j);
          s += t;
          abs_s += fabs(t);
        }
      }
      const double c0 = c->beta == 0.0f ? 0.0 : o->C0[i + j * o->ldc];
      const double ref = (double)c->alpha * s + (double)c->beta * c0;
      const double bound = GAMMA * (double)(c->K + 2) * eps *
                               (fabs((double)c->alpha) * abs_s + fabs((double)c->beta * c0)) +
                           FLT_MIN;
      const double got = o->C[i + j * o->ldc];
      if (!(fabs(got - ref) <= bound) && bad++ == 0)
        cr_log_error("%s %c%c M=%zu N=%zu K=%zu alpha=%g beta=%g pad=%zu off=%zu: C(%zu,%zu) = %.9g,"
                     " ref %.9g, bound %.3g",
                     who, c->ta, c->tb, c->M, c->N, c->K, (double)c->alpha, (double)c->beta, c->pad,
                     c->offset, i, j, got, ref, bound);
    }
  }
  /* Everything in the buffer outside the M x N block keeps its canary, bit for bit. */
  const size_t c_floats = 2 * GUARD + c->offset + o->ldc * c->N;
  for (size_t k = 0; k < c_floats; k++) {
    const ptrdiff_t rel = (float *)o->c_buf + k - o->C;
    const bool inside = rel >= 0 && (size_t)rel < o->ldc * c->N && (size_t)rel % o->ldc < c->M;
    if (!inside && memcmp(&o->c_buf[k], &(float){CANARY}, sizeof(float)) != 0 && bad++ == 0)
      cr_log_error("%s %c%c M=%zu N=%zu K=%zu: wrote outside C at offset %td", who, c->ta, c->tb,
                   c->M, c->N, c->K, rel);
  }
  return bad;
}

/* Runs one case through the table's driver and checks it; returns the failures. */
static size_t run_case(const dn_kernel_table *kt, const gemm_case *c, uint64_t seed) {
  operands o;
  operands_make(&o, c, seed);
  dn_gemm(kt, c->ta, c->tb, c->M, c->N, c->K, c->alpha, o.A, o.lda, o.B, o.ldb, c->beta, o.C,
          o.ldc);
  const size_t bad = check(c, &o, kt->sgemm_ukr_name);
  operands_free(&o);
  return bad;
}

static const char TRANS[4][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}, {'T', 'T'}};

/* Every M x N tail of the micro-tile, twice over, for small K, all transposes. */
static void edge_tiles(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  const size_t Ks[] = {1, 2, 3, 7};
  size_t bad = 0, n = 0;
  for (size_t t = 0; t < 4; t++)
    for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
      for (size_t M = 1; M <= 2 * kt->mr + 1; M++)
        for (size_t N = 1; N <= 2 * kt->nr + 1; N++, n++) {
          const gemm_case c = {TRANS[t][0], TRANS[t][1], M, N, Ks[k], 1.5f, n % 2 ? 1.0f : 0.0f,
                               n % 3, n % 2};
          bad += run_case(kt, &c, n);
        }
  cr_expect_eq(bad, 0, "%zu wrong elements over %zu edge cases", bad, n);
}

/* K just below, at and above the K block, and a short last block, around the tile edges. */
static void k_blocks(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  const size_t kc = kc_of(kt);
  const size_t Ks[] = {kc - 1, kc, kc + 1, 2 * kc + 1};
  const size_t Ms[] = {1, kt->mr - 1, kt->mr + 1, 2 * kt->mr + 1};
  const size_t Ns[] = {1, kt->nr - 1, kt->nr + 1, 2 * kt->nr + 1};
  const float betas[] = {0.0f, 1.0f, -0.5f};
  size_t bad = 0, n = 0;
  for (size_t t = 0; t < 4; t++)
    for (size_t k = 0; k < 4; k++)
      for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++, n++) {
          const gemm_case c = {TRANS[t][0], TRANS[t][1], Ms[a], Ns[b], Ks[k], 0.75f, betas[n % 3],
                               n % 2 ? 5 : 0, (n / 2) % 2};
          bad += run_case(kt, &c, 100 + n);
        }
  cr_expect_eq(bad, 0, "%zu wrong elements over %zu K-block cases", bad, n);
}

/* Prime sizes, several M blocks (M above MC), several N blocks (N above NC), K above 2 KC. */
static void primes_and_large(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  const size_t shapes[][3] = {{97, 89, 401}, {131, 61, 257}, {1031, 211, 811}, {37, 4129, 23}};
  size_t bad = 0, n = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (size_t t = 0; t < 4; t++, n++) {
      const gemm_case c = {TRANS[t][0], TRANS[t][1], shapes[s][0], shapes[s][1], shapes[s][2],
                           -1.25f, n % 2 ? 0.5f : 0.0f, n % 3 == 0 ? 0 : 7, n % 2};
      bad += run_case(kt, &c, 200 + n);
    }
  cr_expect_eq(bad, 0, "%zu wrong elements over %zu prime/large cases", bad, n);
}

/* alpha == 0: C = beta C and A, B (all NaN here) are never read, as in BLAS. */
static void alpha_zero(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  const float betas[] = {0.0f, 1.0f, 0.5f};
  size_t bad = 0;
  for (size_t b = 0; b < 3; b++) {
    const gemm_case c = {'N', 'T', 2 * kt->mr + 1, 2 * kt->nr + 1, 9, 0.0f, betas[b], 2, 1};
    operands o;
    operands_make(&o, &c, 300 + b);
    for (size_t i = 0; i < o.lda * o.ac; i++) o.A[i] = NAN;
    for (size_t i = 0; i < o.ldb * o.bc; i++) o.B[i] = NAN;
    dn_gemm(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A, o.lda, o.B, o.ldb, c.beta, o.C, o.ldc);
    bad += check(&c, &o, kt->sgemm_ukr_name);
    operands_free(&o);
  }
  cr_expect_eq(bad, 0);
}

/* beta == 0 overwrites NaN in C (C is never read), for every tail of the tile. */
static void beta_zero_overwrites_nan(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  size_t bad = 0;
  for (size_t t = 0; t < 4; t++) {
    const gemm_case c = {TRANS[t][0], TRANS[t][1], 2 * kt->mr + 1, 2 * kt->nr + 1,
                         kc_of(kt) + 3, 1.0f, 0.0f, 1, 0};
    operands o;
    operands_make(&o, &c, 400 + t);
    dn_gemm(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A, o.lda, o.B, o.ldb, c.beta, o.C, o.ldc);
    for (size_t j = 0; j < c.N; j++)
      for (size_t i = 0; i < c.M; i++) bad += !isfinite(o.C[i + j * o.ldc]);
    bad += check(&c, &o, kt->sgemm_ukr_name);
    operands_free(&o);
  }
  cr_expect_eq(bad, 0);
}

/* Any split of rows and columns over dn_gemm_range gives bitwise dn_gemm's C: the
 * property that lets callers spread one GEMM over any number of threads. */
static void ranges_bitwise(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  size_t bad = 0;
  for (size_t t = 0; t < 8; t++) {
    const size_t M = t < 4 ? 3 * kt->mr + 5 : 10; /* the general and the small-M path */
    const size_t N = 5 * kt->nr + 3, K = 2 * kc_of(kt) + 13;
    const size_t cuts[][2] = {{1, 1}, {kt->mr < M ? kt->mr : 2, kt->nr}, {7, 5}, {M / 2, N / 3},
                              {M - 1, N - 1}};
    const gemm_case c = {TRANS[t % 4][0], TRANS[t % 4][1], M, N, K, 0.5f, 0.25f, 3, 1};
    operands whole, split;
    operands_make(&whole, &c, 500 + t);
    operands_make(&split, &c, 500 + t);
    dn_gemm(kt, c.ta, c.tb, M, N, K, c.alpha, whole.A, whole.lda, whole.B, whole.ldb, c.beta,
            whole.C, whole.ldc);
    for (size_t s = 0; s < sizeof cuts / sizeof *cuts; s++) {
      memcpy(split.C, split.C0, split.ldc * N * sizeof(float));
      const size_t mc = cuts[s][0], nc = cuts[s][1];
      const size_t mb[] = {0, mc, M}, nb[] = {0, nc, N};
      for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 2; b++)
          dn_gemm_range(kt, c.ta, c.tb, M, N, K, c.alpha, split.A, split.lda, split.B, split.ldb,
                        c.beta, split.C, split.ldc, mb[a], mb[a + 1], nb[b], nb[b + 1]);
      for (size_t j = 0; j < N; j++)
        if (memcmp(split.C + j * split.ldc, whole.C + j * whole.ldc, M * sizeof(float)) != 0 &&
            bad++ == 0)
          cr_log_error("%c%c: split at row %zu, column %zu differs in column %zu", c.ta, c.tb, mc,
                       nc, j);
    }
    bad += check(&c, &whole, kt->sgemm_ukr_name);
    operands_free(&whole);
    operands_free(&split);
  }
  cr_expect_eq(bad, 0);
}

/* ---- pre-packed op(A), the fused epilogue, the small-M path ---- */

/* op(A) packed once (dn_gemm_pack_a) then the packed driver; NULL on allocation failure. */
static float *pack_a(const dn_kernel_table *kt, const gemm_case *c, const operands *o) {
  float *Ap = malloc(dn_gemm_packed_a_floats(kt, c->M, c->K) * sizeof(float) + sizeof(float));
  cr_assert(Ap);
  dn_gemm_pack_a(kt, c->ta, c->M, c->K, o->A, o->lda, Ap);
  return Ap;
}

/* Shapes around every edge of both paths: M across the small-M limit and the tile, K
 * across the K block, N across the tile. */
static size_t packed_shapes(const dn_kernel_table *kt, size_t (*out)[3]) {
  const size_t kc = kc_of(kt), mr = kt->mr, nr = kt->nr;
  const size_t Ms[] = {1, 10, 16, 17, mr - 1, mr, mr + 1, 2 * mr + 3, 97};
  const size_t Ns[] = {1, nr - 1, nr + 1, 3 * nr + 2};
  const size_t Ks[] = {1, 7, kc - 1, kc + 1, 2 * kc + 5};
  size_t n = 0;
  for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
    for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++) {
      out[n][0] = Ms[a];
      out[n][1] = Ns[b];
      out[n][2] = Ks[(a + b) % (sizeof Ks / sizeof *Ks)];
      n++;
    }
  return n;
}

/* dn_gemm_range_packed on the whole C and on row/column pieces (rows cut at a multiple
 * of the panel width) gives bitwise dn_gemm's C, all transposes, betas and lds. */
static void packed_a_bitwise(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  size_t shapes[64][3];
  const size_t count = packed_shapes(kt, shapes);
  const float betas[] = {0.0f, 1.0f, -0.5f};
  size_t bad = 0, n = 0;
  for (size_t s = 0; s < count; s++)
    for (size_t t = 0; t < 4; t++, n++) {
      const gemm_case c = {TRANS[t][0], TRANS[t][1], shapes[s][0], shapes[s][1], shapes[s][2],
                           n % 5 ? 0.75f : 1.0f, betas[n % 3], n % 3, n % 2};
      operands ref, got;
      operands_make(&ref, &c, 700 + n);
      operands_make(&got, &c, 700 + n);
      dn_gemm(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, ref.A, ref.lda, ref.B, ref.ldb, c.beta,
              ref.C, ref.ldc);
      float *Ap = pack_a(kt, &c, &got);
      /* Every third case also takes op(B) pre-packed, packed in two column pieces (cut at
       * a multiple of NR), as threads that split C by rows share it. */
      float *Bp = NULL;
      if (n % 3 == 0) {
        Bp = malloc(dn_gemm_packed_b_floats(kt, c.N, c.K) * sizeof(float) + sizeof(float));
        cr_assert(Bp);
        const size_t bcut = c.N > kt->nr ? kt->nr : c.N;
        dn_gemm_pack_b_cols(kt, c.tb, c.N, c.K, got.B, got.ldb, Bp, 0, bcut, NULL);
        dn_gemm_pack_b_cols(kt, c.tb, c.N, c.K, got.B, got.ldb, Bp, bcut, c.N, NULL);
      }
      const size_t w = dn_gemm_packed_a_width(kt, c.M);
      const size_t mcut = c.M > w ? w : 0, ncut = Bp ? (c.N > kt->nr ? kt->nr : 0) : c.N / 2;
      if (n % 2)
        dn_gemm_range_prepacked(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, NULL, 0, Ap, got.B,
                                got.ldb, Bp, c.beta, got.C, got.ldc, 0, c.M, 0, c.N, NULL);
      else
        for (size_t a = 0; a < 2; a++)
          for (size_t b = 0; b < 2; b++)
            dn_gemm_range_prepacked(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, NULL, 0, Ap, got.B,
                                    got.ldb, Bp, c.beta, got.C, got.ldc, a ? mcut : 0,
                                    a ? c.M : mcut, b ? ncut : 0, b ? c.N : ncut, NULL);
      free(Bp);
      if (memcmp(got.c_buf, ref.c_buf,
                 (2 * GUARD + c.offset + ref.ldc * c.N) * sizeof(float)) != 0 && bad++ == 0)
        cr_log_error("%s %c%c M=%zu N=%zu K=%zu beta=%g: packed A differs from dn_gemm",
                     kt->sgemm_ukr_name, c.ta, c.tb, c.M, c.N, c.K, (double)c.beta);
      bad += check(&c, &got, "packed A");
      free(Ap);
      operands_free(&ref);
      operands_free(&got);
    }
  cr_expect_eq(bad, 0, "%zu failures over %zu packed-operand cases", bad, n);
}

/* Z = op(A) op(B) + b and A = g(Z) from the driver's epilogue are bitwise GEMM, then
 * kt->bias_add, then kt->act_fwd over the whole matrix, for every elementwise activation,
 * on both paths, whole or split over row and column pieces; so are the in-place form and
 * the backward form (dZ = dA * g'(A) over the dA the GEMM wrote). */
static void epilogue_bitwise(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  size_t shapes[64][3];
  const size_t count = packed_shapes(kt, shapes);
  size_t bad = 0, n = 0;
  for (size_t s = 0; s < count; s++)
    for (int act = DN_ACT_LINEAR; act < DN_ACT_SOFTMAX; act++, n++) {
      const size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      const char tb = n % 2 ? 'N' : 'T';
      const size_t kb = tb == 'N' ? K : N, nb = tb == 'N' ? N : K;
      float *A = tu_random(M * K, -1, 1, 800 + n), *B = tu_random(kb * nb, -1, 1, 900 + n);
      float *bias = tu_random(M, -2, 2, 1000 + n);
      float *Z1 = malloc(M * N * sizeof(float)), *A1 = malloc(M * N * sizeof(float));
      float *Z2 = malloc(M * N * sizeof(float)), *A2 = malloc(M * N * sizeof(float));
      cr_assert(A && B && bias && Z1 && A1 && Z2 && A2);
      const float alpha = n % 7 == 6 ? 0.0f : 1.0f; /* alpha 0: the epilogue still runs */
      dn_gemm(kt, 'N', tb, M, N, K, alpha, A, M, B, kb, 0.0f, Z1, M);
      kt->bias_add(M, N, bias, Z1);
      kt->act_fwd[act](M * N, Z1, A1);
      const gemm_case c = {'N', tb, M, N, K, alpha, 0.0f, 0, 0};
      operands o = {.A = A, .lda = M};
      float *Ap = pack_a(kt, &c, &o);
      const dn_gemm_epilogue ep = {.bias = bias, .act = (dn_act)act, .out = A2};
      const size_t w = dn_gemm_packed_a_width(kt, M);
      const size_t mcut = n % 3 && M > w ? w : 0, ncut = n % 3 ? N / 3 : 0;
      for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 2; b++)
          dn_gemm_range_packed(kt, M, N, K, alpha, Ap, tb, B, kb, 0.0f, Z2, M, a ? mcut : 0,
                               a ? M : mcut, b ? ncut : 0, b ? N : ncut, &ep);
      if ((memcmp(Z1, Z2, M * N * sizeof(float)) || memcmp(A1, A2, M * N * sizeof(float))) &&
          bad++ == 0)
        cr_log_error("%s N%c M=%zu N=%zu K=%zu act %s: fused differs from unfused", kt->sgemm_ukr_name,
                     tb, M, N, K, dn_act_name((dn_act)act));
      /* In place (out = C: a hidden layer keeps no Z), then the backward form: the tile is
       * dA and becomes dZ = dA * g'(A) for a cached A, in place. */
      const dn_gemm_epilogue in_place = {.bias = bias, .act = (dn_act)act, .out = Z2};
      float *G = tu_random(M * N, -1.5, 1.5, 1100 + n);
      cr_assert(G);
      for (size_t i = 0; i < M * N; i += 5) G[i] = i % 2 ? 0.0f : -0.0f; /* g' at its edge */
      float *sums = calloc(M, sizeof(float)), *want_sums = malloc(M * sizeof(float));
      cr_assert(sums && want_sums);
      const dn_gemm_epilogue grad = {.act = (dn_act)act, .out = Z2, .grad_of = G, .row_acc = sums};
      /* The bias alone (out NULL: a softmax layer's Z, whose activation is a later pass). */
      const dn_gemm_epilogue bias_only = {.bias = bias, .act = (dn_act)act};
      for (int form = 0; form < 3; form++) {
        dn_gemm(kt, 'N', tb, M, N, K, alpha, A, M, B, kb, 0.0f, Z1, M);
        if (form == 0 || form == 2) {
          kt->bias_add(M, N, bias, Z1);
          if (form == 0) kt->act_fwd[act](M * N, Z1, Z1);
        } else {
          kt->act_bwd[act](M * N, G, G, Z1, Z1);
          kt->row_sum(M, N, Z1, M, 1.0f, want_sums);
        }
        for (size_t a = 0; a < 2; a++)
          for (size_t b = 0; b < 2; b++)
            dn_gemm_range_packed(kt, M, N, K, alpha, Ap, tb, B, kb, 0.0f, Z2, M, a ? mcut : 0,
                                 a ? M : mcut, b ? ncut : 0, b ? N : ncut,
                                 form == 2 ? &bias_only : form ? &grad : &in_place);
        if (memcmp(Z1, Z2, M * N * sizeof(float)) && bad++ == 0)
          cr_log_error("%s N%c M=%zu N=%zu K=%zu act %s: %s epilogue differs from unfused",
                       kt->sgemm_ukr_name, tb, M, N, K, dn_act_name((dn_act)act),
                       form == 2 ? "bias-only" : form ? "backward" : "in-place");
        /* The row sums (db) the backward form took over the pieces, columns in order. */
        if (form == 1 && memcmp(sums, want_sums, M * sizeof(float)) && bad++ == 0)
          cr_log_error("%s N%c M=%zu N=%zu K=%zu act %s: epilogue row sums differ from row_sum",
                       kt->sgemm_ukr_name, tb, M, N, K, dn_act_name((dn_act)act));
      }
      free(sums), free(want_sums);
      free(G);
      free(Ap);
      free(A), free(B), free(bias), free(Z1), free(A1), free(Z2), free(A2);
    }
  cr_expect_eq(bad, 0, "%zu failures over %zu epilogue cases", bad, n);
}

/* The table's packing hooks against their definition: pack_n copies, dst[p*w + i] =
 * src[i + p*ld], pack_t transposes, dst[p*w + i] = src[p + i*ld], for i < r; lanes r..w-1
 * are zero; nothing past the k x w panel is written (canaries), nothing past the last
 * source float it needs is read (an exact-size source, for ASan). Every live row count,
 * depths around the vector widths, the table's panel widths and others (40: wider than
 * the AVX-512 packer, which hands it to AVX2), misaligned source and destination. */
static void packing_matches_definition(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  if (!kt->sgemm_pack_n && !kt->sgemm_pack_t)
    cr_skip_test("%s packs with the driver's portable C", dn_isa_name(isa));
  const size_t widths[] = {kt->mr, kt->nr, kt->small_mr ? kt->small_mr : 16, 8, 12, 40};
  const size_t depths[] = {1, 2, 7, 8, 15, 16, 17, 33};
  size_t bad = 0, n = 0;
  for (int t = 0; t < 2; t++) {
    void (*pack)(size_t, size_t, size_t, const float *, size_t, float *) =
        t ? kt->sgemm_pack_t : kt->sgemm_pack_n;
    if (!pack) continue;
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
      for (size_t di = 0; di < sizeof depths / sizeof *depths; di++)
        for (size_t r = 0; r <= widths[wi]; r++, n++) {
          /* The source ends right after the last float the panel needs (row r-1's k-th for
           * pack_t, line k-1's r-th for pack_n), so ASan catches a read past it. */
          const size_t w = widths[wi], k = depths[di], ld = (t ? k : w) + 3;
          const size_t needed = r == 0 ? 0 : t ? (r - 1) * ld + k : (k - 1) * ld + r;
          const size_t src_floats = needed + 1, dst_floats = k * w + 1 + 16;
          float *src = tu_random(src_floats, -1, 1, 1400 + n), *dst = malloc(dst_floats * sizeof(float));
          cr_assert(src && dst);
          for (size_t i = 0; i < dst_floats; i++) dst[i] = -7.0f;
          pack(k, r, w, src + 1, ld, dst + 1); /* both misaligned by one float */
          size_t wrong = 0;
          for (size_t p = 0; p < k; p++)
            for (size_t i = 0; i < w; i++) {
              const float want = i >= r ? 0.0f : t ? src[1 + p + i * ld] : src[1 + i + p * ld];
              wrong += memcmp(&dst[1 + p * w + i], &want, sizeof want) != 0;
            }
          wrong += dst[0] != -7.0f;
          for (size_t i = 1 + k * w; i < dst_floats; i++) wrong += dst[i] != -7.0f;
          if (wrong && bad++ == 0)
            cr_log_error("%s pack_%c w=%zu k=%zu r=%zu: %zu wrong floats", dn_isa_name(isa),
                         t ? 't' : 'n', w, k, r, wrong);
          free(src), free(dst);
        }
  }
  cr_expect_eq(bad, 0, "%zu failures over %zu packing cases", bad, n);
}

typedef void (*pack_fn_t)(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);

/* pack_n's definition, for a table that packs with the driver's portable C. */
static void pack_n_reference(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst) {
  for (size_t p = 0; p < k; p++)
    for (size_t i = 0; i < w; i++) dst[p * w + i] = i < r ? src[i + p * ld] : 0.0f;
}

/* The micro-kernel fused with A's packing against the two steps it replaces, pack_n then
 * the micro-kernel: C bitwise the same and the panel it leaves bitwise pack_n's (zero rows
 * past m, nothing written past the k x mr panel), for every live m x n of the tile, depths
 * around the vector widths and the K block, alpha 1 (the kernel skips that multiply) and
 * not, beta 0 over NaN and beta 1, a misaligned A with lda > m and a strided C. */
static void ukr_pack_a_matches_pack_then_ukr(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  if (!kt->sgemm_ukr_pack_a) cr_skip_test("%s packs A in a separate pass", dn_isa_name(isa));
  const size_t MR = kt->mr, NR = kt->nr, ldc = MR + 5, kc = kc_of(kt);
  const size_t depths[] = {1, 2, 7, 17, 33, kc};
  size_t bad = 0, n_cases = 0;
  for (size_t di = 0; di < sizeof depths / sizeof *depths; di++) {
    const size_t k = depths[di], lda = MR + 3, panel = k * MR;
    float *A = tu_random(lda * k + 1, -1, 1, 2100 + di), *Bp = tu_random(k * NR, -1, 1, 2200 + di);
    float *C0 = tu_random(ldc * NR, -1, 1, 2300 + di);
    float *want_C = malloc(ldc * NR * sizeof(float)), *got_C = malloc(ldc * NR * sizeof(float));
    float *want_Ap = malloc((panel + 16) * sizeof(float)), *got_Ap = malloc((panel + 16) * sizeof(float));
    cr_assert(A && Bp && C0 && want_C && got_C && want_Ap && got_Ap);
    for (size_t m = 1; m <= MR; m++)
      for (size_t n = 1; n <= NR; n++)
        for (int v = 0; v < 4; v++, n_cases++) {
          const float alpha = v % 2 ? 0.7f : 1.0f, beta = v / 2 ? 1.0f : 0.0f;
          for (size_t i = 0; i < ldc * NR; i++) want_C[i] = got_C[i] = beta == 0.0f ? NAN : C0[i];
          for (size_t i = 0; i < panel + 16; i++) want_Ap[i] = got_Ap[i] = -7.0f;
          const pack_fn_t pack = kt->sgemm_pack_n ? kt->sgemm_pack_n : pack_n_reference;
          pack(k, m, MR, A + 1, lda, want_Ap);
          kt->sgemm_ukr(k, alpha, want_Ap, Bp, beta, want_C, ldc, m, n);
          kt->sgemm_ukr_pack_a(k, alpha, A + 1, lda, got_Ap, Bp, beta, got_C, ldc, m, n);
          const bool same = memcmp(want_C, got_C, ldc * NR * sizeof(float)) == 0 &&
                            memcmp(want_Ap, got_Ap, (panel + 16) * sizeof(float)) == 0;
          if (!same && bad++ == 0)
            cr_log_error("%s ukr_pack_a k=%zu m=%zu n=%zu alpha=%g beta=%g differs from pack_n + ukr",
                         dn_isa_name(isa), k, m, n, (double)alpha, (double)beta);
        }
    free(A), free(Bp), free(C0), free(want_C), free(got_C), free(want_Ap), free(got_Ap);
  }
  cr_expect_eq(bad, 0, "%zu failures over %zu fused-packing cases", bad, n_cases);
}

/* Where A's packing happens (inside the micro-kernel at any lda, as on AMD Zen, or in a pass
 * of its own at 4 KiB-multiple lda, as on Intel) never changes C: dn_gemm with the table's
 * choice flipped is bitwise the same, at lda 1024 and 2048 floats, NN and NT, one and two
 * K blocks, full and edge tiles, beta 0 over NaN and 1; and both are within the bound. */
static void packing_place_bitwise(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  if (!kt->sgemm_ukr_pack_a) cr_skip_test("%s packs A in a separate pass", dn_isa_name(isa));
  dn_kernel_table flipped = *kt;
  flipped.ukr_pack_a_any_lda = !kt->ukr_pack_a_any_lda;
  const size_t kc = kc_of(kt);
  const size_t shapes[][3] = {{2 * kt->mr, 3 * kt->nr, 37},
                              {3 * kt->mr + 5, 2 * kt->nr + 1, kc + 9},
                              {kt->mr - 1, kt->nr + 2, 10}};
  size_t bad = 0, n = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (size_t v = 0; v < 4; v++, n++) {
      const size_t M = shapes[s][0], lda = v % 2 ? 2048 : 1024;
      const gemm_case c = {'N', v / 2 ? 'T' : 'N', M, shapes[s][1], shapes[s][2], 1.0f,
                           n % 2 ? 1.0f : 0.0f, lda - M, 0};
      operands mine, other;
      operands_make(&mine, &c, 2500 + n);
      operands_make(&other, &c, 2500 + n);
      cr_assert_eq(mine.lda, lda);
      dn_gemm(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, mine.A, mine.lda, mine.B, mine.ldb, c.beta,
              mine.C, mine.ldc);
      dn_gemm(&flipped, c.ta, c.tb, c.M, c.N, c.K, c.alpha, other.A, other.lda, other.B,
              other.ldb, c.beta, other.C, other.ldc);
      bad += check(&c, &mine, kt->sgemm_ukr_name) + check(&c, &other, "flipped packing place");
      if (memcmp(mine.c_buf, other.c_buf, (2 * GUARD + mine.ldc * c.N) * sizeof(float)) != 0 &&
          bad++ == 0)
        cr_log_error("%s %c%c M=%zu N=%zu K=%zu lda=%zu: C depends on where A is packed",
                     dn_isa_name(isa), c.ta, c.tb, c.M, c.N, c.K, lda);
      operands_free(&mine);
      operands_free(&other);
    }
  cr_expect_eq(bad, 0, "%zu failures over %zu cases", bad, n);
}

/* A column panel's full-height tiles in one sgemm_ukr_rows call give bitwise the call per
 * tile (the same table without it), with several MC blocks, partial tiles below, short last
 * column panels (N = 4 NR + 2 and 2 NR + 1 end in 2 and 1 columns: with an odd and an even
 * number of tiles, the AVX2 kernel's tile pairs and its lone last tile), K = 1, 10 and over
 * a K block, every transpose and beta. */
static void ukr_rows_bitwise_per_tile(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  if (!kt->sgemm_ukr_rows) cr_skip_test("%s calls its micro-kernel per tile", dn_isa_name(isa));
  dn_kernel_table per_tile = *kt;
  per_tile.sgemm_ukr_rows = NULL;
  const size_t shapes[][3] = {{kt->mr, kt->nr, 1},
                              {3 * kt->mr + 5, 4 * kt->nr + 2, 10},
                              {40 * kt->mr + 3, 2 * kt->nr + 1, kc_of(kt) + 9}};
  size_t bad = 0, n = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (size_t t = 0; t < 4; t++, n++) {
      const gemm_case c = {TRANS[t][0], TRANS[t][1], shapes[s][0], shapes[s][1], shapes[s][2],
                           n % 3 ? 1.0f : -0.75f, n % 2 ? 0.5f : 0.0f, n % 3, n % 2};
      operands mine, other;
      operands_make(&mine, &c, 2600 + n);
      operands_make(&other, &c, 2600 + n);
      dn_gemm(kt, c.ta, c.tb, c.M, c.N, c.K, c.alpha, mine.A, mine.lda, mine.B, mine.ldb, c.beta,
              mine.C, mine.ldc);
      dn_gemm(&per_tile, c.ta, c.tb, c.M, c.N, c.K, c.alpha, other.A, other.lda, other.B,
              other.ldb, c.beta, other.C, other.ldc);
      bad += check(&c, &mine, kt->sgemm_ukr_name);
      if (memcmp(mine.c_buf, other.c_buf,
                 (2 * GUARD + c.offset + mine.ldc * c.N) * sizeof(float)) != 0 && bad++ == 0)
        cr_log_error("%s %c%c M=%zu N=%zu K=%zu: one call per panel differs from one per tile",
                     dn_isa_name(isa), c.ta, c.tb, c.M, c.N, c.K);
      operands_free(&mine);
      operands_free(&other);
    }
  cr_expect_eq(bad, 0, "%zu failures over %zu cases", bad, n);
}

/* The scan epilogue finds the smallest offset i + j * ldc of an Inf/NaN in C, on both
 * paths (shapes from packed_shapes), whole or split over row and column pieces that share
 * one atomic minimum, in either order of the pieces; all-finite C leaves it at SIZE_MAX.
 * A row of A at 2^127 overflows C(i, j) exactly where op(B)(p, j) is 4 (elsewhere B is in
 * [-1, 1]); a NaN in B poisons a whole column. */
static void scan_epilogue_finds_first_nonfinite(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  size_t shapes[64][3];
  const size_t count = packed_shapes(kt, shapes);
  size_t bad = 0, n = 0;
  for (size_t s = 0; s < count; s++)
    for (int kind = 0; kind < 3; kind++, n++) { /* 0: finite, 1: overflow, 2: NaN column */
      const size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      const char ta = n % 2 ? 'N' : 'T', tb = n % 3 ? 'N' : 'T';
      const size_t lda = ta == 'N' ? M : K, ldb = tb == 'N' ? K : N;
      float *A = tu_random(M * K, -1, 1, 1200 + n), *B = tu_random(K * N, -1, 1, 1300 + n);
      float *C = malloc(M * N * sizeof(float));
      cr_assert(A && B && C);
      size_t want = SIZE_MAX;
      const size_t i_bad = (n * 7) % M, j_bad = (n * 5) % N, p_bad = (n * 3) % K;
      if (kind == 1) { /* A(i_bad, :) = 2^127 * sign, B(p_bad, j) = 4 at j_bad and j_bad/2 */
        for (size_t p = 0; p < K; p++) A[ta == 'N' ? i_bad + p * lda : p + i_bad * lda] = 0.0f;
        A[ta == 'N' ? i_bad + p_bad * lda : p_bad + i_bad * lda] = 0x1p127f;
        B[tb == 'N' ? p_bad + j_bad * ldb : j_bad + p_bad * ldb] = 4.0f;
        B[tb == 'N' ? p_bad + j_bad / 2 * ldb : j_bad / 2 + p_bad * ldb] = 4.0f;
        want = i_bad + j_bad / 2 * M;
      } else if (kind == 2) {
        B[tb == 'N' ? p_bad + j_bad * ldb : j_bad + p_bad * ldb] = NAN;
        want = j_bad * M;
      }
      size_t first = SIZE_MAX;
      const dn_gemm_epilogue ep = {.first_nonfinite = &first};
      const size_t mcut = n % 2 ? M / 2 : 0, ncut = n % 4 > 1 ? N / 3 : 0;
      const bool backwards = n % 5 == 1;
      for (size_t q = 0; q < 4; q++) {
        const size_t piece = backwards ? 3 - q : q, a = piece / 2, b = piece % 2;
        dn_gemm_range_prepacked(kt, ta, tb, M, N, K, 1.0f, A, lda, NULL, B, ldb, NULL, 0.0f, C, M,
                                a ? mcut : 0, a ? M : mcut, b ? ncut : 0, b ? N : ncut, &ep);
      }
      size_t truth = SIZE_MAX; /* the first non-finite element of the C it wrote */
      for (size_t i = 0; i < M * N && truth == SIZE_MAX; i++)
        if (!isfinite(C[i])) truth = i;
      const size_t got = first;
      if ((got != want || got != truth) && bad++ == 0)
        cr_log_error("%s %c%c M=%zu N=%zu K=%zu kind %d: scan says %zu, expected %zu (C: %zu)",
                     dn_gemm_kernel_name(kt, tb, M), ta, tb, M, N, K, kind, got, want, truth);
      free(A), free(B), free(C);
    }
  cr_expect_eq(bad, 0, "%zu failures over %zu scan cases", bad, n);
}

/* What the small-M path computes with a dot kernel (op(B)'s columns contiguous): its
 * scalar twin on op(A)'s rows, K block by K block (beta on the first, then 1). */
static void small_dot_by_blocks(const dn_kernel_table *kt, const gemm_case *c, operands *o) {
  /* the driver's K blocks: the fewest of at most KC, equal, rounded up to 8 */
  const size_t kmax = kc_of(kt), blocks = (c->K + kmax - 1) / kmax;
  const size_t even = ((c->K + blocks - 1) / blocks + 7) / 8 * 8, kc = even < kmax ? even : kmax;
  float *rows = malloc(c->M * c->K * sizeof(float));
  cr_assert(rows);
  for (size_t i = 0; i < c->M; i++)
    for (size_t p = 0; p < c->K; p++) rows[i * c->K + p] = (float)op_at(o->A, o->lda, c->ta, i, p);
  for (size_t pc = 0; pc < c->K; pc += kc) {
    const size_t kb = c->K - pc < kc ? c->K - pc : kc;
    dn_sgemm_small_dot_scalar8(kb, c->alpha, rows + pc, c->K, o->B + pc, o->ldb,
                               pc == 0 ? c->beta : 1.0f, o->C, o->ldc, c->M, c->N);
  }
  free(rows);
}

/* The small-M path (M <= small_mr, op(B) read in place) gives bitwise the general path's
 * C (the same table without its small kernels), or where a dot kernel serves op(B)'s
 * contiguous columns, bitwise its scalar twin's; and stays within the reference bound. */
static void small_m_bitwise_twin(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  if (!kt->sgemm_small) cr_skip_test("%s has no small-M kernel", dn_isa_name(isa));
  dn_kernel_table general = *kt;
  general.sgemm_small = NULL;
  general.sgemm_small_dot = NULL;
  const size_t kc = kc_of(kt);
  const size_t Ks[] = {1, 3, kc, kc + 1, 2 * kc + 7};
  /* 0.3: a beta step done as a multiply and an add instead of one FMA rounds differently
   * (with 1 and -0.5 the product is exact either way). */
  const float betas[] = {0.0f, 1.0f, -0.5f, 0.3f};
  size_t bad = 0, n = 0;
  for (size_t M = 1; M <= kt->small_mr; M++)
    for (size_t t = 0; t < 4; t++)
      for (size_t N = 1; N <= 3 * kt->nr + 1; N += 1 + N / 4, n++) {
        const gemm_case c = {TRANS[t][0], TRANS[t][1], M, N, Ks[n % 5], 1.25f, betas[n % 4],
                             n % 3, n % 2};
        const bool dot = c.tb == 'N' && kt->sgemm_small_dot && M <= kt->small_dot_max_m;
        operands small, ref;
        operands_make(&small, &c, 1100 + n);
        operands_make(&ref, &c, 1100 + n);
        dn_gemm(kt, c.ta, c.tb, M, N, c.K, c.alpha, small.A, small.lda, small.B, small.ldb, c.beta,
                small.C, small.ldc);
        if (dot)
          small_dot_by_blocks(kt, &c, &ref);
        else
          dn_gemm(&general, c.ta, c.tb, M, N, c.K, c.alpha, ref.A, ref.lda, ref.B, ref.ldb, c.beta,
                  ref.C, ref.ldc);
        if (memcmp(small.C, ref.C, (ref.ldc * (N - 1) + M) * sizeof(float)) != 0 && bad++ == 0)
          cr_log_error("%s %c%c M=%zu N=%zu K=%zu: small-M path differs from %s",
                       dn_gemm_kernel_name(kt, c.tb, M), c.ta, c.tb, M, N, c.K,
                       dot ? "its scalar twin" : "the general path");
        bad += check(&c, &small, dn_gemm_kernel_name(kt, c.tb, M));
        operands_free(&small);
        operands_free(&ref);
      }
  cr_expect_eq(bad, 0, "%zu failures over %zu small-M cases", bad, n);
}

/* The dot kernel alone against its scalar twin, bit for bit: every row count (1..16: groups
 * of up to 6), column tiles and their tails, k around the 8-lane step, row and column
 * strides above the minimum, misaligned pointers, beta 0 over NaN; C's canaries. */
static void small_dot_matches_scalar_twin(dn_isa isa) {
  const dn_kernel_table *kt = table_or_skip(isa);
  if (!kt->sgemm_small_dot) cr_skip_test("%s has no small-M dot kernel", dn_isa_name(isa));
  const size_t Ks[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 255, 256, 257, 384};
  const float alphas[] = {1.0f, -1.25f, 0.5f}, betas[] = {0.0f, 1.0f, -0.5f, 0.3f};
  size_t bad = 0, n = 0;
  for (size_t m = 1; m <= 16; m++)
    for (size_t nn = 1; nn <= 19; nn += 1 + nn / 5)
      for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki += 1 + (m + nn) % 2, n++) {
        const size_t k = Ks[ki], off = n % 2, rsa = k + n % 3, ldb = k + (n / 3) % 3;
        const size_t ldc = m + n % 4;
        const float alpha = alphas[n % 3], beta = betas[n % 4];
        float *A = tu_random(rsa * m + off, -1.0f, 1.0f, 1300 + n);
        float *B = tu_random(ldb * nn + off, -1.0f, 1.0f, 1400 + n);
        float *C0 = tu_random(ldc * nn + 2 * GUARD, -1.0f, 1.0f, 1500 + n);
        float *got = malloc((ldc * nn + 2 * GUARD) * sizeof(float));
        float *want = malloc((ldc * nn + 2 * GUARD) * sizeof(float));
        cr_assert(A && B && C0 && got && want);
        for (size_t i = 0; i < ldc * nn + 2 * GUARD; i++) {
          const size_t e = i - GUARD; /* wraps below GUARD: a canary */
          const bool inside = i >= GUARD && e < ldc * nn && e % ldc < m;
          got[i] = want[i] = !inside ? CANARY : beta == 0.0f ? NAN : C0[i];
        }
        kt->sgemm_small_dot(k, alpha, A + off, rsa, B + off, ldb, beta, got + GUARD, ldc, m, nn);
        dn_sgemm_small_dot_scalar8(k, alpha, A + off, rsa, B + off, ldb, beta, want + GUARD, ldc,
                                   m, nn);
        if (memcmp(got, want, (ldc * nn + 2 * GUARD) * sizeof(float)) != 0 && bad++ == 0)
          cr_log_error("%s m=%zu n=%zu k=%zu rsa=%zu ldb=%zu ldc=%zu alpha=%g beta=%g: differs "
                       "from dn_sgemm_small_dot_scalar8", kt->sgemm_small_dot_name, m, nn, k, rsa,
                       ldb, ldc, (double)alpha, (double)beta);
        free(A), free(B), free(C0), free(got), free(want);
      }
  cr_expect_eq(bad, 0, "%zu failures over %zu dot-kernel cases", bad, n);
}

/* The portable twin of the small-M kernels against the reference, rows [m_lo, m_hi) only. */
Test(gemm, small_m_scalar_twin_matches_reference_on_row_ranges) {
  size_t bad = 0;
  for (size_t t = 0; t < 2; t++)
    for (size_t lo = 0; lo < 16; lo += 5)
      for (size_t hi = lo + 1; hi <= 16; hi += 4) {
        const gemm_case c = {'N', TRANS[t][1], 16, 9, 37, 0.5f, 0.0f, 0, 0};
        operands o;
        operands_make(&o, &c, 1200 + lo * 17 + hi);
        float Ap[16 * 37];
        for (size_t p = 0; p < 37; p++)
          for (size_t i = 0; i < 16; i++) Ap[p * 16 + i] = o.A[i + p * o.lda];
        const size_t rsb = c.tb == 'N' ? 1 : o.ldb, csb = c.tb == 'N' ? o.ldb : 1;
        dn_sgemm_small_scalar_16(c.K, c.alpha, Ap, o.B, rsb, csb, 0.0f, o.C, o.ldc, lo, hi, c.N);
        for (size_t j = 0; j < c.N; j++)
          for (size_t i = 0; i < 16; i++) {
            float ref = 0.0f;
            dn_sgemm_ref_scalar('N', c.tb, 1, 1, c.K, c.alpha, o.A + i, o.lda,
                                c.tb == 'N' ? o.B + j * o.ldb : o.B + j, o.ldb, 0.0f, &ref, 1);
            const float got = o.C[i + j * o.ldc];
            bad += (i >= lo && i < hi) ? !(fabsf(got - ref) <= 1e-4f) : !isnan(got);
          }
        operands_free(&o);
      }
  cr_expect_eq(bad, 0);
}

#define FOR_EACH_ISA(property, what)                                                      \
  Test(gemm, scalar_##property, .description = "scalar: " what) { property(DN_ISA_SCALAR); } \
  Test(gemm, avx2_##property, .description = "avx2: " what) { property(DN_ISA_AVX2); }       \
  Test(gemm, avx512_##property, .description = "avx512: " what) { property(DN_ISA_AVX512); } \
  Test(gemm, neon_##property, .description = "neon: " what) { property(DN_ISA_NEON); }

FOR_EACH_ISA(edge_tiles, "every M, N tail of the micro-tile matches the reference, all transposes")
FOR_EACH_ISA(k_blocks, "K around the K block (KC-1, KC, KC+1, 2KC+1) matches the reference")
FOR_EACH_ISA(primes_and_large, "prime and multi-block shapes match the reference")
FOR_EACH_ISA(alpha_zero, "alpha 0 scales C by beta and never reads A or B")
FOR_EACH_ISA(beta_zero_overwrites_nan, "beta 0 overwrites NaN in C")
FOR_EACH_ISA(ranges_bitwise, "any row/column split gives bitwise the same C")
FOR_EACH_ISA(packed_a_bitwise, "pre-packed op(A), and op(B), whole or split, give bitwise dn_gemm's C")
FOR_EACH_ISA(epilogue_bitwise, "the fused bias + activation epilogue is bitwise GEMM, bias_add, act_fwd")
FOR_EACH_ISA(packing_matches_definition, "pack_n/pack_t hooks match their definition, pad with zeros, stay in the panel")
FOR_EACH_ISA(ukr_pack_a_matches_pack_then_ukr, "the micro-kernel that packs A as it reads it is bitwise pack_n + the micro-kernel")
FOR_EACH_ISA(packing_place_bitwise, "packing A in the micro-kernel or in a pass at 4 KiB-multiple lda gives the same bits")
FOR_EACH_ISA(ukr_rows_bitwise_per_tile, "full tiles down a column panel in one call are bitwise one call per tile")
FOR_EACH_ISA(scan_epilogue_finds_first_nonfinite, "the scan epilogue reports C's first Inf/NaN, whole or split")
FOR_EACH_ISA(small_m_bitwise_twin, "the small-M path is bitwise the general path (its dot kernel: the scalar twin) and within the bound")
FOR_EACH_ISA(small_dot_matches_scalar_twin, "the small-M dot kernel is bitwise its scalar twin, stays inside C")

/* ---- the pipeline's packed weights ---- */

enum { PL = 2, PM = 29 };
static const size_t PDIMS[PL + 1] = {37, 45, 10};
static const dn_act PACTS[PL] = {DN_ACT_TANH, DN_ACT_SOFTMAX};

/* A new net of the same shape holding net's current parameters (packed afresh). */
static dn_net *copy_net(const dn_net *net, size_t L, const size_t *dims, const dn_act *acts) {
  dn_net *fresh;
  cr_assert_eq(dn_net_create(&fresh, L, dims, acts, DN_LOSS_CCE), DN_OK);
  for (size_t l = 1; l <= L; l++) {
    float *W = malloc(dims[l] * dims[l - 1] * sizeof(float)), *b = malloc(dims[l] * sizeof(float));
    cr_assert(W && b);
    cr_assert_eq(dn_net_get_layer(net, l, W, b), DN_OK);
    cr_assert_eq(dn_net_set_layer(fresh, l, W, b), DN_OK);
    free(W);
    free(b);
  }
  return fresh;
}

/* A[L] of a fresh net holding net's current parameters: what a correct forward gives. */
static void fresh_forward(const dn_net *net, const float *X, float *AL) {
  dn_net *fresh = copy_net(net, PL, PDIMS, PACTS);
  cr_assert_eq(dn_net_forward(fresh, X, PM, AL), DN_OK);
  dn_net_free(fresh);
}

/* net's output on X, through the training forward (dn_net_forward) or the inference path
 * (dn_net_predict, which keeps every forward copy), equals a fresh net's, bitwise. */
static void expect_output_current(dn_net *net, const float *X, const char *after, bool predict) {
  float got[10 * PM], want[10 * PM];
  cr_assert_eq(predict ? dn_net_predict(net, X, PM, got) : dn_net_forward(net, X, PM, got), DN_OK);
  fresh_forward(net, X, want);
  cr_expect(memcmp(got, want, sizeof got) == 0, "%s is stale after %s (%s)",
            predict ? "the prediction" : "A[L]", after, dn_isa_name(dn_isa_active()));
}
static void expect_forward_current(dn_net *net, const float *X, const char *after) {
  expect_output_current(net, X, after, false);
}
static void expect_predict_current(dn_net *net, const float *X, const char *after) {
  expect_output_current(net, X, after, true);
}

Test(gemm, packed_weights_follow_set_layer_optimizer_steps_and_isa_changes) {
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, PL, PDIMS, PACTS, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, 5), DN_OK);
  float *X = tu_random(37 * PM, -1, 1, 1300), *Y = malloc(10 * PM * sizeof(float));
  float *W = tu_random(45 * 37, -1, 1, 1301), *b = tu_random(45, -1, 1, 1302);
  cr_assert(Y);
  tu_fill_one_hot(Y, 10, PM, 1303);
  expect_forward_current(net, X, "dn_net_init");
  cr_assert_eq(dn_net_set_layer(net, 1, W, b), DN_OK);
  expect_forward_current(net, X, "dn_net_set_layer");
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  opts.learning_rate = 0.1f;
  for (int step = 0; step < 2; step++) {
    cr_assert_eq(dn_net_forward(net, X, PM, NULL), DN_OK);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    cr_assert_eq(dn_net_step(net, &opts), DN_OK);
    expect_forward_current(net, X, "an optimizer step");
  }
  /* Training on up to dn_unpacked_w_max_threads() threads reads W and W^T unpacked and
   * leaves the packed copies stale; more threads read (and the optimizer refreshes) the
   * copies: a step on one side of that line, then passes and a step on the other, both
   * ways (1 and 3 threads: on either side for any limit of 1 or 2). */
  for (int t = 1; t <= 3; t += 2) {
    const char *const after[2][4] = {
        {"a step on 1 thread", "a step on 1 thread, a forward on 3",
         "a step on 3 threads after one on 1", "two steps, on 1 thread then 3"},
        {"a step on 3 threads", "a step on 3 threads, a forward on 1",
         "a step on 1 thread after one on 3", "two steps, on 3 threads then 1"}};
    const char *const *said = after[t == 3];
    cr_assert_eq(dn_set_num_threads(t), DN_OK);
    cr_assert_eq(dn_net_forward(net, X, PM, NULL), DN_OK);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    cr_assert_eq(dn_net_step(net, &opts), DN_OK);
    expect_forward_current(net, X, said[0]);
    cr_assert_eq(dn_set_num_threads(4 - t), DN_OK);
    expect_forward_current(net, X, said[1]);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    cr_assert_eq(dn_net_step(net, &opts), DN_OK);
    expect_forward_current(net, X, said[2]);
    expect_predict_current(net, X, said[3]);
  }
  /* A net trained on one thread from its first pass (no copy ever packed), then asked for
   * a prediction, which reads the copies. */
  dn_net *solo;
  cr_assert_eq(dn_net_create(&solo, PL, PDIMS, PACTS, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(solo, 7), DN_OK);
  cr_assert_eq(dn_set_num_threads(1), DN_OK);
  cr_assert_eq(dn_net_forward(solo, X, PM, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(solo, Y, NULL), DN_OK);
  cr_assert_eq(dn_net_step(solo, &opts), DN_OK);
  expect_predict_current(solo, X, "one-thread training from the start");
  dn_net_free(solo);
  cr_assert_eq(dn_set_num_threads(0), DN_OK);
  for (int isa = DN_ISA_SCALAR; isa <= DN_ISA_NEON; isa++)
    if (dn_isa_set((dn_isa)isa) == DN_OK) expect_forward_current(net, X, "dn_isa_set");
  cr_assert_eq(dn_net_init(net, 6), DN_OK);
  expect_forward_current(net, X, "a second dn_net_init");
  free(X), free(Y), free(W), free(b);
  dn_net_free(net);
}

/* The optimizer re-packs W and W^T block by block right after updating them (src/optim.c).
 * A net with several blocks per layer, partial blocks, and a layer narrower than the
 * small-M panel: after each step its forward output and its gradients (which read the
 * packed W^T) are bitwise those of a fresh net given the same parameters. */
enum { UL = 4, UM = 21 };
static const size_t UDIMS[UL + 1] = {12, 600, 1100, 33, 10};
static const dn_act UACTS[UL] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SIGMOID, DN_ACT_SOFTMAX};

/* Forward output and every layer's gradients of net on (X, Y), into out. */
static void outputs_and_grads(dn_net *net, const float *X, const float *Y, float *out) {
  cr_assert_eq(dn_net_forward(net, X, UM, out), DN_OK);
  out += 10 * UM;
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
  for (size_t l = 1; l <= UL; l++) {
    cr_assert_eq(dn_net_get_grad(net, l, out, out + UDIMS[l] * UDIMS[l - 1]), DN_OK);
    out += UDIMS[l] * (UDIMS[l - 1] + 1);
  }
}

static void refreshed_packs_match_fresh(dn_isa isa) {
  table_or_skip(isa);
  cr_assert_eq(dn_isa_set(isa), DN_OK);
  size_t floats = 10 * UM;
  for (size_t l = 1; l <= UL; l++) floats += UDIMS[l] * (UDIMS[l - 1] + 1);
  float *X = tu_random(12 * UM, -1, 1, 1400), *Y = malloc(10 * UM * sizeof(float));
  float *got = malloc(floats * sizeof(float)), *want = malloc(floats * sizeof(float));
  cr_assert(Y && got && want);
  tu_fill_one_hot(Y, 10, UM, 1401);
  const dn_optimizer opts_of[] = {DN_OPT_ADAM, DN_OPT_MOMENTUM, DN_OPT_GD};
  /* 1 thread reads W and W^T unpacked, 3 threads read the copies the optimizer refreshes. */
  for (int threads = 1; threads <= 3; threads += 2)
    for (size_t o = 0; o < 3; o++) {
      cr_assert_eq(dn_set_num_threads(threads), DN_OK);
      dn_net *net;
      cr_assert_eq(dn_net_create(&net, UL, UDIMS, UACTS, DN_LOSS_CCE), DN_OK);
      cr_assert_eq(dn_net_init(net, 7), DN_OK);
      dn_train_opts opts;
      dn_train_opts_default(&opts);
      opts.optimizer = opts_of[o];
      opts.learning_rate = 0.05f;
      for (int step = 0; step < 3; step++) {
        outputs_and_grads(net, X, Y, got);
        cr_assert_eq(dn_net_step(net, &opts), DN_OK);
        outputs_and_grads(net, X, Y, got);
        dn_net *fresh = copy_net(net, UL, UDIMS, UACTS);
        outputs_and_grads(fresh, X, Y, want);
        dn_net_free(fresh);
        cr_expect(memcmp(got, want, floats * sizeof(float)) == 0,
                  "%s, %d threads, optimizer %d, step %d: the re-packed weights differ from a fresh pack",
                  dn_isa_name(isa), threads, (int)opts_of[o], step);
      }
      dn_net_free(net);
    }
  cr_assert_eq(dn_set_num_threads(0), DN_OK);
  cr_assert_eq(dn_isa_set(dn_isa_detected()), DN_OK);
  free(X), free(Y), free(got), free(want);
}
FOR_EACH_ISA(refreshed_packs_match_fresh, "weights re-packed by the optimizer step equal a fresh pack (W and W^T)")

/* ---- the public entry: dispatch and argument checks ---- */

Test(gemm, public_sgemm_matches_reference_and_accepts_lowercase_trans) {
  const gemm_case c = {'T', 'N', 45, 29, 300, 2.0f, -1.0f, 4, 1};
  operands o;
  operands_make(&o, &c, 600);
  cr_assert_eq(dn_sgemm('t', 'n', c.M, c.N, c.K, c.alpha, o.A, o.lda, o.B, o.ldb, c.beta, o.C,
                        o.ldc),
               DN_OK);
  cr_expect_eq(check(&c, &o, "dn_sgemm"), 0);
  operands_free(&o);
}

Test(gemm, public_sgemm_with_k_zero_scales_c_by_beta) {
  float C[6] = {1, 2, 3, 4, 5, 6};
  cr_assert_eq(dn_sgemm('N', 'N', 2, 3, 0, 1.0f, NULL, 2, NULL, 1, 0.5f, C, 2), DN_OK);
  for (int i = 0; i < 6; i++) cr_expect_float_eq(C[i], 0.5f * (float)(i + 1), 0.0f);
}

Test(gemm, public_sgemm_rejects_bad_arguments_and_leaves_c_unchanged) {
  float A[12] = {0}, B[12] = {0}, C[12];
  for (int i = 0; i < 12; i++) C[i] = (float)i;
  const float before[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  cr_expect_eq(dn_sgemm('X', 'N', 3, 4, 3, 1, A, 3, B, 3, 0, C, 3), DN_ERR_ARG);
  cr_expect_eq(dn_sgemm('N', 'C', 3, 4, 3, 1, A, 3, B, 3, 0, C, 3), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "transb must be 'N' or 'T' (either case), got character code 67 ('C')"),
                     "%s", dn_last_error());
  cr_expect_eq(dn_sgemm('\0', 'N', 3, 4, 3, 1, A, 3, B, 3, 0, C, 3), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "transa must be 'N' or 'T' (either case), got character code 0"),
                     "%s", dn_last_error());
  cr_expect_eq(dn_sgemm('c', 'N', 3, 4, 3, 1, A, 3, B, 3, 0, C, 3), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "code 99 ('c')"), "%s", dn_last_error());
  cr_expect_eq(dn_sgemm('N', 'N', 3, 4, 3, 1, A, 2, B, 3, 0, C, 3), DN_ERR_SHAPE);  /* lda < M */
  cr_expect_eq(dn_sgemm('T', 'N', 3, 4, 2, 1, A, 1, B, 2, 0, C, 3), DN_ERR_SHAPE);  /* lda < K */
  cr_expect_eq(dn_sgemm('N', 'N', 3, 4, 3, 1, A, 3, B, 2, 0, C, 3), DN_ERR_SHAPE);  /* ldb < K */
  cr_expect_eq(dn_sgemm('N', 'T', 3, 4, 3, 1, A, 3, B, 3, 0, C, 3), DN_ERR_SHAPE);  /* ldb < N */
  cr_expect_eq(dn_sgemm('N', 'N', 3, 4, 3, 1, A, 3, B, 3, 0, C, 2), DN_ERR_SHAPE);  /* ldc < M */
  cr_expect_eq(dn_sgemm('N', 'N', 3, 4, 3, 1, NULL, 3, B, 3, 0, C, 3), DN_ERR_ARG);
  cr_expect_eq(dn_sgemm('N', 'N', 3, 4, 3, 1, A, 3, NULL, 3, 0, C, 3), DN_ERR_ARG);
  cr_expect_eq(dn_sgemm('N', 'N', 3, 4, 3, 1, A, 3, B, 3, 0, NULL, 3), DN_ERR_ARG);
  cr_expect_arr_eq(C, before, sizeof C);
  cr_expect_neq(dn_last_error()[0], '\0');
}

/* Hidden layers keep no Z (dn_layer_keeps_z): their A is computed in place by the forward
 * GEMM's epilogue, and the output layer (and only it) keeps Z for the cost. The output is
 * bitwise the unfused chain dn_sgemm, bias_add, act_fwd per layer, every ISA here. */
Test(gemm, hidden_layers_compute_a_in_place_and_keep_no_z) {
  enum { L = 3, M = 23 };
  const size_t dims[L + 1] = {19, 40, 33, 6};
  const dn_act acts[L] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SIGMOID};
  const dn_isa isas[] = {DN_ISA_SCALAR, DN_ISA_AVX2, DN_ISA_AVX512, DN_ISA_NEON};
  float *X = tu_random(dims[0] * M, -2, 2, 77);
  cr_assert(X);
  for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
    if (dn_isa_set(isas[k]) != DN_OK) continue;
    const dn_kernel_table *kt = dn_kernels();
    dn_net *net;
    cr_assert_eq(dn_net_create(&net, L, dims, acts, DN_LOSS_BCE), DN_OK);
    cr_assert_eq(dn_net_init(net, 5), DN_OK);
    float got[6 * M];
    cr_assert_eq(dn_net_forward(net, X, M, got), DN_OK);
    for (size_t l = 1; l < L; l++)
      cr_expect(net->Z[l] == net->A[l] && !dn_layer_keeps_z(net, l), "%s: layer %zu keeps a Z",
                dn_isa_name(kt->isa), l);
    cr_expect(net->Z[L] != net->A[L] && dn_layer_keeps_z(net, L), "the output layer lost its Z");
    /* The unfused reference, layer by layer. */
    float *in = X, *bufs[2] = {malloc(40 * M * sizeof(float)), malloc(40 * M * sizeof(float))};
    cr_assert(bufs[0] && bufs[1]);
    for (size_t l = 1; l <= L; l++) {
      float *W = malloc(dims[l] * dims[l - 1] * sizeof(float)), b[40];
      cr_assert(W);
      cr_assert_eq(dn_net_get_layer(net, l, W, b), DN_OK);
      float *z = bufs[l % 2];
      cr_assert_eq(dn_sgemm('N', 'N', dims[l], M, dims[l - 1], 1.0f, W, dims[l], in, dims[l - 1],
                            0.0f, z, dims[l]), DN_OK);
      kt->bias_add(dims[l], M, b, z);
      kt->act_fwd[acts[l - 1]](dims[l] * M, z, z);
      in = z;
      free(W);
    }
    cr_expect(memcmp(got, in, sizeof got) == 0, "%s: the forward output differs from the unfused chain",
              dn_isa_name(kt->isa));
    free(bufs[0]);
    free(bufs[1]);
    dn_net_free(net);
  }
  dn_isa_set(dn_isa_detected());
  free(X);
}

/* ---- AMX: fp32 products from bf16 pieces (kernels/x86/sgemm_amx.c) ---- */

#ifdef DN_HAVE_AMX
static void amx_or_skip(void) {
  if (!dn_amx_available()) cr_skip_test("AMX (tiles, bf16) is not available here");
}

/* The tile path is opt-in (session 17: 0.76-0.90x the FMA kernels at 2-16 threads,
 * docs/kernels.md "AMX"): off without DEEPNET_AMX, on with DEEPNET_AMX=1. Each test runs
 * in a process of its own, so the setting is read here for the first time. */
Test(gemm, amx_path_is_off_unless_asked_for) {
  amx_or_skip();
  unsetenv("DEEPNET_AMX");
  cr_assert(!dn_amx_enabled(), "the AMX path is on without DEEPNET_AMX");
}

Test(gemm, amx_path_on_with_deepnet_amx_1) {
  amx_or_skip();
  setenv("DEEPNET_AMX", "1", 1);
  cr_assert(dn_amx_enabled(), "DEEPNET_AMX=1 did not turn the AMX path on");
}

/* One case through dn_sgemm_amx_range over the whole of C; returns the failures. */
static size_t run_amx_case(const gemm_case *c, uint64_t seed) {
  operands o;
  operands_make(&o, c, seed);
  const bool ran = dn_sgemm_amx_range(c->ta, c->tb, c->M, c->N, c->K, c->alpha, o.A, o.lda, o.B,
                                      o.ldb, c->beta, o.C, o.ldc, 0, c->M, 0, c->N);
  cr_expect(ran, "dn_sgemm_amx_range refused %c%c M=%zu N=%zu K=%zu", c->ta, c->tb, c->M, c->N, c->K);
  const size_t bad = ran ? check(c, &o, "amx") : 1;
  operands_free(&o);
  return bad;
}

Test(gemm, amx_matches_reference_within_bound,
     .description = "AMX bf16x6: every tail of the 32 x 32 block and of the 32-deep k step, all "
                    "transposes, alpha and beta, padded and misaligned operands, within the fp32 bound") {
  amx_or_skip();
  static const size_t dims[] = {1, 15, 16, 17, 31, 32, 33, 50, 65};
  static const size_t depths[] = {1, 2, 31, 32, 33, 100, 785};
  static const char trans[][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}, {'T', 'T'}};
  size_t bad = 0, n = 0;
  for (size_t t = 0; t < 4; t++)
    for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
      for (size_t b = 0; b < sizeof dims / sizeof *dims; b += 2)
        for (size_t d = 0; d < sizeof depths / sizeof *depths; d++, n++) {
          const gemm_case c = {trans[t][0], trans[t][1], dims[a], dims[b], depths[d],
                               n % 3 ? 1.0f : -0.75f, n % 2 ? 1.5f : 0.0f, n % 4 ? 0 : 3, n % 5 == 1};
          bad += run_amx_case(&c, 4000 + n);
        }
  cr_expect_eq(bad, 0, "%zu of %zu cases out of bound", bad, n);
}

Test(gemm, amx_ranges_bitwise, .description = "AMX: C computed in row and column pieces is bitwise the whole") {
  amx_or_skip();
  const gemm_case c = {'N', 'T', 77, 70, 129, 1.0f, 0.0f, 2, 0};
  operands o;
  operands_make(&o, &c, 77);
  float *whole = malloc(o.ldc * c.N * sizeof(float));
  cr_assert(whole);
  cr_assert(dn_sgemm_amx_range(c.ta, c.tb, c.M, c.N, c.K, 1.0f, o.A, o.lda, o.B, o.ldb, 0.0f,
                               whole, o.ldc, 0, c.M, 0, c.N));
  static const size_t cuts[][2] = {{5, 40}, {32, 64}, {1, 69}, {45, 3}};
  for (size_t q = 0; q < 4; q++) {
    const size_t mc = cuts[q][0], nc = cuts[q][1];
    const size_t r[3] = {0, mc, c.M}, s[3] = {0, nc, c.N};
    for (size_t i = 0; i < 2; i++)
      for (size_t j = 0; j < 2; j++)
        cr_assert(dn_sgemm_amx_range(c.ta, c.tb, c.M, c.N, c.K, 1.0f, o.A, o.lda, o.B, o.ldb,
                                     0.0f, o.C, o.ldc, r[i], r[i + 1], s[j], s[j + 1]));
    for (size_t j = 0; j < c.N; j++)
      cr_assert_eq(memcmp(o.C + j * o.ldc, whole + j * o.ldc, c.M * sizeof(float)), 0,
                   "cut %zu: column %zu differs", q, j);
  }
  free(whole);
  operands_free(&o);
}

Test(gemm, amx_without_workspace_gives_the_same_bits,
     .description = "AMX: the no-memory path (one k step packed at a time on the stack) is "
                    "bitwise the packed path, alpha and beta applied in place, every transpose") {
  amx_or_skip();
  static const char trans[][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}, {'T', 'T'}};
  for (size_t t = 0; t < 4; t++) {
    const gemm_case c = {trans[t][0], trans[t][1], 70, 45, 131, -1.25f, 0.5f, 3, 0};
    operands o;
    operands_make(&o, &c, 300 + t);
    float *C2 = malloc(o.ldc * c.N * sizeof(float));
    float *work = malloc(dn_sgemm_amx_workspace(c.K, c.M, c.N) * sizeof(float));
    cr_assert(C2 && work);
    memcpy(C2, o.C, o.ldc * c.N * sizeof(float));
    cr_assert(dn_sgemm_amx_compute(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N,
                                   c.alpha, c.beta, o.C, o.ldc, work));
    cr_assert(dn_sgemm_amx_compute(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N,
                                   c.alpha, c.beta, C2, o.ldc, NULL));
    cr_expect_eq(memcmp(o.C, C2, o.ldc * c.N * sizeof(float)), 0, "%c%c differs", c.ta, c.tb);
    cr_expect_eq(check(&c, &o, "amx packed"), 0);
    cr_expect(dn_sgemm_amx_can_split(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N));
    o.B[o.ldb * 2 + 1] = 1e-20f;
    cr_expect(!dn_sgemm_amx_can_split(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N));
    free(work);
    free(C2);
    operands_free(&o);
  }
}

Test(gemm, amx_store_with_bias_and_activation_is_bitwise_the_separate_passes,
     .description = "AMX: the store that adds the bias and applies relu, leaky relu or nothing "
                    "is bitwise dn_sgemm_amx_store, bias_add, act_fwd (AVX-512 table)") {
  amx_or_skip();
  const dn_kernel_table *kt = table_or_skip(DN_ISA_AVX512);
  enum { R = 37, NC = 9, LD = 41 };
  float *T = tu_random(LD * NC, -2, 2, 5), *C0 = tu_random(LD * NC, -2, 2, 6);
  float *bias = tu_random(R, -1, 1, 7), got[LD * NC], want[LD * NC];
  static const dn_act acts[] = {DN_ACT_LINEAR, DN_ACT_RELU, DN_ACT_LEAKY_RELU};
  static const float ab[][2] = {{1.0f, 0.0f}, {-0.5f, 1.25f}};
  for (size_t a = 0; a < 3; a++)
    for (size_t v = 0; v < 2; v++) {
      memcpy(got, C0, sizeof got);
      memcpy(want, C0, sizeof want);
      dn_sgemm_amx_store_bias_act(T, LD, ab[v][0], ab[v][1], got, LD, R, NC, bias, acts[a]);
      dn_sgemm_amx_store(T, LD, ab[v][0], ab[v][1], want, LD, R, NC);
      for (size_t j = 0; j < NC; j++) {
        kt->bias_add(R, 1, bias, want + j * LD);
        if (acts[a] != DN_ACT_LINEAR) kt->act_fwd[acts[a]](R, want + j * LD, want + j * LD);
      }
      cr_expect_eq(memcmp(got, want, sizeof got), 0, "act %d, alpha %g", (int)acts[a], (double)ab[v][0]);
    }
  free(T);
  free(C0);
  free(bias);
}

Test(gemm, amx_k_blocks_give_the_bits_of_one_block,
     .description = "AMX: a product whose smaller side is cut into K blocks (accumulators stored "
                    "and reloaded between them) or into chunks is bitwise the stack path, which "
                    "cuts neither") {
  amx_or_skip();
  /* 1001 x 963 x 350: 11 k steps in K blocks of 5, 5, 1; 2048 x 1100 x 256: the smaller
   * side in two chunks, K whole (plan_blocking's cost model picks each) */
  static const gemm_case cases[] = {{'N', 'N', 1001, 963, 350, 1.0f, 0.0f, 0, 0},
                                    {'T', 'N', 1001, 963, 350, 1.0f, 0.0f, 0, 0},
                                    {'N', 'T', 2048, 1100, 256, 1.0f, 0.0f, 0, 0}};
  for (size_t t = 0; t < 3; t++) {
    const gemm_case c = cases[t];
    operands o;
    operands_make(&o, &c, 500 + t);
    float *C2 = malloc(o.ldc * c.N * sizeof(float));
    const size_t floats = dn_sgemm_amx_workspace(c.K, c.M, c.N);
    float *work = malloc(floats * sizeof(float));
    cr_assert(C2 && work);
    if (t < 2) cr_assert(floats > 963 * 1001, "the workspace holds no accumulators: K is not cut");
    else cr_assert(floats < 1100 * 2048, "K is cut: the chunks are not tested");
    cr_assert(dn_sgemm_amx_compute(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N,
                                   1.0f, 0.0f, o.C, o.ldc, work));
    cr_assert(dn_sgemm_amx_compute(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N,
                                   1.0f, 0.0f, C2, o.ldc, NULL));
    cr_expect_eq(memcmp(o.C, C2, o.ldc * c.N * sizeof(float)), 0, "%c%c differs", c.ta, c.tb);
    cr_expect_eq(check(&c, &o, "amx, K blocks"), 0);
    free(work);
    free(C2);
    operands_free(&o);
  }
}

Test(gemm, amx_with_op_b_packed_once_gives_the_same_bits,
     .description = "AMX: row blocks computed from op(B) packed once (as threads share it) are "
                    "bitwise the product packing op(B) itself, NN, NT and TN, alpha and beta; "
                    "the shared packing reports an operand it cannot split") {
  amx_or_skip();
  static const char trans[][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}};
  for (size_t t = 0; t < 3; t++) {
    const gemm_case c = {trans[t][0], trans[t][1], 150, 77, 333, 0.5f, -1.5f, 2, 0};
    operands o;
    operands_make(&o, &c, 700 + t);
    float *C2 = malloc(o.ldc * c.N * sizeof(float));
    float *work = malloc(dn_sgemm_amx_workspace(c.K, c.M, c.N) * sizeof(float));
    uint16_t *pb = malloc(dn_sgemm_amx_packed_b_bf16(c.K, c.N) * sizeof(uint16_t));
    cr_assert(C2 && work && pb);
    memcpy(C2, o.C, o.ldc * c.N * sizeof(float));
    cr_assert(dn_sgemm_amx_pack_b(c.tb, c.K, o.B, o.ldb, c.N, 0, 64, pb));
    cr_assert(dn_sgemm_amx_pack_b(c.tb, c.K, o.B, o.ldb, c.N, 64, c.N, pb));
    cr_assert(dn_sgemm_amx_compute(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, 0, c.M, 0, c.N,
                                   c.alpha, c.beta, o.C, o.ldc, work));
    /* rows [0, 32): op(B) the larger (outer) side; [32, 150): the smaller (inner) one */
    const size_t cut[] = {0, 32, c.M};
    for (size_t k = 0; k < 2; k++)
      cr_assert(dn_sgemm_amx_compute_packed_b(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, pb, c.N,
                                              cut[k], cut[k + 1], 0, c.N, c.alpha, c.beta,
                                              C2 + cut[k], o.ldc, work));
    cr_expect_eq(memcmp(o.C, C2, o.ldc * c.N * sizeof(float)), 0, "%c%c differs", c.ta, c.tb);
    /* columns [32, N) from the same packing: its blocks from the second on */
    memcpy(C2, o.C0, o.ldc * c.N * sizeof(float)); /* C as it was before the product */
    cr_assert(dn_sgemm_amx_compute_packed_b(c.ta, c.tb, c.K, o.A, o.lda, o.B, o.ldb, pb, c.N, 0,
                                            c.M, 32, c.N, c.alpha, c.beta, C2 + 32 * o.ldc,
                                            o.ldc, work));
    for (size_t j = 32; j < c.N; j++)
      cr_expect_eq(memcmp(o.C + j * o.ldc, C2 + j * o.ldc, c.M * sizeof(float)), 0,
                   "%c%c column %zu differs", c.ta, c.tb, j);
    cr_expect_eq(check(&c, &o, "amx, op(B) packed once"), 0);
    o.B[3] = INFINITY;
    cr_expect(!dn_sgemm_amx_pack_b(c.tb, c.K, o.B, o.ldb, c.N, 0, c.N, pb), "took an Inf");
    free(pb);
    free(work);
    free(C2);
    operands_free(&o);
  }
}

Test(gemm, amx_refuses_what_it_cannot_split,
     .description = "AMX: an Inf, a NaN, a denormal, a tiny or a huge operand makes it refuse "
                    "without writing C; zeros and the range's ends are taken") {
  amx_or_skip();
  static const float refused[] = {INFINITY, -INFINITY, NAN, 1e-40f, 0x1p-51f, -0x1p-60f, 0x1p51f, 3e38f};
  static const float taken[] = {0.0f, -0.0f, 0x1p-50f, -0x1p50f};
  const gemm_case c = {'N', 'N', 40, 20, 50, 1.0f, 1.0f, 0, 0};
  for (size_t side = 0; side < 2; side++) {
    for (size_t v = 0; v < sizeof refused / sizeof *refused; v++) {
      operands o;
      operands_make(&o, &c, 90 + v);
      (side ? o.B : o.A)[7 + 3 * o.lda] = refused[v];
      float *before = malloc(o.ldc * c.N * sizeof(float));
      cr_assert(before);
      memcpy(before, o.C, o.ldc * c.N * sizeof(float));
      cr_expect(!dn_sgemm_amx_range(c.ta, c.tb, c.M, c.N, c.K, 1.0f, o.A, o.lda, o.B, o.ldb, 1.0f,
                                    o.C, o.ldc, 0, c.M, 0, c.N),
                "took %g in %s", (double)refused[v], side ? "B" : "A");
      cr_expect_eq(memcmp(o.C, before, o.ldc * c.N * sizeof(float)), 0, "wrote C after refusing");
      free(before);
      operands_free(&o);
    }
    /* beta 0, the bad value in the side packed last: refused; the FMA path then gives C. */
    const gemm_case c0 = {'N', 'N', 40, 200, 50, 1.0f, 0.0f, 0, 0};
    operands o0;
    operands_make(&o0, &c0, 80 + side);
    (side ? o0.B : o0.A)[(side ? 3 : 39) + (side ? 190 : 49) * (side ? o0.ldb : o0.lda)] = NAN;
    cr_expect(!dn_sgemm_amx_range(c0.ta, c0.tb, c0.M, c0.N, c0.K, 1.0f, o0.A, o0.lda, o0.B, o0.ldb,
                                  0.0f, o0.C, o0.ldc, 0, c0.M, 0, c0.N), "took a NaN with beta 0");
    (side ? o0.B : o0.A)[(side ? 3 : 39) + (side ? 190 : 49) * (side ? o0.ldb : o0.lda)] = 0.5f;
    dn_gemm(dn_kernels(), c0.ta, c0.tb, c0.M, c0.N, c0.K, 1.0f, o0.A, o0.lda, o0.B, o0.ldb, 0.0f,
            o0.C, o0.ldc);
    cr_expect_eq(check(&c0, &o0, "fma after an amx refusal"), 0);
    operands_free(&o0);
    for (size_t v = 0; v < sizeof taken / sizeof *taken; v++) {
      operands o;
      operands_make(&o, &c, 190 + v);
      (side ? o.B : o.A)[7 + 3 * o.lda] = taken[v];
      cr_expect(dn_sgemm_amx_range(c.ta, c.tb, c.M, c.N, c.K, 1.0f, o.A, o.lda, o.B, o.ldb, 1.0f,
                                   o.C, o.ldc, 0, c.M, 0, c.N),
                "refused %g in %s", (double)taken[v], side ? "B" : "A");
      cr_expect_eq(check(&c, &o, "amx"), 0);
      operands_free(&o);
    }
  }
}
#endif
