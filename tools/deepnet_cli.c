/* The `deepnet` program: info, train, eval and predict on top of the public API. */
#include <errno.h>
#include <hwloc.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_args.h"
#include "deepnet.h"
#include "internal.h" /* dn_cpu_features_get, dn_kernels, dn_now_s: info and timing */

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };
enum { TRAIN_ACC_EXAMPLES = 10000, MAX_MATRIX_CLASSES = 32 };

static int fail_status(const char *what, dn_status s) {
  fprintf(stderr, "deepnet: %s: %s: %s\n", what, dn_status_str(s), dn_last_error());
  return EXIT_RUNTIME;
}

/* ---- formatting ------------------------------------------------------------- */

static const char *fmt_bytes(char *buf, size_t size, unsigned long long bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t u = 0;
  double v = (double)bytes;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof *units) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, size, v == (double)(unsigned long long)v ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

static const char *fmt_duration(char *buf, size_t size, double s) {
  if (s < 60.0) {
    snprintf(buf, size, s < 10.0 ? "%.2f s" : "%.1f s", s);
  } else {
    const unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
      snprintf(buf, size, "%luh%02lum%02lus", t / 3600, t / 60 % 60, t % 60);
    else
      snprintf(buf, size, "%lum%02lus", t / 60, t % 60);
  }
  return buf;
}

static void print_dims(FILE *out, const size_t *dims, size_t L) {
  fputc('[', out);
  for (size_t l = 0; l <= L; l++) fprintf(out, "%s%zu", l ? ", " : "", dims[l]);
  fputc(']', out);
}

/* ---- run-time settings ------------------------------------------------------- */

static int apply_settings(const cli_config *cfg) {
  dn_status s;
  if ((s = dn_set_num_threads(cfg->threads))) return fail_status("--threads", s);
  if (cfg->isa >= 0 && (s = dn_isa_set((dn_isa)cfg->isa))) return fail_status("--isa", s);
  dn_set_flush_denormals(cfg->flush_denormals);
  return 0;
}

/* ---- info ------------------------------------------------------------------- */

static void info_topology(void) {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) {
    printf("topology         unavailable (hwloc_topology_init failed)\n");
    return;
  }
  if (hwloc_topology_load(topo) != 0) {
    printf("topology         unavailable (hwloc_topology_load failed)\n");
    hwloc_topology_destroy(topo);
    return;
  }
  const int packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
  const int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  const int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  const int pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  printf("topology         %d package%s, %d NUMA node%s, %d core%s, %d hardware thread%s\n", packages,
         packages == 1 ? "" : "s", nodes, nodes == 1 ? "" : "s", cores, cores == 1 ? "" : "s", pus,
         pus == 1 ? "" : "s");

  static const struct {
    hwloc_obj_type_t type;
    const char *name;
  } caches[] = {{HWLOC_OBJ_L1CACHE, "L1d"}, {HWLOC_OBJ_L2CACHE, "L2"}, {HWLOC_OBJ_L3CACHE, "L3"}};
  printf("caches          ");
  bool any = false;
  for (size_t i = 0; i < sizeof caches / sizeof *caches; i++) {
    const int n = hwloc_get_nbobjs_by_type(topo, caches[i].type);
    const hwloc_obj_t c = n > 0 ? hwloc_get_obj_by_type(topo, caches[i].type, 0) : NULL;
    if (!c || !c->attr) continue;
    char size[32];
    printf("%s %s %s x%d", any ? "," : "", caches[i].name,
           fmt_bytes(size, sizeof size, c->attr->cache.size), n);
    any = true;
  }
  printf("%s\n", any ? "" : " unknown");

  for (int i = 0; i < nodes; i++) {
    const hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
    const int node_pus = node->cpuset ? hwloc_get_nbobjs_inside_cpuset_by_type(topo, node->cpuset, HWLOC_OBJ_PU) : 0;
    const int node_cores = node->cpuset ? hwloc_get_nbobjs_inside_cpuset_by_type(topo, node->cpuset, HWLOC_OBJ_CORE) : 0;
    char mem[32];
    printf("numa node %-6u %s, %d core%s, %d hardware thread%s\n", node->os_index,
           fmt_bytes(mem, sizeof mem, (unsigned long long)node->attr->numanode.local_memory),
           node_cores, node_cores == 1 ? "" : "s", node_pus, node_pus == 1 ? "" : "s");
  }
  hwloc_topology_destroy(topo);
}

