/* Every API misuse returns the right status with a message, and changes nothing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepnet.h"
#include "test_util.h"

static const size_t DIMS[] = {3, 4, 2};
static const dn_act ACTS[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};

static dn_net *make_net(void) {
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, DIMS, ACTS, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, 1), DN_OK);
  return net;
}

/* The status is as expected and a non-empty message was left. */
#define expect_fail(call, status)                                                          \
  do {                                                                                     \
    const dn_status s_ = (call);                                                           \
    cr_expect_eq(s_, status, "%s returned %s (%s)", #call, dn_status_str(s_), dn_last_error()); \
    cr_expect(strlen(dn_last_error()) > 0, "%s left no message", #call);                  \
  } while (0)

Test(api_errors, create_rejects_null_zero_layers_zero_widths_and_unknown_enums) {
  dn_net *net = (dn_net *)0x1;
  const size_t zero_dims[] = {3, 0, 2};
  const dn_act bad_acts[] = {(dn_act)99, DN_ACT_SOFTMAX};
  expect_fail(dn_net_create(NULL, 2, DIMS, ACTS, DN_LOSS_CCE), DN_ERR_ARG);
  expect_fail(dn_net_create(&net, 2, NULL, ACTS, DN_LOSS_CCE), DN_ERR_ARG);
  expect_fail(dn_net_create(&net, 2, DIMS, NULL, DN_LOSS_CCE), DN_ERR_ARG);
  expect_fail(dn_net_create(&net, 0, DIMS, ACTS, DN_LOSS_CCE), DN_ERR_SHAPE);
  expect_fail(dn_net_create(&net, 2, zero_dims, ACTS, DN_LOSS_CCE), DN_ERR_SHAPE);
  expect_fail(dn_net_create(&net, 2, DIMS, bad_acts, DN_LOSS_CCE), DN_ERR_ARG);
  expect_fail(dn_net_create(&net, 2, DIMS, ACTS, (dn_loss)7), DN_ERR_ARG);
  cr_expect(net == (dn_net *)0x1, "out is untouched on failure");
}

Test(api_errors, create_rejects_loss_and_output_activation_that_do_not_pair) {
  dn_net *net = NULL;
  const dn_act relu_out[] = {DN_ACT_RELU, DN_ACT_RELU};
  const dn_act softmax_hidden[] = {DN_ACT_SOFTMAX, DN_ACT_SOFTMAX};
  expect_fail(dn_net_create(&net, 2, DIMS, relu_out, DN_LOSS_CCE), DN_ERR_ARG);
  expect_fail(dn_net_create(&net, 2, DIMS, relu_out, DN_LOSS_BCE), DN_ERR_ARG);
  expect_fail(dn_net_create(&net, 2, DIMS, ACTS, DN_LOSS_MSE), DN_ERR_ARG);
  /* A one-unit softmax outputs 1 whatever its input: nothing to learn. */
  const size_t one_out[] = {3, 4, 1};
  expect_fail(dn_net_create(&net, 2, one_out, ACTS, DN_LOSS_CCE), DN_ERR_SHAPE);
  cr_expect(strstr(dn_last_error(), "at least 2 units"), "%s", dn_last_error());
  expect_fail(dn_net_create(&net, 2, DIMS, softmax_hidden, DN_LOSS_CCE), DN_ERR_ARG);
  cr_expect_null(net);
}

Test(api_errors, create_rejects_widths_whose_parameter_bytes_overflow_size_t) {
  dn_net *net = NULL;
  const size_t huge[] = {SIZE_MAX / 2, 3, 2};
  const size_t huge2[] = {3, (size_t)1 << 33, (size_t)1 << 33};
  expect_fail(dn_net_create(&net, 2, huge, ACTS, DN_LOSS_CCE), DN_ERR_SHAPE);
  expect_fail(dn_net_create(&net, 2, huge2, ACTS, DN_LOSS_CCE), DN_ERR_SHAPE);
  cr_expect_null(net);
}

Test(api_errors, layer_index_zero_and_l_plus_one_are_rejected) {
  dn_net *net = make_net();
  float W[16], b[4];
  expect_fail(dn_net_get_layer(net, 0, W, b), DN_ERR_ARG);
  expect_fail(dn_net_get_layer(net, 3, W, b), DN_ERR_ARG);
  expect_fail(dn_net_set_layer(net, 0, W, b), DN_ERR_ARG);
  expect_fail(dn_net_set_layer(net, 3, W, b), DN_ERR_ARG);
  expect_fail(dn_net_get_grad(net, 3, W, b), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "dn_net_get_grad: layer 3 is out of range 1..2"), "%s",
                     dn_last_error());
  expect_fail(dn_net_get_layer(NULL, 1, W, b), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "dn_net_get_layer: net is NULL"), "%s", dn_last_error());
  dn_net_free(net);
}

