/* Mini-batch training: seeded shuffle each epoch, forward, backward, optimizer step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Copy the columns idx[0..count) of src (rows x *) into dst (rows x count). */
static void gather_columns(size_t rows, const float *src, const size_t *idx, size_t count, float *dst) {
  for (size_t j = 0; j < count; j++) memcpy(dst + j * rows, src + idx[j] * rows, rows * sizeof(float));
}

static void shuffle(size_t *idx, size_t m, dn_rng *rng) {
  for (size_t i = m - 1; i > 0; i--) {
    const size_t j = (size_t)(dn_rng_uniform(rng) * (double)(i + 1));
    const size_t t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
}

typedef struct train_buffers {
  size_t *idx;
  float *Xb, *Yb;
} train_buffers;

static void free_buffers(train_buffers *b) {
  free(b->idx);
  dn_free_floats(b->Xb);
  dn_free_floats(b->Yb);
}

static dn_status check_train_args(const dn_net *net, const float *X, const float *Y, size_t m,
                                  const dn_train_opts *opts) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_train: net is NULL");
  if (!X || !Y) return dn_fail(DN_ERR_ARG, "dn_net_train: X or Y is NULL");
  if (m == 0) return dn_fail(DN_ERR_SHAPE, "dn_net_train: m (the number of examples) is 0");
  size_t cx, cy;
  if (!dn_mul_ok(net->n[0], m, &cx) || !dn_floats_bytes(cx, &cx) ||
      !dn_mul_ok(net->n[net->L], m, &cy) || !dn_floats_bytes(cy, &cy))
    return dn_fail(DN_ERR_SHAPE, "dn_net_train: %zu examples overflow size_t", m);
  dn_status s = dn_check_train_opts(opts);
  if (s) return dn_fail(s, "dn_net_train: %s", dn_last_error());
  if ((s = dn_check_finite(X, net->n[0] * m, "dn_net_train: X")) ||
      (s = dn_check_finite(Y, net->n[net->L] * m, "dn_net_train: Y")))
    return s;
  return DN_OK;
}

dn_status dn_net_train(dn_net *net, const float *X, const float *Y, size_t m,
                       const dn_train_opts *opts) {
  dn_status s = check_train_args(net, X, Y, m, opts);
  if (s) return s;
  const size_t n0 = net->n[0], nL = net->n[net->L];
  const size_t batch = opts->batch_size < m ? opts->batch_size : m;
  const size_t batches = (m + batch - 1) / batch;

  train_buffers buf = {0};
  buf.idx = malloc(m * sizeof *buf.idx);
  if (opts->shuffle) {
    buf.Xb = dn_alloc_floats(n0 * batch);
    buf.Yb = dn_alloc_floats(nL * batch);
  }
  if (!buf.idx || (opts->shuffle && (!buf.Xb || !buf.Yb))) {
    free_buffers(&buf);
    return dn_fail(DN_ERR_NOMEM, "dn_net_train: out of memory for batch buffers");
  }
  for (size_t i = 0; i < m; i++) buf.idx[i] = i;

  const float saved_l2 = net->l2_lambda, saved_keep = net->keep_prob;
  const uint64_t saved_seed = net->dropout_seed, saved_calls = net->dropout_calls;
  net->l2_lambda = opts->l2_lambda;
  net->keep_prob = opts->keep_prob;
  net->dropout_seed = opts->seed;
  net->dropout_calls = 0;
  if ((s = dn_net_reserve(net, batch))) goto done;

  dn_rng rng;
  dn_rng_seed(&rng, opts->seed);
  const double t_start = dn_now_s();
  bool stop = false;
  for (size_t epoch = 1; epoch <= opts->epochs && !stop; epoch++) {
    const float lr = opts->learning_rate / (1.0f + opts->lr_decay * (float)(epoch - 1));
    if (opts->shuffle) shuffle(buf.idx, m, &rng);
    const double t_epoch = dn_now_s();
    double cost_sum = 0.0;
    size_t seen = 0;
    for (size_t bi = 0; bi < batches && !stop; bi++) {
      const size_t start = bi * batch, mb = (m - start) < batch ? (m - start) : batch;
      const float *Xb = X + start * n0, *Yb = Y + start * nL;
      if (opts->shuffle) {
        gather_columns(n0, X, buf.idx + start, mb, buf.Xb);
        gather_columns(nL, Y, buf.idx + start, mb, buf.Yb);
        Xb = buf.Xb;
        Yb = buf.Yb;
      }
      float cost;
      if ((s = dn_forward_pass(net, Xb, mb, true))) goto done;
      if ((s = dn_backward_pass(net, Yb, &cost)) || (s = dn_optim_step(net, opts, lr))) {
        s = dn_fail(s, "dn_net_train: training diverged at epoch %zu, batch %zu: %s "
                    "(parameters left at the last finite step)", epoch, bi + 1, dn_last_error());
        goto done;
      }
      cost_sum += (double)cost * (double)mb;
      seen += mb;
      if (opts->progress) {
        const double now = dn_now_s();
        const dn_progress p = {
            .epoch = epoch, .epochs = opts->epochs, .batch = bi + 1, .batches = batches,
            .batch_cost = cost, .epoch_cost = (float)(cost_sum / (double)seen),
            .epoch_end = bi + 1 == batches,
            .samples_per_s = now > t_epoch ? (double)seen / (now - t_epoch) : 0.0,
            .elapsed_s = now - t_start, .learning_rate = lr};
        stop = opts->progress(&p, opts->progress_user) != 0;
      }
    }
  }
done:
  net->l2_lambda = saved_l2;
  net->keep_prob = saved_keep;
  net->dropout_seed = saved_seed;
  net->dropout_calls = saved_calls;
  net->have_forward = false;
  free_buffers(&buf);
  return s;
}