static int run_info(const cli_config *cfg) {
  const dn_cpu_features *cpu = dn_cpu_features_get();
  const dn_kernel_table *kt = dn_kernels();
  const char *isa_env = getenv("DEEPNET_ISA"), *omp_env = getenv("OMP_NUM_THREADS");
  printf("deepnet          %s\n", dn_version());
  printf("cpu              %s\n", cpu->brand[0] ? cpu->brand : "unknown");
  printf("isa              detected %s, active %s", dn_isa_name(dn_isa_detected()),
         dn_isa_name(dn_isa_active()));
  if (cfg->isa >= 0)
    printf(" (--isa %s)", dn_isa_name((dn_isa)cfg->isa));
  else if (isa_env && *isa_env)
    printf(" (DEEPNET_ISA=%s)", isa_env);
  printf("\ngemm kernel      %s, %zux%zu micro-tile\n", kt->sgemm_ukr_name, kt->mr, kt->nr);
  if (kt->sgemm_small && kt->sgemm_small_dot)
    printf("small-M kernels  %s (M <= %zu), %s (M <= %zu, op(B)'s columns contiguous)\n",
           kt->sgemm_small_name, kt->small_mr, kt->sgemm_small_dot_name, kt->small_dot_max_m);
  else if (kt->sgemm_small)
    printf("small-M kernel   %s (M <= %zu)\n", kt->sgemm_small_name, kt->small_mr);
  else
    printf("small-M kernel   none: the general path for every M\n");
  printf("packing of A     %s\n", !kt->sgemm_ukr_pack_a ? "a pass of its own before the micro-kernel"
                               : kt->ukr_pack_a_any_lda ? "inside the micro-kernel, at any lda (AMD Zen)"
                                                         : "inside the micro-kernel, a pass of its own at 4 KiB-multiple lda");
  const int unpacked = dn_unpacked_w_max_threads();
  if (dn_amx_in_use())
    printf("packed weights   none: the AMX path reads W as it is\n");
  else
    printf("packed weights   copies re-packed by each update, but training on up to %d thread%s reads W "
           "as it is\n", unpacked, unpacked == 1 ? "" : "s");
  printf("amx gemm         %s\n", dn_amx_in_use()      ? "on (DEEPNET_AMX=1: fp32 products from bf16 pieces on tiles)"
                               : dn_amx_enabled()     ? "off (the active ISA is not avx512)"
                               : dn_amx_can_run()     ? "off (the default; DEEPNET_AMX=1 turns it on)"
                                                      : "not available on this CPU/OS/build");
  printf("threads          %d (%s)\n", dn_get_num_threads(),
         cfg->threads > 0                ? "--threads"
         : omp_env && *omp_env           ? "OMP_NUM_THREADS"
                                         : "OpenMP default");
  printf("flush denormals  %s\n", dn_get_flush_denormals() ? "on (FTZ/DAZ inside deepnet's kernels)" : "off");
  printf("placement        %s\n", dn_placement_describe());
  printf("idle workers     %s\n", dn_wait_describe());
  info_topology();
  return 0;
}

/* ---- data ------------------------------------------------------------------- */

/* A data set with Y shaped for a net with n_out outputs: the loader's one-hot Y when it
 * fits, else our own (one-hot over n_out rows, or the 0/1 label for one output). */
typedef struct labelled {
  dn_dataset d;
  float *Y_own;
  const float *Y;
  const char *name;
} labelled;

static void labelled_free(labelled *s) {
  dn_dataset_free(&s->d);
  free(s->Y_own);
  s->Y_own = NULL;
}

static const char *data_path(const cli_data *src) { return src->csv ? src->csv : src->images; }

/* n_out: the net's output width when it is known before the data (a model's, or
 * --layers'), else 0. A CSV's labels are then bounded by its classes instead of by the
 * loader's guard against a wrong label column (labels above 65535). lazy: use n_out only
 * if that guard refuses the file (predict, which ignores the labels, so their one-hot Y is
 * not made n_out rows tall for nothing). */
