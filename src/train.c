/* Mini-batch training: seeded shuffle each epoch, forward, backward, optimizer step;
 * checkpoints every few epochs and resuming from one (checkpoint.c). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

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

/* Everything a run needs, allocated and checked before the net changes, so a failure
 * to start leaves the net as it was. */
typedef struct train_run {
  size_t *idx;           /* the example order, reshuffled every epoch */
  float *Xb, *Yb;        /* the gathered mini-batch */
  dn_rng rng;            /* the shuffle generator */
  dn_ckpt_run ck;        /* what identifies the run in checkpoints */
  dn_ckpt_state resumed; /* the state read from a checkpoint (resume) */
  float *new_m, *new_v;  /* optimizer arrays the net lacks */
  /* What commit() replaced, put back if the run fails before its first step. */
  bool committed;
  float *old_params;     /* resume only */
  float *old_m, *old_v;
  bool replaced_m, replaced_v; /* commit() put other arrays in their place (resume) */
  uint64_t old_t;
} train_run;

static void free_run(train_run *r) {
  free(r->idx);
  dn_free_floats(r->Xb);
  dn_free_floats(r->Yb);
  dn_ckpt_state_free(&r->resumed);
  dn_free_floats(r->new_m);
  dn_free_floats(r->new_v);
  dn_free_floats(r->old_params);
}

/* Fail with s, the message fmt followed by the current last error (copied first: it is
 * the buffer dn_fail writes). */
static dn_status fail_because(dn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dn_status fail_because(dn_status s, const char *fmt, ...) {
  char cause[512], what[256];
  snprintf(cause, sizeof cause, "%s", dn_last_error());
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return dn_fail(s, "%s%s", what, cause);
}

static dn_status check_train_args(const dn_net *net, const float *X, const float *Y, size_t m,
                                  const dn_train_opts *opts) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_train: net is NULL");
  if (!X || !Y) return dn_fail(DN_ERR_ARG, "dn_net_train: X or Y is NULL");
  if (m == 0) return dn_fail(DN_ERR_SHAPE, "dn_net_train: m (the number of examples) is 0");
  size_t cx, cy;
  if (!dn_mul_ok(net->n[0], m, &cx) || !dn_floats_bytes(cx, &cx) ||
      !dn_mul_ok(net->n[net->L], m, &cy) || !dn_floats_bytes(cy, &cy) ||
      !dn_mul_ok(m, sizeof(size_t), &cx))
    return dn_fail(DN_ERR_SHAPE, "dn_net_train: %zu examples overflow size_t", m);
  dn_status s = dn_check_train_opts(opts, "dn_net_train");
  if (s) return s;
  if (opts->checkpoint_path && !*opts->checkpoint_path)
    return dn_fail(DN_ERR_ARG, "dn_net_train: checkpoint_path is empty (NULL means no checkpoints)");
  if (opts->resume && !opts->checkpoint_path)
    return dn_fail(DN_ERR_ARG, "dn_net_train: resume needs checkpoint_path");
  if ((s = dn_check_finite(X, net->n[0] * m, "dn_net_train: X")) ||
      (s = dn_check_finite(Y, net->n[net->L] * m, "dn_net_train: Y")))
    return s;
  return DN_OK;
}

/* Allocate the run's buffers and, when resuming, read and check the checkpoint and take
 * its example order and shuffle generator. The net is not touched. */
