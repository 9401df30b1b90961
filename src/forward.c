/* Forward pass: Z[l] = W[l] A[l-1] + b[l], A[l] = g[l](Z[l]), caching Z and A; W[l] comes
 * pre-packed and b and g are applied by the GEMM's epilogue. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

float dn_dropout_multiplier(uint64_t key, size_t l, size_t idx, float keep_prob) {
  return dn_hash_uniform(key + 0x9E3779B97F4A7C15ull * l, idx) < keep_prob ? 1.0f / keep_prob : 0.0f;
}

const float *dn_layer_input(const dn_net *net, size_t l) {
  if (l == 0) return net->X;
  return (net->dropout_on && l < net->L) ? net->A_drop[l] : net->A[l];
}

typedef struct output_job {
  const dn_net *net;
  const dn_kernel_table *kt;
  size_t l;
} output_job;

/* Columns [j0, j1) of the softmax output layer: A = softmax(Z) needs whole columns, so
 * it is a pass after the GEMM (whose epilogue added b). */
static void softmax_pass(void *ctx, size_t j0, size_t j1) {
  const output_job *job = ctx;
  const size_t rows = job->net->n[job->l], off = j0 * rows;
  job->kt->softmax_fwd(rows, j1 - j0, job->net->Z[job->l] + off, job->net->A[job->l] + off);
}

/* Columns [j0, j1) of hidden layer l: A_drop = A * D / keep_prob (inverted dropout). */
static void dropout_pass(void *ctx, size_t j0, size_t j1) {
  const output_job *job = ctx;
  const dn_net *net = job->net;
  const size_t l = job->l, off = j0 * net->n[l], count = (j1 - j0) * net->n[l];
  const float *A = net->A[l] + off;
  float *A_drop = net->A_drop[l] + off;
  for (size_t i = 0; i < count; i++)
    A_drop[i] = A[i] * dn_dropout_multiplier(net->dropout_key, l, off + i, net->keep_prob);
}

/* X of (n[0], m) holds an Inf or NaN: the error naming the first one. */
static dn_status refuse_input(const float *X, size_t count, const char *fn) {
  char what[64];
  snprintf(what, sizeof what, "%s: X", fn);
  const dn_status s = dn_check_finite(X, count, what);
  return s ? s : dn_fail(DN_ERR_NUMERIC, "%s: X is not finite", what);
}

dn_status dn_forward_pass(dn_net *net, const float *X, size_t m, bool training,
                          const char *check_x) {
  const bool dropout = training && net->keep_prob < 1.0f && net->L > 1;
  const dn_kernel_table *kt = dn_kernels();
  /* X must be finite (check_x: the caller's name, for the message). Layer 1's GEMM scans
   * each panel of X it packs, in L1, instead of a pass of its own over X (which, out of
   * cache, cost about 2.5% of a 512-256 forward layer); its small-M path does not pack X,
   * so then X is scanned first. A refused X drops the last forward pass (the caches are
   * scratch; dn_net_backward then reports DN_ERR_STATE) and changes nothing else: not the
   * parameters, the gradients, the optimizer state or the dropout stream. */
  const bool scan_in_gemm = check_x && dn_gemm_packs_b(kt, net->n[1]);
  if (check_x && !scan_in_gemm && dn_first_nonfinite(X, net->n[0] * m) < net->n[0] * m) {
    net->have_forward = false; /* as when the GEMM finds it: the same state either way */
    return refuse_input(X, net->n[0] * m, check_x);
  }
  bool x_bad = false;
  dn_status s = dn_net_pack_weights(net, kt, DN_PACK_FWD, training);
  if (s) return s;
  const float saved_keep = net->keep_prob;
  if (!dropout) net->keep_prob = 1.0f; /* reserve no dropout buffers for inference */
  s = dn_net_reserve(net, m);
  net->keep_prob = saved_keep;
  if (s) return s;

  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  net->X = X;
  net->m = m;
  net->dropout_on = dropout;
  if (dropout) net->dropout_key = net->dropout_seed ^ (0xA0761D6478BD642Full * ++net->dropout_calls);
  for (size_t l = 1; l <= net->L; l++) {
    const size_t rows = net->n[l], cols = net->n[l - 1];
    const bool softmax = net->act[l] == DN_ACT_SOFTMAX;
    /* Z = W A_prev + b and A = g(Z) in one pass over each tile: into A itself where Z is
     * not kept (dn_layer_keeps_z; a linear one then needs no activation pass at all). */
    const bool in_place = net->Z[l] == net->A[l];
    const dn_gemm_epilogue ep = {
        .bias = net->b[l],
        .act = softmax ? DN_ACT_LINEAR : net->act[l],
        .out = softmax || (in_place && net->act[l] == DN_ACT_LINEAR) ? NULL : net->A[l],
        .b_nonfinite = l == 1 && scan_in_gemm ? &x_bad : NULL};
    const char *what = softmax ? "Z=WA+b" : "Z=WA+b,A=g";
    if (net->Wp[DN_PACK_FWD].unpacked) {
      /* The GEMM packs W as it goes (dn_training_reads_w_unpacked): the copy's bytes. */
      dn_gemm_run(what, l, 'N', 'N', rows, m, cols, 1.0f, net->W[l], rows,
                  dn_layer_input(net, l - 1), cols, 0.0f, net->Z[l], rows, &ep);
    } else {
      const float *W[DN_MAX_PACK_COPIES];
      const size_t copies = dn_packed_layer(&net->Wp[DN_PACK_FWD], l, W);
      dn_gemm_run_packed(what, l, kt, 'N', rows, m, cols, 1.0f, W, copies, 'N',
                         dn_layer_input(net, l - 1), cols, 0.0f, net->Z[l], rows, &ep);
    }
    if (x_bad) { /* as if the pass had not begun, but for the dropped forward pass */
      dn_fpenv_leave(&fpenv);
      net->have_forward = false;
      if (dropout) net->dropout_calls--; /* the next pass draws the mask this one would have */
      return refuse_input(X, net->n[0] * m, check_x);
    }
    output_job job = {.net = net, .kt = kt, .l = l};
    if (softmax) dn_elementwise_run("A=softmax", l, rows * m, m, 1, softmax_pass, &job);
    if (dropout && l < net->L) dn_elementwise_run("dropout", l, rows * m, m, 1, dropout_pass, &job);
  }
  dn_fpenv_leave(&fpenv);
  net->have_forward = training;
  /* A training pass starts a new forward/backward; inference (predict, cost, accuracy)
   * changes neither the parameters nor the gradients, which stay usable by dn_net_step. */
  if (training) net->have_grad = false;
  return DN_OK;
}

