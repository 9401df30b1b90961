/* Training: reproducible, converging, stopping cleanly on divergence or request. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deepnet.h"
#include "test_util.h"

/* Two interleaved spirals, 2 features, one-hot over 2 classes. */
static void make_spirals(size_t m, float *X, float *Y) {
  for (size_t j = 0; j < m; j++) {
    const int c = (int)(j % 2);
    const double t = 0.25 + 3.0 * (double)(j / 2) / (double)(m / 2);
    const double r = t / 3.25, a = t * 2.0 + c * M_PI;
    X[2 * j] = (float)(r * cos(a));
    X[2 * j + 1] = (float)(r * sin(a));
    Y[2 * j] = c == 0;
    Y[2 * j + 1] = c == 1;
  }
}

static dn_net *spiral_net(uint64_t seed) {
  const size_t dims[] = {2, 32, 32, 2};
  const dn_act acts[] = {DN_ACT_TANH, DN_ACT_TANH, DN_ACT_SOFTMAX};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 3, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, seed), DN_OK);
  return net;
}

Test(train, two_spirals_reach_95_percent_training_accuracy) {
  enum { M = 400 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(1);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.learning_rate = 0.01f;
  o.batch_size = 32;
  o.epochs = 300;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK, "%s", dn_last_error());
  double acc;
  cr_assert_eq(dn_net_accuracy(net, X, Y, M, &acc), DN_OK);
  cr_expect(acc >= 0.95, "training accuracy %.3f", acc);
  dn_net_free(net);
}

Test(train, xor_with_a_sigmoid_output_and_bce_is_learned_with_momentum) {
  const float X[] = {0, 0, 0, 1, 1, 0, 1, 1}, Y[] = {0, 1, 1, 0};
  const size_t dims[] = {2, 8, 1};
  const dn_act acts[] = {DN_ACT_TANH, DN_ACT_SIGMOID};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_BCE), DN_OK);
  dn_net_init(net, 3);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.optimizer = DN_OPT_MOMENTUM;
  o.learning_rate = 0.5f;
  o.batch_size = 4;
  o.epochs = 2000;
  cr_assert_eq(dn_net_train(net, X, Y, 4, &o), DN_OK, "%s", dn_last_error());
  uint32_t labels[4];
  cr_assert_eq(dn_net_classify(net, X, 4, labels), DN_OK);
  cr_expect(labels[0] == 0 && labels[1] == 1 && labels[2] == 1 && labels[3] == 0);
  dn_net_free(net);
}

static void train_and_get(uint64_t seed, float keep_prob, float *W1) {
  enum { M = 100 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(7);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.batch_size = 16;
  o.epochs = 5;
  o.seed = seed;
  o.keep_prob = keep_prob;
  o.l2_lambda = 0.01f;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK, "%s", dn_last_error());
  dn_net_get_layer(net, 1, W1, NULL);
  dn_net_free(net);
}

Test(train, the_same_seed_gives_bitwise_the_same_run_and_another_seed_does_not) {
  float a[64], b[64], c[64];
  train_and_get(5, 0.8f, a);
  train_and_get(5, 0.8f, b);
  train_and_get(6, 0.8f, c);
  cr_expect(memcmp(a, b, sizeof a) == 0);
  cr_expect(memcmp(a, c, sizeof a) != 0);
}

Test(train, every_isa_gives_the_same_training_result_within_tolerance) {
  const dn_isa start = dn_isa_active();
  float ref[64], got[64];
  cr_assert_eq(dn_isa_set(DN_ISA_SCALAR), DN_OK);
  train_and_get(5, 1.0f, ref);
  for (int isa = DN_ISA_AVX2; isa <= DN_ISA_NEON; isa++) {
    if (dn_isa_set((dn_isa)isa) != DN_OK) continue;
    train_and_get(5, 1.0f, got);
    const double d = tu_max_rel_diff(got, ref, 64);
    cr_expect(d < 1e-3, "%s differs from scalar by %g", dn_isa_name((dn_isa)isa), d);
  }
  cr_assert_eq(dn_isa_set(start), DN_OK);
}

typedef struct progress_log {
  size_t calls, epoch_ends, last_batches, stop_after;
  float last_lr;
  int bad;
} progress_log;

static int record(const dn_progress *p, void *user) {
  progress_log *log = user;
  log->calls++;
  log->epoch_ends += p->epoch_end != 0;
  log->last_batches = p->batches;
  log->last_lr = p->learning_rate;
  if (!isfinite(p->batch_cost) || !isfinite(p->epoch_cost) || p->batch > p->batches) log->bad = 1;
  return log->stop_after && log->calls >= log->stop_after;
}

Test(train, the_last_partial_batch_is_kept_and_reported) {
  enum { M = 10 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(1);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.batch_size = 4;
  o.epochs = 3;
  progress_log log = {0};
  o.progress = record;
  o.progress_user = &log;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK);
  cr_expect_eq(log.last_batches, 3); /* 4 + 4 + 2 */
  cr_expect_eq(log.calls, 9);
  cr_expect_eq(log.epoch_ends, 3);
  cr_expect(!log.bad);
  dn_net_free(net);
}

Test(train, a_progress_callback_returning_nonzero_stops_training) {
  enum { M = 40 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(1);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.batch_size = 8;
  o.epochs = 100;
  progress_log log = {.stop_after = 7};
  o.progress = record;
  o.progress_user = &log;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK);
  cr_expect_eq(log.calls, 7);
  dn_net_free(net);
}

