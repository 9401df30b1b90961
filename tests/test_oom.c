/* Out of memory: for every k, failing the k-th allocation of a call makes it return
 * DN_ERR_NOMEM, leaves the net, its outputs and the files as they were, and leaks
 * nothing (the live blocks are the same before and after; LSan in the sanitizer build).
 * Allocations are failed through tests/fault_alloc.c (linked with -Wl,--wrap=...). */
#include <criterion/criterion.h>
#include <pthread.h>

#include "checkpoint.h"
#include "fault_alloc.h"
#include "test_util.h"
#include "tmpdir.h"

/* One thread: no pool threads, and the GEMM packing buffer is this thread's, grown once
 * by the warm-up below (its growth is not a leak). */
static void setup(void) {
  tt_setup();
  cr_assert_eq(dn_set_num_threads(1), DN_OK);
}
TestSuite(oom, .init = setup, .fini = tt_teardown, .timeout = 120);

static size_t heap_in_use(void) { return fa_live(); }

/* Criterion records passing assertions too, allocating as it goes; inside the measured
 * window only a failure may call it. */
#define REQUIRE(cond, ...)                         \
  do {                                             \
    if (!(cond)) cr_assert_fail(__VA_ARGS__);      \
  } while (0)

/* A call under test: prepare (not armed), run (armed), check after a failure (not
 * armed), release. */
typedef struct scenario {
  const char *name;
  void (*prepare)(void *ctx);
  dn_status (*run)(void *ctx);
  void (*check_unchanged)(void *ctx);
  void (*release)(void *ctx);
} scenario;

/* Fail allocation k = 1, 2, ... of run until a run needs no more; returns how many
 * allocation points there were. */
static size_t sweep(const scenario *sc, void *ctx) {
  for (size_t k = 1;; k++) {
    const size_t heap_before = heap_in_use();
    if (sc->prepare) sc->prepare(ctx);
    fa_arm(k, false);
    const dn_status s = sc->run(ctx);
    const bool fired = fa_fired();
    const size_t calls = fa_disarm();
    REQUIRE(fired || s == DN_OK, "%s with no allocation failing: %s (%s)", sc->name,
            dn_status_str(s), dn_last_error());
    REQUIRE(!fired || s == DN_ERR_NOMEM, "%s with allocation %zu failing: %s (%s)", sc->name, k,
            dn_status_str(s), dn_last_error());
    REQUIRE(!fired || strstr(dn_last_error(), "memory"), "%s, allocation %zu: message '%s'",
            sc->name, k, dn_last_error());
    if (fired && sc->check_unchanged) sc->check_unchanged(ctx);
    if (sc->release) sc->release(ctx);
    const size_t heap_after = heap_in_use();
    REQUIRE(heap_after == heap_before, "%s with allocation %zu failing: %zd blocks leaked", sc->name,
            k, (ssize_t)(heap_after - heap_before));
    if (!fired) {
      cr_log_info("%s: %zu allocation points, each failure clean", sc->name, calls);
      return calls;
    }
  }
}

/* ---- nets ---- */

enum { M = 300, N0 = 6, NL = 3, BATCH = 64 };
static const size_t DIMS[] = {N0, 40, 24, NL};
static const dn_act ACTS[] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SOFTMAX};

typedef struct net_ctx {
  dn_net *net;
  float X[N0 * M], Y[NL * M], AL[NL * M];
  float *params, *opt_m, *opt_v;
  uint64_t opt_t;
  dn_train_opts o;
  float keep_prob;
  dn_optimizer optimizer;
  size_t trained;       /* epochs trained before the call (with optimizer state) */
  const char *ckpt;     /* train: checkpoint path */
  int resume;
  size_t epochs;        /* train: 0 means 2 */
} net_ctx;

static float *dup_or_null(const float *x, size_t n) {
  if (!x) return NULL;
  float *c = malloc(n * sizeof *c);
  REQUIRE(c, "out of memory");
  memcpy(c, x, n * sizeof *c);
  return c;
}

static void make_net(net_ctx *c) {
  REQUIRE(!dn_net_create(&c->net, 3, DIMS, ACTS, DN_LOSS_CCE), "%s", dn_last_error());
  REQUIRE(!dn_net_init(c->net, 5), "%s", dn_last_error());
  tu_fill_uniform(c->X, N0 * M, -1, 1, 1);
  tu_fill_one_hot(c->Y, NL, M, 2);
  dn_train_opts_default(&c->o);
  c->o.optimizer = c->optimizer;
  c->o.batch_size = BATCH;
  c->o.epochs = c->epochs ? c->epochs : 2;
  c->o.keep_prob = c->keep_prob ? c->keep_prob : 1.0f;
  if (c->trained) {
    dn_train_opts t = c->o;
    t.epochs = c->trained;
    REQUIRE(!dn_net_train(c->net, c->X, c->Y, M, &t), "%s", dn_last_error());
  }
  c->o.checkpoint_path = c->ckpt;
  c->o.resume = c->resume;
  const dn_net *n = c->net;
  c->params = dup_or_null(n->params, n->n_params);
  c->opt_m = dup_or_null(n->opt_m, n->n_params);
  c->opt_v = dup_or_null(n->opt_v, n->n_params);
  c->opt_t = n->opt_t;
  for (size_t i = 0; i < NL * M; i++) c->AL[i] = -7.0f;
}

