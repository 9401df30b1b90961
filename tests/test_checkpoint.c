/* Checkpoints: a resumed run is bitwise the uninterrupted one; a checkpoint of another
 * run or a damaged one is refused without touching the net; a save killed at any
 * moment leaves the old or the new checkpoint whole. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "checkpoint.h"
#include "crc32.h"
#include "test_util.h"
#include "tmpdir.h"

TestSuite(checkpoint, .init = tt_setup, .fini = tt_teardown, .timeout = 60);

enum { M = 70, N0 = 5, NL = 3 };
static const size_t DIMS[] = {N0, 16, 12, NL};
static const dn_act ACTS[] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SOFTMAX};

typedef struct data {
  float X[N0 * M], Y[NL * M];
} data;

static void make_data(data *d) {
  tu_fill_uniform(d->X, N0 * M, -1.0f, 1.0f, 11);
  tu_fill_one_hot(d->Y, NL, M, 12);
}

static dn_net *make_net(uint64_t seed) {
  dn_net *net = NULL;
  cr_assert_eq(dn_net_create(&net, 3, DIMS, ACTS, DN_LOSS_CCE), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_init(net, seed), DN_OK);
  return net;
}

/* A run that uses every piece of state: shuffling, dropout, L2, decay, a partial batch. */
static dn_train_opts run_opts(dn_optimizer opt, size_t epochs, const char *ckpt, int resume) {
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.optimizer = opt;
  o.learning_rate = opt == DN_OPT_GD ? 0.1f : 0.01f;
  o.batch_size = 16;
  o.epochs = epochs;
  o.seed = 77;
  o.keep_prob = 0.8f;
  o.l2_lambda = 0.01f;
  o.lr_decay = 0.1f;
  o.checkpoint_path = ckpt;
  o.resume = resume;
  return o;
}

static void train_ok(dn_net *net, const data *d, const dn_train_opts *o) {
  cr_assert_eq(dn_net_train(net, d->X, d->Y, M, o), DN_OK, "%s", dn_last_error());
}

/* Parameters and optimizer state, bitwise. */
static void assert_same_state(const dn_net *a, const dn_net *b) {
  cr_assert_eq(a->n_params, b->n_params);
  cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0, "parameters differ");
  cr_assert_eq(a->opt_t, b->opt_t, "Adam step counts %llu and %llu", (unsigned long long)a->opt_t,
               (unsigned long long)b->opt_t);
  cr_assert_eq(!a->opt_m, !b->opt_m);
  cr_assert_eq(!a->opt_v, !b->opt_v);
  if (a->opt_m) cr_assert_eq(memcmp(a->opt_m, b->opt_m, a->n_params * sizeof(float)), 0, "first moments differ");
  if (a->opt_v) cr_assert_eq(memcmp(a->opt_v, b->opt_v, a->n_params * sizeof(float)), 0, "second moments differ");
}

static void assert_same_file(const char *a, const char *b) {
  size_t la, lb;
  unsigned char *fa = tt_read(a, &la), *fb = tt_read(b, &lb);
  cr_assert_eq(la, lb, "%s has %zu bytes, %s %zu", a, la, b, lb);
  cr_assert_eq(memcmp(fa, fb, la), 0, "%s and %s differ", a, b);
  free(fa);
  free(fb);
}

ParameterizedTestParameters(checkpoint, resumed_runs_are_bitwise_the_uninterrupted_run) {
  static dn_optimizer opts[] = {DN_OPT_GD, DN_OPT_MOMENTUM, DN_OPT_ADAM};
  return cr_make_param_array(dn_optimizer, opts, sizeof opts / sizeof *opts);
}

/* 4 epochs straight vs 2, then a fresh process-like start (another net, other weights)
 * resuming to 4: same parameters, same optimizer state, byte-identical final checkpoint. */
