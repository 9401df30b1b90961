/* Gradients of dn_net_backward agree with central finite differences of a
 * double-precision reference of the same net, for every activation, loss and L2. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deepnet.h"
#include "test_util.h"

#define MAXL 4

typedef struct ref_net {
  size_t L, n[MAXL + 1], m;
  dn_act act[MAXL + 1];
  dn_loss loss;
  double *W[MAXL + 1], *b[MAXL + 1];
  double lambda;
} ref_net;

static double act_d(dn_act a, double z) {
  switch (a) {
    case DN_ACT_LINEAR: return z;
    case DN_ACT_RELU: return z > 0 ? z : 0;
    case DN_ACT_LEAKY_RELU: return z > 0 ? z : 0.01 * z;
    case DN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case DN_ACT_TANH: return tanh(z);
    case DN_ACT_SOFTMAX: break;
  }
  return NAN;
}

/* The course's cost in double: forward through every layer, then bce/cce/mse + L2. */
static double ref_cost(const ref_net *r, const float *X, const float *Y) {
  size_t widest = 0;
  for (size_t l = 0; l <= r->L; l++) widest = r->n[l] > widest ? r->n[l] : widest;
  double *prev = malloc(widest * r->m * sizeof *prev), *cur = malloc(widest * r->m * sizeof *cur);
  for (size_t i = 0; i < r->n[0] * r->m; i++) prev[i] = X[i];
  for (size_t l = 1; l <= r->L; l++) {
    const size_t rows = r->n[l], cols = r->n[l - 1];
    for (size_t j = 0; j < r->m; j++) {
      for (size_t i = 0; i < rows; i++) {
        double z = r->b[l][i];
        for (size_t k = 0; k < cols; k++) z += r->W[l][i + k * rows] * prev[k + j * cols];
        cur[i + j * rows] = r->act[l] == DN_ACT_SOFTMAX ? z : act_d(r->act[l], z);
      }
      if (r->act[l] == DN_ACT_SOFTMAX) {
        double *c = cur + j * rows, mx = c[0], s = 0;
        for (size_t i = 1; i < rows; i++) mx = fmax(mx, c[i]);
        for (size_t i = 0; i < rows; i++) s += (c[i] = exp(c[i] - mx));
        for (size_t i = 0; i < rows; i++) c[i] /= s;
      }
    }
    double *t = prev;
    prev = cur;
    cur = t;
  }
  double J = 0;
  const size_t nL = r->n[r->L];
  for (size_t i = 0; i < nL * r->m; i++) {
    const double a = prev[i], y = Y[i];
    if (r->loss == DN_LOSS_BCE) J -= y * log(a) + (1 - y) * log(1 - a);
    if (r->loss == DN_LOSS_CCE) J -= y * log(a);
    if (r->loss == DN_LOSS_MSE) J += 0.5 * (a - y) * (a - y);
  }
  J /= (double)r->m;
  double sq = 0;
  for (size_t l = 1; l <= r->L; l++)
    for (size_t i = 0; i < r->n[l] * r->n[l - 1]; i++) sq += r->W[l][i] * r->W[l][i];
  J += r->lambda / (2.0 * (double)r->m) * sq;
  free(prev);
  free(cur);
  return J;
}

/* Build a net and its double twin with the same parameters, run forward +
 * backward, and compare every dW, db with central differences. Returns the
 * worst error |g - g_num| / max(1e-2, |g| + |g_num|). */
static double worst_grad_error(size_t L, const size_t *dims, const dn_act *acts, dn_loss loss,
                               float lambda, uint64_t seed) {
  const size_t m = 7;
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, L, dims, acts, loss), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_init(net, seed), DN_OK);
  cr_assert_eq(dn_net_set_l2(net, lambda), DN_OK);
  ref_net r = {.L = L, .m = m, .loss = loss, .lambda = lambda};
  for (size_t l = 0; l <= L; l++) r.n[l] = dims[l];
  for (size_t l = 1; l <= L; l++) {
    r.act[l] = acts[l - 1];
    const size_t nw = dims[l] * dims[l - 1];
    float *W = tu_random(nw, -0.8f, 0.8f, seed * 31 + l), *b = tu_random(dims[l], -0.3f, 0.3f, seed * 37 + l);
    cr_assert_eq(dn_net_set_layer(net, l, W, b), DN_OK);
    r.W[l] = malloc(nw * sizeof(double));
    r.b[l] = malloc(dims[l] * sizeof(double));
    for (size_t i = 0; i < nw; i++) r.W[l][i] = W[i];
    for (size_t i = 0; i < dims[l]; i++) r.b[l][i] = b[i];
    free(W);
    free(b);
  }
  float *X = tu_random(dims[0] * m, -1.0f, 1.0f, seed + 5);
  float *Y = malloc(dims[L] * m * sizeof *Y);
  if (loss == DN_LOSS_CCE) tu_fill_one_hot(Y, dims[L], m, seed + 6);
  else if (loss == DN_LOSS_BCE) for (size_t i = 0; i < dims[L] * m; i++) Y[i] = (float)((i * 7 + seed) % 2);
  else tu_fill_uniform(Y, dims[L] * m, -1.0f, 1.0f, seed + 7);

  float cost;
  cr_assert_eq(dn_net_forward(net, X, m, NULL), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_backward(net, Y, &cost), DN_OK, "%s", dn_last_error());
  const double J = ref_cost(&r, X, Y);
  cr_assert(fabs(cost - J) <= 1e-4 * fmax(1.0, fabs(J)), "cost %g vs reference %g", (double)cost, J);

  double worst = 0;
  const double h = 1e-6;
  for (size_t l = 1; l <= L; l++) {
    const size_t nw = dims[l] * dims[l - 1];
    float *dW = malloc(nw * sizeof *dW), *db = malloc(dims[l] * sizeof *db);
    cr_assert_eq(dn_net_get_grad(net, l, dW, db), DN_OK);
    for (size_t i = 0; i < nw + dims[l]; i++) {
      double *p = i < nw ? &r.W[l][i] : &r.b[l][i - nw];
      const double g = i < nw ? dW[i] : db[i - nw], keep = *p;
      *p = keep + h;
      const double jp = ref_cost(&r, X, Y);
      *p = keep - h;
      const double jm = ref_cost(&r, X, Y);
      *p = keep;
      const double gn = (jp - jm) / (2 * h);
      const double err = fabs(g - gn) / fmax(1e-2, fabs(g) + fabs(gn));
      worst = fmax(worst, err);
    }
    free(dW);
    free(db);
  }
  for (size_t l = 1; l <= L; l++) {
    free(r.W[l]);
    free(r.b[l]);
  }
  free(X);
  free(Y);
  dn_net_free(net);
  return worst;
}