static int load_data(labelled *out, const cli_data *src, const cli_config *cfg, const char *name,
                     size_t n_out, bool lazy) {
  *out = (labelled){.name = name};
  dn_status s;
  if (src->csv) {
    dn_csv_opts o;
    dn_csv_opts_default(&o);
    o.label_column = cfg->label_column;
    o.scale = cfg->scale;
    if (n_out && !lazy) o.n_classes = n_out == 1 ? 2 : n_out;
    s = dn_dataset_load_csv(&out->d, src->csv, &o);
    if (s == DN_ERR_FORMAT && n_out && lazy && strstr(dn_last_error(), "set n_classes")) {
      o.n_classes = n_out == 1 ? 2 : n_out;
      s = dn_dataset_load_csv(&out->d, src->csv, &o);
    }
  } else {
    s = dn_dataset_load_idx(&out->d, src->images, src->labels);
  }
  if (s) {
    const bool label_guard = s == DN_ERR_FORMAT && strstr(dn_last_error(), "set n_classes");
    fprintf(stderr, "deepnet: loading the %s from '%s': %s: %s%s\n", name, data_path(src),
            dn_status_str(s), dn_last_error(),
            label_guard ? " (here: give --layers, whose last width sets the classes)" : "");
    return EXIT_RUNTIME;
  }
  out->Y = out->d.Y;
  return 0;
}

/* Classes a net with n_out outputs tells apart: one sigmoid/linear output gives 2. */
static size_t classes_of(size_t n_out) { return n_out == 1 ? 2 : n_out; }

static int fit_labels(labelled *s, size_t n_out) {
  const size_t m = s->d.m, k = classes_of(n_out);
  for (size_t j = 0; j < m; j++)
    if (s->d.labels[j] >= k) {
      fprintf(stderr, "deepnet: the %s has label %u at example %zu, but the net has %zu classes\n",
              s->name, s->d.labels[j], j + 1, k);
      return EXIT_RUNTIME;
    }
  if (s->d.n_classes == n_out) return 0;
  size_t count;
  if (!dn_mul_ok(n_out, m, &count) || !(s->Y_own = calloc(count, sizeof(float)))) {
    fprintf(stderr, "deepnet: out of memory for the labels of the %s\n", s->name);
    return EXIT_RUNTIME;
  }
  for (size_t j = 0; j < m; j++) {
    if (n_out == 1)
      s->Y_own[j] = (float)s->d.labels[j];
    else
      s->Y_own[s->d.labels[j] + j * n_out] = 1.0f;
  }
  s->Y = s->Y_own;
  return 0;
}

static int check_features(const labelled *s, size_t n0) {
  if (s->d.n_features == n0) return 0;
  fprintf(stderr, "deepnet: the %s has %zu features per example, but the net takes %zu\n", s->name,
          s->d.n_features, n0);
  return EXIT_RUNTIME;
}

/* ---- train ------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

typedef struct train_ctx {
  const cli_config *cfg;
  dn_net *net;
  const labelled *train, *test; /* test may be NULL */
  size_t m_acc;                 /* train accuracy on the first m_acc examples */
  bool tty, line_drawn;
  double t_start, t_epoch, last_draw, eval_s;
  double train_acc, test_acc;
  size_t epochs_done;
  size_t first_epoch;            /* of this run: after a resume, the first one not restored */
  size_t last_epoch, last_batch; /* of the last progress report */
  bool stopped_at_epoch_end;     /* Ctrl-C seen at an epoch's last batch */
  double samples;                /* trained on so far in this run */
  dn_status eval_status;
} train_ctx;

static dn_status evaluate(train_ctx *c) {
  const double t0 = dn_now_s();
  dn_status s = dn_net_accuracy(c->net, c->train->d.X, c->train->Y, c->m_acc, &c->train_acc);
  if (!s && c->test) s = dn_net_accuracy(c->net, c->test->d.X, c->test->Y, c->test->d.m, &c->test_acc);
  c->eval_s += dn_now_s() - t0;
  return s;
}

static int digits(size_t v) {
  int d = 1;
  for (; v >= 10; v /= 10) d++;
  return d;
}

static void clear_progress(train_ctx *c) {
  if (!c->line_drawn) return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
  c->line_drawn = false;
}

