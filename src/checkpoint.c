/* Training checkpoints: the whole state of a dn_net_train run, saved crash-safely every
 * few epochs, and checked against the run before it is resumed.
 *
 * Format version 2, little-endian (the helpers of model_io.h), P = the net's parameter
 * count, L its layers, m the run's examples:
 *
 *   size       field
 *   8          magic 89 'D' 'N' 'C' 0D 0A 1A 0A
 *   4          u32 format version (2)
 *   8 + 12L    the net: u32 L, u64 n[0..L], u32 g[1..L], u32 loss (as in a model file)
 *   4 + 4      u32 optimizer, u32 shuffle (0/1)
 *   8 + 8 + 8  u64 m, u64 batch_size, u64 seed
 *   7 x 4      float32 learning_rate, beta1, beta2, epsilon, l2_lambda, keep_prob, lr_decay
 *   8          u64 fingerprint of the training data (X and Y)
 *   8          u64 epochs done
 *   8 + 8      u64 Adam step count, u64 dropout passes so far
 *   32         u64 x 4: the shuffle generator's state after those epochs
 *   8m         u64 x m: the example order after those epochs (a permutation of 0..m-1),
 *              only when shuffle is 1
 *   4          u32 optimizer arrays present: bit 0 velocity / first moment, bit 1 second
 *   4P         float32 parameters, the net's flat order (W1 b1 W2 b2 ...)
 *   4P each    float32 first moment, then second moment, when present
 *   4          u32 CRC-32 of every byte before it
 *
 * Everything up to the arrays is the "run" part: a checkpoint resumes only a run whose
 * net and run fields are identical, so the continuation is bitwise the same. Loading
 * first checks the CRC over the whole file in a streaming pass (no allocation), so a
 * damaged file is DN_ERR_FORMAT and only a sound one of another run is DN_ERR_STATE;
 * every array is sized from the caller's net, never from the file.
 *
 * Version 1 (before 2026-11-29) had no example order: resuming replayed the shuffles of
 * every epoch done, as many as the file claimed, so a forged count (2^60 epochs under a
 * valid CRC) hung the resume. Version 2 stores the order; no work on loading depends on a
 * count read from the file beyond the file's own size. Version 1 files are refused. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "checkpoint.h"
#include "model_io.h"

static const uint8_t CKPT_MAGIC[8] = {0x89, 'D', 'N', 'C', 0x0D, 0x0A, 0x1A, 0x0A};
enum { CKPT_VERSION = 2, HAS_M = 1, HAS_V = 2 };
/* No run takes 2^62 Adam steps (146 years at a step a nanosecond): a larger count is a
 * damaged or forged file, and t + 1 must not wrap in the bias correction. */
#define MAX_ADAM_STEPS ((uint64_t)1 << 62)

/* The float hyperparameters, in file order, with their names for messages. */
enum { N_HYPER = 7 };
static void hyper_values(const dn_train_opts *o, float v[N_HYPER]) {
  const float all[N_HYPER] = {o->learning_rate, o->beta1, o->beta2, o->epsilon,
                              o->l2_lambda, o->keep_prob, o->lr_decay};
  memcpy(v, all, sizeof all);
}
static const char *const HYPER_NAMES[N_HYPER] = {"learning_rate", "beta1", "beta2", "epsilon",
                                                 "l2_lambda", "keep_prob", "lr_decay"};

uint64_t dn_ckpt_data_hash(const float *X, size_t n0, const float *Y, size_t nL, size_t m) {
  /* Four independent multiply-xor lanes over the float bits, folded at the end:
   * about 10 ms per 100 MB, once per dn_net_train call with checkpoints. */
  uint64_t h[4] = {n0, nL, m, 0x9E3779B97F4A7C15ull};
  const float *arrays[2] = {X, Y};
  const size_t counts[2] = {n0 * m, nL * m};
  for (int a = 0; a < 2; a++) {
    const float *x = arrays[a];
    const size_t n = counts[a];
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int k = 0; k < 4; k++) h[k] = (h[k] ^ dn_float_bits(x[i + (size_t)k])) * 0x100000001B3ull;
    for (; i < n; i++) h[0] = (h[0] ^ dn_float_bits(x[i])) * 0x100000001B3ull;
  }
  uint64_t r = 0;
  for (int k = 0; k < 4; k++) r = (r ^ h[k] ^ (h[k] >> 29)) * 0xBF58476D1CE4E5B9ull;
  return r ^ (r >> 32);
}

