/* The net: creation, parameters (one flat array), initialization, caches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *dn_act_name(dn_act a) {
  switch (a) {
    case DN_ACT_LINEAR: return "linear";
    case DN_ACT_RELU: return "relu";
    case DN_ACT_LEAKY_RELU: return "leaky_relu";
    case DN_ACT_SIGMOID: return "sigmoid";
    case DN_ACT_TANH: return "tanh";
    case DN_ACT_SOFTMAX: return "softmax";
  }
  return NULL;
}

const char *dn_loss_name(dn_loss l) {
  switch (l) {
    case DN_LOSS_BCE: return "bce";
    case DN_LOSS_CCE: return "cce";
    case DN_LOSS_MSE: return "mse";
  }
  return NULL;
}

bool dn_layer_keeps_z(const dn_net *net, size_t l) {
  return l == net->L || net->act[l] == DN_ACT_SOFTMAX;
}

/* Also called on a half-built net (dn_net_create's failure path): any of the
 * per-layer arrays may be missing. */
static void free_caches(dn_net *net) {
  for (size_t l = 1; l <= net->L; l++) {
    if (net->Z && net->A && net->Z[l] == net->A[l]) net->Z[l] = NULL; /* an alias, not owned */
    float **per_layer[] = {net->Z, net->A, net->A_drop};
    for (size_t k = 0; k < sizeof per_layer / sizeof *per_layer; k++) {
      if (!per_layer[k]) continue;
      dn_free_floats(per_layer[k][l]);
      per_layer[k][l] = NULL;
    }
  }
  dn_free_floats(net->dA);
  dn_free_floats(net->dZ);
  net->dA = net->dZ = NULL;
  net->m_cap = 0;
}

static void free_copy(size_t L, float **W) {
  if (!W) return;
  for (size_t l = 1; l <= L; l++) dn_free_floats(W[l]);
  free(W);
}

static void free_packed(size_t L, dn_packed_weights *pw) {
  for (size_t c = 0; c < DN_MAX_PACK_COPIES; c++) {
    free_copy(L, pw->W[c]);
    pw->W[c] = NULL;
  }
  pw->copies = 0;
}

size_t dn_packed_layer(const dn_packed_weights *pw, size_t l, const float **out) {
  for (size_t c = 0; c < pw->copies; c++) out[c] = pw->W[c][l];
  return pw->copies;
}

void dn_net_free(dn_net *net) {
  if (!net) return;
  free_caches(net);
  free_packed(net->L, &net->Wp[DN_PACK_FWD]);
  free_packed(net->L, &net->Wp[DN_PACK_BWD]);
  dn_free_floats(net->params);
  dn_free_floats(net->grads);
  dn_free_floats(net->opt_m);
  dn_free_floats(net->opt_v);
  free(net->W);
  free(net->b);
  free(net->dW);
  free(net->db);
  free(net->Z);
  free(net->A);
  free(net->A_drop);
  free(net->n);
  free(net->act);
  free(net);
}

/* Which output activations each loss accepts (the course pairs, plus mse on any
 * elementwise output). */
static bool loss_accepts(dn_loss loss, dn_act out) {
  switch (loss) {
    case DN_LOSS_BCE: return out == DN_ACT_SIGMOID;
    case DN_LOSS_CCE: return out == DN_ACT_SOFTMAX;
    case DN_LOSS_MSE: return out != DN_ACT_SOFTMAX;
  }
  return false;
}

