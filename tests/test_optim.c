/* Optimizer steps (GD, momentum, Adam) match a hand-written double-precision step. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "deepnet.h"
#include "internal.h"
#include "test_util.h"

enum { N0 = 3, N1 = 2, M = 4, NP = N1 * N0 + N1 };

static dn_net *tiny_net(void) {
  const size_t dims[] = {N0, N1};
  const dn_act act = DN_ACT_SOFTMAX;
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 1, dims, &act, DN_LOSS_CCE), DN_OK);
  float W[N1 * N0], b[N1];
  tu_fill_uniform(W, N1 * N0, -1, 1, 3);
  tu_fill_uniform(b, N1, -1, 1, 4);
  cr_assert_eq(dn_net_set_layer(net, 1, W, b), DN_OK);
  return net;
}

/* Parameters and gradients of the one layer as flat arrays (W then b). */
static void get_params(dn_net *net, float *p) { dn_net_get_layer(net, 1, p, p + N1 * N0); }
static void get_grads(dn_net *net, float *g) { dn_net_get_grad(net, 1, g, g + N1 * N0); }

static void run_steps(dn_optimizer opt, int steps, double tol) {
  dn_net *net = tiny_net();
  float X[N0 * M], Y[N1 * M], p0[NP], g[NP], p1[NP];
  tu_fill_uniform(X, N0 * M, -1, 1, 5);
  tu_fill_one_hot(Y, N1, M, 6);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.optimizer = opt;
  o.learning_rate = 0.1f;
  o.beta1 = 0.8f;
  o.beta2 = 0.95f;
  o.epsilon = 1e-3f;
  double m1[NP] = {0}, m2[NP] = {0}, p[NP];
  get_params(net, p0);
  for (int i = 0; i < NP; i++) p[i] = p0[i];
  for (int t = 1; t <= steps; t++) {
    cr_assert_eq(dn_net_forward(net, X, M, NULL), DN_OK);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    get_grads(net, g);
    cr_assert_eq(dn_net_step(net, &o), DN_OK, "%s", dn_last_error());
    for (int i = 0; i < NP; i++) {
      const double gi = g[i];
      switch (opt) {
        case DN_OPT_GD: p[i] -= 0.1 * gi; break;
        case DN_OPT_MOMENTUM:
          m1[i] = 0.8 * m1[i] + 0.2 * gi;
          p[i] -= 0.1 * m1[i];
          break;
        case DN_OPT_ADAM: {
          m1[i] = 0.8 * m1[i] + 0.2 * gi;
          m2[i] = 0.95 * m2[i] + 0.05 * gi * gi;
          const double mh = m1[i] / (1 - pow(0.8, t)), vh = m2[i] / (1 - pow(0.95, t));
          p[i] -= 0.1 * mh / (sqrt(vh) + 1e-3);
          break;
        }
      }
    }
    get_params(net, p1);
    for (int i = 0; i < NP; i++)
      cr_expect(fabs(p1[i] - p[i]) <= tol, "step %d param %d: %g vs reference %g", t, i, (double)p1[i], p[i]);
    for (int i = 0; i < NP; i++) p[i] = p1[i]; /* follow the engine's float trajectory */
  }
  dn_net_free(net);
}

Test(optim, gradient_descent_step_matches_a_double_precision_step) { run_steps(DN_OPT_GD, 3, 1e-6); }
Test(optim, momentum_steps_match_a_double_precision_reference) { run_steps(DN_OPT_MOMENTUM, 4, 1e-6); }
Test(optim, adam_steps_with_bias_correction_match_a_double_precision_reference) {
  run_steps(DN_OPT_ADAM, 5, 2e-6);
}

Test(optim, step_without_gradients_is_a_state_error) {
  dn_net *net = tiny_net();
  dn_train_opts o;
  dn_train_opts_default(&o);
  cr_expect_eq(dn_net_step(net, &o), DN_ERR_STATE);
  cr_expect(strlen(dn_last_error()) > 0);
  dn_net_free(net);
}