/* The live line on a terminal: at most 10 redraws a second. */
static void draw_progress(train_ctx *c, const dn_progress *p, double now) {
  const double total = (double)(p->epochs - c->first_epoch + 1) * (double)c->train->d.m;
  const double train_s = now - c->t_start - c->eval_s;
  const size_t epochs_run = c->epochs_done >= c->first_epoch ? c->epochs_done - c->first_epoch + 1 : 0;
  const double eval_per_epoch = epochs_run ? c->eval_s / (double)epochs_run : 0.0;
  const double eta = (total - c->samples) * train_s / c->samples +
                     eval_per_epoch * (double)(p->epochs - p->epoch + 1);
  char t[32];
  fprintf(stderr, "\r\033[Kepoch %zu/%zu  batch %zu/%zu  cost %.4f  %.0f samples/s  ETA %s", p->epoch,
          p->epochs, p->batch, p->batches, (double)p->epoch_cost, p->samples_per_s,
          fmt_duration(t, sizeof t, eta));
  fflush(stderr);
  c->last_draw = now;
  c->line_drawn = true;
}

static int on_progress(const dn_progress *p, void *user) {
  train_ctx *c = user;
  const double now = dn_now_s();
  const size_t m = c->train->d.m, in_epoch = p->batch * c->cfg->opts.batch_size;
  if (!c->first_epoch) c->first_epoch = p->epoch;
  c->last_epoch = p->epoch;
  c->last_batch = p->batch;
  c->samples = (double)(p->epoch - c->first_epoch) * (double)m + (double)(in_epoch < m ? in_epoch : m);
  const bool live = c->tty && !c->cfg->quiet;
  if (live && !p->epoch_end && now - c->last_draw >= 0.1) draw_progress(c, p, now);
  if (!p->epoch_end) return interrupted;

  clear_progress(c);
  c->epochs_done = p->epoch;
  if (!c->cfg->quiet) {
    const double epoch_s = now - c->t_epoch;
    if ((c->eval_status = evaluate(c))) return 1;
    char t[32];
    printf("epoch %*zu/%zu  cost %.4f  train acc %.4f", digits(p->epochs), p->epoch, p->epochs,
           (double)p->epoch_cost, c->train_acc);
    if (c->test) printf("  test acc %.4f", c->test_acc);
    printf("  %.0f samples/s  %s\n", (double)m / epoch_s, fmt_duration(t, sizeof t, epoch_s));
    fflush(stdout);
  }
  c->t_epoch = dn_now_s();
  const int stop = interrupted; /* read once: what is returned is what is recorded */
  c->stopped_at_epoch_end = stop != 0; /* dn_net_train checkpoints such a stop */
  return stop;
}

static void print_train_header(const cli_config *cfg, const size_t *dims, const labelled *train,
                               const labelled *test, size_t m_acc) {
  const dn_train_opts *o = &cfg->opts;
  static const char *const opt_names[] = {[DN_OPT_GD] = "gd", [DN_OPT_MOMENTUM] = "momentum",
                                          [DN_OPT_ADAM] = "adam"};
  printf("net       ");
  print_dims(stdout, dims, cfg->L);
  for (size_t l = 0; l < cfg->L; l++) printf("%s%s", l ? "," : " ", dn_act_name(cfg->acts[l]));
  printf(", loss %s\n", dn_loss_name(cfg->loss));
  printf("training  %s, lr %g, batch %zu, %zu epoch%s, seed %llu", opt_names[o->optimizer],
         (double)o->learning_rate, o->batch_size, o->epochs, o->epochs == 1 ? "" : "s",
         (unsigned long long)o->seed);
  if (o->l2_lambda > 0.0f) printf(", l2 %g", (double)o->l2_lambda);
  if (o->keep_prob < 1.0f) printf(", keep-prob %g", (double)o->keep_prob);
  if (o->lr_decay > 0.0f) printf(", lr-decay %g", (double)o->lr_decay);
  printf("\ntrain set %zu examples from %s (train acc on the first %zu)\n", train->d.m,
         data_path(&cfg->train_data), m_acc);
  if (test) printf("test set  %zu examples from %s\n", test->d.m, data_path(&cfg->test_data));
  if (o->checkpoint_path)
    printf("checkpoint %s after every %zu epoch%s%s\n", o->checkpoint_path,
           o->checkpoint_every ? o->checkpoint_every : 1, o->checkpoint_every > 1 ? "s" : "",
           o->resume ? ", resuming from it" : "");
  const int threads = dn_get_num_threads();
  printf("kernels   %s (%s), %d thread%s\n", dn_isa_name(dn_isa_active()), dn_kernels()->sgemm_ukr_name,
         threads, threads == 1 ? "" : "s");
  fflush(stdout);
}