ParameterizedTest(dn_optimizer *opt, checkpoint, resumed_runs_are_bitwise_the_uninterrupted_run) {
  data d;
  make_data(&d);
  const char *straight_ck = tt_path("straight.dnc"), *split_ck = tt_path("split.dnc");
  dn_net *plain = make_net(1), *straight = make_net(1), *split = make_net(1), *resumed = make_net(99);
  dn_train_opts o = run_opts(*opt, 4, NULL, 0);
  train_ok(plain, &d, &o);
  o = run_opts(*opt, 4, straight_ck, 0);
  train_ok(straight, &d, &o);
  assert_same_state(plain, straight); /* checkpointing itself changes nothing */

  o = run_opts(*opt, 2, split_ck, 0);
  train_ok(split, &d, &o);
  o = run_opts(*opt, 4, split_ck, 1);
  train_ok(resumed, &d, &o);
  assert_same_state(straight, resumed);
  assert_same_file(straight_ck, split_ck);
  dn_net_free(plain);
  dn_net_free(straight);
  dn_net_free(split);
  dn_net_free(resumed);
}

Test(checkpoint, resuming_after_every_single_epoch_is_still_the_same_run) {
  data d;
  make_data(&d);
  const char *ck = tt_path("steps.dnc");
  dn_net *straight = make_net(1), *stepped = make_net(1);
  dn_train_opts o = run_opts(DN_OPT_ADAM, 4, NULL, 0);
  train_ok(straight, &d, &o);
  for (size_t e = 1; e <= 4; e++) {
    o = run_opts(DN_OPT_ADAM, e, ck, e > 1);
    train_ok(stepped, &d, &o);
  }
  assert_same_state(straight, stepped);
  dn_net_free(straight);
  dn_net_free(stepped);
}

static int stop_in_epoch_4(const dn_progress *p, void *user) {
  (void)user;
  return p->epoch == 4 && p->batch == 2;
}

Test(checkpoint, every_n_epochs_saves_after_multiples_of_n_and_a_stop_mid_epoch_keeps_the_last) {
  data d;
  make_data(&d);
  const char *ck = tt_path("every.dnc");
  dn_net *net = make_net(1);
  dn_train_opts o = run_opts(DN_OPT_MOMENTUM, 6, ck, 0);
  o.checkpoint_every = 3;
  o.progress = stop_in_epoch_4;
  train_ok(net, &d, &o);
  dn_ckpt_state st;
  const dn_ckpt_run run = {.opts = &o, .m = M, .data_hash = dn_ckpt_data_hash(d.X, N0, d.Y, NL, M)};
  cr_assert_eq(dn_ckpt_load(ck, net, &run, &st), DN_OK, "%s", dn_last_error());
  cr_expect_eq(st.epochs_done, 3);
  dn_ckpt_state_free(&st);
  dn_net_free(net);
}

Test(checkpoint, resuming_a_finished_run_restores_it_and_trains_nothing) {
  data d;
  make_data(&d);
  const char *ck = tt_path("done.dnc");
  dn_net *a = make_net(1), *b = make_net(5);
  dn_train_opts o = run_opts(DN_OPT_ADAM, 2, ck, 0);
  train_ok(a, &d, &o);
  o.resume = 1;
  train_ok(b, &d, &o);
  assert_same_state(a, b);
  dn_net_free(a);
  dn_net_free(b);
}

/* ---- refusals: the net is left exactly as it was ---- */

typedef struct snapshot {
  float *params, *opt_m, *opt_v;
  uint64_t opt_t;
  size_t n;
} snapshot;

static float *copy_or_null(const float *x, size_t n) {
  if (!x) return NULL;
  float *c = malloc(n * sizeof *c);
  memcpy(c, x, n * sizeof *c);
  return c;
}

static snapshot take(const dn_net *net) {
  return (snapshot){copy_or_null(net->params, net->n_params), copy_or_null(net->opt_m, net->n_params),
                    copy_or_null(net->opt_v, net->n_params), net->opt_t, net->n_params};
}