static dn_status check_input(const dn_net *net, const float *X, size_t m, const char *fn) {
  if (!net) return dn_fail(DN_ERR_ARG, "%s: net is NULL", fn);
  if (!X) return dn_fail(DN_ERR_ARG, "%s: X is NULL", fn);
  if (m == 0) return dn_fail(DN_ERR_SHAPE, "%s: m (the number of examples) is 0", fn);
  size_t count;
  if (!dn_mul_ok(net->n[0], m, &count) || !dn_floats_bytes(count, &count))
    return dn_fail(DN_ERR_SHAPE, "%s: X of (%zu, %zu) overflows size_t", fn, net->n[0], m);
  return DN_OK; /* X's values: checked by the forward pass (dn_forward_pass's check_x) */
}

dn_status dn_check_output(dn_net *net, size_t first_col, const char *fn) {
  const size_t rows = net->n[net->L], count = rows * net->m;
  const float *AL = net->A[net->L];
  const size_t i = dn_first_nonfinite(AL, count);
  if (i == count) return DN_OK;
  net->have_forward = false; /* as for a refused X: no pass to go backward from, */
  if (net->dropout_on) net->dropout_calls--; /* and the next pass draws this one's masks */
  return dn_fail(DN_ERR_NUMERIC, "%s: the output A[%zu] is not finite (%g) at row %zu of example "
                 "%zu, from a finite X: the parameters overflow the forward pass (trained "
                 "with too large a learning rate?)", fn, net->L, (double)AL[i], i % rows,
                 first_col + i / rows);
}

static void copy_output(const dn_net *net, float *AL) {
  if (AL) memcpy(AL, net->A[net->L], net->n[net->L] * net->m * sizeof(float));
}

static dn_status forward_in_fpenv(dn_net *net, const float *X, size_t m, float *AL) {
  dn_status s = check_input(net, X, m, "dn_net_forward");
  if (s) return s;
  dn_call_enter();
  const bool had_grad = net->have_grad;
  s = dn_forward_pass(net, X, m, true, "dn_net_forward");
  dn_call_leave();
  if (!s && (s = dn_check_output(net, 0, "dn_net_forward")))
    net->have_grad = had_grad; /* a refused pass changes nothing else, as a refused X */
  if (s) return s;
  copy_output(net, AL);
  return DN_OK;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_forward(dn_net *net, const float *X, size_t m, float *AL) {
  return DN_IN_FPENV(forward_in_fpenv(net, X, m, AL));
}

static dn_status predict_in_fpenv(dn_net *net, const float *X, size_t m, float *AL) {
  dn_status s = check_input(net, X, m, "dn_net_predict");
  if (s) return s;
  dn_call_enter();
  s = dn_forward_pass(net, X, m, false, "dn_net_predict");
  dn_call_leave();
  if (!s) s = dn_check_output(net, 0, "dn_net_predict");
  if (s) return s;
  copy_output(net, AL);
  return DN_OK;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_predict(dn_net *net, const float *X, size_t m, float *AL) {
  return DN_IN_FPENV(predict_in_fpenv(net, X, m, AL));
}
