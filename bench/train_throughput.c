/* deepnet's side of tools/pytorch_compare.py: trains one net with dn_net_train (Adam,
 * relu hidden layers, softmax + cce) for a few epochs and prints one JSON line with
 * each epoch's wall time and samples/s. Data: the first m Fashion-MNIST training
 * examples, or synthetic ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deepnet.h"

enum { MAX_DIMS = 16, MAX_EPOCHS = 64 };

typedef struct run_cfg {
  size_t dims[MAX_DIMS], n_dims, batch, m, epochs;
  int threads;
  const char *isa, *data_dir; /* data_dir NULL: synthetic */
} run_cfg;

typedef struct epoch_clock {
  double start, end[MAX_EPOCHS];
  size_t done;
} epoch_clock;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int on_progress(const dn_progress *p, void *user) {
  epoch_clock *c = user;
  if (p->epoch_end && c->done < MAX_EPOCHS) c->end[c->done++] = now_s();
  return 0;
}

static int usage(const char *msg) {
  fprintf(stderr,
          "deepnet-train-bench: %s\n"
          "usage: deepnet-train-bench [--dims 784,512,256,10] [--batch 128] [--threads N]\n"
          "         [--isa scalar|avx2|avx512|neon] [--m 10000] [--epochs 3]\n"
          "         [--data DIR (Fashion-MNIST IDX files) | --synthetic]\n",
          msg);
  return 2;
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  const unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v == 0) return -1;
  *out = (size_t)v;
  return 0;
}

static int parse_dims(const char *s, run_cfg *cfg) {
  char buf[256];
  if (strlen(s) >= sizeof buf) return -1;
  strcpy(buf, s);
  cfg->n_dims = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (cfg->n_dims == MAX_DIMS || parse_size(tok, &cfg->dims[cfg->n_dims])) return -1;
    cfg->n_dims++;
  }
  return cfg->n_dims >= 2 ? 0 : -1;
}

static int parse_args(int argc, char **argv, run_cfg *cfg) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    size_t n;
    if (!strcmp(a, "--synthetic")) {
      cfg->data_dir = NULL;
      continue;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage("trains a net with dn_net_train and prints samples/s");
    if (strncmp(a, "--", 2) != 0) return usage("expected a flag");
    if (!v) return usage("missing value after a flag");
    i++;
    if (!strcmp(a, "--dims")) {
      if (parse_dims(v, cfg)) return usage("--dims wants 2 to 16 positive integers, comma-separated");
    } else if (!strcmp(a, "--batch")) {
      if (parse_size(v, &cfg->batch)) return usage("--batch wants a positive integer");
    } else if (!strcmp(a, "--m")) {
      if (parse_size(v, &cfg->m)) return usage("--m wants a positive integer");
    } else if (!strcmp(a, "--epochs")) {
      if (parse_size(v, &cfg->epochs) || cfg->epochs > MAX_EPOCHS) return usage("--epochs wants 1..64");
    } else if (!strcmp(a, "--threads")) {
      if (parse_size(v, &n) || n > 4096) return usage("--threads wants a positive integer");
      cfg->threads = (int)n;
    } else if (!strcmp(a, "--isa")) {
      cfg->isa = v;
    } else if (!strcmp(a, "--data")) {
      cfg->data_dir = v;
    } else {
      return usage("unknown flag");
    }
  }
  return 0;
}

static int set_isa(const char *name) {
  for (int i = DN_ISA_SCALAR; i <= DN_ISA_NEON; i++)
    if (!strcmp(dn_isa_name((dn_isa)i), name)) return dn_isa_set((dn_isa)i) == DN_OK ? 0 : -1;
  return -1;
}