dn_status dn_net_create(dn_net **out, size_t L, const size_t *dims, const dn_act *acts,
                        dn_loss loss) {
  if (!out) return dn_fail(DN_ERR_ARG, "dn_net_create: out is NULL");
  if (!dims || !acts) return dn_fail(DN_ERR_ARG, "dn_net_create: dims or acts is NULL");
  if (L == 0) return dn_fail(DN_ERR_SHAPE, "dn_net_create: L must be at least 1");
  if (L > DN_MAX_LAYERS)
    return dn_fail(DN_ERR_SHAPE, "dn_net_create: L = %zu is more than %d layers", L, DN_MAX_LAYERS);
  if (!dn_loss_name(loss)) return dn_fail(DN_ERR_ARG, "dn_net_create: unknown loss %d", (int)loss);
  size_t n_params = 0;
  for (size_t l = 0; l <= L; l++)
    if (dims[l] == 0) return dn_fail(DN_ERR_SHAPE, "dn_net_create: n[%zu] is 0", l);
  for (size_t l = 1; l <= L; l++) {
    const dn_act a = acts[l - 1];
    if (!dn_act_name(a))
      return dn_fail(DN_ERR_ARG, "dn_net_create: layer %zu has unknown activation %d", l, (int)a);
    if (a == DN_ACT_SOFTMAX && l != L)
      return dn_fail(DN_ERR_ARG, "dn_net_create: softmax is only allowed on the last layer (got it on layer %zu)", l);
    if (a == DN_ACT_SOFTMAX && dims[l] < 2) /* its one output would be 1 whatever the input */
      return dn_fail(DN_ERR_SHAPE, "dn_net_create: a softmax output needs at least 2 units (got 1; "
                     "for one output use sigmoid with bce)");
    size_t w, wb;
    if (!dn_mul_ok(dims[l], dims[l - 1], &w) || __builtin_add_overflow(w, dims[l], &wb) ||
        __builtin_add_overflow(n_params, wb, &n_params) || !dn_floats_bytes(n_params, &w))
      return dn_fail(DN_ERR_SHAPE, "dn_net_create: parameter count overflows at layer %zu", l);
  }
  if (!loss_accepts(loss, acts[L - 1]))
    return dn_fail(DN_ERR_ARG, "dn_net_create: loss %s cannot be used with a %s output layer "
                   "(bce needs sigmoid, cce needs softmax, mse any but softmax)",
                   dn_loss_name(loss), dn_act_name(acts[L - 1]));

  dn_net *net = calloc(1, sizeof *net);
  if (!net) return dn_fail(DN_ERR_NOMEM, "dn_net_create: out of memory");
  net->L = L;
  net->loss = loss;
  net->n_params = n_params;
  net->params_version = 1;
  net->keep_prob = 1.0f;
  net->n = malloc((L + 1) * sizeof *net->n);
  net->act = calloc(L + 1, sizeof *net->act);
  net->W = calloc(L + 1, sizeof *net->W);
  net->b = calloc(L + 1, sizeof *net->b);
  net->dW = calloc(L + 1, sizeof *net->dW);
  net->db = calloc(L + 1, sizeof *net->db);
  net->Z = calloc(L + 1, sizeof *net->Z);
  net->A = calloc(L + 1, sizeof *net->A);
  net->params = dn_alloc_floats(n_params);
  net->grads = dn_alloc_floats(n_params);
  if (!net->n || !net->act || !net->W || !net->b || !net->dW || !net->db || !net->Z || !net->A ||
      !net->params || !net->grads) {
    dn_net_free(net);
    return dn_fail(DN_ERR_NOMEM, "dn_net_create: out of memory for %zu parameters", n_params);
  }
  memcpy(net->n, dims, (L + 1) * sizeof *dims);
  size_t off = 0;
  for (size_t l = 1; l <= L; l++) {
    net->act[l] = acts[l - 1];
    net->W[l] = net->params + off;
    net->dW[l] = net->grads + off;
    off += dims[l] * dims[l - 1];
    net->b[l] = net->params + off;
    net->db[l] = net->grads + off;
    off += dims[l];
  }
  *out = net;
  return DN_OK;
}

dn_status dn_net_check_layer(const dn_net *net, size_t l, const char *fn) {
  if (!net) return dn_fail(DN_ERR_ARG, "%s: net is NULL", fn);
  if (l < 1 || l > net->L)
    return dn_fail(DN_ERR_ARG, "%s: layer %zu is out of range 1..%zu", fn, l, net->L);
  return DN_OK;
}

/* The first Inf/NaN: blocks of 4096 through the kernel table's vector test (this runs on
 * every input, gradient and loaded file; an early-exit isfinite() loop once cost 12% of a
 * training run, the compiler's SSE2 form of a branch-free loop 3% of a layer's forward),
 * then the position inside the one block that has it. */