Test(optim, reset_optimizer_restarts_adam_bias_correction) {
  dn_net *a = tiny_net(), *b = tiny_net();
  float X[N0 * M], Y[N1 * M], pa[NP], pb[NP];
  tu_fill_uniform(X, N0 * M, -1, 1, 5);
  tu_fill_one_hot(Y, N1, M, 6);
  dn_train_opts o;
  dn_train_opts_default(&o);
  /* a: one step, reset, reload original params, one step == b: one step */
  float p0[NP];
  get_params(a, p0);
  dn_net_forward(a, X, M, NULL);
  dn_net_backward(a, Y, NULL);
  dn_net_step(a, &o);
  dn_net_reset_optimizer(a);
  dn_net_set_layer(a, 1, p0, p0 + N1 * N0);
  dn_net_forward(a, X, M, NULL);
  dn_net_backward(a, Y, NULL);
  cr_assert_eq(dn_net_step(a, &o), DN_OK);
  dn_net_forward(b, X, M, NULL);
  dn_net_backward(b, Y, NULL);
  cr_assert_eq(dn_net_step(b, &o), DN_OK);
  get_params(a, pa);
  get_params(b, pb);
  cr_expect(memcmp(pa, pb, sizeof pa) == 0);
  dn_net_free(a);
  dn_net_free(b);
}

Test(optim, l2_gradient_adds_lambda_over_m_times_w) {
  dn_net *net = tiny_net();
  float X[N0 * M], Y[N1 * M], g0[NP], g1[NP], p[NP];
  tu_fill_uniform(X, N0 * M, -1, 1, 5);
  tu_fill_one_hot(Y, N1, M, 6);
  get_params(net, p);
  dn_net_forward(net, X, M, NULL);
  dn_net_backward(net, Y, NULL);
  get_grads(net, g0);
  cr_assert_eq(dn_net_set_l2(net, 0.5f), DN_OK);
  dn_net_forward(net, X, M, NULL);
  dn_net_backward(net, Y, NULL);
  get_grads(net, g1);
  for (int i = 0; i < N1 * N0; i++) cr_expect_float_eq(g1[i] - g0[i], 0.5f / M * p[i], 1e-6f);
  for (int i = N1 * N0; i < NP; i++) cr_expect(g1[i] == g0[i], "biases are not regularized");
  dn_net_free(net);
}

/* A finite cost with an overflowing gradient (dW = dZ x^T, x near FLT_MAX): the step
 * refuses with DN_ERR_NUMERIC, names the first bad gradient, and leaves W and b alone. */
Test(optim, a_non_finite_gradient_is_refused_and_the_parameters_stay) {
  const size_t dims[] = {2, 1};
  const dn_act acts[] = {DN_ACT_LINEAR};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 1, dims, acts, DN_LOSS_MSE), DN_OK);
  const float W[2] = {0.5f, 1e-37f}, b[1] = {0.0f};
  cr_assert_eq(dn_net_set_layer(net, 1, W, b), DN_OK);
  const float X[2] = {1.0f, 3e38f}, Y[1] = {0.0f};
  float cost;
  cr_assert_eq(dn_net_forward(net, X, 1, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, &cost), DN_OK);
  cr_assert(isfinite(cost));
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  cr_assert_eq(dn_net_step(net, &opts), DN_ERR_NUMERIC);
  cr_expect(strstr(dn_last_error(), "gradient[1]") != NULL, "message: %s", dn_last_error());
  float W_after[2], b_after[1];
  cr_assert_eq(dn_net_get_layer(net, 1, W_after, b_after), DN_OK);
  cr_expect(memcmp(W, W_after, sizeof W) == 0 && memcmp(b, b_after, sizeof b) == 0);
  dn_net_free(net);
}