/* ---- saving ---------------------------------------------------------------- */

typedef struct save_ctx {
  const dn_net *net;
  const dn_ckpt_run *run;
  size_t epochs_done;
  const dn_rng *rng;
  const size_t *order;
} save_ctx;

static void write_checkpoint(dn_writer *w, const void *p) {
  const save_ctx *c = p;
  const dn_net *net = c->net;
  const dn_train_opts *o = c->run->opts;
  dn_writer_bytes(w, CKPT_MAGIC, sizeof CKPT_MAGIC);
  dn_writer_u32(w, CKPT_VERSION);
  dn_writer_net_desc(w, net);
  dn_writer_u32(w, (uint32_t)o->optimizer);
  dn_writer_u32(w, o->shuffle != 0);
  dn_writer_u64(w, c->run->m);
  dn_writer_u64(w, o->batch_size);
  dn_writer_u64(w, o->seed);
  float hyper[N_HYPER];
  hyper_values(o, hyper);
  dn_writer_floats(w, hyper, N_HYPER);
  dn_writer_u64(w, c->run->data_hash);
  dn_writer_u64(w, c->epochs_done);
  dn_writer_u64(w, net->opt_t);
  dn_writer_u64(w, net->dropout_calls);
  for (int i = 0; i < 4; i++) dn_writer_u64(w, c->rng->s[i]);
  if (o->shuffle)
    for (size_t j = 0; j < c->run->m; j++) dn_writer_u64(w, c->order[j]);
  dn_writer_u32(w, (net->opt_m ? HAS_M : 0) | (net->opt_v ? HAS_V : 0));
  dn_writer_floats(w, net->params, net->n_params);
  if (net->opt_m) dn_writer_floats(w, net->opt_m, net->n_params);
  if (net->opt_v) dn_writer_floats(w, net->opt_v, net->n_params);
}

static dn_status check_finite_arrays(const dn_net *net, dn_status status, const char *path,
                                     const char *consequence) {
  const float *arrays[3] = {net->params, net->opt_m, net->opt_v};
  static const char *const names[3] = {"parameter", "first moment", "second moment"};
  for (int a = 0; a < 3; a++)
    for (size_t i = 0; arrays[a] && i < net->n_params; i++)
      if (!isfinite(arrays[a][i]))
        return dn_fail(status, "checkpoint: '%s': %s %zu is not finite (%g)%s", path, names[a], i,
                       (double)arrays[a][i], consequence);
  return DN_OK;
}

dn_status dn_ckpt_save(const char *path, const dn_net *net, const dn_ckpt_run *run,
                       size_t epochs_done, const dn_rng *rng, const size_t *order) {
  /* A state the loader would refuse must not replace a good checkpoint. */
  const dn_status s = check_finite_arrays(net, DN_ERR_NUMERIC, path, "; nothing written");
  if (s) return s;
  const save_ctx c = {.net = net, .run = run, .epochs_done = epochs_done, .rng = rng, .order = order};
  return dn_save_atomic(path, "checkpoint", write_checkpoint, &c);
}

/* ---- loading --------------------------------------------------------------- */

static const char WHO[] = "checkpoint";

