/* Backward pass, layer L down to 1:
 *   dZ = dA * g'(Z);  dW = (1/m) dZ A_prev^T;  db = (1/m) sum_m dZ;  dA_prev = W^T dZ,
 * with dZ[L] = A[L] - Y directly for sigmoid+bce and softmax+cce; W^T comes pre-packed
 * (or is packed by the GEMM itself: dn_training_reads_w_unpacked). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

typedef struct dz_job {
  const dn_net *net;
  const dn_kernel_table *kt;
  size_t l;
  float *dA, *dZ;
} dz_job;

/* Columns [j0, j1) of layer l: undo the forward dropout on dA, then dZ = dA * g'(Z). A hidden
 * layer's Z is its A (dn_layer_keeps_z): each g' then reads A, which gives the same bits. */
static void layer_dZ(void *ctx, size_t j0, size_t j1) {
  const dz_job *job = ctx;
  const dn_net *net = job->net;
  const size_t l = job->l, off = j0 * net->n[l], count = (j1 - j0) * net->n[l];
  float *dA = job->dA + off;
  if (net->dropout_on && l < net->L)
    for (size_t i = 0; i < count; i++)
      dA[i] *= dn_dropout_multiplier(net->dropout_key, l, off + i, net->keep_prob);
  job->kt->act_bwd[net->act[l]](count, net->Z[l] + off, net->A[l] + off, dA, job->dZ + off);
}

typedef struct db_job {
  const dn_kernel_table *kt;
  size_t rows, m;
  const float *dZ;
  float *db;
} db_job;

/* Rows [i0, i1) of db = (1/m) sum over the columns of dZ: each row's sum runs
 * over all m in one fixed order, so splitting rows keeps the bits. */
static void layer_db(void *ctx, size_t i0, size_t i1) {
  const db_job *job = ctx;
  job->kt->row_sum(i1 - i0, job->m, job->dZ + i0, job->rows, 1.0f / (float)job->m, job->db + i0);
}

typedef struct scan_job {
  const dn_kernel_table *kt;
  const float *g;
  float *absmax;           /* raised to the largest |g| (net->grad_absmax) */
  atomic_size_t first_bad; /* the lowest bad index any range found */
} scan_job;

static void scan_range(void *ctx, size_t i0, size_t i1) {
  scan_job *job = ctx;
  const size_t i = i0 + dn_kernels_scan(job->kt, job->g + i0, i1 - i0, job->absmax);
  if (i == i1) return;
  size_t seen = atomic_load(&job->first_bad);
  while (i < seen && !atomic_compare_exchange_weak(&job->first_bad, &seen, i)) {
  }
}

/* Record offset bad (SIZE_MAX: none) into layer l's gradients (dW then db, contiguous in
 * grads) for the optimizer step, which refuses to apply them. */
static void note_bad_grad(dn_net *net, size_t l, size_t bad) {
  const size_t base = (size_t)(net->dW[l] - net->grads);
  if (bad != SIZE_MAX && base + bad < net->grad_first_bad) net->grad_first_bad = base + bad;
}

/* The whole of layer l's dW and db in one threaded pass: for dW changed after its GEMM
 * (the L2 term), which the GEMM's own scan did not see. */
static void check_layer_grads(dn_net *net, const dn_kernel_table *kt, size_t l) {
  const size_t count = net->n[l] * (net->n[l - 1] + 1);
  scan_job job = {.kt = kt, .g = net->dW[l], .absmax = &net->grad_absmax, .first_bad = SIZE_MAX};
  dn_elementwise_run("check dW", l, count, count, 4096, scan_range, &job);
  note_bad_grad(net, l, atomic_load(&job.first_bad));
}

static void run_layer_dZ(const dn_net *net, const dn_kernel_table *kt, size_t l, float *dA, float *dZ) {
  dz_job job = {.net = net, .kt = kt, .l = l, .dA = dA, .dZ = dZ};
  dn_elementwise_run("dZ", l, net->n[l] * net->m, net->m, 1, layer_dZ, &job);
}