/* A warm restart from the progress callback: the net's optimizer state (left by an earlier
 * run) is freed by dn_net_reset_optimizer mid-run and the next step allocates new arrays;
 * dn_net_train must not free the old ones again when it returns (it did: a double free). */
static int reset_optimizer_after_epoch_1(const dn_progress *p, void *user) {
  if (p->epoch_end && p->epoch == 1) dn_net_reset_optimizer(user);
  return 0;
}

Test(train, a_progress_callback_may_reset_the_optimizer) {
  enum { M = 16 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(1);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.batch_size = 8;
  o.epochs = 2;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK, "%s", dn_last_error()); /* Adam state */
  o.progress = reset_optimizer_after_epoch_1;
  o.progress_user = net;
  for (int run = 0; run < 3; run++)
    cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK, "%s", dn_last_error());
  double acc;
  cr_expect_eq(dn_net_accuracy(net, X, Y, M, &acc), DN_OK);
  dn_net_free(net);
}

Test(train, learning_rate_decays_as_lr_over_one_plus_decay_times_epoch) {
  enum { M = 8 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(1);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.batch_size = 8;
  o.epochs = 4;
  o.learning_rate = 0.1f;
  o.lr_decay = 0.5f;
  progress_log log = {0};
  o.progress = record;
  o.progress_user = &log;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK);
  cr_expect_float_eq(log.last_lr, 0.1f / (1.0f + 0.5f * 3), 1e-7f);
  dn_net_free(net);
}

Test(train, divergence_stops_with_a_numeric_error_and_finite_parameters) {
  enum { M = 64 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  for (int i = 0; i < 2 * M; i++) X[i] *= 1e6f;
  const size_t dims[] = {2, 16, 2};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_LINEAR};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_MSE), DN_OK);
  dn_net_init(net, 1);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.optimizer = DN_OPT_GD;
  o.learning_rate = 10.0f;
  o.batch_size = 8;
  o.epochs = 50;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_ERR_NUMERIC);
  cr_expect(strstr(dn_last_error(), "epoch") && strstr(dn_last_error(), "batch"), "message: %s",
            dn_last_error());
  float W1[32], b1[16], W2[32], b2[2];
  dn_net_get_layer(net, 1, W1, b1);
  dn_net_get_layer(net, 2, W2, b2);
  for (int i = 0; i < 32; i++) cr_expect(isfinite(W1[i]) && isfinite(W2[i]));
  for (int i = 0; i < 16; i++) cr_expect(isfinite(b1[i]));
  dn_net_free(net);
}

Test(train, dropout_is_off_at_inference_and_predictions_are_repeatable) {
  enum { M = 50 };
  float X[2 * M], Y[2 * M], A1[2 * M], A2[2 * M];
  make_spirals(M, X, Y);
  dn_net *net = spiral_net(2);
  cr_assert_eq(dn_net_set_dropout(net, 0.5f, 3), DN_OK);
  cr_assert_eq(dn_net_predict(net, X, M, A1), DN_OK);
  cr_assert_eq(dn_net_predict(net, X, M, A2), DN_OK);
  cr_expect(memcmp(A1, A2, sizeof A1) == 0);
  cr_assert_eq(dn_net_forward(net, X, M, A2), DN_OK);
  cr_expect(memcmp(A1, A2, sizeof A1) != 0, "training forward applies dropout");
  dn_net_free(net);
}

Test(train, inverted_dropout_keeps_the_expected_activation) {
  /* One hidden linear layer with all-ones weights: A1 = sum of inputs; with
   * keep_prob 0.5 each unit is 0 or 2 * A1, and the mean over many stays A1. */
  enum { H = 2000 };
  const size_t dims[] = {1, H, 1};
  const dn_act acts[] = {DN_ACT_LINEAR, DN_ACT_LINEAR};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_MSE), DN_OK);
  static float W1[H], b1[H], W2[H];
  for (int i = 0; i < H; i++) W1[i] = 1.0f, W2[i] = 1.0f / H;
  const float b2 = 0.0f, X = 1.0f;
  dn_net_set_layer(net, 1, W1, b1);
  dn_net_set_layer(net, 2, W2, &b2);
  cr_assert_eq(dn_net_set_dropout(net, 0.5f, 11), DN_OK);
  float out;
  cr_assert_eq(dn_net_forward(net, &X, 1, &out), DN_OK);
  cr_expect(fabsf(out - 1.0f) < 0.1f, "mean of the dropped layer %g, want about 1", (double)out);
  cr_expect(out != 1.0f);
  dn_net_free(net);
}

Test(train, l2_regularization_shrinks_the_weights) {
  float plain[64], reg[64];
  enum { M = 100 };
  float X[2 * M], Y[2 * M];
  make_spirals(M, X, Y);
  for (int k = 0; k < 2; k++) {
    dn_net *net = spiral_net(7);
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.optimizer = DN_OPT_GD;
    o.learning_rate = 0.1f;
    o.batch_size = 20;
    o.epochs = 50;
    o.l2_lambda = k ? 2.0f : 0.0f;
    cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK);
    dn_net_get_layer(net, 1, k ? reg : plain, NULL);
    dn_net_free(net);
  }
  double np = 0, nr = 0;
  for (int i = 0; i < 64; i++) np += plain[i] * plain[i], nr += reg[i] * reg[i];
  cr_expect(nr < 0.9 * np, "||W||^2 with L2 %g, without %g", nr, np);
}
