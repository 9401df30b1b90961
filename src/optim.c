/* Optimizers: gradient descent, momentum and Adam (bias-corrected), one flat
 * loop over all parameters at once. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

dn_status dn_check_train_opts(const dn_train_opts *o, const char *fn) {
  if (!o) return dn_fail(DN_ERR_ARG, "%s: training options are NULL", fn);
  if (o->optimizer != DN_OPT_GD && o->optimizer != DN_OPT_MOMENTUM && o->optimizer != DN_OPT_ADAM)
    return dn_fail(DN_ERR_ARG, "%s: unknown optimizer %d", fn, (int)o->optimizer);
  if (!(o->learning_rate > 0.0f) || !isfinite(o->learning_rate))
    return dn_fail(DN_ERR_ARG, "%s: learning_rate must be finite and > 0 (got %g)", fn, (double)o->learning_rate);
  if (o->batch_size == 0) return dn_fail(DN_ERR_ARG, "%s: batch_size must be at least 1", fn);
  if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f))
    return dn_fail(DN_ERR_ARG, "%s: beta1 must be in [0, 1) (got %g)", fn, (double)o->beta1);
  if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f))
    return dn_fail(DN_ERR_ARG, "%s: beta2 must be in [0, 1) (got %g)", fn, (double)o->beta2);
  if (!(o->epsilon > 0.0f) || !isfinite(o->epsilon))
    return dn_fail(DN_ERR_ARG, "%s: epsilon must be finite and > 0 (got %g)", fn, (double)o->epsilon);
  /* Adam's step uses eps sqrt(1 - beta2^t), smallest at t = 1. Below FLT_MIN it is
   * subnormal, flushed to 0 under FTZ/DAZ, and a parameter with a zero gradient would
   * get 0 / 0 = NaN. */
  if (o->optimizer == DN_OPT_ADAM && (double)o->epsilon * sqrt(1.0 - (double)o->beta2) < FLT_MIN)
    return dn_fail(DN_ERR_ARG, "%s: epsilon %g is too small for beta2 = %g: Adam's bias-corrected "
                   "epsilon, epsilon * sqrt(1 - beta2), must be at least FLT_MIN (%g)", fn,
                   (double)o->epsilon, (double)o->beta2, (double)FLT_MIN);
  if (!(o->l2_lambda >= 0.0f) || !isfinite(o->l2_lambda))
    return dn_fail(DN_ERR_ARG, "%s: l2_lambda must be finite and >= 0 (got %g)", fn, (double)o->l2_lambda);
  if (!(o->keep_prob > 0.0f && o->keep_prob <= 1.0f))
    return dn_fail(DN_ERR_ARG, "%s: keep_prob must be in (0, 1] (got %g)", fn, (double)o->keep_prob);
  if (!(o->lr_decay >= 0.0f) || !isfinite(o->lr_decay))
    return dn_fail(DN_ERR_ARG, "%s: lr_decay must be finite and >= 0 (got %g)", fn, (double)o->lr_decay);
  return DN_OK;
}

void dn_net_reset_optimizer(dn_net *net) {
  if (!net) return;
  dn_free_floats(net->opt_m);
  dn_free_floats(net->opt_v);
  net->opt_m = net->opt_v = NULL;
  net->opt_t = 0;
  net->state_absmax_known = false;
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
  float *absmax; /* raised to the absmax of everything the update writes */
} update_job;

/* The optimizer's kernel on n parameters p with gradient g and state m, v (as needed);
 * returns the absmax of what it wrote (+Inf if anything is not finite). */
static float apply_update(const update_job *j, size_t n, const float *g, float *m, float *v,
                          float *p) {
  switch (j->optimizer) {
    case DN_OPT_GD: return j->kt->gd_update(n, j->lr, g, p);
    case DN_OPT_MOMENTUM: return j->kt->momentum_update(n, j->lr, j->b1, g, m, p);
    case DN_OPT_ADAM: return j->kt->adam_update(n, j->lr, j->b1, j->b2, j->eps, g, m, v, p);
  }
  return __builtin_inff();
}

/* Parameters [off, off + n) of the flat array. */
static void update_params(const update_job *j, size_t off, size_t n) {
  const dn_net *net = j->net;
  const float a = apply_update(j, n, net->grads + off, net->opt_m ? net->opt_m + off : NULL,
                               net->opt_v ? net->opt_v + off : NULL, net->params + off);
  dn_kernels_raise_max(j->absmax, a);
}