size_t dn_first_nonfinite(const float *x, size_t count) {
  enum { BLOCK = 4096 };
  const dn_kernel_table *kt = dn_kernels();
  for (size_t start = 0; start < count; start += BLOCK) {
    const size_t n = count - start < BLOCK ? count - start : BLOCK;
    const size_t i = dn_kernels_first_nonfinite(kt, x + start, n);
    if (i < n) return start + i;
  }
  return count;
}

dn_status dn_check_finite(const float *x, size_t count, const char *what) {
  const size_t i = dn_first_nonfinite(x, count);
  if (i < count) return dn_fail(DN_ERR_NUMERIC, "%s[%zu] is not finite (%g)", what, i, (double)x[i]);
  return DN_OK;
}

static dn_status init_in_fpenv(dn_net *net, uint64_t seed) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_init: net is NULL");
  dn_rng rng;
  dn_rng_seed(&rng, seed);
  for (size_t l = 1; l <= net->L; l++) {
    const size_t fan_in = net->n[l - 1], fan_out = net->n[l];
    const bool relu_family = net->act[l] == DN_ACT_RELU || net->act[l] == DN_ACT_LEAKY_RELU;
    /* He: var 2/fan_in; Xavier (Glorot): var 2/(fan_in + fan_out). */
    const double sd = relu_family ? sqrt(2.0 / (double)fan_in)
                                  : sqrt(2.0 / ((double)fan_in + (double)fan_out));
    const size_t count = fan_in * fan_out;
    for (size_t i = 0; i < count; i++) net->W[l][i] = (float)(sd * dn_rng_normal(&rng));
    memset(net->b[l], 0, fan_out * sizeof(float));
  }
  net->params_version++;
  net->have_forward = net->have_grad = false;
  dn_net_reset_optimizer(net);
  return DN_OK;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_init(dn_net *net, uint64_t seed) {
  return DN_IN_FPENV(init_in_fpenv(net, seed));
}

dn_status dn_net_set_layer(dn_net *net, size_t l, const float *W, const float *b) {
  dn_status s = dn_net_check_layer(net, l, "dn_net_set_layer");
  if (s) return s;
  if (!W || !b) return dn_fail(DN_ERR_ARG, "dn_net_set_layer: W or b is NULL");
  const size_t count = net->n[l] * net->n[l - 1];
  if ((s = dn_check_finite(W, count, "dn_net_set_layer: W")) ||
      (s = dn_check_finite(b, net->n[l], "dn_net_set_layer: b")))
    return s;
  memcpy(net->W[l], W, count * sizeof(float));
  memcpy(net->b[l], b, net->n[l] * sizeof(float));
  net->params_version++;
  net->state_absmax_known = false;
  net->have_forward = net->have_grad = false;
  return DN_OK;
}

dn_status dn_net_get_layer(const dn_net *net, size_t l, float *W, float *b) {
  dn_status s = dn_net_check_layer(net, l, "dn_net_get_layer");
  if (s) return s;
  if (W) memcpy(W, net->W[l], net->n[l] * net->n[l - 1] * sizeof(float));
  if (b) memcpy(b, net->b[l], net->n[l] * sizeof(float));
  return DN_OK;
}

dn_status dn_net_get_grad(const dn_net *net, size_t l, float *dW, float *db) {
  dn_status s = dn_net_check_layer(net, l, "dn_net_get_grad");
  if (s) return s;
  if (!net->have_grad)
    return dn_fail(DN_ERR_STATE, "dn_net_get_grad: no gradients yet (call dn_net_backward first)");
  if (dW) memcpy(dW, net->dW[l], net->n[l] * net->n[l - 1] * sizeof(float));
  if (db) memcpy(db, net->db[l], net->n[l] * sizeof(float));
  return DN_OK;
}

size_t dn_net_num_layers(const dn_net *net) { return net ? net->L : 0; }
size_t dn_net_dim(const dn_net *net, size_t l) { return net && l <= net->L ? net->n[l] : 0; }
dn_act dn_net_act(const dn_net *net, size_t l) {
  return net && l >= 1 && l <= net->L ? net->act[l] : DN_ACT_LINEAR;
}
dn_loss dn_net_loss(const dn_net *net) { return net ? net->loss : DN_LOSS_MSE; }