/* Option errors name the call that refused them: dn_net_step and dn_net_train share the
 * checks. */
Test(api_errors, option_errors_name_the_call) {
  dn_net *net = make_net();
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.learning_rate = -1.0f;
  expect_fail(dn_net_step(net, &o), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "dn_net_step: learning_rate must be"), "%s", dn_last_error());
  float X[3] = {0}, Y[2] = {1, 0};
  expect_fail(dn_net_train(net, X, Y, 1, &o), DN_ERR_ARG);
  cr_expect_not_null(strstr(dn_last_error(), "dn_net_train: learning_rate must be"), "%s", dn_last_error());
  dn_net_free(net);
}

Test(api_errors, set_layer_rejects_null_and_non_finite_values_and_keeps_the_old_ones) {
  dn_net *net = make_net();
  float W0[12], b0[4], W[12], b[4], W1[12], b1[4];
  dn_net_get_layer(net, 1, W0, b0);
  tu_fill_uniform(W, 12, -1, 1, 1);
  tu_fill_uniform(b, 4, -1, 1, 2);
  W[5] = NAN;
  expect_fail(dn_net_set_layer(net, 1, W, b), DN_ERR_NUMERIC);
  W[5] = 0;
  b[2] = INFINITY;
  expect_fail(dn_net_set_layer(net, 1, W, b), DN_ERR_NUMERIC);
  expect_fail(dn_net_set_layer(net, 1, NULL, b), DN_ERR_ARG);
  dn_net_get_layer(net, 1, W1, b1);
  cr_expect(memcmp(W0, W1, sizeof W0) == 0 && memcmp(b0, b1, sizeof b0) == 0);
  dn_net_free(net);
}

Test(api_errors, backward_before_forward_and_grad_before_backward_are_state_errors) {
  dn_net *net = make_net();
  float Y[4] = {1, 0, 0, 1}, dW[8];
  expect_fail(dn_net_backward(net, Y, NULL), DN_ERR_STATE);
  expect_fail(dn_net_get_grad(net, 1, dW, NULL), DN_ERR_STATE);
  dn_net_free(net);
}

Test(api_errors, backward_after_predict_is_a_state_error) {
  dn_net *net = make_net();
  float X[6] = {0}, Y[4] = {1, 0, 0, 1};
  cr_assert_eq(dn_net_forward(net, X, 2, NULL), DN_OK);
  cr_assert_eq(dn_net_predict(net, X, 2, NULL), DN_OK);
  expect_fail(dn_net_backward(net, Y, NULL), DN_ERR_STATE);
  dn_net_free(net);
}

Test(api_errors, forward_rejects_null_zero_m_overflowing_m_and_nan_inputs) {
  dn_net *net = make_net();
  float X[6] = {0};
  expect_fail(dn_net_forward(NULL, X, 2, NULL), DN_ERR_ARG);
  expect_fail(dn_net_forward(net, NULL, 2, NULL), DN_ERR_ARG);
  expect_fail(dn_net_forward(net, X, 0, NULL), DN_ERR_SHAPE);
  expect_fail(dn_net_forward(net, X, SIZE_MAX / 2, NULL), DN_ERR_SHAPE);
  X[4] = NAN;
  expect_fail(dn_net_forward(net, X, 2, NULL), DN_ERR_NUMERIC);
  dn_net_free(net);
}

Test(api_errors, backward_rejects_null_and_nan_labels_leaving_no_gradients) {
  dn_net *net = make_net();
  float X[6] = {0}, Y[4] = {1, 0, NAN, 1};
  cr_assert_eq(dn_net_forward(net, X, 2, NULL), DN_OK);
  expect_fail(dn_net_backward(net, NULL, NULL), DN_ERR_ARG);
  expect_fail(dn_net_backward(net, Y, NULL), DN_ERR_NUMERIC);
  expect_fail(dn_net_get_grad(net, 1, NULL, NULL), DN_ERR_STATE);
  dn_net_free(net);
}