static void assert_unchanged(const snapshot *s, const dn_net *net) {
  cr_assert_eq(memcmp(s->params, net->params, s->n * sizeof(float)), 0, "parameters changed");
  cr_assert_eq(!s->opt_m, !net->opt_m, "first moments appeared or vanished");
  cr_assert_eq(!s->opt_v, !net->opt_v, "second moments appeared or vanished");
  if (s->opt_m) cr_assert_eq(memcmp(s->opt_m, net->opt_m, s->n * sizeof(float)), 0);
  if (s->opt_v) cr_assert_eq(memcmp(s->opt_v, net->opt_v, s->n * sizeof(float)), 0);
  cr_assert_eq(s->opt_t, net->opt_t);
}

static void drop(snapshot *s) {
  free(s->params);
  free(s->opt_m);
  free(s->opt_v);
}

/* Resuming net with o must fail with want, name why, and change nothing. */
static void expect_refused(dn_net *net, const float *X, const float *Y, size_t m,
                           const dn_train_opts *o, dn_status want, const char *why) {
  snapshot s = take(net);
  const dn_status got = dn_net_train(net, X, Y, m, o);
  cr_expect_eq(got, want, "%s: got %s (%s)", why, dn_status_str(got), dn_last_error());
  cr_expect(strstr(dn_last_error(), why) != NULL, "message does not say '%s': %s", why, dn_last_error());
  assert_unchanged(&s, net);
  drop(&s);
}

Test(checkpoint, a_checkpoint_of_another_run_is_refused_naming_the_difference) {
  data d;
  make_data(&d);
  const char *ck = tt_path("run.dnc");
  dn_net *net = make_net(1);
  dn_train_opts o = run_opts(DN_OPT_ADAM, 2, ck, 0);
  train_ok(net, &d, &o);
  dn_net *victim = make_net(3);
  o = run_opts(DN_OPT_ADAM, 1, NULL, 0);
  train_ok(victim, &d, &o); /* has Adam state of its own to keep */

  const dn_train_opts base = run_opts(DN_OPT_ADAM, 4, ck, 1);
  dn_train_opts b = base;
  b.batch_size = 17;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "batch_size");
  b = base;
  b.seed = 78;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "seed");
  b = base;
  b.optimizer = DN_OPT_MOMENTUM;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "optimizer adam there, momentum here");
  b = base;
  b.learning_rate = 0.02f;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "learning_rate");
  b = base;
  b.keep_prob = 0.9f;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "keep_prob");
  b = base;
  b.shuffle = 0;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "shuffle");
  b = base;
  b.epochs = 1;
  expect_refused(victim, d.X, d.Y, M, &b, DN_ERR_STATE, "2 epochs done");
  expect_refused(victim, d.X, d.Y, M - 1, &base, DN_ERR_STATE, "m (examples)");
  d.X[17] += 0.5f;
  expect_refused(victim, d.X, d.Y, M, &base, DN_ERR_STATE, "other data");
  d.X[17] -= 0.5f;

  const size_t wider[] = {N0, 17, 12, NL}, deeper[] = {N0, 16, 16, 12, NL};
  const dn_act acts4[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SOFTMAX};
  const dn_act sig[] = {DN_ACT_RELU, DN_ACT_SIGMOID, DN_ACT_SOFTMAX};
  dn_net *other;
  cr_assert_eq(dn_net_create(&other, 3, wider, ACTS, DN_LOSS_CCE), DN_OK);
  expect_refused(other, d.X, d.Y, M, &base, DN_ERR_STATE, "n[1] = 16 there, 17 here");
  dn_net_free(other);
  cr_assert_eq(dn_net_create(&other, 4, deeper, acts4, DN_LOSS_CCE), DN_OK);
  expect_refused(other, d.X, d.Y, M, &base, DN_ERR_STATE, "3-layer net");
  dn_net_free(other);
  cr_assert_eq(dn_net_create(&other, 3, DIMS, sig, DN_LOSS_CCE), DN_OK);
  expect_refused(other, d.X, d.Y, M, &base, DN_ERR_STATE, "activation");
  dn_net_free(other);
  dn_net_free(net);
  dn_net_free(victim);
}