dn_status dn_net_set_l2(dn_net *net, float lambda) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_set_l2: net is NULL");
  if (!(lambda >= 0.0f) || !isfinite(lambda))
    return dn_fail(DN_ERR_ARG, "dn_net_set_l2: lambda must be finite and >= 0 (got %g)", (double)lambda);
  net->l2_lambda = lambda;
  return DN_OK;
}

dn_status dn_net_set_dropout(dn_net *net, float keep_prob, uint64_t seed) {
  if (!net) return dn_fail(DN_ERR_ARG, "dn_net_set_dropout: net is NULL");
  if (!(keep_prob > 0.0f && keep_prob <= 1.0f))
    return dn_fail(DN_ERR_ARG, "dn_net_set_dropout: keep_prob must be in (0, 1] (got %g)", (double)keep_prob);
  net->keep_prob = keep_prob;
  net->dropout_seed = seed;
  net->dropout_calls = 0;
  net->have_forward = false;
  return DN_OK;
}

/* ---- packed weights ---- */

/* Layer l's op(A) in each packing: (rows, depth, trans) of Z = W A or dA_prev = W^T dZ. */
static void packed_shape(const dn_net *net, int which, size_t l, size_t *M, size_t *K, char *t) {
  const bool fwd = which == DN_PACK_FWD;
  *M = fwd ? net->n[l] : net->n[l - 1];
  *K = fwd ? net->n[l - 1] : net->n[l];
  *t = fwd ? 'N' : 'T';
}

static size_t first_packed_layer(int which) { return which == DN_PACK_FWD ? 1 : 2; }

typedef struct pack_job {
  const dn_kernel_table *kt;
  char trans;
  size_t M, K;
  const float *W;
  size_t ldw;
  float *dst;
} pack_job;

static void pack_rows(void *ctx, size_t i0, size_t i1) {
  const pack_job *j = ctx;
  dn_gemm_pack_a_rows(j->kt, j->trans, j->M, j->K, j->W, j->ldw, j->dst, i0, i1);
}

/* Below this many floats per thread, packing one layer stays on one thread. */
#define MIN_PACK_FLOATS_PER_THREAD 65536

/* Copy c of layout `which` for kt, on copy c's node; NULL when out of memory. */
static float **alloc_copy(const dn_net *net, const dn_kernel_table *kt, int which, size_t c,
                          size_t copies) {
  float **W = calloc(net->L + 1, sizeof *W);
  bool ok = W != NULL;
  for (size_t l = first_packed_layer(which); ok && l <= net->L; l++) {
    size_t M, K;
    char t;
    packed_shape(net, which, l, &M, &K, &t);
    const size_t floats = dn_gemm_packed_a_floats(kt, M, K);
    ok = floats != SIZE_MAX && (W[l] = dn_alloc_floats_on_node(floats, dn_copy_node(c, copies))) != NULL;
  }
  if (ok) return W;
  free_copy(net->L, W);
  return NULL;
}

bool dn_training_reads_w_unpacked(bool training) {
  /* The AMX path splits W itself: every pass, at any thread count, reads W as it is (the
   * FMA kernels' packed copies would give other bits). */
  return dn_amx_in_use() || (training && dn_get_num_threads() <= dn_unpacked_w_max_threads());
}

int dn_unpacked_w_max_threads(void) { return dn_cpu_features_get()->amd_zen ? 2 : 1; }

