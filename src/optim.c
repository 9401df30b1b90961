/* Optimizers: gradient descent, momentum and Adam (bias-corrected), one flat
 * loop over all parameters at once. */
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "internal.h"

void dn_train_opts_default(dn_train_opts *opts) {
  if (!opts) return;
  *opts = (dn_train_opts){
      .optimizer = DN_OPT_ADAM,
      .learning_rate = 1e-3f,
      .batch_size = 128,
      .epochs = 10,
      .seed = 1,
      .beta1 = 0.9f,
      .beta2 = 0.999f,
      .epsilon = 1e-8f,
      .l2_lambda = 0.0f,
      .keep_prob = 1.0f,
      .lr_decay = 0.0f,
      .shuffle = 1,
      .progress = NULL,
      .progress_user = NULL,
  };
}

dn_status dn_check_train_opts(const dn_train_opts *o) {
  if (!o) return dn_fail(DN_ERR_ARG, "training options are NULL");
  if (o->optimizer != DN_OPT_GD && o->optimizer != DN_OPT_MOMENTUM && o->optimizer != DN_OPT_ADAM)
    return dn_fail(DN_ERR_ARG, "unknown optimizer %d", (int)o->optimizer);
  if (!(o->learning_rate > 0.0f) || !isfinite(o->learning_rate))
    return dn_fail(DN_ERR_ARG, "learning_rate must be finite and > 0 (got %g)", (double)o->learning_rate);
  if (o->batch_size == 0) return dn_fail(DN_ERR_ARG, "batch_size must be at least 1");
  if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f))
    return dn_fail(DN_ERR_ARG, "beta1 must be in [0, 1) (got %g)", (double)o->beta1);
  if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f))
    return dn_fail(DN_ERR_ARG, "beta2 must be in [0, 1) (got %g)", (double)o->beta2);
  if (!(o->epsilon > 0.0f) || !isfinite(o->epsilon))
    return dn_fail(DN_ERR_ARG, "epsilon must be finite and > 0 (got %g)", (double)o->epsilon);
  /* Adam's step uses eps sqrt(1 - beta2^t), smallest at t = 1. Below FLT_MIN it is
   * subnormal, flushed to 0 under FTZ/DAZ, and a parameter with a zero gradient would
   * get 0 / 0 = NaN. */
  if (o->optimizer == DN_OPT_ADAM && (double)o->epsilon * sqrt(1.0 - (double)o->beta2) < FLT_MIN)
    return dn_fail(DN_ERR_ARG, "epsilon %g is too small for beta2 = %g: Adam's bias-corrected "
                   "epsilon, epsilon * sqrt(1 - beta2), must be at least FLT_MIN (%g)",
                   (double)o->epsilon, (double)o->beta2, (double)FLT_MIN);
  if (!(o->l2_lambda >= 0.0f) || !isfinite(o->l2_lambda))
    return dn_fail(DN_ERR_ARG, "l2_lambda must be finite and >= 0 (got %g)", (double)o->l2_lambda);
  if (!(o->keep_prob > 0.0f && o->keep_prob <= 1.0f))
    return dn_fail(DN_ERR_ARG, "keep_prob must be in (0, 1] (got %g)", (double)o->keep_prob);
  if (!(o->lr_decay >= 0.0f) || !isfinite(o->lr_decay))
    return dn_fail(DN_ERR_ARG, "lr_decay must be finite and >= 0 (got %g)", (double)o->lr_decay);
  return DN_OK;
}

void dn_net_reset_optimizer(dn_net *net) {
  if (!net) return;
  dn_free_floats(net->opt_m);
  dn_free_floats(net->opt_v);
  net->opt_m = net->opt_v = NULL;
  net->opt_t = 0;
}

/* Below this many parameters per thread, the update stays on one thread. */
#define MIN_PARAMS_PER_THREAD 32768
/* A unit of work is a block of whole columns of one W of about this many floats: small
 * enough that after its update it is still in L2 when it is re-packed. */