static dn_status prepare(train_run *r, const dn_net *net, const float *X, const float *Y, size_t m,
                         const dn_train_opts *opts, size_t batch) {
  const size_t n0 = net->n[0], nL = net->n[net->L], P = net->n_params;
  r->idx = malloc(m * sizeof *r->idx);
  if (opts->shuffle) {
    r->Xb = dn_alloc_floats(n0 * batch);
    r->Yb = dn_alloc_floats(nL * batch);
  }
  if (!r->idx || (opts->shuffle && (!r->Xb || !r->Yb)))
    return dn_fail(DN_ERR_NOMEM, "dn_net_train: out of memory for batch buffers");
  for (size_t i = 0; i < m; i++) r->idx[i] = i;
  dn_rng_seed(&r->rng, opts->seed);

  r->ck = (dn_ckpt_run){.opts = opts, .m = m};
  if (opts->checkpoint_path) r->ck.data_hash = dn_ckpt_data_hash(X, n0, Y, nL, m);
  dn_status s;
  if (opts->resume) {
    if ((s = dn_ckpt_load(opts->checkpoint_path, net, &r->ck, &r->resumed)))
      return fail_because(s, "dn_net_train: cannot resume: ");
    if (r->resumed.epochs_done > opts->epochs)
      return dn_fail(DN_ERR_STATE, "dn_net_train: cannot resume: '%s' has %zu epochs done, more "
                     "than the %zu asked for", opts->checkpoint_path, r->resumed.epochs_done,
                     opts->epochs);
    /* The order and the generator as the checkpointed epoch left them (format 2 stores
     * both, so no epoch's shuffle is replayed: a forged epoch count cannot make this loop
     * for ever). */
    if (opts->shuffle) memcpy(r->idx, r->resumed.order, m * sizeof *r->idx);
    r->rng = r->resumed.rng;
    if (!(r->old_params = dn_alloc_floats(P)))
      return dn_fail(DN_ERR_NOMEM, "dn_net_train: out of memory to resume");
    memcpy(r->old_params, net->params, P * sizeof(float));
  }
  /* The optimizer state is allocated up front, so no ordinary step fails for memory
   * (only the rare trial of an update that might overflow allocates, 48 KiB). */
  const float *have_m = opts->resume ? r->resumed.opt_m : net->opt_m;
  const float *have_v = opts->resume ? r->resumed.opt_v : net->opt_v;
  if (opts->optimizer != DN_OPT_GD && !have_m && !(r->new_m = dn_alloc_floats(P)))
    return dn_fail(DN_ERR_NOMEM, "dn_net_train: out of memory for the optimizer state");
  if (opts->optimizer == DN_OPT_ADAM && !have_v && !(r->new_v = dn_alloc_floats(P)))
    return dn_fail(DN_ERR_NOMEM, "dn_net_train: out of memory for the optimizer state");
  return DN_OK;
}

/* *p, leaving NULL behind. */
static float *take(float **p) {
  float *x = *p;
  *p = NULL;
  return x;
}

/* Set every layer from a flat parameter array, through dn_net_set_layer so everything
 * derived from W (packed copies) follows. */
static void set_params(dn_net *net, const float *params) {
  for (size_t l = 1; l <= net->L; l++)
    dn_net_set_layer(net, l, params + (net->W[l] - net->params), params + (net->b[l] - net->params));
}

/* Make the net hold the prepared state: the resumed parameters and optimizer state, and
 * the optimizer arrays it lacked. What it replaces is kept for finish(). Cannot fail. */
static void commit(train_run *r, dn_net *net, const dn_train_opts *opts) {
  r->old_m = net->opt_m;
  r->old_v = net->opt_v;
  r->old_t = net->opt_t;
  float *m = opts->resume ? take(&r->resumed.opt_m) : net->opt_m;
  float *v = opts->resume ? take(&r->resumed.opt_v) : net->opt_v;
  net->opt_m = m ? m : take(&r->new_m);
  net->opt_v = v ? v : take(&r->new_v);
  r->replaced_m = r->old_m && net->opt_m != r->old_m;
  r->replaced_v = r->old_v && net->opt_v != r->old_v;
  net->state_absmax_known = false;
  if (opts->resume) {
    set_params(net, r->resumed.params);
    net->opt_t = r->resumed.opt_t;
    net->dropout_calls = r->resumed.dropout_calls;
  }
  r->committed = true;
}

/* After the run: free what the net no longer holds, or, if it failed before its first
 * step, put back what commit() replaced, so the net is exactly as before the call.
 * Only the arrays commit() itself swapped out are freed on success: what the net holds
 * afterwards is the net's, and a progress callback may have reset the optimizer
 * (dn_net_reset_optimizer, dn_net_init), which frees the arrays then installed and lets
 * the next step allocate new ones. */
static void finish(train_run *r, dn_net *net, bool roll_back) {
  if (!r->committed) return;
  if (roll_back) { /* no step ran, so no callback did: the net holds what commit() installed */
    if (net->opt_m != r->old_m) dn_free_floats(net->opt_m);
    if (net->opt_v != r->old_v) dn_free_floats(net->opt_v);
    if (r->old_params) set_params(net, r->old_params);
    net->opt_m = r->old_m;
    net->opt_v = r->old_v;
    net->opt_t = r->old_t;
    net->state_absmax_known = false;
    return;
  }
  if (r->replaced_m) dn_free_floats(r->old_m);
  if (r->replaced_v) dn_free_floats(r->old_v);
}