/* Pass 1: magic, version and the CRC over the whole file, streamed. */
static dn_status check_whole_file(dn_reader *r) {
  uint8_t buf[16384];
  if (r->size < sizeof CKPT_MAGIC + 8) {
    const size_t n = (size_t)r->size;
    dn_status s = dn_reader_bytes(r, buf, n, "magic");
    if (s) return s;
    if (memcmp(buf, CKPT_MAGIC, n < sizeof CKPT_MAGIC ? n : sizeof CKPT_MAGIC) != 0)
      return dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset 0: bad magic, not a deepnet checkpoint",
                     WHO, r->path);
    return dn_fail(DN_ERR_FORMAT, "%s: '%s': truncated: the file ends at byte offset %zu, inside "
                   "the header", WHO, r->path, n);
  }
  dn_status s = dn_reader_bytes(r, buf, 12, "header");
  if (s) return s;
  if (memcmp(buf, CKPT_MAGIC, sizeof CKPT_MAGIC) != 0)
    return dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset 0: bad magic, not a deepnet checkpoint%s",
                   WHO, r->path,
                   memcmp(buf, dn_model_magic, sizeof dn_model_magic) == 0 ? " (it is a model file)" : "");
  const uint32_t version = dn_get_u32(buf + 8);
  if (version != CKPT_VERSION)
    return dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset 8: format version %u, this library reads "
                   "version %d", WHO, r->path, version, CKPT_VERSION);
  for (uint64_t left = r->size - 4 - r->offset; left > 0;) {
    const size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
    if ((s = dn_reader_bytes(r, buf, k, "data"))) return s;
    left -= k;
  }
  return dn_reader_crc(r);
}

/* A field of the run that must equal ours. */
#define SAME(have, want, fmt, what)                                                            \
  do {                                                                                         \
    if ((have) != (want))                                                                      \
      return dn_fail(DN_ERR_STATE, "%s: '%s' is of another run: %s " fmt " there, " fmt        \
                     " here", WHO, r->path, what, have, want);                                 \
  } while (0)

/* Pass 2, the net's description and the run fields: all must match. */
static dn_status check_run(dn_reader *r, const dn_net *net, const dn_ckpt_run *run) {
  const dn_train_opts *o = run->opts;
  uint32_t u;
  uint64_t v;
  dn_status s;
  if ((s = dn_reader_u32(r, &u, "header"))) return s;
  if (u == 0 || u > DN_MAX_LAYERS) /* no net has these: a damaged file, not another run */
    return dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset 12: a layer count of %u is not 1..%d", WHO,
                   r->path, u, DN_MAX_LAYERS);
  if (u != net->L)
    return dn_fail(DN_ERR_STATE, "%s: '%s' is of a %u-layer net, this net has %zu layers", WHO,
                   r->path, u, net->L);
  for (size_t l = 0; l <= net->L; l++) {
    if ((s = dn_reader_u64(r, &v, "header"))) return s;
    if (v != net->n[l])
      return dn_fail(DN_ERR_STATE, "%s: '%s' is of another net: n[%zu] = %llu there, %zu here",
                     WHO, r->path, l, (unsigned long long)v, net->n[l]);
  }
  for (size_t l = 1; l <= net->L; l++) {
    if ((s = dn_reader_u32(r, &u, "header"))) return s;
    if (u != (uint32_t)net->act[l])
      return dn_fail(DN_ERR_STATE, "%s: '%s' is of another net: activation %u of layer %zu there, "
                     "%s here", WHO, r->path, u, l, dn_act_name(net->act[l]));
  }
  if ((s = dn_reader_u32(r, &u, "header"))) return s;
  SAME(u, (uint32_t)net->loss, "%u", "loss code");
  if ((s = dn_reader_u32(r, &u, "header"))) return s;
  if (u != (uint32_t)o->optimizer) {
    static const char *const names[] = {[DN_OPT_GD] = "gd", [DN_OPT_MOMENTUM] = "momentum",
                                        [DN_OPT_ADAM] = "adam"};
    char there[24];
    if (u < 3)
      snprintf(there, sizeof there, "%s", names[u]);
    else
      snprintf(there, sizeof there, "code %u", u);
    return dn_fail(DN_ERR_STATE, "%s: '%s' is of another run: optimizer %s there, %s here", WHO,
                   r->path, there, names[o->optimizer]);
  }
  if ((s = dn_reader_u32(r, &u, "header"))) return s;
  SAME(u, (uint32_t)(o->shuffle != 0), "%u", "shuffle");
  if ((s = dn_reader_u64(r, &v, "header"))) return s;
  SAME((unsigned long long)v, (unsigned long long)run->m, "%llu", "m (examples)");
  if ((s = dn_reader_u64(r, &v, "header"))) return s;
  SAME((unsigned long long)v, (unsigned long long)o->batch_size, "%llu", "batch_size");
  if ((s = dn_reader_u64(r, &v, "header"))) return s;
  SAME((unsigned long long)v, (unsigned long long)o->seed, "%llu", "seed");
  float have[N_HYPER], want[N_HYPER];
  if ((s = dn_reader_floats(r, have, N_HYPER, "header"))) return s;
  hyper_values(o, want);
  for (int i = 0; i < N_HYPER; i++)
    if (dn_float_bits(have[i]) != dn_float_bits(want[i]))
      return dn_fail(DN_ERR_STATE, "%s: '%s' is of another run: %s %.9g there, %.9g here", WHO,
                     r->path, HYPER_NAMES[i], (double)have[i], (double)want[i]);
  if ((s = dn_reader_u64(r, &v, "header"))) return s;
  if (v != run->data_hash)
    return dn_fail(DN_ERR_STATE, "%s: '%s' is of another run: it was trained on other data (X or Y "
                   "differ)", WHO, r->path);
  return DN_OK;
}