/* ---- the overflow check: a refused update changes nothing ----
 * An update of finite parameters with finite gradients can still overflow (a learning rate
 * near FLT_MAX, a gradient whose square is past FLT_MAX in Adam's v). It is refused before
 * anything is written. The fast path is a bound: G, the largest |gradient| (found by the
 * backward pass's finiteness scans), and S, the largest |value| among the parameters and
 * the optimizer state (returned by the last update; recomputed after anything else wrote
 * them). Every intermediate of the update is then at most a small multiple of what the
 * bound below adds up, kept under FLT_MAX / 8 so rounding cannot carry it past FLT_MAX.
 * When the bound does not hold (astronomical values only), the update is tried on a copy,
 * chunk by chunk, and applied only if every result is finite. */
#define UPDATE_BOUND 0x1p125

static bool update_surely_finite(const update_job *j, double G, double S) {
  const double lr = j->lr, V = S > G ? S : G; /* |m|, |v| of momentum stay within ~V */
  if (!isfinite(lr) || !(lr >= 0.0)) return false;
  switch (j->optimizer) {
    case DN_OPT_GD: return S + lr * G <= UPDATE_BOUND;
    case DN_OPT_MOMENTUM: return S + lr * 2.0 * V <= UPDATE_BOUND;
    case DN_OPT_ADAM: {
      /* v' = b2 v + (1 - b2) g^2 <= 2 (S + G^2); |m'| <= 2 V; the step lr_t m' / (sqrt(v')
       * + eps_t) <= lr_t 2 V / eps_t (eps_t is a normal float: dn_check_train_opts). */
      const double eps = j->eps;
      return eps > 0.0 && 2.0 * (S + G * G) <= UPDATE_BOUND && lr * 2.0 * V <= UPDATE_BOUND &&
             S + lr * 2.0 * V / eps <= UPDATE_BOUND;
    }
  }
  return false;
}

/* The absmax of the parameters and the optimizer state, read afresh. */
static float read_state_absmax(const dn_net *net, const dn_kernel_table *kt) {
  float S = kt->absmax(net->n_params, net->params);
  if (net->opt_m) S = fmaxf(S, kt->absmax(net->n_params, net->opt_m));
  if (net->opt_v) S = fmaxf(S, kt->absmax(net->n_params, net->opt_v));
  return S;
}

/* The rare path: the update on copies, a chunk at a time, on this thread. Returns the index
 * of the first parameter (or state) the update would make non-finite, SIZE_MAX if none;
 * SIZE_MAX - 1 when there is no memory to check (refused too: not known to be finite). */
