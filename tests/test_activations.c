/* Activations, losses and cost conventions on tiny hand-computed cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "deepnet.h"
#include "kernels.h"
#include "test_util.h"

static dn_kernel_table scalar_kernels(void) {
  dn_kernel_table kt;
  dn_kernels_fill_scalar(&kt);
  return kt;
}

Test(activations, relu_and_leaky_relu_match_their_definitions) {
  const dn_kernel_table kt = scalar_kernels();
  const float Z[] = {-2.0f, -0.0f, 0.0f, 3.5f};
  float A[4];
  kt.act_fwd[DN_ACT_RELU](4, Z, A);
  cr_expect(A[0] == 0.0f && A[1] == 0.0f && A[2] == 0.0f && A[3] == 3.5f);
  kt.act_fwd[DN_ACT_LEAKY_RELU](4, Z, A);
  cr_expect_float_eq(A[0], -0.02f, 1e-7f);
  cr_expect(A[3] == 3.5f);
}

Test(activations, relu_derivative_is_zero_at_and_below_zero) {
  const dn_kernel_table kt = scalar_kernels();
  const float Z[] = {-1.0f, 0.0f, 2.0f}, dA[] = {5.0f, 5.0f, 5.0f};
  float A[3], dZ[3];
  kt.act_fwd[DN_ACT_RELU](3, Z, A);
  kt.act_bwd[DN_ACT_RELU](3, Z, A, dA, dZ);
  cr_expect(dZ[0] == 0.0f && dZ[1] == 0.0f && dZ[2] == 5.0f);
  kt.act_bwd[DN_ACT_LEAKY_RELU](3, Z, A, dA, dZ);
  cr_expect_float_eq(dZ[0], 0.05f, 1e-7f);
  cr_expect(dZ[2] == 5.0f);
}

Test(activations, sigmoid_is_one_half_at_zero_and_never_overflows) {
  const dn_kernel_table kt = scalar_kernels();
  const float Z[] = {0.0f, 1.0f, -1.0f, 100.0f, -100.0f, 1e30f, -1e30f};
  float A[7];
  kt.act_fwd[DN_ACT_SIGMOID](7, Z, A);
  cr_expect(A[0] == 0.5f);
  cr_expect_float_eq(A[1], 0.7310585786f, 1e-6f);
  cr_expect_float_eq(A[2], 0.2689414214f, 1e-6f);
  cr_expect(A[3] == 1.0f && A[5] == 1.0f);
  cr_expect(A[4] >= 0.0f && A[4] < 1e-40f && A[6] == 0.0f);
  for (int i = 0; i < 7; i++) cr_expect(isfinite(A[i]));
}

Test(activations, sigmoid_and_tanh_derivatives_match_the_course_formulas) {
  const dn_kernel_table kt = scalar_kernels();
  const float Z[] = {0.3f, -1.2f}, dA[] = {2.0f, -0.5f};
  float A[2], dZ[2];
  kt.act_fwd[DN_ACT_SIGMOID](2, Z, A);
  kt.act_bwd[DN_ACT_SIGMOID](2, Z, A, dA, dZ);
  for (int i = 0; i < 2; i++) {
    const double s = 1.0 / (1.0 + exp(-(double)Z[i]));
    cr_expect_float_eq(dZ[i], (float)(dA[i] * s * (1 - s)), 1e-6f);
  }
  kt.act_fwd[DN_ACT_TANH](2, Z, A);
  kt.act_bwd[DN_ACT_TANH](2, Z, A, dA, dZ);
  for (int i = 0; i < 2; i++) {
    const double t = tanh((double)Z[i]);
    cr_expect_float_eq(A[i], (float)t, 1e-6f);
    cr_expect_float_eq(dZ[i], (float)(dA[i] * (1 - t * t)), 1e-6f);
  }
}

Test(activations, softmax_columns_sum_to_one_even_for_huge_inputs) {
  const dn_kernel_table kt = scalar_kernels();
  const float Z[] = {1.0f, 2.0f, 3.0f, 1000.0f, 1000.0f, -1000.0f, -80.0f, 0.0f, 80.0f};
  float A[9];
  kt.softmax_fwd(3, 3, Z, A);
  for (int j = 0; j < 3; j++) {
    double s = 0;
    for (int i = 0; i < 3; i++) {
      cr_expect(isfinite(A[i + 3 * j]) && A[i + 3 * j] >= 0.0f);
      s += A[i + 3 * j];
    }
    cr_expect(fabs(s - 1.0) < 1e-6, "column %d sums to %g", j, s);
  }
  cr_expect_float_eq(A[0], 0.09003057f, 1e-6f);
  cr_expect_float_eq(A[3], 0.5f, 1e-6f);
}

/* A one-layer net with W = 0 and b chosen makes A[L] exactly what the test wants. */
static dn_net *constant_net(size_t n_out, dn_act act, dn_loss loss, const float *b) {
  const size_t dims[] = {2, n_out};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 1, dims, &act, loss), DN_OK, "%s", dn_last_error());
  float W[2 * 8] = {0};
  cr_assert_eq(dn_net_set_layer(net, 1, W, b), DN_OK);
  return net;
}