/* float32 forward/backward against a double reference: 1e-3 relative (with a
 * 1e-2 absolute floor) leaves ample room for float rounding yet catches any
 * wrong term, transposition or missing factor, which give errors of order 1. */
#define GRAD_TOL 1e-3

static void check_hidden(dn_act hidden) {
  const dn_loss losses[] = {DN_LOSS_BCE, DN_LOSS_CCE, DN_LOSS_MSE};
  const dn_act outs[] = {DN_ACT_SIGMOID, DN_ACT_SOFTMAX, DN_ACT_LINEAR};
  for (int k = 0; k < 3; k++) {
    const size_t dims[] = {5, 6, 4, losses[k] == DN_LOSS_BCE ? 1 : 3};
    const dn_act acts[] = {hidden, hidden, outs[k]};
    const double e = worst_grad_error(3, dims, acts, losses[k], 0.0f, 11 + (uint64_t)k);
    cr_expect(e < GRAD_TOL, "hidden %s, loss %s: worst relative gradient error %g", dn_act_name(hidden),
              dn_loss_name(losses[k]), e);
  }
}

Test(gradcheck, linear_hidden_layers_match_finite_differences_for_every_loss) { check_hidden(DN_ACT_LINEAR); }
Test(gradcheck, relu_hidden_layers_match_finite_differences_for_every_loss) { check_hidden(DN_ACT_RELU); }
Test(gradcheck, leaky_relu_hidden_layers_match_finite_differences_for_every_loss) { check_hidden(DN_ACT_LEAKY_RELU); }
Test(gradcheck, sigmoid_hidden_layers_match_finite_differences_for_every_loss) { check_hidden(DN_ACT_SIGMOID); }
Test(gradcheck, tanh_hidden_layers_match_finite_differences_for_every_loss) { check_hidden(DN_ACT_TANH); }

Test(gradcheck, l2_term_and_its_gradient_match_finite_differences) {
  const size_t dims[] = {4, 5, 3};
  const dn_act acts[] = {DN_ACT_TANH, DN_ACT_SOFTMAX};
  const double e = worst_grad_error(2, dims, acts, DN_LOSS_CCE, 0.7f, 3);
  cr_expect(e < GRAD_TOL, "worst relative gradient error with L2 %g", e);
}

Test(gradcheck, mse_through_a_sigmoid_output_matches_finite_differences) {
  const size_t dims[] = {3, 4, 2};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SIGMOID};
  const double e = worst_grad_error(2, dims, acts, DN_LOSS_MSE, 0.1f, 9);
  cr_expect(e < GRAD_TOL, "worst relative gradient error %g", e);
}

Test(gradcheck, single_layer_logistic_regression_matches_finite_differences) {
  const size_t dims[] = {6, 1};
  const dn_act acts[] = {DN_ACT_SIGMOID};
  const double e = worst_grad_error(1, dims, acts, DN_LOSS_BCE, 0.0f, 21);
  cr_expect(e < GRAD_TOL, "worst relative gradient error %g", e);
}

Test(gradcheck, every_isa_gives_gradients_that_match_finite_differences) {
  const dn_isa start = dn_isa_active();
  for (int isa = DN_ISA_SCALAR; isa <= DN_ISA_NEON; isa++) {
    if (dn_isa_set((dn_isa)isa) != DN_OK) continue;
    const size_t dims[] = {9, 17, 13, 4};
    const dn_act acts[] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SOFTMAX};
    const double e = worst_grad_error(3, dims, acts, DN_LOSS_CCE, 0.05f, 40 + (uint64_t)isa);
    cr_expect(e < GRAD_TOL, "%s: worst relative gradient error %g", dn_isa_name((dn_isa)isa), e);
  }
  cr_assert_eq(dn_isa_set(start), DN_OK);
}