/* n[0..L]: the given ones, or the hidden widths between the data's features and classes. */
static int resolve_dims(const cli_config *cfg, const labelled *train, size_t *dims) {
  const size_t L = cfg->L, classes = train->d.n_classes;
  if (cfg->dims_hidden_only) {
    dims[0] = train->d.n_features;
    memcpy(dims + 1, cfg->dims, cfg->n_dims * sizeof *dims);
    /* Two classes under bce: one sigmoid output, the usual binary classifier. */
    dims[L] = classes == 2 && cfg->loss == DN_LOSS_BCE ? 1 : classes;
    return 0;
  }
  memcpy(dims, cfg->dims, (L + 1) * sizeof *dims);
  if (dims[0] != train->d.n_features) {
    fprintf(stderr, "deepnet: --layers: n[0] is %zu, but the training set has %zu features per example\n",
            dims[0], train->d.n_features);
    return EXIT_USAGE;
  }
  if (dims[L] < classes && !(dims[L] == 1 && classes == 2)) {
    fprintf(stderr, "deepnet: --layers: n[L] is %zu, but the training set has %zu classes\n", dims[L],
            classes);
    return EXIT_USAGE;
  }
  return 0;
}

/* Train the initialized net, report, save. */
static int train_and_report(cli_config *cfg, dn_net *net, const labelled *train, const labelled *test,
                            const size_t *dims) {
  train_ctx c = {.cfg = cfg, .net = net, .train = train, .test = test,
                 .m_acc = train->d.m < TRAIN_ACC_EXAMPLES ? train->d.m : TRAIN_ACC_EXAMPLES,
                 .tty = isatty(STDERR_FILENO) != 0};
  if (!cfg->quiet) print_train_header(cfg, dims, train, test, c.m_acc);
  cfg->opts.progress = on_progress;
  cfg->opts.progress_user = &c;

  /* Ctrl-C stops after the current batch and keeps the model; a second one kills. */
  struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);

  c.t_start = c.t_epoch = dn_now_s();
  c.last_draw = c.t_start - 1.0; /* the first batch shows the line at once */
  dn_status s = dn_net_train(net, train->d.X, train->Y, train->d.m, &cfg->opts);
  const double train_s = dn_now_s() - c.t_start - c.eval_s;
  clear_progress(&c);
  if (s) return fail_status("training", s);
  if (c.eval_status) return fail_status("evaluating", c.eval_status);
  const bool stopped = interrupted != 0; /* read once: a later Ctrl-C changes nothing here */
  if (stopped) {
    printf("interrupted at epoch %zu, batch %zu\n", c.last_epoch, c.last_batch);
    const size_t every = cfg->opts.checkpoint_every ? cfg->opts.checkpoint_every : 1;
    const size_t held = cli_checkpoint_epoch(c.first_epoch, c.epochs_done, every,
                                             c.stopped_at_epoch_end, cfg->opts.resume);
    if (cfg->opts.checkpoint_path && held)
      printf("the checkpoint %s holds epoch %zu: repeat the command with --resume to continue\n",
             cfg->opts.checkpoint_path, held);
    else if (cfg->opts.checkpoint_path && cfg->opts.resume)
      printf("the checkpoint %s is as it was: repeat the command with --resume to continue\n",
             cfg->opts.checkpoint_path);
    else if (cfg->opts.checkpoint_path)
      printf("no checkpoint was written (the first comes at the end of epoch %zu): %s was not "
             "touched, and a new run starts over\n", every, cfg->opts.checkpoint_path);
  }
  if (cfg->opts.resume && !c.first_epoch)
    printf("the checkpoint %s already holds all %zu epochs\n", cfg->opts.checkpoint_path,
           cfg->opts.epochs);
  /* The last epoch's line measured the final net unless quiet, interrupted or no epoch ran. */
  if ((cfg->quiet || stopped || !c.first_epoch) && (s = evaluate(&c)))
    return fail_status("evaluating", s);

  char t1[32], t2[32];
  if (test)
    printf("test accuracy %.4f on %zu examples\n", c.test_acc, test->d.m);
  else
    printf("train accuracy %.4f on %zu examples (no test set)\n", c.train_acc, c.m_acc);
  printf("throughput %.0f samples/s (%.0f samples in %s of training, %s evaluating)\n",
         train_s > 0 ? c.samples / train_s : 0.0, c.samples, fmt_duration(t1, sizeof t1, train_s),
         fmt_duration(t2, sizeof t2, c.eval_s));
  if (cfg->save) {
    if ((s = dn_net_save(net, cfg->save))) return fail_status("saving the model", s);
    printf("model saved to %s\n", cfg->save);
  }
  return stopped ? EXIT_INTERRUPTED : 0;
}