#define UNIT_FLOATS 16384

typedef struct update_job {
  const dn_kernel_table *kt;
  dn_optimizer optimizer;
  float lr, b1, b2, eps;
  const dn_net *net;
  const dn_packed_weights *fwd, *bwd; /* the packed weights to refresh (every copy), or NULL */
} update_job;

/* Parameters [off, off + n) of the flat array. */
static void update_params(const update_job *j, size_t off, size_t n) {
  const dn_net *net = j->net;
  const float *g = net->grads + off;
  float *p = net->params + off;
  switch (j->optimizer) {
    case DN_OPT_GD: j->kt->gd_update(n, j->lr, g, p); break;
    case DN_OPT_MOMENTUM: j->kt->momentum_update(n, j->lr, j->b1, g, net->opt_m + off, p); break;
    case DN_OPT_ADAM:
      j->kt->adam_update(n, j->lr, j->b1, j->b2, j->eps, g, net->opt_m + off, net->opt_v + off, p);
      break;
  }
}

/* A unit of work is a block of whole columns of one W (with b, the layer's last block),
 * as wide as fits UNIT_FLOATS, a multiple of W^T's panel width (so no two units write one
 * panel of the packed W^T). The width of layer l's blocks: */
static size_t unit_width(const dn_net *net, const dn_kernel_table *kt, size_t l) {
  const size_t w = dn_gemm_packed_a_width(kt, net->n[l - 1]);
  const size_t panels = UNIT_FLOATS / (net->n[l] * w);
  return w * (panels ? panels : 1);
}

static size_t unit_count(const dn_net *net, const dn_kernel_table *kt, size_t l) {
  const size_t width = unit_width(net, kt, l);
  return (net->n[l - 1] + width - 1) / width;
}

/* Units [u0, u1), numbered layer by layer: update, then re-pack the updated columns into
 * both packed layouts while they are in cache. Every update is elementwise and packing a
 * copy, so any split of the units gives the same bits. */
static void update_units(void *ctx, size_t u0, size_t u1) {
  const update_job *j = ctx;
  const dn_net *net = j->net;
  size_t l = 1, first = 0; /* units of layers before l */
  for (size_t u = u0; u < u1; u++) {
    while (u >= first + unit_count(net, j->kt, l)) first += unit_count(net, j->kt, l++);
    const size_t rows = net->n[l], cols = net->n[l - 1], width = unit_width(net, j->kt, l);
    const size_t j0 = (u - first) * width, j1 = j0 + width < cols ? j0 + width : cols;
    update_params(j, (size_t)(net->W[l] - net->params) + j0 * rows, (j1 - j0) * rows);
    if (j1 == cols) update_params(j, (size_t)(net->b[l] - net->params), rows);
    for (size_t c = 0; j->fwd && c < j->fwd->copies; c++)
      dn_gemm_pack_a_block(j->kt, 'N', rows, cols, net->W[l], rows, j->fwd->W[c][l], 0, rows, j0, j1);
    for (size_t c = 0; j->bwd && l >= 2 && c < j->bwd->copies; c++)
      dn_gemm_pack_a_block(j->kt, 'T', cols, rows, net->W[l], rows, j->bwd->W[c][l], j0, j1, 0, rows);
  }
}

/* The packed weights of net->Wp[which] when they can be refreshed in place: allocated for
 * kt and the NUMA nodes now in use, up to date with the parameters before this step, and
 * read by the next training pass (not when that reads W unpacked at this thread count). */
static const dn_packed_weights *refreshable(const dn_net *net, const dn_kernel_table *kt,
                                            int which) {
  const dn_packed_weights *pw = &net->Wp[which];
  const bool current = pw->copies == dn_pack_copies(dn_get_num_threads()) && pw->kt == kt &&
                       pw->version == net->params_version;
  return pw->copies && current && !dn_training_reads_w_unpacked(true) ? pw : NULL;
}