static void net_unchanged(void *p) {
  net_ctx *c = p;
  const dn_net *n = c->net;
  REQUIRE(!memcmp(c->params, n->params, n->n_params * sizeof(float)), "parameters changed");
  REQUIRE(!c->opt_m == !n->opt_m, "first moments appeared or vanished");
  REQUIRE(!c->opt_v == !n->opt_v, "second moments appeared or vanished");
  REQUIRE(!c->opt_m || !memcmp(c->opt_m, n->opt_m, n->n_params * sizeof(float)), "first moments changed");
  REQUIRE(!c->opt_v || !memcmp(c->opt_v, n->opt_v, n->n_params * sizeof(float)), "second moments changed");
  REQUIRE(c->opt_t == n->opt_t, "Adam step count changed");
  for (size_t i = 0; i < NL * M; i++) REQUIRE(c->AL[i] == -7.0f, "the output was written");
}

static void free_net(void *p) {
  net_ctx *c = p;
  dn_net_free(c->net);
  free(c->params);
  free(c->opt_m);
  free(c->opt_v);
  c->net = NULL;
  c->params = c->opt_m = c->opt_v = NULL;
}

static void prepare_net(void *p) { make_net(p); }

static dn_status run_forward(void *p) {
  net_ctx *c = p;
  return dn_net_forward(c->net, c->X, M, c->AL);
}

static dn_status run_accuracy(void *p) {
  net_ctx *c = p;
  double acc;
  return dn_net_accuracy(c->net, c->X, c->Y, M, &acc);
}

static dn_status run_train(void *p) {
  net_ctx *c = p;
  return dn_net_train(c->net, c->X, c->Y, M, &c->o);
}

/* Warm the one-time state (dispatch table, topology, this thread's GEMM buffer) so the
 * heap comparison sees only what the call under test does. */
static void warm_up(void) {
  net_ctx *c = calloc(1, sizeof *c);
  c->optimizer = DN_OPT_ADAM;
  c->keep_prob = 0.9f;
  make_net(c);
  cr_assert_eq(run_train(c), DN_OK, "%s", dn_last_error());
  cr_assert_eq(run_forward(c), DN_OK);
  float cost;
  cr_assert_eq(dn_net_backward(c->net, c->Y, &cost), DN_OK);
  cr_assert_eq(run_accuracy(c), DN_OK);
  free_net(c);
  free(c);
}

Test(oom, create_fails_cleanly_at_every_allocation) {
  warm_up();
  dn_net *out = (dn_net *)0x1;
  size_t points = 0;
  for (size_t k = 1;; k++) {
    const size_t before = heap_in_use();
    fa_arm(k, false);
    const dn_status s = dn_net_create(&out, 3, DIMS, ACTS, DN_LOSS_CCE);
    const bool fired = fa_fired();
    points = fa_disarm();
    if (!fired) {
      REQUIRE(s == DN_OK, "%s", dn_last_error());
      dn_net_free(out);
      break;
    }
    REQUIRE(s == DN_ERR_NOMEM, "allocation %zu: %s", k, dn_status_str(s));
    REQUIRE(out == (dn_net *)0x1, "out was written");
    REQUIRE(heap_in_use() == before, "allocation %zu failing leaked", k);
  }
  cr_expect_geq(points, 10, "only %zu allocations seen: is the wrapper linked?", points);
}

Test(oom, forward_and_evaluation_fail_cleanly_on_a_fresh_net) {
  warm_up();
  net_ctx *c = calloc(1, sizeof *c);
  const scenario fwd = {"forward", prepare_net, run_forward, net_unchanged, free_net};
  cr_expect_gt(sweep(&fwd, c), 0);
  net_ctx *d = calloc(1, sizeof *d);
  const scenario acc = {"accuracy", prepare_net, run_accuracy, net_unchanged, free_net};
  cr_expect_gt(sweep(&acc, d), 0);
  free(c);
  free(d);
}

static void prepare_forwarded(void *p) {
  net_ctx *c = p;
  make_net(c);
  REQUIRE(!dn_net_forward(c->net, c->X, M, NULL), "%s", dn_last_error());
}