/* path's directory (".", "/" or the part before the last slash) into buf. */
static void dir_of(const char *path, char *buf, size_t size) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(buf, size, ".");
    return;
  }
  const size_t len = slash == path ? 1 : (size_t)(slash - path);
  snprintf(buf, size, "%.*s", (int)(len < size ? len : size - 1), path);
}

/* Whether a and b name one file: the same inode when both exist, else the same path once
 * their directories are resolved ("./m.dnm" and "m.dnm"). */
static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  char da[PATH_MAX], db[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
  dir_of(a, da, sizeof da);
  dir_of(b, db, sizeof db);
  const char *ba = strrchr(a, '/') ? strrchr(a, '/') + 1 : a, *bb = strrchr(b, '/') ? strrchr(b, '/') + 1 : b;
  if (!realpath(da, ra) || !realpath(db, rb)) return strcmp(a, b) == 0;
  return strcmp(ra, rb) == 0 && strcmp(ba, bb) == 0;
}

/* One output (--save or --checkpoint), checked before any work: where it cannot be
 * written, training would fail only at its end, and one that names an input would
 * overwrite that input with the model. */
static int check_output(const cli_config *cfg, const char *path, const char *flag) {
  struct stat st;
  char target[PATH_MAX], dir[PATH_MAX];
  snprintf(target, sizeof target, "%s", path);
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && !realpath(path, target)) {
    fprintf(stderr, "deepnet: %s: '%s' is a symbolic link that names no file\n", flag, path);
    return EXIT_USAGE;
  }
  if (stat(target, &st) == 0 && !S_ISREG(st.st_mode)) {
    fprintf(stderr, "deepnet: %s: '%s' is not a regular file\n", flag, path);
    return EXIT_USAGE;
  }
  dir_of(target, dir, sizeof dir);
  errno = 0;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
    fprintf(stderr, "deepnet: %s: cannot write '%s' in the directory '%s': %s\n", flag, path, dir,
            errno ? strerror(errno) : "not a directory");
    return EXIT_USAGE;
  }
  const struct { const char *path, *flag; } inputs[] = {
      {cfg->train_data.images, "--train-images"}, {cfg->train_data.labels, "--train-labels"},
      {cfg->train_data.csv, "--train-csv"},       {cfg->test_data.images, "--test-images"},
      {cfg->test_data.labels, "--test-labels"},   {cfg->test_data.csv, "--test-csv"}};
  for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++)
    if (inputs[i].path && same_file(path, inputs[i].path)) {
      fprintf(stderr, "deepnet: %s: '%s' is also the %s: writing it would overwrite the data\n",
              flag, path, inputs[i].flag);
      return EXIT_USAGE;
    }
  return 0;
}

static int check_outputs(const cli_config *cfg) {
  const char *ckpt = cfg->opts.checkpoint_path;
  int rc = cfg->save ? check_output(cfg, cfg->save, "--save") : 0;
  if (!rc && ckpt) rc = check_output(cfg, ckpt, "--checkpoint");
  if (!rc && cfg->save && ckpt && same_file(cfg->save, ckpt)) {
    fprintf(stderr, "deepnet: --save and --checkpoint name the same file '%s': the model would "
            "replace the checkpoint\n", cfg->save);
    rc = EXIT_USAGE;
  }
  return rc;
}