Test(api_errors, train_rejects_bad_options_and_leaves_parameters_untouched) {
  dn_net *net = make_net();
  float X[6] = {0}, Y[4] = {1, 0, 0, 1}, W0[12], W1[12];
  dn_net_get_layer(net, 1, W0, NULL);
  dn_train_opts o;
  dn_train_opts_default(&o);
  expect_fail(dn_net_train(net, X, Y, 2, NULL), DN_ERR_ARG);
  expect_fail(dn_net_train(net, NULL, Y, 2, &o), DN_ERR_ARG);
  expect_fail(dn_net_train(net, X, Y, 0, &o), DN_ERR_SHAPE);
  dn_train_opts bad = o;
  bad.optimizer = (dn_optimizer)5;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  bad = o;
  bad.learning_rate = -1.0f;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  bad = o;
  bad.learning_rate = NAN;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  bad = o;
  bad.batch_size = 0;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  /* Adam's bias-corrected epsilon (epsilon * sqrt(1 - beta2) at the first step) below
   * FLT_MIN flushed to 0 and made 0 / 0 of every zero gradient. */
  bad = o;
  bad.epsilon = 1e-38f;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  cr_expect(strstr(dn_last_error(), "FLT_MIN"), "%s", dn_last_error());
  bad.epsilon = 3e-37f; /* times sqrt(1 - 0.999): 9.5e-39, subnormal too */
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  bad = o;
  bad.keep_prob = 0.0f;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  bad = o;
  bad.beta2 = 1.0f;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  bad = o;
  bad.l2_lambda = -0.1f;
  expect_fail(dn_net_train(net, X, Y, 2, &bad), DN_ERR_ARG);
  Y[1] = INFINITY;
  expect_fail(dn_net_train(net, X, Y, 2, &o), DN_ERR_NUMERIC);
  dn_net_get_layer(net, 1, W1, NULL);
  cr_expect(memcmp(W0, W1, sizeof W0) == 0);
  dn_net_free(net);
}

Test(api_errors, regularization_setters_reject_out_of_range_values) {
  dn_net *net = make_net();
  expect_fail(dn_net_set_l2(net, -1.0f), DN_ERR_ARG);
  expect_fail(dn_net_set_l2(net, NAN), DN_ERR_ARG);
  expect_fail(dn_net_set_dropout(net, 0.0f, 1), DN_ERR_ARG);
  expect_fail(dn_net_set_dropout(net, 1.5f, 1), DN_ERR_ARG);
  expect_fail(dn_net_set_l2(NULL, 0.0f), DN_ERR_ARG);
  dn_net_free(net);
}

Test(api_errors, isa_set_refuses_unknown_values_and_unsupported_isas) {
  expect_fail(dn_isa_set((dn_isa)42), DN_ERR_ARG);
#if defined(__x86_64__)
  expect_fail(dn_isa_set(DN_ISA_NEON), DN_ERR_UNSUPPORTED);
#endif
  cr_expect_eq(dn_isa_set(DN_ISA_SCALAR), DN_OK);
  cr_expect_eq(dn_isa_active(), DN_ISA_SCALAR);
  cr_expect_eq(dn_isa_set(dn_isa_detected()), DN_OK);
  cr_expect_eq(dn_isa_active(), dn_isa_detected());
  cr_expect_null(dn_isa_name((dn_isa)42));
}

Test(api_errors, status_strings_exist_for_every_status) {
  for (int s = DN_OK; s <= DN_ERR_NUMERIC; s++) {
    cr_expect(strlen(dn_status_str((dn_status)s)) > 0);
    cr_expect(strcmp(dn_status_str((dn_status)s), "unknown status") != 0);
  }
  cr_expect_str_eq(dn_status_str((dn_status)99), "unknown status");
}

Test(api_errors, null_is_harmless_where_documented) {
  dn_net_free(NULL);
  dn_net_reset_optimizer(NULL);
  dn_train_opts_default(NULL);
  cr_expect_eq(dn_net_num_layers(NULL), 0);
  cr_expect_eq(dn_net_dim(NULL, 0), 0);
  cr_expect_eq(dn_set_num_threads(-1), DN_ERR_ARG);
}