static dn_status run_backward(void *p) {
  net_ctx *c = p;
  float cost;
  return dn_net_backward(c->net, c->Y, &cost);
}

/* Backward allocates only the packed W^T of a net's first backward pass. */
Test(oom, backward_fails_cleanly_at_every_allocation) {
  warm_up();
  net_ctx *c = calloc(1, sizeof *c);
  const scenario bwd = {"backward", prepare_forwarded, run_backward, net_unchanged, free_net};
  sweep(&bwd, c);
  free(c);
}

static void train_sweep(dn_optimizer opt, float keep_prob, size_t trained) {
  warm_up();
  net_ctx *c = calloc(1, sizeof *c);
  c->optimizer = opt;
  c->keep_prob = keep_prob;
  c->trained = trained;
  const scenario tr = {"train", prepare_net, run_train, net_unchanged, free_net};
  cr_expect_gt(sweep(&tr, c), 0);
  free(c);
}

Test(oom, training_with_gd_fails_cleanly_at_every_allocation) { train_sweep(DN_OPT_GD, 1.0f, 0); }
Test(oom, training_with_momentum_and_dropout_fails_cleanly_at_every_allocation) {
  train_sweep(DN_OPT_MOMENTUM, 0.8f, 0);
}
Test(oom, training_with_adam_on_a_trained_net_keeps_its_state_at_every_failure) {
  train_sweep(DN_OPT_ADAM, 0.8f, 1);
}

/* A failed checkpoint save stops training after that epoch (documented): the net then
 * holds that epoch's parameters. Otherwise nothing changed. Never a temporary file left. */
static void checkpoint_consistent(void *p) {
  if (!strstr(dn_last_error(), "whose checkpoint failed")) net_unchanged(p);
  REQUIRE(tt_count_entries(NULL) <= 1, "a temporary file was left behind");
}

Test(oom, training_with_checkpoints_and_resuming_fail_cleanly_at_every_allocation) {
  warm_up();
  net_ctx *c = calloc(1, sizeof *c);
  char ck[512];
  snprintf(ck, sizeof ck, "%s", tt_path("run.dnc"));
  c->optimizer = DN_OPT_ADAM;
  c->keep_prob = 0.9f;
  c->ckpt = ck;
  const scenario save = {"train with checkpoints", prepare_net, run_train, checkpoint_consistent,
                         free_net};
  cr_expect_gt(sweep(&save, c), 0);
  /* Resuming from the 2-epoch checkpoint to 3 epochs. */
  c->resume = 1;
  c->epochs = 3;
  const scenario resume = {"resume", prepare_net, run_train, checkpoint_consistent, free_net};
  cr_expect_gt(sweep(&resume, c), 0);
  free(c);
}

/* ---- files ---- */

static dn_status run_save(void *p) {
  net_ctx *c = p;
  return dn_net_save(c->net, tt_path("model.dnn"));
}

static void file_unchanged(void *p) {
  net_ctx *c = p;
  dn_net *back = NULL;
  REQUIRE(!dn_net_load(&back, tt_path("model.dnn")), "%s", dn_last_error());
  REQUIRE(!memcmp(back->params, c->params, back->n_params * sizeof(float)), "the file changed");
  dn_net_free(back);
  REQUIRE(tt_count_entries(NULL) == 1, "a temporary file was left behind");
}

static void prepare_saved(void *p) {
  net_ctx *c = p;
  make_net(c);
  REQUIRE(!dn_net_save(c->net, tt_path("model.dnn")), "%s", dn_last_error());
}

static dn_status run_load(void *p) {
  (void)p;
  dn_net *out = (dn_net *)0x1;
  const dn_status s = dn_net_load(&out, tt_path("model.dnn"));
  REQUIRE(!s || out == (dn_net *)0x1, "out was written");
  if (!s) dn_net_free(out);
  return s;
}

Test(oom, saving_a_model_fails_cleanly_at_every_allocation_and_keeps_the_old_file) {
  warm_up();
  net_ctx *c = calloc(1, sizeof *c);
  const scenario save = {"save", prepare_saved, run_save, file_unchanged, free_net};
  cr_expect_gt(sweep(&save, c), 0);
  free(c);
}

Test(oom, loading_a_model_fails_cleanly_at_every_allocation) {
  warm_up();
  net_ctx *c = calloc(1, sizeof *c);
  const scenario load = {"load", prepare_saved, run_load, NULL, free_net};
  cr_expect_gt(sweep(&load, c), 0);
  free(c);
}

typedef struct data_ctx {
  const char *images, *labels, *csv;
  dn_dataset d;
} data_ctx;