/* The same refusal on the general GEMM path (40 rows > the small-M limit), whose epilogue
 * scans dW while it is in cache: two overflowing elements in different tiles and column
 * blocks; the message names the first one for 1, 2 and 3 threads, and with the L2 term
 * (checked in a separate pass instead). */
Test(optim, the_first_non_finite_gradient_is_named_for_any_thread_count) {
  enum { NIN = 1100, NOUT = 40, M = 64 };
  const size_t dims[] = {NIN, NOUT};
  const dn_act acts[] = {DN_ACT_LINEAR};
  float *W = calloc(NIN * NOUT, sizeof *W), *b = calloc(NOUT, sizeof *b);
  float *X = malloc(NIN * M * sizeof *X), *Y = calloc(NOUT * M, sizeof *Y);
  cr_assert(W && b && X && Y);
  for (size_t i = 0; i < (size_t)NIN * M; i++) X[i] = 1.0f;
  /* Row 37 sees 3e38 in example 0 through input 1, row 21 in example 1 through input 1050:
   * A = 30 there, and dW(37, 1), dW(21, 1050) = 30 * 3e38 / m overflow (offsets 77, 42021). */
  X[1 + 0 * NIN] = 3e38f;
  X[1050 + 1 * NIN] = 3e38f;
  W[37 + 1 * NOUT] = 1e-37f;
  W[21 + 1050 * NOUT] = 1e-37f;
  for (int l2 = 0; l2 < 2; l2++)
    for (int threads = 1; threads <= 3; threads++) {
      dn_net *net;
      cr_assert_eq(dn_net_create(&net, 1, dims, acts, DN_LOSS_MSE), DN_OK);
      cr_assert_eq(dn_net_set_layer(net, 1, W, b), DN_OK);
      if (l2) cr_assert_eq(dn_net_set_l2(net, 0.25f), DN_OK);
      dn_set_num_threads(threads);
      float cost;
      cr_assert_eq(dn_net_forward(net, X, M, NULL), DN_OK);
      cr_assert_eq(dn_net_backward(net, Y, &cost), DN_OK);
      cr_assert(isfinite(cost));
      dn_train_opts opts;
      dn_train_opts_default(&opts);
      cr_expect_eq(dn_net_step(net, &opts), DN_ERR_NUMERIC, "%d threads, l2 %d", threads, l2);
      cr_expect(strstr(dn_last_error(), "gradient[77]") != NULL, "%d threads, l2 %d: %s", threads,
                l2, dn_last_error());
      dn_net_free(net);
    }
  dn_set_num_threads(0);
  free(W), free(b), free(X), free(Y);
}

/* ---- An update that would overflow is refused before anything is written. ---- */

/* A net of one linear unit y = w x + b under MSE, with the given parameters, after one
 * forward and backward pass on x (target 0): its gradient is (w x + b) (x, 1). */
static dn_net *linear_unit(float w, float b, float x) {
  const size_t dims[] = {1, 1};
  const dn_act act = DN_ACT_LINEAR;
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 1, dims, &act, DN_LOSS_MSE), DN_OK);
  cr_assert_eq(dn_net_set_layer(net, 1, &w, &b), DN_OK);
  const float Y[1] = {0.0f};
  cr_assert_eq(dn_net_forward(net, &x, 1, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK, "%s", dn_last_error());
  return net;
}

static void expect_refused_and_unchanged(dn_net *net, const dn_train_opts *o, float w, float b) {
  cr_assert_eq(dn_net_step(net, o), DN_ERR_NUMERIC, "step was not refused");
  cr_expect(strstr(dn_last_error(), "refused, nothing changed"), "%s", dn_last_error());
  float w1, b1;
  cr_assert_eq(dn_net_get_layer(net, 1, &w1, &b1), DN_OK);
  cr_expect(w1 == w && b1 == b, "parameters changed to %g, %g", (double)w1, (double)b1);
}