Test(losses, bce_cost_matches_the_hand_computed_value) {
  const float b[] = {0.0f}; /* A = sigmoid(0) = 0.5 for every example */
  dn_net *net = constant_net(1, DN_ACT_SIGMOID, DN_LOSS_BCE, b);
  const float X[] = {1, 2, 3, 4}, Y[] = {1, 0};
  float cost;
  cr_assert_eq(dn_net_cost(net, X, Y, 2, &cost), DN_OK);
  cr_expect_float_eq(cost, (float)log(2.0), 1e-6f); /* -(1/m) sum log 0.5 */
  dn_net_free(net);
}

Test(losses, cce_cost_matches_the_hand_computed_value) {
  const float b[] = {0.0f, 0.0f, (float)log(2.0)}; /* A = (1/4, 1/4, 1/2) */
  dn_net *net = constant_net(3, DN_ACT_SOFTMAX, DN_LOSS_CCE, b);
  const float X[] = {0, 0, 0, 0}, Y[] = {1, 0, 0, 0, 0, 1};
  float cost;
  cr_assert_eq(dn_net_cost(net, X, Y, 2, &cost), DN_OK);
  cr_expect_float_eq(cost, (float)((log(4.0) + log(2.0)) / 2), 1e-6f);
  dn_net_free(net);
}

Test(losses, mse_cost_is_half_the_mean_squared_error_summed_over_outputs) {
  const float b[] = {1.0f, -2.0f};
  dn_net *net = constant_net(2, DN_ACT_LINEAR, DN_LOSS_MSE, b);
  const float X[] = {0, 0, 0, 0}, Y[] = {0, 0, 3, 1};
  float cost;
  cr_assert_eq(dn_net_cost(net, X, Y, 2, &cost), DN_OK);
  /* (1/(2m)) ((1)^2 + (-2)^2 + (1-3)^2 + (-2-1)^2) = (1 + 4 + 4 + 9) / 4 */
  cr_expect_float_eq(cost, 4.5f, 1e-6f);
  dn_net_free(net);
}

Test(losses, bce_stays_finite_when_the_sigmoid_saturates_on_the_wrong_side) {
  const float b[] = {200.0f}; /* sigmoid(200) rounds to 1 in float */
  dn_net *net = constant_net(1, DN_ACT_SIGMOID, DN_LOSS_BCE, b);
  const float X[] = {0, 0}, Y[] = {0};
  float cost;
  cr_assert_eq(dn_net_cost(net, X, Y, 1, &cost), DN_OK, "%s", dn_last_error());
  cr_expect(isfinite(cost));
  cr_expect_float_eq(cost, 200.0f, 1e-3f); /* -log(1 - sigmoid(200)) = 200 + log1p(e^-200) */
  dn_net_free(net);
}