/* Fashion-MNIST from dir, or synthetic pixels in [0, 1) with labels j mod n_classes. */
static dn_status load_data(const run_cfg *cfg, dn_dataset *d) {
  if (cfg->data_dir) {
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", cfg->data_dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte.gz", cfg->data_dir);
    dn_status s = dn_dataset_load_idx(d, img, lab);
    if (s) return s;
    if (d->n_features != cfg->dims[0] || d->n_classes != cfg->dims[cfg->n_dims - 1]) {
      fprintf(stderr, "deepnet-train-bench: the data has %zu features and %zu classes\n",
              d->n_features, d->n_classes);
      return DN_ERR_SHAPE;
    }
    if (cfg->m < d->m) d->m = cfg->m; /* column-major: the first m examples are a prefix */
    return DN_OK;
  }
  const size_t n0 = cfg->dims[0], nL = cfg->dims[cfg->n_dims - 1], m = cfg->m;
  d->X = malloc(n0 * m * sizeof(float));
  d->Y = calloc(nL * m, sizeof(float));
  d->labels = NULL;
  if (!d->X || !d->Y) return DN_ERR_NOMEM;
  uint64_t s = 42;
  for (size_t i = 0; i < n0 * m; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    d->X[i] = (float)(s >> 40) * (1.0f / 16777216.0f);
  }
  for (size_t j = 0; j < m; j++) d->Y[j % nL + j * nL] = 1.0f;
  d->n_features = n0;
  d->n_classes = nL;
  d->m = m;
  return DN_OK;
}

static void free_data(const run_cfg *cfg, dn_dataset *d) {
  if (cfg->data_dir) {
    dn_dataset_free(d);
  } else {
    free(d->X);
    free(d->Y);
  }
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  run_cfg cfg = {.dims = {784, 512, 256, 10}, .n_dims = 4, .batch = 128, .m = 10000, .epochs = 3,
                 .threads = 1, .isa = NULL, .data_dir = "/usr/share/datasets/fashion-mnist"};
  int rc = parse_args(argc, argv, &cfg);
  if (rc) return rc;
  if (cfg.isa && set_isa(cfg.isa)) return usage("--isa: not available on this CPU");
  dn_set_num_threads(cfg.threads);

  dn_dataset data = {0};
  dn_status s = load_data(&cfg, &data);
  if (s) {
    fprintf(stderr, "deepnet-train-bench: data: %s (%s)\n", dn_status_str(s), dn_last_error());
    free_data(&cfg, &data);
    return 1;
  }
  const size_t L = cfg.n_dims - 1;
  dn_act acts[MAX_DIMS];
  for (size_t l = 0; l < L; l++) acts[l] = l + 1 == L ? DN_ACT_SOFTMAX : DN_ACT_RELU;
  dn_net *net = NULL;
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  opts.optimizer = DN_OPT_ADAM;
  opts.learning_rate = 1e-3f;
  opts.batch_size = cfg.batch;
  opts.epochs = cfg.epochs;
  epoch_clock clock = {0};
  opts.progress = on_progress;
  opts.progress_user = &clock;
  if (!(s = dn_net_create(&net, L, cfg.dims, acts, DN_LOSS_CCE)) && !(s = dn_net_init(net, 1))) {
    clock.start = now_s();
    s = dn_net_train(net, data.X, data.Y, data.m, &opts);
  }
  if (s) {
    fprintf(stderr, "deepnet-train-bench: %s (%s)\n", dn_status_str(s), dn_last_error());
    dn_net_free(net);
    free_data(&cfg, &data);
    return 1;
  }
  double epoch_s[MAX_EPOCHS], sorted[MAX_EPOCHS];
  printf("{\"lib\": \"deepnet\", \"isa\": \"%s\", \"threads\": %d, \"batch\": %zu, \"m\": %zu, "
         "\"data\": \"%s\", \"dims\": [",
         dn_isa_name(dn_isa_active()), dn_get_num_threads(), cfg.batch, data.m,
         cfg.data_dir ? "fashion-mnist" : "synthetic");
  for (size_t i = 0; i < cfg.n_dims; i++) printf("%s%zu", i ? ", " : "", cfg.dims[i]);
  printf("], \"epoch_s\": [");
  for (size_t e = 0; e < clock.done; e++) {
    epoch_s[e] = clock.end[e] - (e ? clock.end[e - 1] : clock.start);
    sorted[e] = epoch_s[e];
    printf("%s%.6f", e ? ", " : "", epoch_s[e]);
  }
  qsort(sorted, clock.done, sizeof sorted[0], cmp_double);
  const size_t h = clock.done / 2;
  const double median = !clock.done       ? 0.0
                        : clock.done % 2  ? sorted[h]
                                          : 0.5 * (sorted[h - 1] + sorted[h]);
  printf("], \"samples_per_s_median\": %.1f}\n", median > 0 ? (double)data.m / median : 0.0);
  dn_net_free(net);
  free_data(&cfg, &data);
  return 0;
}