static int run_train(cli_config *cfg) {
  labelled train = {0}, test = {0};
  dn_net *net = NULL;
  size_t dims[CLI_MAX_LAYERS + 1];
  const bool have_test = cfg->test_data.images || cfg->test_data.csv;
  const size_t L = cfg->L;
  dn_status s;
  int rc = check_outputs(cfg);
  const size_t n_out = cfg->dims_hidden_only ? 0 : cfg->dims[L];
  if (!rc) rc = load_data(&train, &cfg->train_data, cfg, "training set", n_out, false);
  if (!rc && have_test) rc = load_data(&test, &cfg->test_data, cfg, "test set", n_out, false);
  if (!rc) rc = resolve_dims(cfg, &train, dims);
  if (!rc) rc = fit_labels(&train, dims[L]);
  if (!rc && have_test && !(rc = check_features(&test, dims[0]))) rc = fit_labels(&test, dims[L]);
  if (!rc && (s = dn_net_create(&net, L, dims, cfg->acts, cfg->loss))) rc = fail_status("creating the net", s);
  if (!rc && (s = dn_net_init(net, cfg->opts.seed))) rc = fail_status("initializing the net", s);
  if (!rc) rc = train_and_report(cfg, net, &train, have_test ? &test : NULL, dims);
  dn_net_free(net);
  labelled_free(&train);
  labelled_free(&test);
  return rc;
}

/* ---- eval and predict -------------------------------------------------------- */

static int load_model(dn_net **net, const cli_config *cfg) {
  const dn_status s = dn_net_load(net, cfg->model);
  if (!s) return 0;
  fprintf(stderr, "deepnet: loading the model '%s': %s: %s\n", cfg->model, dn_status_str(s), dn_last_error());
  return EXIT_RUNTIME;
}

static void print_confusion(const size_t *cm, size_t k) {
  size_t widest = 1;
  for (size_t i = 0; i < k * k; i++) widest = cm[i] > widest ? cm[i] : widest;
  int w = 1;
  for (size_t v = widest; v >= 10; v /= 10) w++;
  w = w < 3 ? 3 : w;
  printf("confusion matrix (rows: true class, columns: predicted class)\n%*s", 6, "");
  for (size_t j = 0; j < k; j++) printf(" %*zu", w, j);
  printf("  recall\n");
  for (size_t i = 0; i < k; i++) {
    size_t row = 0;
    printf("%6zu", i);
    for (size_t j = 0; j < k; j++) {
      printf(" %*zu", w, cm[i + j * k]);
      row += cm[i + j * k];
    }
    if (row)
      printf("  %.4f\n", (double)cm[i + i * k] / (double)row);
    else
      printf("  -\n");
  }
}

static int eval_report(dn_net *net, const labelled *data) {
  const size_t k = classes_of(dn_net_dim(net, dn_net_num_layers(net))), m = data->d.m;
  uint32_t *pred = malloc(m * sizeof *pred);
  /* Only a matrix that is printed is counted: k x k counters for a 100000-class output
   * would be 80 GB. */
  size_t *cm = k <= MAX_MATRIX_CLASSES ? calloc(k * k, sizeof *cm) : NULL;
  int rc = 0;
  dn_status s;
  if (!pred || (!cm && k <= MAX_MATRIX_CLASSES)) {
    fprintf(stderr, "deepnet: out of memory for %zu predictions\n", m);
    rc = EXIT_RUNTIME;
  } else if ((s = dn_net_classify(net, data->d.X, m, pred))) {
    rc = fail_status("classifying", s);
  } else {
    size_t correct = 0;
    for (size_t j = 0; j < m; j++) {
      if (cm) cm[data->d.labels[j] + pred[j] * k]++;
      correct += pred[j] == data->d.labels[j];
    }
    printf("accuracy %.4f (%zu/%zu)\n", (double)correct / (double)m, correct, m);
    if (k <= MAX_MATRIX_CLASSES)
      print_confusion(cm, k);
    else
      printf("confusion matrix omitted: %zu classes (at most %d are printed)\n", k, MAX_MATRIX_CLASSES);
  }
  free(pred);
  free(cm);
  return rc;
}