Test(api_errors, version_string_matches_the_header_macros) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", DN_VERSION_MAJOR, DN_VERSION_MINOR, DN_VERSION_PATCH);
  cr_expect_str_eq(dn_version(), want);
}

Test(api_errors, classify_with_nan_beyond_the_first_chunk_writes_no_labels) {
  dn_net *net = make_net();
  enum { M = 2500 };
  float *X = tu_random(3 * M, -1, 1, 4);
  X[3 * 2400] = NAN;
  static uint32_t labels[M];
  memset(labels, 0xAB, sizeof labels);
  expect_fail(dn_net_classify(net, X, M, labels), DN_ERR_NUMERIC);
  for (size_t j = 0; j < M; j++) cr_assert_eq(labels[j], 0xABABABABu, "label %zu was written", j);
  free(X);
  dn_net_free(net);
}

Test(api_errors, cost_and_accuracy_reject_example_counts_that_overflow) {
  dn_net *net = make_net();
  float X[3] = {0}, Y[2] = {1, 0}, cost = 7.0f;
  double acc = 7.0;
  expect_fail(dn_net_cost(net, X, Y, SIZE_MAX / 2, &cost), DN_ERR_SHAPE);
  expect_fail(dn_net_accuracy(net, X, Y, SIZE_MAX / 3, &acc), DN_ERR_SHAPE);
  cr_expect(cost == 7.0f && acc == 7.0);
  dn_net_free(net);
}

/* A cost finite in double but past FLT_MAX (MSE against a finite label of 1e30) is refused,
 * as dn_net_backward refuses it, rather than returned as +Inf with DN_OK. */
Test(api_errors, cost_that_overflows_a_float_is_refused) {
  const size_t dims[] = {1, 1};
  const dn_act acts[] = {DN_ACT_LINEAR};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 1, dims, acts, DN_LOSS_MSE), DN_OK);
  cr_assert_eq(dn_net_init(net, 1), DN_OK);
  float X[1] = {1.0f}, Y[1] = {1e30f}, cost = 7.0f;
  expect_fail(dn_net_cost(net, X, Y, 1, &cost), DN_ERR_NUMERIC);
  cr_expect(cost == 7.0f, "cost was written: %g", (double)cost);
  cr_assert_eq(dn_net_forward(net, X, 1, NULL), DN_OK);
  expect_fail(dn_net_backward(net, Y, &cost), DN_ERR_NUMERIC);
  cr_expect_not_null(strstr(dn_last_error(), "overflows a float"), "%s", dn_last_error());
  dn_net_free(net);
}

/* X's finiteness is checked inside layer 1's GEMM, on each packed panel of X (kernels.h:
 * b_nonfinite), or before it when that layer is narrow enough for the small-M path, which
 * packs no X. Either way an Inf or NaN anywhere in X (first and last element, the last row
 * of a K block, panel and thread-block edges) is refused by dn_net_forward and
 * dn_net_predict on every ISA and thread count, the message naming its index; the
 * refused call leaves no forward pass to differentiate, keeps the gradients of the last
 * backward pass, and does not shift the dropout masks of the calls after it. */
static void expect_x_refused(dn_net *net, float *X, size_t n0, size_t m, size_t at, float bad) {
  const float keep = X[at];
  X[at] = bad;
  char want[64];
  snprintf(want, sizeof want, "X[%zu] is not finite", at);
  for (int predict = 0; predict <= 1; predict++) {
    const dn_status s = predict ? dn_net_predict(net, X, m, NULL) : dn_net_forward(net, X, m, NULL);
    cr_expect_eq(s, DN_ERR_NUMERIC, "%s, X[%zu] = %g (n0 %zu, %s, %d threads): %s",
                 predict ? "predict" : "forward", at, (double)bad, n0,
                 dn_isa_name(dn_isa_active()), dn_get_num_threads(), dn_status_str(s));
    cr_expect(strstr(dn_last_error(), want) != NULL, "message '%s' does not say '%s'",
              dn_last_error(), want);
  }
  X[at] = keep;
}