Test(checkpoint, bad_checkpoint_options_are_argument_errors) {
  data d;
  make_data(&d);
  dn_net *net = make_net(1);
  dn_train_opts o = run_opts(DN_OPT_ADAM, 2, NULL, 1);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_ARG, "resume needs checkpoint_path");
  o.checkpoint_path = "";
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_ARG, "checkpoint_path is empty");
  o = run_opts(DN_OPT_ADAM, 2, tt_path("missing.dnc"), 1);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_IO, "missing.dnc");
  dn_net_free(net);
}

Test(checkpoint, a_truncated_bit_flipped_or_foreign_file_is_a_format_error) {
  data d;
  make_data(&d);
  const char *ck = tt_path("good.dnc"), *bad = tt_path("bad.dnc");
  dn_net *net = make_net(1);
  dn_train_opts o = run_opts(DN_OPT_MOMENTUM, 1, ck, 0);
  train_ok(net, &d, &o);
  size_t len;
  unsigned char *file = tt_read(ck, &len);
  o = run_opts(DN_OPT_MOMENTUM, 2, bad, 1);
  for (size_t cut = 0; cut < len; cut += 1 + cut / 16) {
    tt_write("bad.dnc", file, cut, 0);
    expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "bad.dnc");
  }
  for (size_t i = 0; i < len; i += 1 + i / 32) {
    file[i] ^= (unsigned char)(1u << (i % 8));
    tt_write("bad.dnc", file, len, 0);
    expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "bad.dnc");
    file[i] ^= (unsigned char)(1u << (i % 8));
  }
  free(file);
  cr_assert_eq(dn_net_save(net, bad), DN_OK);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "it is a model file");
  dn_net_free(net);
}

/* Byte offsets in a checkpoint of this file's 3-layer net (src/checkpoint.c's format):
 * magic 8, version 4, the net 4 + 8 (L + 1) + 4 L + 4, optimizer and shuffle 8, m, batch
 * and seed 24, seven floats 28, the data fingerprint 8; then the epochs done, the Adam
 * step count, the dropout passes, the generator (32) and the order (8 M). */
enum { AT_VERSION = 8, AT_EPOCHS = 12 + 4 + 8 * 4 + 4 * 3 + 4 + 8 + 24 + 28 + 8,
       AT_ADAM_T = AT_EPOCHS + 8, AT_ORDER = AT_EPOCHS + 24 + 32 };

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The file with one field changed and its CRC made right again: damage only a reader
 * that checks the field itself can catch. */