static int run_eval(const cli_config *cfg) {
  dn_net *net = NULL;
  labelled data = {0};
  int rc = load_model(&net, cfg);
  if (!rc) rc = load_data(&data, &cfg->data, cfg, "data set", dn_net_dim(net, dn_net_num_layers(net)), false);
  if (!rc) rc = check_features(&data, dn_net_dim(net, 0));
  if (!rc) rc = fit_labels(&data, dn_net_dim(net, dn_net_num_layers(net)));
  if (!rc) rc = eval_report(net, &data);
  labelled_free(&data);
  dn_net_free(net);
  return rc;
}

/* One line per example: the class, then (with --probs) the output column A[L]. */
static int predict_report(const cli_config *cfg, dn_net *net, const labelled *data) {
  enum { CHUNK = 1024 };
  const size_t n0 = dn_net_dim(net, 0), nL = dn_net_dim(net, dn_net_num_layers(net));
  float *AL = malloc(nL * CHUNK * sizeof *AL);
  if (!AL) {
    fprintf(stderr, "deepnet: out of memory for the outputs\n");
    return EXIT_RUNTIME;
  }
  for (size_t start = 0; start < data->d.m; start += CHUNK) {
    const size_t count = data->d.m - start < CHUNK ? data->d.m - start : CHUNK;
    const dn_status s = dn_net_predict(net, data->d.X + start * n0, count, AL);
    if (s) {
      free(AL);
      return fail_status("predicting", s);
    }
    for (size_t j = 0; j < count; j++) {
      const float *a = AL + j * nL;
      size_t cls = 0;
      if (nL == 1)
        cls = a[0] >= 0.5f;
      else
        for (size_t i = 1; i < nL; i++) cls = a[i] > a[cls] ? i : cls;
      printf("%zu", cls);
      if (cfg->probs)
        for (size_t i = 0; i < nL; i++) printf(" %.6g", (double)a[i]);
      putchar('\n');
    }
  }
  free(AL);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("deepnet: writing the predictions");
    return EXIT_RUNTIME;
  }
  return 0;
}

static int run_predict(const cli_config *cfg) {
  dn_net *net = NULL;
  labelled data = {0};
  int rc = load_model(&net, cfg);
  if (!rc) rc = load_data(&data, &cfg->data, cfg, "input", dn_net_dim(net, dn_net_num_layers(net)), true);
  if (!rc) rc = check_features(&data, dn_net_dim(net, 0));
  if (!rc) rc = predict_report(cfg, net, &data);
  labelled_free(&data);
  dn_net_free(net);
  return rc;
}

static int run(int argc, char **argv) {
  cli_config cfg;
  char err[512];
  switch (cli_parse(argc, argv, &cfg, err, sizeof err)) {
    case CLI_HELP: cli_usage(stdout, cfg.command); return 0;
    case CLI_VERSION: printf("deepnet          %s\n", dn_version()); return 0;
    case CLI_ERROR:
      fprintf(stderr, "deepnet: %s (see 'deepnet%s%s --help')\n", err, cfg.command ? " " : "",
              cfg.command ? cli_command_name(cfg.command) : "");
      return EXIT_USAGE;
    case CLI_RUN: break;
  }
  const int rc = apply_settings(&cfg);
  if (rc) return rc;
  switch (cfg.command) {
    case CLI_CMD_INFO: return run_info(&cfg);
    case CLI_CMD_TRAIN: return run_train(&cfg);
    case CLI_CMD_EVAL: return run_eval(&cfg);
    case CLI_CMD_PREDICT: return run_predict(&cfg);
    case CLI_CMD_NONE: break;
  }
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  int rc = run(argc, argv);
  /* A report that could not be written (a full disk, a closed pipe) is a failure, not an
   * exit 0 with the output lost. */
  errno = 0;
  const bool flushed = fflush(stdout) == 0;
  const int flush_errno = errno;
  if ((!flushed || ferror(stdout)) && (rc == 0 || rc == EXIT_INTERRUPTED)) {
    fprintf(stderr, "deepnet: writing the output failed: %s\n",
            !flushed && flush_errno ? strerror(flush_errno) : "an earlier write failed");
    rc = EXIT_RUNTIME;
  }
  return rc;
}