Test(optim, a_learning_rate_that_overflows_the_parameters_is_refused) {
  const dn_optimizer opts[] = {DN_OPT_GD, DN_OPT_MOMENTUM};
  for (int k = 0; k < 2; k++) {
    dn_net *net = linear_unit(0.5f, 0.25f, 2.0f); /* gradient (2.5, 1.25) */
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.optimizer = opts[k];
    o.learning_rate = FLT_MAX; /* finite and > 0: accepted, but lr g overflows */
    o.beta1 = 0.0f;            /* momentum's v = g: lr v overflows too */
    expect_refused_and_unchanged(net, &o, 0.5f, 0.25f);
    dn_net_free(net);
  }
}

/* Adam with a finite gradient whose square overflows v: refused, and the optimizer state is
 * untouched too (the next, ordinary step is bitwise the step of a net that never saw it). */
Test(optim, a_gradient_whose_square_overflows_adam_is_refused_and_leaves_the_state) {
  /* z = b = 1e19 (cost z^2 / 2 is finite), dJ/dw = z x = 1e22: (1 - beta2) g^2 = 1e41. */
  dn_net *a = linear_unit(0.0f, 1e19f, 1e3f), *b = linear_unit(0.0f, 1e19f, 1e3f);
  dn_train_opts o;
  dn_train_opts_default(&o); /* Adam */
  float g[2];
  cr_assert_eq(dn_net_get_grad(a, 1, g, g + 1), DN_OK);
  cr_assert(isfinite(g[0]) && (1.0 - o.beta2) * g[0] * g[0] > FLT_MAX, "gradient %g", (double)g[0]);
  expect_refused_and_unchanged(a, &o, 0.0f, 1e19f);
  /* Both nets now step on the same ordinary gradient. */
  for (int k = 0; k < 2; k++) {
    dn_net *net = k ? b : a;
    const float w = 1.0f, bias = 0.0f, x = 1.0f, Y[1] = {0.0f};
    cr_assert_eq(dn_net_set_layer(net, 1, &w, &bias), DN_OK);
    cr_assert_eq(dn_net_forward(net, &x, 1, NULL), DN_OK);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    cr_assert_eq(dn_net_step(net, &o), DN_OK, "%s", dn_last_error());
  }
  float wa, ba, wb, bb;
  dn_net_get_layer(a, 1, &wa, &ba);
  dn_net_get_layer(b, 1, &wb, &bb);
  cr_expect(wa == wb && ba == bb, "after the refusal %g %g, never refused %g %g", (double)wa,
            (double)ba, (double)wb, (double)bb);
  dn_net_free(a);
  dn_net_free(b);
}

/* The bound is only sufficient: where it fails but the results are finite, the update is
 * tried on a copy and then applied. Adam's first step moves each parameter by lr sign(g)
 * (to within eps), so lr 1 with an epsilon near FLT_MIN (the bound allows for lr / eps),
 * and even lr = 1e38 (the parameters land near -1e38, finite), are applied. */
Test(optim, an_update_the_bound_cannot_vouch_for_is_checked_and_applied) {
  const float lrs[] = {1.0f, 1e38f}, eps[] = {1e-36f, 1e-8f};
  for (int k = 0; k < 2; k++) {
    dn_net *net = linear_unit(0.5f, 0.25f, 2.0f);
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.learning_rate = lrs[k];
    o.epsilon = eps[k];
    cr_assert_eq(dn_net_step(net, &o), DN_OK, "%s", dn_last_error());
    float w, b;
    dn_net_get_layer(net, 1, &w, &b);
    cr_expect(fabsf(w - (0.5f - lrs[k])) <= 1e-6f * lrs[k] && fabsf(b - (0.25f - lrs[k])) <= 1e-6f * lrs[k],
              "lr %g: %g %g", (double)lrs[k], (double)w, (double)b);
    dn_net_free(net);
  }
}