dn_status dn_backward_pass(dn_net *net, const float *Y, float *cost) {
  const size_t L = net->L, m = net->m, nL = net->n[L];
  const double J = dn_loss_cost(net->loss, nL, m, net->Z[L], net->A[L], Y) + dn_l2_cost(net, m);
  if (!isfinite(J) || !isfinite((float)J))
    return dn_fail(DN_ERR_NUMERIC, isfinite(J) ? "dn_net_backward: the cost %g overflows a float"
                                               : "dn_net_backward: the cost is not finite (%g)", J);

  const dn_kernel_table *kt = dn_kernels();
  dn_status s = dn_net_pack_weights(net, kt, DN_PACK_BWD, true);
  if (s) return s;
  dn_fpenv fpenv;
  dn_fpenv_enter(&fpenv);
  const float inv_m = 1.0f / (float)m;
  float *dZ = net->dZ, *dA = net->dA;
  net->grad_first_bad = SIZE_MAX;
  net->grad_absmax = 0.0f;

  if (net->loss == DN_LOSS_MSE) { /* dJ/dA (times m) = A - Y, then through g' */
    kt->sub(nL * m, net->A[L], Y, dA);
    run_layer_dZ(net, kt, L, dA, dZ);
  } else {
    kt->sub(nL * m, net->A[L], Y, dZ);
  }

  bool db_done = false; /* db[l] already summed by the epilogue that made dZ[l] */
  for (size_t l = L; l >= 1; l--) {
    const size_t rows = net->n[l], cols = net->n[l - 1];
    const float *A_prev = dn_layer_input(net, l - 1);
    /* dW's GEMM scans each finished part of dW for Inf/NaN while it is in cache; with an
     * L2 term (added after the GEMM) one pass over dW and db scans it all instead. */
    size_t dW_bad = SIZE_MAX; /* read once the GEMM's threads have joined */
    const bool l2 = net->l2_lambda != 0.0f;
    const dn_gemm_epilogue scan = {.first_nonfinite = &dW_bad, .absmax = &net->grad_absmax};
    dn_gemm_run("dW", l, 'N', 'T', rows, cols, m, inv_m, dZ, rows, A_prev, cols, 0.0f, net->dW[l],
                rows, l2 ? NULL : &scan);
    if (l2) { /* d/dW of (lambda/2m)||W||^2 */
      const float k = net->l2_lambda * inv_m;
      float *dW = net->dW[l];
      const float *W = net->W[l];
      for (size_t i = 0; i < rows * cols; i++) dW[i] += k * W[i];
    }
    if (!db_done) { /* else the dA_prev GEMM of layer l + 1 summed it (below) */
      db_job dbj = {.kt = kt, .rows = rows, .m = m, .dZ = dZ, .db = net->db[l]};
      dn_elementwise_run("db", l, rows * m, rows, 16, layer_db, &dbj);
    }
    if (l2) {
      check_layer_grads(net, kt, l);
    } else {
      const size_t db_bad = dn_kernels_scan(kt, net->db[l], rows, &net->grad_absmax);
      note_bad_grad(net, l, dW_bad != SIZE_MAX ? dW_bad : db_bad < rows ? rows * cols + db_bad
                                                                         : SIZE_MAX);
    }
    if (l == 1) break;
    /* dA_prev's epilogue turns each finished tile into dZ[l-1] = dA * g'(A[l-1]) in place,
     * while it is in cache, and adds its columns to db[l-1]'s row sums (in column order, the
     * threads splitting rows: row_sum's chains, so the same bits); the two scratch buffers
     * then swap roles (dZ[l] is the GEMM's operand, so it cannot be overwritten during it).
     * Dropout, whose mask depends on the element's index, and a layer that keeps Z (not a
     * hidden one) take the separate passes. */
    const bool fuse_dZ = !(net->dropout_on && l - 1 < L) && !dn_layer_keeps_z(net, l - 1);
    const bool linear = net->act[l - 1] == DN_ACT_LINEAR; /* dZ = dA: nothing to do */
    float *const db_prev = net->db[l - 1];
    const dn_gemm_epilogue dZ_of_dA = {.act = net->act[l - 1], .out = linear ? NULL : dA,
                                       .grad_of = net->A[l - 1], .row_acc = db_prev};
    if (fuse_dZ)
      for (size_t i = 0; i < cols; i++) db_prev[i] = 0.0f;
    const char *what = fuse_dZ ? "dA_prev,dZ,db" : "dA_prev";
    const dn_gemm_epilogue *ep = fuse_dZ ? &dZ_of_dA : NULL;
    if (net->Wp[DN_PACK_BWD].unpacked) { /* the GEMM packs W^T as it goes: the copy's bytes */
      dn_gemm_run(what, l, 'T', 'N', cols, m, rows, 1.0f, net->W[l], rows, dZ, rows, 0.0f, dA,
                  cols, ep);
    } else {
      const float *WT[DN_MAX_PACK_COPIES];
      const size_t copies = dn_packed_layer(&net->Wp[DN_PACK_BWD], l, WT);
      dn_gemm_run_packed(what, l, kt, 'T', cols, m, rows, 1.0f, WT, copies, 'N', dZ, rows, 0.0f,
                         dA, cols, ep);
    }
    db_done = fuse_dZ;
    if (fuse_dZ) {
      for (size_t i = 0; i < cols; i++) db_prev[i] *= inv_m;
      float *const next_dZ = dA;
      dA = dZ;
      dZ = next_dZ;
    } else {
      run_layer_dZ(net, kt, l - 1, dA, dZ);
    }
  }
  dn_fpenv_leave(&fpenv);
  net->have_grad = true;
  if (cost) *cost = (float)J;
  return DN_OK;
}

static dn_status backward_in_fpenv(dn_net *net, const float *Y, float *cost) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_backward: net is NULL");
  if (!Y) return dn_fail(DN_ERR_ARG, "dn_net_backward: Y is NULL");
  if (!net->have_forward)
    return dn_fail(DN_ERR_STATE, "dn_net_backward: no forward pass to differentiate "
                   "(call dn_net_forward first; dn_net_predict does not keep one)");
  dn_status s = dn_check_finite(Y, net->n[net->L] * net->m, "dn_net_backward: Y");
  if (s) return s;
  dn_call_enter();
  s = dn_backward_pass(net, Y, cost);
  dn_call_leave();
  return s;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_backward(dn_net *net, const float *Y, float *cost) {
  return DN_IN_FPENV(backward_in_fpenv(net, Y, cost));
}