Test(api_errors, forward_refuses_inf_or_nan_anywhere_in_x_on_every_isa_and_thread_count) {
  enum { N0 = 421, M = 125 }; /* K blocks 216 + 205 (AVX-512/AVX2); 125 = 10 x 12 + 5 columns */
  /* Layer 1 on the general path (X scanned in the GEMM) cut by rows on 2-3 threads (X
   * packed once, shared) and by columns (each thread packs its own), and small-M. */
  const size_t widths[] = {300, 64, 10};
  float *X = tu_random(N0 * M, -1, 1, 77), Y[3 * M];
  tu_fill_one_hot(Y, 3, M, 78);
  const size_t at[] = {0, N0 * M - 1, N0 - 1, 215, 216, 12 * N0, 12 * N0 - 1, 63 * N0 + 300,
                       124 * N0 + 5};
  const float bad[] = {NAN, INFINITY, -INFINITY};
  for (size_t w = 0; w < 3; w++) {
    const size_t dims[] = {N0, widths[w], 3};
    const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};
    dn_net *net;
    cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_CCE), DN_OK);
    cr_assert_eq(dn_net_init(net, 3), DN_OK);
    for (int isa = DN_ISA_SCALAR; isa <= DN_ISA_NEON; isa++) {
      if (dn_isa_set((dn_isa)isa) != DN_OK) continue;
      for (int threads = 1; threads <= 3; threads++) {
        cr_assert_eq(dn_set_num_threads(threads), DN_OK);
        cr_assert_eq(dn_net_forward(net, X, M, NULL), DN_OK);
        cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
          expect_x_refused(net, X, N0, M, at[i], bad[i % 3]);
        expect_fail(dn_net_backward(net, Y, NULL), DN_ERR_STATE);
        dn_train_opts opts;
        dn_train_opts_default(&opts);
        cr_expect_eq(dn_net_step(net, &opts), DN_OK, "the last gradients survive a refused X");
      }
    }
    dn_net_free(net);
  }
  cr_assert_eq(dn_set_num_threads(0), DN_OK);
  cr_assert_eq(dn_isa_set(dn_isa_detected()), DN_OK);
  free(X);
}