/* dn_net_train stops at the first batch with the numeric error, and the net is as before. */
Test(optim, training_with_an_overflowing_learning_rate_fails_and_keeps_the_net) {
  dn_net *net = linear_unit(0.5f, 0.25f, 2.0f);
  const float X[4] = {2.0f, 1.0f, -1.0f, 0.5f}, Y[4] = {0};
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.optimizer = DN_OPT_GD;
  o.learning_rate = FLT_MAX;
  o.epochs = 3;
  o.batch_size = 2;
  cr_assert_eq(dn_net_train(net, X, Y, 4, &o), DN_ERR_NUMERIC);
  cr_expect(strstr(dn_last_error(), "epoch 1, batch 1"), "%s", dn_last_error());
  float w, b;
  dn_net_get_layer(net, 1, &w, &b);
  cr_expect(w == 0.5f && b == 0.25f, "%g %g", (double)w, (double)b);
  dn_net_free(net);
}

/* A GD step writes only the parameters: the state a momentum step left (m of about 5e28
 * here) still bounds the next momentum step, which is refused as before. (The bound once
 * forgot it after GD, and the third step wrote -Inf.) */
Test(optim, the_overflow_bound_remembers_state_an_intervening_step_did_not_write) {
  const size_t dims[] = {1, 1};
  const dn_act act = DN_ACT_SIGMOID;
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 1, dims, &act, DN_LOSS_BCE), DN_OK);
  const float zero = 0.0f, Y[1] = {0.0f};
  cr_assert_eq(dn_net_set_layer(net, 1, &zero, &zero), DN_OK);
  const float xs[3] = {1e30f, 0.0f, 0.0f};
  const dn_optimizer opt[3] = {DN_OPT_MOMENTUM, DN_OPT_GD, DN_OPT_MOMENTUM};
  const float lr[3] = {1e-38f, 1e-38f, 1e10f};
  for (int k = 0; k < 3; k++) {
    cr_assert_eq(dn_net_forward(net, &xs[k], 1, NULL), DN_OK);
    cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.optimizer = opt[k];
    o.learning_rate = lr[k];
    if (k < 2) {
      cr_assert_eq(dn_net_step(net, &o), DN_OK, "step %d: %s", k, dn_last_error());
    } else {
      float w, b;
      dn_net_get_layer(net, 1, &w, &b);
      expect_refused_and_unchanged(net, &o, w, b);
    }
  }
  dn_net_free(net);
}

/* dn_net_train leaves no gradients behind (its last batch's, under its own L2 and dropout
 * settings): a dn_net_step after it is a state error, not that batch applied twice. */
Test(optim, a_step_after_training_needs_new_gradients) {
  dn_net *net = tiny_net();
  float X[N0 * M], Y[N1 * M];
  tu_fill_uniform(X, N0 * M, -1, 1, 5);
  tu_fill_one_hot(Y, N1, M, 6);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.epochs = 1;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK, "%s", dn_last_error());
  cr_expect_eq(dn_net_step(net, &o), DN_ERR_STATE);
  dn_net_free(net);
}

/* A refused first momentum or Adam step allocates no optimizer state: nothing changed at
 * all (a checkpoint, or the next run's optimizer, would otherwise see arrays the net did
 * not have). */
Test(optim, a_refused_first_step_allocates_no_state) {
  const dn_optimizer opts[] = {DN_OPT_MOMENTUM, DN_OPT_ADAM};
  for (int k = 0; k < 2; k++) {
    /* Adam refused by g^2 overflowing v (as above), momentum by lr v overflowing. */
    dn_net *net = k ? linear_unit(0.0f, 1e19f, 1e3f) : linear_unit(0.5f, 0.25f, 2.0f);
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.optimizer = opts[k];
    o.beta1 = 0.0f;
    if (!k) o.learning_rate = FLT_MAX;
    float w, b;
    dn_net_get_layer(net, 1, &w, &b);
    expect_refused_and_unchanged(net, &o, w, b);
    cr_expect(net->opt_m == NULL && net->opt_v == NULL, "optimizer %d left state arrays", k);
    dn_net_free(net);
  }
}
