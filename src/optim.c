/* Optimizers: gradient descent, momentum and Adam (bias-corrected), one flat
 * loop over all parameters at once. */
#include <math.h>

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

typedef struct update_job {
  const dn_kernel_table *kt;
  dn_optimizer optimizer;
  float lr, b1, b2, eps;
  const float *g;
  float *m, *v, *p;
} update_job;

/* Parameters [i0, i1): every update is elementwise, so any split gives the same bits. */
static void update_range(void *ctx, size_t i0, size_t i1) {
  const update_job *j = ctx;
  const size_t n = i1 - i0;
  switch (j->optimizer) {
    case DN_OPT_GD: j->kt->gd_update(n, j->lr, j->g + i0, j->p + i0); break;
    case DN_OPT_MOMENTUM: j->kt->momentum_update(n, j->lr, j->b1, j->g + i0, j->m + i0, j->p + i0); break;
    case DN_OPT_ADAM:
      j->kt->adam_update(n, j->lr, j->b1, j->b2, j->eps, j->g + i0, j->m + i0, j->v + i0, j->p + i0);
      break;
  }
}

dn_status dn_optim_step(dn_net *net, const dn_train_opts *opts, float lr) {
  dn_status s = dn_check_finite(net->grads, net->n_params, "gradient");
  if (s) return s;
  const size_t n = net->n_params;
  const bool needs_m = opts->optimizer != DN_OPT_GD, needs_v = opts->optimizer == DN_OPT_ADAM;
  if (needs_m && !net->opt_m && !(net->opt_m = dn_alloc_floats(n)))
    return dn_fail(DN_ERR_NOMEM, "out of memory for the optimizer state");
  if (needs_v && !net->opt_v && !(net->opt_v = dn_alloc_floats(n)))
    return dn_fail(DN_ERR_NOMEM, "out of memory for the optimizer state");

  update_job job = {.kt = dn_kernels(), .optimizer = opts->optimizer, .lr = lr, .b1 = opts->beta1,
                    .b2 = opts->beta2, .eps = opts->epsilon, .g = net->grads, .m = net->opt_m,
                    .v = net->opt_v, .p = net->params};
  if (opts->optimizer == DN_OPT_ADAM) {
    net->opt_t++;
    /* Bias correction folded into the step: lr_t = lr sqrt(1-b2^t)/(1-b1^t),
     * eps_t = eps sqrt(1-b2^t) gives exactly lr mhat / (sqrt(vhat) + eps). */
    const double t = (double)net->opt_t;
    const double c1 = 1.0 - pow(opts->beta1, t), c2 = sqrt(1.0 - pow(opts->beta2, t));
    job.lr = (float)(lr * c2 / c1);
    job.eps = (float)(opts->epsilon * c2);
  }
  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  dn_parallel_for(n, 64, dn_threads_for(n, MIN_PARAMS_PER_THREAD), update_range, &job);
  dn_fpenv_leave(&fpenv);
  net->params_version++;     /* the packed weights are stale */
  net->have_forward = false; /* the caches describe the old parameters */
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