dn_status dn_net_pack_weights(dn_net *net, const dn_kernel_table *kt, int which, bool training) {
  dn_packed_weights *pw = &net->Wp[which];
  /* Reading W unpacked leaves the set as it is: its version still says which parameters
   * it holds, so a later packed pass re-packs only if W changed meanwhile. */
  pw->unpacked = dn_training_reads_w_unpacked(training);
  if (pw->unpacked) return DN_OK;
  const size_t copies = dn_pack_copies(dn_get_num_threads());
  if (pw->kt == kt && pw->copies == copies && pw->version == net->params_version) return DN_OK;
  if (pw->kt != kt || pw->copies != copies) {
    /* First use, another ISA's layout or another number of NUMA nodes in use: new
     * buffers, built aside. */
    dn_packed_weights fresh = {.copies = copies, .kt = kt};
    for (size_t c = 0; c < copies; c++)
      if (!(fresh.W[c] = alloc_copy(net, kt, which, c, copies))) {
        free_packed(net->L, &fresh);
        return dn_fail(DN_ERR_NOMEM, "out of memory for the packed weights");
      }
    free_packed(net->L, pw);
    *pw = fresh;
  }
  for (size_t l = first_packed_layer(which); l <= net->L; l++) {
    pack_job j = {.kt = kt, .W = net->W[l], .ldw = net->n[l]};
    packed_shape(net, which, l, &j.M, &j.K, &j.trans);
    const int threads = dn_threads_for(j.M * j.K, MIN_PACK_FLOATS_PER_THREAD);
    const double t0 = dn_verbose() ? dn_now_s() : 0.0;
    for (size_t c = 0; c < copies; c++) {
      j.dst = pw->W[c][l];
      dn_parallel_for(j.M, dn_gemm_packed_a_width(kt, j.M), threads, pack_rows, &j);
    }
    if (dn_verbose())
      fprintf(stderr, "deepnet: layer %zu pack W%s  %s %zu x %zu copies=%zu threads=%d %.3f ms (once per weight update)\n",
              l, j.trans == 'T' ? "^T" : "  ", dn_isa_name(kt->isa), j.M, j.K, copies, threads,
              (dn_now_s() - t0) * 1e3);
  }
  pw->version = net->params_version;
  return DN_OK;
}

/* Per-example matrices are split over threads by columns: place each block on
 * its thread's NUMA node. */
static float *alloc_matrix(size_t rows, size_t cols) {
  return dn_alloc_matrix_placed(rows, cols, (size_t)dn_get_num_threads());
}

dn_status dn_net_reserve(dn_net *net, size_t m) {
  const bool want_drop = net->keep_prob < 1.0f && net->L > 1;
  if (m <= net->m_cap && (!want_drop || net->A_drop)) return DN_OK;
  const size_t cap = m > net->m_cap ? m : net->m_cap;
  size_t widest = 0;
  for (size_t l = 0; l <= net->L; l++) widest = net->n[l] > widest ? net->n[l] : widest;
  size_t bytes;
  if (!dn_mul_ok(widest, cap, &bytes) || !dn_floats_bytes(bytes, &bytes))
    return dn_fail(DN_ERR_SHAPE, "batch of %zu columns overflows the cache size", m);

  /* Build the new caches aside, so a failure leaves the old ones intact. */
  dn_net tmp = *net;
  float **Z = calloc(net->L + 1, sizeof *Z), **A = calloc(net->L + 1, sizeof *A);
  float **A_drop = want_drop ? calloc(net->L + 1, sizeof *A_drop) : NULL;
  tmp.Z = Z;
  tmp.A = A;
  tmp.A_drop = A_drop;
  tmp.m_cap = cap;
  bool ok = Z && A && (!want_drop || A_drop);
  for (size_t l = 1; ok && l <= net->L; l++) {
    A[l] = alloc_matrix(net->n[l], cap);
    Z[l] = dn_layer_keeps_z(net, l) ? alloc_matrix(net->n[l], cap) : A[l];
    if (A_drop && l < net->L) A_drop[l] = alloc_matrix(net->n[l], cap);
    ok = Z[l] && A[l] && (!A_drop || l == net->L || A_drop[l]);
  }
  tmp.dA = ok ? alloc_matrix(widest, cap) : NULL;
  tmp.dZ = ok ? alloc_matrix(widest, cap) : NULL;
  ok = ok && tmp.dA && tmp.dZ;
  if (!ok) {
    if (Z && A) free_caches(&tmp);
    free(Z);
    free(A);
    free(A_drop);
    return dn_fail(DN_ERR_NOMEM, "out of memory for the caches of a %zu-column batch", m);
  }
  free_caches(net);
  free(net->Z);
  free(net->A);
  free(net->A_drop);
  net->Z = Z;
  net->A = A;
  net->A_drop = A_drop;
  net->dA = tmp.dA;
  net->dZ = tmp.dZ;
  net->m_cap = cap;
  net->have_forward = false;
  return DN_OK;
}