static void write_forged(const char *name, const unsigned char *file, size_t len, size_t at,
                         uint64_t value, size_t width) {
  unsigned char *f = malloc(len);
  memcpy(f, file, len);
  if (width == 8)
    put_u64(f + at, value);
  else
    for (size_t i = 0; i < width; i++) f[at + i] = (unsigned char)(value >> (8 * i));
  const uint32_t crc = dn_crc32_update(0, f, len - 4);
  for (int i = 0; i < 4; i++) f[len - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
  tt_write(name, f, len, 0);
  free(f);
}

static int stop_at_once(const dn_progress *p, void *user) {
  (void)p;
  (*(size_t *)user)++;
  return 1;
}

/* The epochs-done count is the file's word: before format 2 the resume replayed that many
 * shuffles, so 2^60 under a valid CRC (with epochs = SIZE_MAX, "until the callback says
 * stop") never returned. Now the order is read, not replayed: the resume starts at once,
 * at epoch 2^60 + 1. */
/* One Adam epoch on d by a fresh net, checkpointed: the net and the checkpoint's bytes. */
static unsigned char *one_epoch_checkpoint(const data *d, dn_net **net, size_t *len) {
  const char *ck = tt_path("real.dnc");
  *net = make_net(1);
  const dn_train_opts o = run_opts(DN_OPT_ADAM, 1, ck, 0);
  train_ok(*net, d, &o);
  return tt_read(ck, len);
}

/* (The suite's 60 s timeout catches the old hang. A test's own .timeout made Criterion's
 * runner leak 48 bytes under --jobs 2 in 8 of 10 ASan runs, so none here.) */
Test(checkpoint, a_forged_epoch_count_resumes_at_once_without_replaying_shuffles) {
  data d;
  make_data(&d);
  dn_net *net;
  size_t len, reports = 0;
  unsigned char *file = one_epoch_checkpoint(&d, &net, &len);
  write_forged("forged.dnc", file, len, AT_EPOCHS, (uint64_t)1 << 60, 8);
  dn_train_opts o = run_opts(DN_OPT_ADAM, SIZE_MAX, tt_path("forged.dnc"), 1);
  o.progress = stop_at_once;
  o.progress_user = &reports;
  train_ok(net, &d, &o);
  cr_expect_eq(reports, 1);
  free(file);
  dn_net_free(net);
}

/* Fields no real run writes, under a valid CRC: an order that is not a permutation of the
 * examples (it would gather out of bounds or repeat examples), 2^62 Adam steps or more (t + 1
 * would wrap in the bias correction), no layers, and format version 1 (no order). */
Test(checkpoint, a_forged_order_step_count_or_old_version_is_a_format_error) {
  data d;
  make_data(&d);
  dn_net *net;
  size_t len;
  unsigned char *file = one_epoch_checkpoint(&d, &net, &len);
  const dn_train_opts o = run_opts(DN_OPT_ADAM, 2, tt_path("bad.dnc"), 1);
  write_forged("bad.dnc", file, len, AT_ORDER + 8 * 5, M, 8);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "not a permutation of 0..69 (index 70)");
  uint64_t first = 0;
  for (int i = 0; i < 8; i++) first |= (uint64_t)file[AT_ORDER + (size_t)i] << (8 * i);
  write_forged("bad.dnc", file, len, AT_ORDER + 8 * 9, first, 8);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "repeated index");
  write_forged("bad.dnc", file, len, AT_ADAM_T, UINT64_MAX, 8);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "Adam steps is beyond any run");
  write_forged("bad.dnc", file, len, AT_VERSION + 4, 0, 4); /* L = 0: damage, not another run */
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "a layer count of 0 is not 1..4096");
  write_forged("bad.dnc", file, len, AT_VERSION, 1, 4);
  expect_refused(net, d.X, d.Y, M, &o, DN_ERR_FORMAT, "format version 1");
  write_forged("bad.dnc", file, len, AT_ADAM_T, 5, 8); /* the control: a plausible count */
  const dn_status s = dn_net_train(net, d.X, d.Y, M, &o);
  cr_expect_eq(s, DN_OK, "%s", dn_last_error());
  free(file);
  dn_net_free(net);
}

Test(checkpoint, a_failed_save_stops_training_with_an_io_error_after_that_epoch) {
  data d;
  make_data(&d);
  dn_net *net = make_net(1);
  dn_train_opts o = run_opts(DN_OPT_ADAM, 3, tt_path("no-such-dir/ck.dnc"), 0);
  const dn_status s = dn_net_train(net, d.X, d.Y, M, &o);
  cr_expect_eq(s, DN_ERR_IO, "%s", dn_last_error());
  cr_expect(strstr(dn_last_error(), "after epoch 1") != NULL, "%s", dn_last_error());
  cr_expect_eq(net->opt_t, (M + 15) / 16, "training went on after the failed checkpoint");
  dn_net_free(net);
}

/* ---- crash safety ---- */

/* Two states of a net with half a megabyte of parameters, saved as checkpoints. */
static dn_net *big_net(uint64_t seed) {
  const size_t dims[] = {256, 512, 2};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};
  dn_net *net = NULL;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, seed), DN_OK);
  return net;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Remove leftover temporary files (what a kill mid-save leaves); returns how many. */