Test(losses, cce_stays_finite_when_the_softmax_saturates_on_the_wrong_class) {
  const float b[] = {150.0f, -150.0f};
  dn_net *net = constant_net(2, DN_ACT_SOFTMAX, DN_LOSS_CCE, b);
  const float X[] = {0, 0}, Y[] = {0, 1};
  float cost;
  cr_assert_eq(dn_net_cost(net, X, Y, 1, &cost), DN_OK, "%s", dn_last_error());
  cr_expect(isfinite(cost));
  cr_expect_float_eq(cost, 300.0f, 1e-2f);
  dn_net_free(net);
}

Test(losses, backward_cost_equals_dn_net_cost_without_dropout) {
  const size_t dims[] = {3, 4, 2};
  const dn_act acts[] = {DN_ACT_TANH, DN_ACT_SOFTMAX};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, 5), DN_OK);
  cr_assert_eq(dn_net_set_l2(net, 0.3f), DN_OK);
  float X[3 * 5], Y[2 * 5], c1, c2;
  tu_fill_uniform(X, 15, -1, 1, 1);
  tu_fill_one_hot(Y, 2, 5, 2);
  cr_assert_eq(dn_net_cost(net, X, Y, 5, &c1), DN_OK);
  cr_assert_eq(dn_net_forward(net, X, 5, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, &c2), DN_OK);
  cr_expect_float_eq(c1, c2, 1e-6f);
  dn_net_free(net);
}

Test(losses, sigmoid_bce_output_gradient_is_a_minus_y) {
  const float b[] = {0.0f};
  dn_net *net = constant_net(1, DN_ACT_SIGMOID, DN_LOSS_BCE, b);
  const float X[] = {1, 0, 0, 1}, Y[] = {1, 0};
  float dW[2], db;
  cr_assert_eq(dn_net_forward(net, X, 2, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK);
  cr_assert_eq(dn_net_get_grad(net, 1, dW, &db), DN_OK);
  /* dZ = (0.5 - 1, 0.5 - 0); dW = (1/2) dZ X^T = (-0.25, 0.25); db = 0 */
  cr_expect_float_eq(dW[0], -0.25f, 1e-7f);
  cr_expect_float_eq(dW[1], 0.25f, 1e-7f);
  cr_expect_float_eq(db, 0.0f, 1e-7f);
  dn_net_free(net);
}

Test(init, he_and_xavier_scales_are_used_by_activation_family) {
  const size_t dims[] = {400, 300, 200};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SIGMOID};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_MSE), DN_OK);
  cr_assert_eq(dn_net_init(net, 42), DN_OK);
  static float W1[300 * 400], W2[200 * 300], b2[200];
  cr_assert_eq(dn_net_get_layer(net, 1, W1, NULL), DN_OK);
  cr_assert_eq(dn_net_get_layer(net, 2, W2, b2), DN_OK);
  double v1 = 0, v2 = 0;
  for (size_t i = 0; i < 300 * 400; i++) v1 += (double)W1[i] * W1[i];
  for (size_t i = 0; i < 200 * 300; i++) v2 += (double)W2[i] * W2[i];
  v1 /= 300 * 400;
  v2 /= 200 * 300;
  cr_expect(fabs(v1 / (2.0 / 400) - 1) < 0.03, "He variance %g, want %g", v1, 2.0 / 400);
  cr_expect(fabs(v2 / (2.0 / 500) - 1) < 0.03, "Xavier variance %g, want %g", v2, 2.0 / 500);
  for (int i = 0; i < 200; i++) cr_expect(b2[i] == 0.0f);
  dn_net_free(net);
}

Test(init, the_same_seed_gives_bitwise_the_same_weights_and_another_seed_does_not) {
  const size_t dims[] = {7, 5, 3};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};
  dn_net *a, *b;
  cr_assert_eq(dn_net_create(&a, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_create(&b, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  float Wa[35], Wb[35];
  dn_net_init(a, 9);
  dn_net_init(b, 9);
  dn_net_get_layer(a, 1, Wa, NULL);
  dn_net_get_layer(b, 1, Wb, NULL);
  cr_expect(memcmp(Wa, Wb, sizeof Wa) == 0);
  dn_net_init(b, 10);
  dn_net_get_layer(b, 1, Wb, NULL);
  cr_expect(memcmp(Wa, Wb, sizeof Wa) != 0);
  dn_net_free(a);
  dn_net_free(b);
}