Test(api_errors, a_refused_x_does_not_shift_the_dropout_masks) {
  enum { N0 = 30, M = 16 };
  const size_t dims[] = {N0, 40, 40, 3};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_SOFTMAX};
  float *X = tu_random(N0 * M, -1, 1, 90), want[3 * M], got[3 * M];
  dn_net *a, *b;
  cr_assert_eq(dn_net_create(&a, 3, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_create(&b, 3, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(a, 4), DN_OK);
  cr_assert_eq(dn_net_init(b, 4), DN_OK);
  cr_assert_eq(dn_net_set_dropout(a, 0.7f, 5), DN_OK);
  cr_assert_eq(dn_net_set_dropout(b, 0.7f, 5), DN_OK);
  cr_assert_eq(dn_net_forward(a, X, M, want), DN_OK);
  const float keep = X[7];
  X[7] = NAN;
  expect_fail(dn_net_forward(b, X, M, got), DN_ERR_NUMERIC);
  X[7] = keep;
  cr_assert_eq(dn_net_forward(b, X, M, got), DN_OK);
  cr_expect(memcmp(want, got, sizeof want) == 0, "the refused call moved the dropout masks");
  free(X);
  dn_net_free(a);
  dn_net_free(b);
}

/* Accuracy takes its classes from Y: an Inf or NaN there is refused as dn_net_cost refuses
 * it (it used to count the column as class 0), naming the element's index in the whole Y
 * even beyond the first chunk of 1024 examples, with accuracy unwritten. */
Test(api_errors, accuracy_refuses_nan_in_y_naming_its_index) {
  dn_net *net = make_net();
  enum { M = 1500 };
  float *X = tu_random(3 * M, -1, 1, 4), *Y = calloc(2 * M, sizeof(float));
  for (size_t j = 0; j < M; j++) Y[2 * j + j % 2] = 1.0f;
  Y[2 * 1200 + 1] = NAN;
  double acc = 7.0;
  expect_fail(dn_net_accuracy(net, X, Y, M, &acc), DN_ERR_NUMERIC);
  cr_expect_not_null(strstr(dn_last_error(), "Y[2401]"), "%s", dn_last_error());
  cr_expect(acc == 7.0, "accuracy was written: %g", acc);
  float cost = 7.0f;
  expect_fail(dn_net_cost(net, X, Y, M, &cost), DN_ERR_NUMERIC);
  cr_expect_not_null(strstr(dn_last_error(), "Y[2401]"), "%s", dn_last_error());
  Y[2 * 1200 + 1] = 0.0f;
  cr_assert_eq(dn_net_accuracy(net, X, Y, M, &acc), DN_OK, "%s", dn_last_error());
  cr_expect(acc >= 0.0 && acc <= 1.0);
  free(X);
  free(Y);
  dn_net_free(net);
}

/* Finite parameters can still overflow the forward pass (weights of 1e30 after a step with
 * a huge learning rate): every inference call refuses the Inf or NaN output, naming the
 * example, instead of returning it (classify and accuracy used to give class 0), and
 * leaves its outputs unwritten, here where only examples past the first chunk overflow. */
Test(api_errors, an_output_that_overflows_is_refused_by_every_inference_call) {
  dn_net *net = make_net();
  float W1[4 * 3], b1[4] = {0}, W2[2 * 4], b2[2] = {0};
  for (size_t i = 0; i < 12; i++) W1[i] = 1e30f;
  for (size_t i = 0; i < 8; i++) W2[i] = i % 2 ? 1e30f : -1e30f;
  cr_assert_eq(dn_net_set_layer(net, 1, W1, b1), DN_OK);
  cr_assert_eq(dn_net_set_layer(net, 2, W2, b2), DN_OK);
  enum { M = 2500 };
  float *X = calloc(3 * M, sizeof(float)), *Y = calloc(2 * M, sizeof(float));
  for (size_t j = 0; j < M; j++) Y[2 * j] = 1.0f;
  X[3 * 2100] = 1.0f; /* example 2100: Z2 = +-4e60, past FLT_MAX */
  static uint32_t labels[M];
  memset(labels, 0xAB, sizeof labels);
  expect_fail(dn_net_classify(net, X, M, labels), DN_ERR_NUMERIC);
  cr_expect_not_null(strstr(dn_last_error(), "example 2100"), "%s", dn_last_error());
  for (size_t j = 0; j < M; j++) cr_assert_eq(labels[j], 0xABABABABu, "label %zu was written", j);
  double acc = 7.0;
  expect_fail(dn_net_accuracy(net, X, Y, M, &acc), DN_ERR_NUMERIC);
  cr_expect(acc == 7.0);
  float cost = 7.0f;
  expect_fail(dn_net_cost(net, X, Y, M, &cost), DN_ERR_NUMERIC);
  cr_expect_not_null(strstr(dn_last_error(), "example 2100"), "%s", dn_last_error());
  cr_expect(cost == 7.0f);
  float *AL = malloc(2 * M * sizeof(float));
  for (size_t i = 0; i < 2 * M; i++) AL[i] = 7.0f;
  expect_fail(dn_net_predict(net, X, M, AL), DN_ERR_NUMERIC);
  expect_fail(dn_net_forward(net, X, M, AL), DN_ERR_NUMERIC);
  for (size_t i = 0; i < 2 * M; i++) cr_assert_eq(AL[i], 7.0f, "AL[%zu] was written", i);
  expect_fail(dn_net_backward(net, Y, NULL), DN_ERR_STATE); /* the refused pass was dropped */
  /* and the gradients of the last backward stay, as after a refused X */
  X[3 * 2100] = 0.0f;
  cr_assert_eq(dn_net_forward(net, X, M, NULL), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK, "%s", dn_last_error());
  X[3 * 2100] = 1.0f;
  expect_fail(dn_net_forward(net, X, M, NULL), DN_ERR_NUMERIC);
  float dW2[2 * 4];
  cr_expect_eq(dn_net_get_grad(net, 2, dW2, NULL), DN_OK, "%s", dn_last_error());
  X[3 * 2100] = 0.0f;
  cr_assert_eq(dn_net_classify(net, X, M, labels), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_forward(net, X, M, AL), DN_OK, "%s", dn_last_error());
  free(X);
  free(Y);
  free(AL);
  dn_net_free(net);
}

/* A refused output drops the pass like a refused X: the next training forward draws the
 * dropout masks this one would have, so a net that met the refusal goes on exactly as one
 * that never did. */
Test(api_errors, a_refused_output_does_not_shift_the_dropout_masks) {
  dn_net *a = make_net(), *b = make_net();
  float W1[4 * 3], b1[4] = {0}, W2[2 * 4], b2[2] = {0};
  for (size_t i = 0; i < 12; i++) W1[i] = 1e30f;
  for (size_t i = 0; i < 8; i++) W2[i] = i % 2 ? 1e30f : -1e30f;
  for (dn_net **n = (dn_net *[]){a, b}, **end = n + 2; n < end; n++) {
    cr_assert_eq(dn_net_set_layer(*n, 1, W1, b1), DN_OK);
    cr_assert_eq(dn_net_set_layer(*n, 2, W2, b2), DN_OK);
    cr_assert_eq(dn_net_set_dropout(*n, 0.5f, 9), DN_OK);
  }
  enum { M = 64 };
  float X[3 * M] = {0}, good[3 * M], AL_a[2 * M], AL_b[2 * M];
  for (size_t i = 0; i < 3 * M; i++) good[i] = (float)(i % 7) * 1e-32f; /* Z2 stays finite */
  X[0] = 1.0f;
  expect_fail(dn_net_forward(a, X, M, NULL), DN_ERR_NUMERIC);
  cr_assert_eq(dn_net_forward(a, good, M, AL_a), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_forward(b, good, M, AL_b), DN_OK, "%s", dn_last_error());
  cr_expect_eq(memcmp(AL_a, AL_b, sizeof AL_a), 0, "the refused pass shifted the dropout masks");
  dn_net_free(a);
  dn_net_free(b);
}

/* Inference between backward and step keeps the gradients (it used to drop them: get_grad
 * and step then said DN_ERR_STATE), and the step it allows is the one without it; a new
 * training forward or a change of the parameters drops them. */
Test(api_errors, gradients_survive_inference_and_go_with_a_new_forward_or_new_parameters) {
  dn_net *a = make_net(), *b = make_net();
  float X[3 * 5], Y[2 * 5], Xo[3 * 7], Yo[2 * 7], AL[2 * 7], ga[12 + 4], gb[12 + 4], cost;
  tu_fill_uniform(X, 15, -1, 1, 3);
  tu_fill_uniform(Xo, 21, -1, 1, 4);
  tu_fill_one_hot(Y, 2, 5, 5);
  tu_fill_one_hot(Yo, 2, 7, 6);
  uint32_t labels[7];
  double acc;
  dn_train_opts o;
  dn_train_opts_default(&o);
  for (dn_net **n = (dn_net *[]){a, b}, **end = n + 2; n < end; n++) {
    cr_assert_eq(dn_net_forward(*n, X, 5, NULL), DN_OK);
    cr_assert_eq(dn_net_backward(*n, Y, NULL), DN_OK);
  }
  cr_assert_eq(dn_net_predict(a, Xo, 7, AL), DN_OK);
  cr_assert_eq(dn_net_cost(a, Xo, Yo, 7, &cost), DN_OK);
  cr_assert_eq(dn_net_accuracy(a, Xo, Yo, 7, &acc), DN_OK);
  cr_assert_eq(dn_net_classify(a, Xo, 7, labels), DN_OK);
  cr_assert_eq(dn_net_get_grad(a, 1, ga, ga + 12), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_get_grad(b, 1, gb, gb + 12), DN_OK);
  cr_expect_eq(memcmp(ga, gb, sizeof ga), 0, "inference changed the gradients");
  cr_assert_eq(dn_net_step(a, &o), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_step(b, &o), DN_OK);
  float Wa[12], Wb[12];
  cr_assert_eq(dn_net_get_layer(a, 1, Wa, NULL), DN_OK);
  cr_assert_eq(dn_net_get_layer(b, 1, Wb, NULL), DN_OK);
  cr_expect_eq(memcmp(Wa, Wb, sizeof Wa), 0, "the step after inference differs");
  cr_assert_eq(dn_net_forward(a, X, 5, NULL), DN_OK);
  expect_fail(dn_net_get_grad(a, 1, ga, NULL), DN_ERR_STATE);
  cr_assert_eq(dn_net_backward(b, Y, NULL), DN_ERR_STATE); /* the step changed the parameters */
  cr_assert_eq(dn_net_forward(b, X, 5, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(b, Y, NULL), DN_OK);
  cr_assert_eq(dn_net_set_layer(b, 1, Wb, gb + 12), DN_OK);
  expect_fail(dn_net_get_grad(b, 1, gb, NULL), DN_ERR_STATE);
  dn_net_free(a);
  dn_net_free(b);
}