static size_t remove_temporaries(void) {
  DIR *dir = opendir(tt_root);
  cr_assert_not_null(dir);
  size_t n = 0;
  for (struct dirent *e; (e = readdir(dir));)
    if (strstr(e->d_name, ".tmp-")) {
      unlink(tt_path(e->d_name));
      n++;
    }
  closedir(dir);
  return n;
}

Test(checkpoint, a_save_killed_at_random_moments_leaves_the_old_or_the_new_checkpoint_whole) {
  enum { KILLS = 120, MIN_KILLS = 50 };
  const double budget_s = 6.0; /* on a loaded machine, fewer kills rather than a slow test */
  dn_train_opts o = run_opts(DN_OPT_GD, 1, NULL, 0);
  dn_net *a = big_net(1), *b = big_net(2);
  const dn_ckpt_run run = {.opts = &o, .m = 1000, .data_hash = 42};
  dn_rng rng;
  dn_rng_seed(&rng, 1);
  static size_t order[1000];
  for (size_t j = 0; j < 1000; j++) order[j] = 999 - j;
  char path[512], ref_a[512], ref_b[512]; /* tt_path's buffers rotate */
  snprintf(path, sizeof path, "%s", tt_path("live.dnc"));
  snprintf(ref_a, sizeof ref_a, "%s", tt_path("a.ref"));
  snprintf(ref_b, sizeof ref_b, "%s", tt_path("b.ref"));
  cr_assert_eq(dn_ckpt_save(ref_a, a, &run, 1, &rng, order), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_ckpt_save(ref_b, b, &run, 2, &rng, order), DN_OK);
  size_t len_a, len_b;
  unsigned char *want_a = tt_read(ref_a, &len_a), *want_b = tt_read(ref_b, &len_b);

  const double t0 = now_s();
  for (int i = 0; i < 4; i++) cr_assert_eq(dn_ckpt_save(path, i % 2 ? b : a, &run, 1 + i % 2, &rng, order), DN_OK);
  const double save_s = (now_s() - t0) / 4;

  uint64_t seed = 12345;
  size_t mid_save = 0, saw_a = 0, saw_b = 0;
  int k = 0;
  for (; k < KILLS && (k < MIN_KILLS || now_s() - t0 < budget_s); k++) {
    const pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      for (int i = 0;; i++) dn_ckpt_save(path, i % 2 ? a : b, &run, 2 - i % 2, &rng, order);
    }
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const double wait_s = 3.0 * save_s * (double)(seed >> 11) * 0x1.0p-53;
    const struct timespec ts = {0, (long)(wait_s * 1e9) % 1000000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    mid_save += remove_temporaries() > 0;

    dn_ckpt_state st;
    const dn_status s = dn_ckpt_load(path, a, &run, &st);
    cr_assert_eq(s, DN_OK, "kill %d left a checkpoint that does not load: %s", k, dn_last_error());
    dn_ckpt_state_free(&st);
    size_t len;
    unsigned char *got = tt_read(path, &len);
    const bool is_a = len == len_a && memcmp(got, want_a, len) == 0;
    const bool is_b = len == len_b && memcmp(got, want_b, len) == 0;
    cr_assert(is_a || is_b, "kill %d left a file that is neither checkpoint", k);
    saw_a += is_a;
    saw_b += is_b;
    free(got);
  }
  cr_log_info("%d kills (a save takes %.1f ms): %zu mid-save, %zu left A, %zu left B", k,
              1e3 * save_s, mid_save, saw_a, saw_b);
  cr_expect_geq(mid_save, (size_t)k / 5, "only %zu of %d kills landed inside a save", mid_save, k);
  cr_expect(saw_a > 0 && saw_b > 0, "the kills never let a save complete");
  free(want_a);
  free(want_b);
  dn_net_free(a);
  dn_net_free(b);
}