/* The example order: m u64 indices that must be a permutation of 0..m-1. */
static dn_status read_order(dn_reader *r, size_t m, size_t **out) {
  const uint64_t at = r->offset;
  size_t *order = malloc((m ? m : 1) * sizeof *order);
  uint64_t *seen = calloc(m / 64 + 1, sizeof *seen);
  dn_status s = DN_OK;
  if (!order || !seen) s = dn_fail(DN_ERR_NOMEM, "%s: out of memory for the order of %zu examples", WHO, m);
  for (size_t j = 0; j < m && !s; j++) {
    uint64_t v;
    if ((s = dn_reader_u64(r, &v, "example order"))) break;
    if (v >= m || ((seen[v / 64] >> (v % 64)) & 1))
      s = dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset %llu: the example order is not a permutation "
                  "of 0..%zu (%s %llu)", WHO, r->path, (unsigned long long)(at + 8 * j), m - 1,
                  v >= m ? "index" : "repeated index", (unsigned long long)v);
    else {
      seen[v / 64] |= (uint64_t)1 << (v % 64);
      order[j] = (size_t)v;
    }
  }
  free(seen);
  if (s) {
    free(order);
    return s;
  }
  *out = order;
  return DN_OK;
}

dn_status dn_ckpt_load(const char *path, const dn_net *net, const dn_ckpt_run *run,
                       dn_ckpt_state *st) {
  *st = (dn_ckpt_state){0};
  dn_reader r;
  dn_status s = dn_reader_open(&r, path, WHO);
  if (s) return s;
  if ((s = check_whole_file(&r))) goto fail;
  /* Pass 2 reads the same bytes again (and checks the CRC again at the end: the file
   * may have been rewritten in place meanwhile). */
  uint8_t head[12];
  if (lseek(r.fd, 0, SEEK_SET) != 0) {
    s = dn_fail(DN_ERR_IO, "%s: '%s': seek failed: %s", WHO, path, strerror(errno));
    goto fail;
  }
  r.offset = 0;
  r.crc = 0;
  if ((s = dn_reader_bytes(&r, head, sizeof head, "header")) || (s = check_run(&r, net, run)))
    goto fail;

  uint64_t epochs, opt_t, calls;
  uint32_t arrays;
  if ((s = dn_reader_u64(&r, &epochs, "header")) || (s = dn_reader_u64(&r, &opt_t, "header")) ||
      (s = dn_reader_u64(&r, &calls, "header")))
    goto fail;
  for (int i = 0; i < 4 && !s; i++) s = dn_reader_u64(&r, &st->rng.s[i], "header");
  if (s) goto fail;
  if (opt_t >= MAX_ADAM_STEPS) {
    s = dn_fail(DN_ERR_FORMAT, "%s: '%s': %llu Adam steps is beyond any run", WHO, path,
                (unsigned long long)opt_t);
    goto fail;
  }
  const size_t m = run->m;
  if (run->opts->shuffle) {
    /* The order's size is checked against the file before it is allocated: m came from
     * the caller, and a file too short for m indices is damaged, not a reason to try. */
    if (r.size - r.offset < 8 * (uint64_t)m + 8) {
      s = dn_fail(DN_ERR_FORMAT, "%s: '%s': %llu bytes, too few for the order of %zu examples",
                  WHO, path, (unsigned long long)r.size, m);
      goto fail;
    }
    if ((s = read_order(&r, m, &st->order))) goto fail;
  }
  if ((s = dn_reader_u32(&r, &arrays, "header"))) goto fail;
  const uint64_t at = r.offset;
  if (arrays & ~(uint32_t)(HAS_M | HAS_V)) {
    s = dn_fail(DN_ERR_FORMAT, "%s: '%s': byte offset %llu: unknown optimizer arrays 0x%x", WHO,
                path, (unsigned long long)(at - 4), arrays);
    goto fail;
  }
  const uint64_t n_arrays = 1 + !!(arrays & HAS_M) + !!(arrays & HAS_V);
  const uint64_t want = at + 4 * (uint64_t)net->n_params * n_arrays + 4;
  if (want != r.size) {
    s = dn_fail(DN_ERR_FORMAT, "%s: '%s': %llu bytes, but its header describes %llu", WHO, path,
                (unsigned long long)r.size, (unsigned long long)want);
    goto fail;
  }
  if ((size_t)epochs != epochs) {
    s = dn_fail(DN_ERR_FORMAT, "%s: '%s': %llu epochs done is beyond this machine", WHO, path,
                (unsigned long long)epochs);
    goto fail;
  }
  st->epochs_done = (size_t)epochs;
  st->opt_t = opt_t;
  st->dropout_calls = calls;

  /* Sized by the caller's net: the file has been checked to hold exactly these. */
  st->params = dn_alloc_floats(net->n_params);
  if (arrays & HAS_M) st->opt_m = dn_alloc_floats(net->n_params);
  if (arrays & HAS_V) st->opt_v = dn_alloc_floats(net->n_params);
  if (!st->params || (arrays & HAS_M && !st->opt_m) || (arrays & HAS_V && !st->opt_v)) {
    s = dn_fail(DN_ERR_NOMEM, "%s: out of memory for %zu parameters", WHO, net->n_params);
    goto fail;
  }
  if ((s = dn_reader_floats(&r, st->params, net->n_params, "parameters")) ||
      (st->opt_m && (s = dn_reader_floats(&r, st->opt_m, net->n_params, "first moments"))) ||
      (st->opt_v && (s = dn_reader_floats(&r, st->opt_v, net->n_params, "second moments"))) ||
      (s = dn_reader_crc(&r)))
    goto fail;
  const dn_net view = {.n_params = net->n_params, .params = st->params, .opt_m = st->opt_m,
                       .opt_v = st->opt_v};
  if ((s = check_finite_arrays(&view, DN_ERR_FORMAT, path, ""))) goto fail;
  dn_reader_close(&r);
  return DN_OK;
fail:
  dn_reader_close(&r);
  dn_ckpt_state_free(st);
  return s;
}

void dn_ckpt_state_free(dn_ckpt_state *st) {
  dn_free_floats(st->params);
  dn_free_floats(st->opt_m);
  dn_free_floats(st->opt_v);
  free(st->order);
  *st = (dn_ckpt_state){0};
}