static dn_status train_in_fpenv(dn_net *net, const float *X, const float *Y, size_t m,
                               const dn_train_opts *opts, dn_fpenv *fpenv) {
  dn_status s;
  const size_t n0 = net->n[0], nL = net->n[net->L];
  const size_t batch = opts->batch_size < m ? opts->batch_size : m;
  const size_t batches = (m + batch - 1) / batch;
  const size_t every = opts->checkpoint_every ? opts->checkpoint_every : 1;

  train_run run = {0};
  bool call_open = false;
  size_t steps = 0; /* optimizer steps of this call */
  const float saved_l2 = net->l2_lambda, saved_keep = net->keep_prob;
  const uint64_t saved_seed = net->dropout_seed, saved_calls = net->dropout_calls;
  if ((s = prepare(&run, net, X, Y, m, opts, batch))) {
    free_run(&run);
    return s;
  }
  net->l2_lambda = opts->l2_lambda;
  net->keep_prob = opts->keep_prob;
  net->dropout_seed = opts->seed;
  net->dropout_calls = 0;
  if ((s = dn_net_reserve(net, batch))) goto done;
  commit(&run, net, opts);
  dn_call_enter(); /* workers may spin between this run's jobs; left at done */
  call_open = true;

  const double t_start = dn_now_s();
  bool stop = false;
  for (size_t epoch = run.resumed.epochs_done + 1; epoch <= opts->epochs && !stop; epoch++) {
    const float lr = opts->learning_rate / (1.0f + opts->lr_decay * (float)(epoch - 1));
    if (opts->shuffle) shuffle(run.idx, m, &run.rng);
    const double t_epoch = dn_now_s();
    double cost_sum = 0.0;
    size_t seen = 0, bi = 0;
    for (; bi < batches && !stop; bi++) {
      const size_t start = bi * batch, mb = (m - start) < batch ? (m - start) : batch;
      const float *Xb = X + start * n0, *Yb = Y + start * nL;
      if (opts->shuffle) {
        gather_columns(n0, X, run.idx + start, mb, run.Xb);
        gather_columns(nL, Y, run.idx + start, mb, run.Yb);
        Xb = run.Xb;
        Yb = run.Yb;
      }
      float cost;
      if ((s = dn_forward_pass(net, Xb, mb, true, NULL)) || (s = dn_backward_pass(net, Yb, &cost)) ||
          (s = dn_optim_step(net, opts, lr))) {
        s = fail_because(s, "dn_net_train: %s at epoch %zu, batch %zu (%s): ",
                         s == DN_ERR_NUMERIC ? "training diverged" : "failed", epoch, bi + 1,
                         steps ? "parameters and optimizer state left at the last completed step"
                               : "parameters and optimizer state are as they were before the call");
        goto done;
      }
      steps++;
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
        dn_call_leave(); /* the user's code runs outside the call: no worker spins for it, */
        dn_fpenv_leave(fpenv); /* and in the user's floating-point state */
        stop = opts->progress(&p, opts->progress_user) != 0;
        dn_fpenv_enter(fpenv);
        dn_call_enter();
      }
    }
    const bool epoch_done = bi == batches;
    if (opts->checkpoint_path && epoch_done && (epoch % every == 0 || epoch == opts->epochs || stop) &&
        (s = dn_ckpt_save(opts->checkpoint_path, net, &run.ck, epoch, &run.rng, run.idx))) {
      s = fail_because(s, "dn_net_train: training stopped after epoch %zu, whose checkpoint "
                       "failed (the net holds the parameters after that epoch): ", epoch);
      goto done;
    }
  }
done:
  if (call_open) dn_call_leave();
  net->l2_lambda = saved_l2;
  net->keep_prob = saved_keep;
  net->dropout_seed = saved_seed;
  net->dropout_calls = saved_calls;
  /* The caches and gradients are the run's own, of its last batch under its L2 and
   * dropout settings: a caller's dn_net_backward or dn_net_step needs a new forward. */
  net->have_forward = false;
  net->have_grad = false;
  finish(&run, net, s != DN_OK && steps == 0);
  free_run(&run);
  return s;
}

/* The arguments are checked as the caller sees them (under deepnet's DAZ a subnormal
 * option would read as 0); the run is in deepnet's floating-point state (dn_fpenv), which
 * train_in_fpenv leaves around each progress callback: the user's code runs in the user's
 * state. */
dn_status dn_net_train(dn_net *net, const float *X, const float *Y, size_t m,
                       const dn_train_opts *opts) {
  const dn_status checked = check_train_args(net, X, Y, m, opts);
  if (checked) return checked;
  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  const dn_status s = train_in_fpenv(net, X, Y, m, opts, &fpenv);
  dn_fpenv_leave(&fpenv);
  return s;
}