static dn_status run_load_idx(void *p) {
  data_ctx *c = p;
  memset(&c->d, 0xAB, sizeof c->d);
  const dn_status s = dn_dataset_load_idx(&c->d, c->images, c->labels);
  if (!s) dn_dataset_free(&c->d);
  return s;
}

static dn_status run_load_csv(void *p) {
  data_ctx *c = p;
  memset(&c->d, 0xAB, sizeof c->d);
  const dn_status s = dn_dataset_load_csv(&c->d, c->csv, NULL);
  if (!s) dn_dataset_free(&c->d);
  return s;
}

static void dataset_untouched(void *p) {
  data_ctx *c = p;
  dn_dataset want;
  memset(&want, 0xAB, sizeof want);
  REQUIRE(!memcmp(&want, &c->d, sizeof want), "the output set was written");
}

Test(oom, the_idx_and_csv_loaders_fail_cleanly_at_every_allocation) {
  warm_up();
  enum { COUNT = 50, SIDE = 4 };
  unsigned char img[16 + COUNT * SIDE * SIDE], lab[8 + COUNT];
  const unsigned char ih[16] = {0, 0, 8, 3, 0, 0, 0, COUNT, 0, 0, 0, SIDE, 0, 0, 0, SIDE};
  const unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, COUNT};
  memcpy(img, ih, 16);
  memcpy(lab, lh, 8);
  for (size_t i = 0; i < COUNT * SIDE * SIDE; i++) img[16 + i] = (unsigned char)(i * 37);
  for (size_t j = 0; j < COUNT; j++) lab[8 + j] = (unsigned char)(j % 10);
  data_ctx c = {0};
  char images[512], labels[512], csv[512];
  snprintf(images, sizeof images, "%s", tt_write("img.gz", img, sizeof img, 1));
  snprintf(labels, sizeof labels, "%s", tt_write("lab", lab, sizeof lab, 0));
  snprintf(csv, sizeof csv, "%s", tt_write_str("d.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,2\n"));
  c.images = images;
  c.labels = labels;
  c.csv = csv;
  const scenario idx = {"IDX loader", NULL, run_load_idx, dataset_untouched, NULL};
  cr_expect_gt(sweep(&idx, &c), 0);
  const scenario csvs = {"CSV loader", NULL, run_load_csv, dataset_untouched, NULL};
  cr_expect_gt(sweep(&csvs, &c), 0);
}

/* ---- GEMM: its packing buffer is documented to fall back to the stack ---- */

enum { GM = 150, GN = 70, GK = 90 };
typedef struct gemm_ctx {
  float A[GM * GK], B[GK * GN], C[GM * GN];
  dn_status s;
  size_t failed;
} gemm_ctx;

/* A fresh thread has no packing buffer yet, so its first GEMM must allocate one. */
static void *gemm_with_every_allocation_failing(void *p) {
  gemm_ctx *c = p;
  fa_arm(1, true);
  c->s = dn_sgemm('N', 'N', GM, GN, GK, 1.0f, c->A, GM, c->B, GK, 0.0f, c->C, GM);
  c->failed = fa_fired();
  fa_disarm();
  return NULL;
}

Test(oom, gemm_without_memory_for_its_packing_buffer_gives_the_same_bits_from_the_stack) {
  gemm_ctx *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
  tu_fill_uniform(want->A, GM * GK, -1, 1, 3);
  tu_fill_uniform(want->B, GK * GN, -1, 1, 4);
  memcpy(got->A, want->A, sizeof want->A);
  memcpy(got->B, want->B, sizeof want->B);
  cr_assert_eq(dn_sgemm('N', 'N', GM, GN, GK, 1.0f, want->A, GM, want->B, GK, 0.0f, want->C, GM), DN_OK);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, gemm_with_every_allocation_failing, got), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(got->s, DN_OK, "%s", dn_last_error());
  cr_expect(got->failed, "the GEMM did not try to allocate its packing buffer");
  cr_assert_eq(memcmp(want->C, got->C, sizeof want->C), 0, "the stack fallback changed the result");
  free(want);
  free(got);
}

/* glibc's getline sets no stream error when its buffer cannot grow: the loader must
 * look at errno, or it would return DN_OK with the lines read so far. */
Test(oom, a_csv_read_that_runs_out_of_memory_is_an_error_not_a_shorter_set) {
  const char *path = tt_write_str("g.csv", "1,2,0\n3,4,1\n5,6,2\n");
  dn_dataset d = {0};
  fa_fail_getline(2);
  const dn_status s = dn_dataset_load_csv(&d, path, NULL);
  fa_fail_getline(0);
  cr_expect_eq(s, DN_ERR_NOMEM, "got %s with %zu examples of 3", dn_status_str(s), d.m);
  dn_dataset_free(&d);
}