static size_t first_overflow(const update_job *j) {
  enum { CHUNK = 4096 };
  const dn_net *net = j->net;
  float *buf = malloc(3 * CHUNK * sizeof *buf);
  if (!buf) return SIZE_MAX - 1;
  size_t bad = SIZE_MAX;
  for (size_t off = 0; off < net->n_params && bad == SIZE_MAX; off += CHUNK) {
    const size_t n = net->n_params - off < CHUNK ? net->n_params - off : CHUNK;
    /* The state this optimizer reads: the net's, or zeros where it has none yet (it is
     * allocated, zeroed, only once the step is known to go ahead). */
    const bool with_m = j->optimizer != DN_OPT_GD, with_v = j->optimizer == DN_OPT_ADAM;
    float *p = buf, *m = with_m ? buf + CHUNK : NULL, *v = with_v ? buf + 2 * CHUNK : NULL;
    memcpy(p, net->params + off, n * sizeof *p);
    if (m && net->opt_m) memcpy(m, net->opt_m + off, n * sizeof *m);
    else if (m) memset(m, 0, n * sizeof *m);
    if (v && net->opt_v) memcpy(v, net->opt_v + off, n * sizeof *v);
    else if (v) memset(v, 0, n * sizeof *v);
    if (apply_update(j, n, net->grads + off, m, v, p) != __builtin_inff()) continue;
    for (size_t i = 0; i < n && bad == SIZE_MAX; i++)
      if (!isfinite(p[i]) || (m && !isfinite(m[i])) || (v && !isfinite(v[i]))) bad = off + i;
  }
  free(buf);
  return bad;
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
  const dn_kernel_table *kt = dn_kernels();
  float new_absmax = 0.0f;
  update_job job = {.kt = kt, .optimizer = opts->optimizer, .lr = lr, .b1 = opts->beta1,
                    .b2 = opts->beta2, .eps = opts->epsilon, .net = net,
                    .fwd = refreshable(net, kt, DN_PACK_FWD), .bwd = refreshable(net, kt, DN_PACK_BWD),
                    .absmax = &new_absmax};
  if (opts->optimizer == DN_OPT_ADAM) {
    /* Bias correction folded into the step: lr_t = lr sqrt(1-b2^t)/(1-b1^t),
     * eps_t = eps sqrt(1-b2^t) gives exactly lr mhat / (sqrt(vhat) + eps). */
    const double t = (double)(net->opt_t + 1);
    const double c1 = 1.0 - pow(opts->beta1, t), c2 = sqrt(1.0 - pow(opts->beta2, t));
    job.lr = (float)(lr * c2 / c1);
    job.eps = (float)(opts->epsilon * c2);
  }
  if (!net->state_absmax_known) {
    net->state_absmax = read_state_absmax(net, kt);
    net->state_absmax_known = true;
  }
  if (!update_surely_finite(&job, net->grad_absmax, net->state_absmax)) {
    dn_fpenv trial_env; /* the trial rounds as the update will */
    dn_fpenv_enter(&trial_env);
    const size_t at = first_overflow(&job);
    dn_fpenv_leave(&trial_env);
    if (at == SIZE_MAX - 1)
      return dn_fail(DN_ERR_NOMEM, "out of memory to check an update that might overflow");
    if (at != SIZE_MAX)
      return dn_fail(DN_ERR_NUMERIC, "the update would make parameter %zu (or its optimizer "
                     "state) non-finite (learning rate %g, largest |gradient| %g); refused, "
                     "nothing changed", at, (double)lr, (double)net->grad_absmax);
  }
  /* State arrays this step does not write (GD after momentum, say) keep their values:
   * the bound for the next step must still cover them. */
  const bool leaves_state = (!needs_m && net->opt_m) || (!needs_v && net->opt_v);
  const float kept_absmax = leaves_state ? net->state_absmax : 0.0f;
  if (needs_m && !net->opt_m && !(net->opt_m = dn_alloc_floats(n)))
    return dn_fail(DN_ERR_NOMEM, "out of memory for the optimizer state");
  if (needs_v && !net->opt_v && !(net->opt_v = dn_alloc_floats(n)))
    return dn_fail(DN_ERR_NOMEM, "out of memory for the optimizer state");
  if (opts->optimizer == DN_OPT_ADAM) net->opt_t++;
  size_t count = 0;
  for (size_t l = 1; l <= net->L; l++) count += unit_count(net, kt, l);
  const double t0 = dn_verbose() ? dn_now_s() : 0.0;
  const int threads = dn_threads_for(n, MIN_PARAMS_PER_THREAD);
  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  dn_parallel_for(count, 1, threads, update_units, &job);
  dn_fpenv_leave(&fpenv);
  net->params_version++;
  net->state_absmax = fmaxf(new_absmax, kept_absmax);
  /* The bound (or the trial on copies) said every result is finite; were one not, the
   * parameters are lost: say so rather than carry on. */
  if (new_absmax == __builtin_inff()) {
    net->state_absmax_known = false;
    net->have_forward = false;
    return dn_fail(DN_ERR_NUMERIC, "internal error: the update made parameters non-finite "
                   "despite the overflow check (learning rate %g)", (double)lr);
  }
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

static dn_status step_in_fpenv(dn_net *net, const dn_train_opts *opts) {
  dn_call_enter();
  const dn_status s = dn_optim_step(net, opts, opts->learning_rate);
  dn_call_leave();
  return s;
}

/* The options are checked as the caller sees them (under deepnet's DAZ a subnormal one
 * would read as 0); the step runs in deepnet's floating-point state (round to nearest,
 * whatever the caller's: dn_fpenv). */
dn_status dn_net_step(dn_net *net, const dn_train_opts *opts) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_step: net is NULL");
  dn_status checked = dn_check_train_opts(opts, "dn_net_step");
  if (checked) return checked;
  if (!net->have_grad)
    return dn_fail(DN_ERR_STATE, "dn_net_step: no gradients (call dn_net_backward first)");
  return DN_IN_FPENV(step_in_fpenv(net, opts));
}