dn_status dn_optim_step(dn_net *net, const dn_train_opts *opts, float lr) {
  const size_t bad = net->grad_first_bad; /* found by the backward pass */
  if (bad < net->n_params)
    return dn_fail(DN_ERR_NUMERIC, "gradient[%zu] is not finite (%g)", bad, (double)net->grads[bad]);
  const size_t n = net->n_params;
  const bool needs_m = opts->optimizer != DN_OPT_GD, needs_v = opts->optimizer == DN_OPT_ADAM;
  if (needs_m && !net->opt_m && !(net->opt_m = dn_alloc_floats(n)))
    return dn_fail(DN_ERR_NOMEM, "out of memory for the optimizer state");
  if (needs_v && !net->opt_v && !(net->opt_v = dn_alloc_floats(n)))
    return dn_fail(DN_ERR_NOMEM, "out of memory for the optimizer state");

  const dn_kernel_table *kt = dn_kernels();
  update_job job = {.kt = kt, .optimizer = opts->optimizer, .lr = lr, .b1 = opts->beta1,
                    .b2 = opts->beta2, .eps = opts->epsilon, .net = net,
                    .fwd = refreshable(net, kt, DN_PACK_FWD), .bwd = refreshable(net, kt, DN_PACK_BWD)};
  if (opts->optimizer == DN_OPT_ADAM) {
    net->opt_t++;
    /* Bias correction folded into the step: lr_t = lr sqrt(1-b2^t)/(1-b1^t),
     * eps_t = eps sqrt(1-b2^t) gives exactly lr mhat / (sqrt(vhat) + eps). */
    const double t = (double)net->opt_t;
    const double c1 = 1.0 - pow(opts->beta1, t), c2 = sqrt(1.0 - pow(opts->beta2, t));
    job.lr = (float)(lr * c2 / c1);
    job.eps = (float)(opts->epsilon * c2);
  }
  size_t count = 0;
  for (size_t l = 1; l <= net->L; l++) count += unit_count(net, kt, l);
  const double t0 = dn_verbose() ? dn_now_s() : 0.0;
  const int threads = dn_threads_for(n, MIN_PARAMS_PER_THREAD);
  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  dn_parallel_for(count, 1, threads, update_units, &job);
  dn_fpenv_leave(&fpenv);
  net->params_version++;
  /* The packed copies refreshed above follow the new parameters; the others re-pack lazily. */
  if (job.fwd) net->Wp[DN_PACK_FWD].version = net->params_version;
  if (job.bwd) net->Wp[DN_PACK_BWD].version = net->params_version;
  net->have_forward = false; /* the caches describe the old parameters */
  if (dn_verbose()) {
    char packs[64] = ""; /* the packed copies refreshed with the update, if any */
    if (job.fwd || job.bwd)
      snprintf(packs, sizeof packs, "%s%s copies=%zu", job.fwd ? " +pack W" : "",
               job.bwd ? " +pack W^T" : "", job.fwd ? job.fwd->copies : job.bwd->copies);
    fprintf(stderr, "deepnet: update %s %s params=%zu threads=%d%s %.3f ms\n",
            opts->optimizer == DN_OPT_ADAM ? "adam" : opts->optimizer == DN_OPT_MOMENTUM ? "momentum" : "gd",
            dn_isa_name(kt->isa), n, threads, packs, (dn_now_s() - t0) * 1e3);
  }
  return DN_OK;
}

dn_status dn_net_step(dn_net *net, const dn_train_opts *opts) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_step: net is NULL");
  dn_status s = dn_check_train_opts(opts);
  if (s) return s;
  if (!net->have_grad)
    return dn_fail(DN_ERR_STATE, "dn_net_step: no gradients (call dn_net_backward first)");
  return dn_optim_step(net, opts, opts->learning_rate);
}
