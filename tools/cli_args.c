/* The `deepnet` argument parser: one table of options drives parsing, checking and help. */
#include "cli_args.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
  ON_INFO = 1u << CLI_CMD_INFO,
  ON_TRAIN = 1u << CLI_CMD_TRAIN,
  ON_EVAL = 1u << CLI_CMD_EVAL,
  ON_PREDICT = 1u << CLI_CMD_PREDICT,
  ON_DATA = ON_TRAIN | ON_EVAL | ON_PREDICT,
  ON_ALL = ON_INFO | ON_DATA
};

typedef enum opt_kind {
  K_TRUE,      /* bool flag set to true */
  K_FALSE,     /* bool flag set to false */
  K_UNSET,     /* const char * set to NULL */
  K_PATH,      /* const char * */
  K_COUNT,     /* size_t >= 1 */
  K_THREADS,   /* int >= 0 */
  K_SEED,      /* uint64_t */
  K_COLUMN,    /* long >= -1 */
  K_POSITIVE,  /* finite float > 0 */
  K_NONNEG,    /* finite float >= 0 */
  K_PROB,      /* float in (0, 1] */
  K_LAYERS,    /* n[0..L] */
  K_HIDDEN,    /* n[1..L-1] */
  K_ACT,       /* the hidden activation */
  K_ACTS,      /* g[1..L] */
  K_LOSS,
  K_OPTIMIZER,
  K_ISA
} opt_kind;

typedef struct opt_spec {
  const char *name;
  unsigned commands;
  opt_kind kind;
  size_t offset; /* of the field in cli_config */
  const char *metavar, *help;
} opt_spec;

#define AT(field) offsetof(cli_config, field)

static const opt_spec options[] = {
    {"--layers", ON_TRAIN, K_LAYERS, AT(dims), "LIST",
     "n[0..L], e.g. 784,512,256,10; n[0] and n[L] must match the data"},
    {"--hidden", ON_TRAIN, K_HIDDEN, AT(dims), "LIST",
     "hidden widths only; n[0] and n[L] come from the data (default: 512,256)"},
    {"--act", ON_TRAIN, K_ACT, AT(acts), "NAME",
     "hidden activation: linear, relu, leaky_relu, sigmoid, tanh (default: relu)"},
    {"--acts", ON_TRAIN, K_ACTS, AT(acts), "LIST",
     "every layer's activation, e.g. relu,relu,softmax (instead of --act)"},
    {"--loss", ON_TRAIN, K_LOSS, AT(loss), "NAME",
     "cce (softmax output), bce (sigmoid), mse (linear) (default: cce, or from --acts)"},
    {"--optimizer", ON_TRAIN, K_OPTIMIZER, AT(opts.optimizer), "NAME",
     "adam, momentum, gd (default: adam)"},
    {"--lr", ON_TRAIN, K_POSITIVE, AT(opts.learning_rate), "X", "learning rate (default: 0.001)"},
    {"--epochs", ON_TRAIN, K_COUNT, AT(opts.epochs), "N", "passes over the training set (default: 10)"},
    {"--batch", ON_TRAIN, K_COUNT, AT(opts.batch_size), "N", "mini-batch size (default: 128)"},
    {"--l2", ON_TRAIN, K_NONNEG, AT(opts.l2_lambda), "X",
     "L2 lambda, cost term (lambda/2m) sum ||W||^2 (default: 0)"},
    {"--keep-prob", ON_TRAIN, K_PROB, AT(opts.keep_prob), "X",
     "inverted dropout keep probability on hidden layers, 1 = off (default: 1)"},
    {"--lr-decay", ON_TRAIN, K_NONNEG, AT(opts.lr_decay), "X",
     "learning rate of epoch e: lr / (1 + X (e - 1)) (default: 0)"},
    {"--seed", ON_TRAIN, K_SEED, AT(opts.seed), "N",
     "weights, shuffling and dropout masks (default: 1)"},
    {"--train-images", ON_TRAIN, K_PATH, AT(train_data.images), "FILE",
     "training images, IDX, gzipped or not"},
    {"--train-labels", ON_TRAIN, K_PATH, AT(train_data.labels), "FILE", "training labels, IDX"},
    {"--test-images", ON_TRAIN, K_PATH, AT(test_data.images), "FILE", "test images, IDX"},
    {"--test-labels", ON_TRAIN, K_PATH, AT(test_data.labels), "FILE", "test labels, IDX"},
    {"--train-csv", ON_TRAIN, K_PATH, AT(train_data.csv), "FILE",
     "training set as CSV, one example per line (instead of IDX)"},
    {"--test-csv", ON_TRAIN, K_PATH, AT(test_data.csv), "FILE", "test set as CSV"},
    {"--model", ON_EVAL | ON_PREDICT, K_PATH, AT(model), "FILE", "the model to run (required)"},
    {"--images", ON_EVAL | ON_PREDICT, K_PATH, AT(data.images), "FILE",
     "input images, IDX, gzipped or not"},
    {"--labels", ON_EVAL | ON_PREDICT, K_PATH, AT(data.labels), "FILE", "their labels, IDX (not needed to predict)"},
    {"--csv", ON_EVAL | ON_PREDICT, K_PATH, AT(data.csv), "FILE",
     "input as CSV with a label column (instead of IDX)"},
    {"--label-column", ON_DATA, K_COLUMN, AT(label_column), "N",
     "CSV: 0-based index of the label column, -1 = last (default: -1)"},
    {"--scale", ON_DATA, K_POSITIVE, AT(scale), "X",
     "CSV: multiply every feature by X, e.g. 0.00392 for 0..255 pixels (default: 1)"},
    {"--probs", ON_PREDICT, K_TRUE, AT(probs), NULL,
     "also print the output column A[L] after each class"},
    {"--save", ON_TRAIN, K_PATH, AT(save), "FILE", "where to save the model (default: " CLI_DEFAULT_MODEL ")"},
    {"--no-save", ON_TRAIN, K_UNSET, AT(save), NULL, "do not save the model"},
    {"--checkpoint", ON_TRAIN, K_PATH, AT(opts.checkpoint_path), "FILE",
     "save the whole training state there (crash-safe) to continue with --resume"},
    {"--checkpoint-every", ON_TRAIN, K_COUNT, AT(opts.checkpoint_every), "N",
     "checkpoint after every N-th epoch and after the last (default: 1)"},
    {"--resume", ON_TRAIN, K_TRUE, AT(resume), NULL,
     "continue the run saved in --checkpoint (same flags and data; --epochs may grow)"},
    {"--quiet", ON_TRAIN, K_TRUE, AT(quiet), NULL, "print only the final summary"},
    {"--threads", ON_ALL, K_THREADS, AT(threads), "N",
     "threads, 0 = OpenMP's default, OMP_NUM_THREADS (default: 0)"},
    {"--isa", ON_ALL, K_ISA, AT(isa), "NAME",
     "cap the kernels: scalar, avx2, avx512, neon (default: the best, or DEEPNET_ISA)"},
    {"--no-flush-denormals", ON_ALL, K_FALSE, AT(flush_denormals), NULL,
     "keep denormals in the kernels (default: flushed to zero, FTZ/DAZ)"},
};
enum { N_OPTIONS = sizeof options / sizeof options[0] };

static const struct {
  const char *name, *summary, *notes;
} commands[] = {
    [CLI_CMD_NONE] = {"deepnet", NULL, NULL},
    [CLI_CMD_INFO] = {"info", "the CPU, the kernels deepnet uses, threads, caches and NUMA nodes",
                      NULL},
    [CLI_CMD_TRAIN] =
        {"train", "train a net and save it (default: [784,512,256,10] on Fashion-MNIST)",
         "The output activation follows from the loss (cce: softmax, bce: sigmoid, mse:\n"
         "linear). Without --layers, n[0] and n[L] are the data's features and classes\n"
         "(one sigmoid output for two classes under bce).\n"
         "Without --train-* flags the data is Debian's dataset-fashion-mnist in\n"
         "  " CLI_FASHION_MNIST_DIR ", tested on its t10k set;\n"
         "with them the test set is optional. Train accuracy is measured on the first\n"
         "10000 training examples. On a terminal a progress line is updated in place.\n"
         "Ctrl-C stops after the current batch and saves the model.\n"
         "With --checkpoint, an interrupted or crashed run continues where its last\n"
         "checkpoint left it: repeat the command with --resume (and, if you like, more\n"
         "--epochs); the result is bitwise that of an uninterrupted run.\n"
         "Exit codes: 0 done, 1 failed, 2 bad arguments, 130 interrupted.\n"},
    [CLI_CMD_EVAL] = {"eval", "accuracy and confusion matrix of a saved model on a labelled set",
                      "Without --images or --csv the data is Fashion-MNIST's t10k set in\n"
                      "  " CLI_FASHION_MNIST_DIR ".\n"
                      "Confusion matrix rows are true classes, columns predicted ones (printed\n"
                      "for up to 32 classes).\n"},
    [CLI_CMD_PREDICT] = {"predict", "print the predicted class of each example, one per line",
                         "--labels is optional with --images; a CSV still needs its label column,\n"
                         "whose values predict does not use.\n"},
};

const char *cli_command_name(cli_command command) { return commands[command].name; }

static void set_defaults(cli_config *cfg) {
  *cfg = (cli_config){
      .command = CLI_CMD_NONE,
      .threads = 0,
      .isa = -1,
      .flush_denormals = true,
      .dims = {512, 256},
      .n_dims = 2,
      .dims_hidden_only = true,
      .loss = DN_LOSS_CCE,
      .save = CLI_DEFAULT_MODEL,
      .label_column = -1,
      .scale = 1.0f,
  };
  dn_train_opts_default(&cfg->opts);
  for (size_t l = 0; l < CLI_MAX_LAYERS; l++) cfg->acts[l] = DN_ACT_RELU;
}

static cli_result fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cli_result fail(char *err, size_t err_size, const char *fmt, ...) {
  if (err && err_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return CLI_ERROR;
}

/* ---- values ---------------------------------------------------------------- */

/* Parse a base-10 unsigned integer: digits only, no sign, no spaces, no trailing text. */
static const char *parse_unsigned(const char *s, unsigned long long max, unsigned long long *out) {
  if (!isdigit((unsigned char)s[0]))
    return s[0] == '-' && isdigit((unsigned char)s[1]) ? "must not be negative" : "is not an integer";
  errno = 0;
  char *end;
  const unsigned long long v = strtoull(s, &end, 10);
  if (*end) return "is not an integer";
  if (errno == ERANGE || v > max) return "is out of range";
  *out = v;
  return NULL;
}

static const char *parse_float(const char *s, float *out) {
  if (!s[0] || isspace((unsigned char)s[0])) return "is not a number";
  errno = 0;
  char *end;
  const float v = strtof(s, &end);
  if (end == s || *end) return "is not a number";
  if (errno == ERANGE) return "is out of range for a float";
  if (!isfinite(v)) return "is not a finite number";
  *out = v;
  return NULL;
}

/* Split a comma-separated list into at most max items, calling item() on each. */
typedef const char *(*item_fn)(const char *item, size_t index, void *ctx);

static cli_result parse_list(const char *flag, const char *value, size_t max, item_fn item,
                             void *ctx, size_t *count, char *err, size_t err_size) {
  size_t n = 0;
  const char *p = value;
  for (;;) {
    const char *comma = strchr(p, ',');
    const size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char buf[64];
    if (len == 0) return fail(err, err_size, "%s: empty item in '%s'", flag, value);
    if (len >= sizeof buf) return fail(err, err_size, "%s: item too long in '%s'", flag, value);
    if (n == max) return fail(err, err_size, "%s: more than %zu items in '%s'", flag, max, value);
    memcpy(buf, p, len);
    buf[len] = '\0';
    const char *why = item(buf, n, ctx);
    if (why) return fail(err, err_size, "%s: '%s' in '%s' %s", flag, buf, value, why);
    n++;
    if (!comma) break;
    p = comma + 1;
  }
  *count = n;
  return CLI_RUN;
}

static const char *width_item(const char *item, size_t index, void *ctx) {
  unsigned long long v;
  const char *why = parse_unsigned(item, SIZE_MAX, &v);
  if (why) return why;
  if (v == 0) return "must be at least 1";
  ((size_t *)ctx)[index] = (size_t)v;
  return NULL;
}

static bool act_of(const char *name, dn_act *out) {
  for (int a = DN_ACT_LINEAR; a <= DN_ACT_SOFTMAX; a++)
    if (strcmp(name, dn_act_name((dn_act)a)) == 0) {
      *out = (dn_act)a;
      return true;
    }
  return false;
}

static const char *act_item(const char *item, size_t index, void *ctx) {
  if (!act_of(item, &((dn_act *)ctx)[index]))
    return "is not an activation (linear, relu, leaky_relu, sigmoid, tanh, softmax)";
  return NULL;
}

static const char *const optimizer_names[] = {[DN_OPT_GD] = "gd", [DN_OPT_MOMENTUM] = "momentum",
                                              [DN_OPT_ADAM] = "adam"};

/* The output activation each loss needs. */
static dn_act output_act(dn_loss loss) {
  return loss == DN_LOSS_CCE ? DN_ACT_SOFTMAX : loss == DN_LOSS_BCE ? DN_ACT_SIGMOID : DN_ACT_LINEAR;
}

typedef struct parse_state {
  bool seen[N_OPTIONS];
  size_t n_acts; /* entries of --acts */
  dn_act hidden_act;
} parse_state;

static bool takes_value(opt_kind k) { return k != K_TRUE && k != K_FALSE && k != K_UNSET; }

static cli_result apply(const opt_spec *o, const char *v, cli_config *cfg, parse_state *st,
                        char *err, size_t err_size) {
  void *field = (char *)cfg + o->offset;
  const char *why = NULL;
  unsigned long long u = 0;
  switch (o->kind) {
    case K_TRUE: *(bool *)field = true; break;
    case K_FALSE: *(bool *)field = false; break;
    case K_UNSET: *(const char **)field = NULL; break;
    case K_PATH:
      if (!v[0]) return fail(err, err_size, "%s: the file name is empty", o->name);
      *(const char **)field = v;
      break;
    case K_COUNT:
      if (!(why = parse_unsigned(v, SIZE_MAX, &u)) && u == 0) why = "must be at least 1";
      if (!why) *(size_t *)field = (size_t)u;
      break;
    case K_THREADS:
      if (!(why = parse_unsigned(v, INT_MAX, &u))) *(int *)field = (int)u;
      break;
    case K_SEED:
      if (!(why = parse_unsigned(v, UINT64_MAX, &u))) *(uint64_t *)field = (uint64_t)u;
      break;
    case K_COLUMN:
      if (strcmp(v, "-1") == 0) {
        *(long *)field = -1;
      } else if (!(why = parse_unsigned(v, LONG_MAX, &u))) {
        *(long *)field = (long)u;
      } else if (v[0] == '-') {
        why = "must be a column index or -1 (the last column)";
      }
      break;
    case K_POSITIVE:
    case K_NONNEG:
    case K_PROB: {
      float x = 0.0f;
      if (!(why = parse_float(v, &x))) {
        if (o->kind == K_POSITIVE && !(x > 0.0f)) why = "must be greater than 0";
        if (o->kind == K_NONNEG && !(x >= 0.0f)) why = "must not be negative";
        if (o->kind == K_PROB && !(x > 0.0f && x <= 1.0f)) why = "must be in (0, 1]";
      }
      if (!why) *(float *)field = x;
      break;
    }
    case K_LAYERS:
    case K_HIDDEN: {
      const bool hidden = o->kind == K_HIDDEN;
      size_t dims[CLI_MAX_LAYERS + 1], n = 0;
      if (parse_list(o->name, v, hidden ? CLI_MAX_LAYERS - 1 : CLI_MAX_LAYERS + 1, width_item, dims,
                     &n, err, err_size) != CLI_RUN)
        return CLI_ERROR;
      if (!hidden && n < 2)
        return fail(err, err_size, "%s: '%s' needs at least two widths, n[0] and n[L]", o->name, v);
      memcpy(cfg->dims, dims, n * sizeof *dims);
      cfg->n_dims = n;
      cfg->dims_hidden_only = hidden;
      break;
    }
    case K_ACT:
      if (!act_of(v, &st->hidden_act))
        why = "is not an activation (linear, relu, leaky_relu, sigmoid, tanh)";
      else if (st->hidden_act == DN_ACT_SOFTMAX)
        why = "is for the output layer only (it follows from --loss cce)";
      break;
    case K_ACTS:
      return parse_list(o->name, v, CLI_MAX_LAYERS, act_item, cfg->acts, &st->n_acts, err, err_size);
    case K_LOSS: {
      bool found = false;
      for (int l = DN_LOSS_BCE; l <= DN_LOSS_MSE; l++)
        if (strcmp(v, dn_loss_name((dn_loss)l)) == 0) {
          cfg->loss = (dn_loss)l;
          found = true;
        }
      if (!found) why = "is not a loss (cce, bce, mse)";
      break;
    }
    case K_OPTIMIZER: {
      bool found = false;
      for (size_t i = 0; i < sizeof optimizer_names / sizeof *optimizer_names; i++)
        if (strcmp(v, optimizer_names[i]) == 0) {
          cfg->opts.optimizer = (dn_optimizer)i;
          found = true;
        }
      if (!found) why = "is not an optimizer (adam, momentum, gd)";
      break;
    }
    case K_ISA: {
      bool found = false;
      for (int i = DN_ISA_SCALAR; i <= DN_ISA_NEON; i++)
        if (strcmp(v, dn_isa_name((dn_isa)i)) == 0) {
          cfg->isa = i;
          found = true;
        }
      if (!found) why = "is not an ISA (scalar, avx2, avx512, neon)";
      break;
    }
  }
  if (why) return fail(err, err_size, "%s: '%s' %s", o->name, v, why);
  return CLI_RUN;
}

/* ---- checks across options -------------------------------------------------- */

static bool seen(const parse_state *st, const char *name) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].name, name) == 0) return st->seen[i];
  return false;
}

static cli_result exclusive(const parse_state *st, const char *a, const char *b, char *err,
                            size_t err_size) {
  if (seen(st, a) && seen(st, b)) return fail(err, err_size, "%s and %s exclude each other", a, b);
  return CLI_RUN;
}

/* A data set is IDX images + labels (labels optional where they are not used), or one CSV. */
static cli_result check_data(const cli_data *d, const char *images, const char *labels,
                             const char *csv, bool labels_optional, char *err, size_t err_size) {
  if (d->csv && (d->images || d->labels))
    return fail(err, err_size, "%s excludes %s and %s", csv, images, labels);
  if (d->images && !d->labels && !labels_optional)
    return fail(err, err_size, "%s needs %s", images, labels);
  if (d->labels && !d->images) return fail(err, err_size, "%s needs %s", labels, images);
  return CLI_RUN;
}

static bool data_given(const cli_data *d) { return d->images || d->labels || d->csv; }

static cli_result finish_train(cli_config *cfg, const parse_state *st, char *err, size_t err_size) {
  if (exclusive(st, "--layers", "--hidden", err, err_size) != CLI_RUN ||
      exclusive(st, "--act", "--acts", err, err_size) != CLI_RUN ||
      exclusive(st, "--save", "--no-save", err, err_size) != CLI_RUN)
    return CLI_ERROR;
  if (seen(st, "--resume") && !seen(st, "--checkpoint"))
    return fail(err, err_size, "--resume needs --checkpoint FILE (the checkpoint to continue)");
  if (seen(st, "--checkpoint-every") && !seen(st, "--checkpoint"))
    return fail(err, err_size, "--checkpoint-every needs --checkpoint FILE");
  cfg->opts.resume = cfg->resume;
  cfg->L = cfg->dims_hidden_only ? cfg->n_dims + 1 : cfg->n_dims - 1;
  if (seen(st, "--acts")) {
    if (st->n_acts != cfg->L)
      return fail(err, err_size, "--acts: %zu activations for %zu layers (one per layer, output included)",
                  st->n_acts, cfg->L);
    for (size_t l = 0; l + 1 < cfg->L; l++)
      if (cfg->acts[l] == DN_ACT_SOFTMAX)
        return fail(err, err_size, "--acts: softmax is for the output layer only");
    const dn_act out = cfg->acts[cfg->L - 1];
    if (seen(st, "--loss")) {
      if (out != output_act(cfg->loss))
        return fail(err, err_size, "--acts: --loss %s needs a %s output, not %s", dn_loss_name(cfg->loss),
                    dn_act_name(output_act(cfg->loss)), dn_act_name(out));
    } else if (out == DN_ACT_SOFTMAX || out == DN_ACT_SIGMOID || out == DN_ACT_LINEAR) {
      cfg->loss = out == DN_ACT_SOFTMAX ? DN_LOSS_CCE : out == DN_ACT_SIGMOID ? DN_LOSS_BCE : DN_LOSS_MSE;
    } else {
      return fail(err, err_size, "--acts: the output activation must be softmax, sigmoid or linear, not %s",
                  dn_act_name(out));
    }
  } else {
    for (size_t l = 0; l + 1 < cfg->L; l++) cfg->acts[l] = st->hidden_act;
    cfg->acts[cfg->L - 1] = output_act(cfg->loss);
  }

  if (check_data(&cfg->train_data, "--train-images", "--train-labels", "--train-csv", false, err,
                 err_size) != CLI_RUN ||
      check_data(&cfg->test_data, "--test-images", "--test-labels", "--test-csv", false, err,
                 err_size) != CLI_RUN)
    return CLI_ERROR;
  if (!data_given(&cfg->train_data)) {
    cfg->train_data.images = CLI_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz";
    cfg->train_data.labels = CLI_FASHION_MNIST_DIR "/train-labels-idx1-ubyte.gz";
    if (!data_given(&cfg->test_data)) {
      cfg->test_data.images = CLI_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
      cfg->test_data.labels = CLI_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz";
    }
  }
  return CLI_RUN;
}

static cli_result finish_run(cli_config *cfg, char *err, size_t err_size) {
  if (!cfg->model) return fail(err, err_size, "--model is required");
  const bool predict = cfg->command == CLI_CMD_PREDICT;
  if (check_data(&cfg->data, "--images", "--labels", "--csv", predict, err, err_size) != CLI_RUN)
    return CLI_ERROR;
  if (data_given(&cfg->data)) return CLI_RUN;
  if (predict) return fail(err, err_size, "no input: give --images (IDX), or --csv");
  cfg->data.images = CLI_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
  cfg->data.labels = CLI_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz";
  return CLI_RUN;
}

/* ---- the parser ------------------------------------------------------------- */

static bool is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

static cli_command command_of(const char *name) {
  for (int c = CLI_CMD_INFO; c <= CLI_CMD_PREDICT; c++)
    if (strcmp(name, commands[c].name) == 0) return (cli_command)c;
  return CLI_CMD_NONE;
}

static const opt_spec *find_option(const char *arg, size_t len) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strlen(options[i].name) == len && strncmp(options[i].name, arg, len) == 0) return &options[i];
  return NULL;
}

cli_result cli_parse(int argc, char *const argv[], cli_config *cfg, char *err, size_t err_size) {
  set_defaults(cfg);
  if (argc < 2) return fail(err, err_size, "no command given");
  const char *first = argv[1];
  if (is_help(first)) return CLI_HELP;
  if (strcmp(first, "--version") == 0) return CLI_VERSION;
  if (strcmp(first, "help") == 0) {
    if (argc > 2 && (cfg->command = command_of(argv[2])) == CLI_CMD_NONE)
      return fail(err, err_size, "help: unknown command '%s'", argv[2]);
    return CLI_HELP;
  }
  if ((cfg->command = command_of(first)) == CLI_CMD_NONE) {
    const size_t len = strcspn(first, "=");
    for (size_t i = 0; i < sizeof options / sizeof *options; i++)
      if (strlen(options[i].name) == len && strncmp(first, options[i].name, len) == 0)
        return fail(err, err_size, "%s goes after the command (deepnet COMMAND %s ...)",
                    options[i].name, options[i].name);
    return fail(err, err_size, first[0] == '-' ? "unknown option '%s' (give a command first)"
                                               : "unknown command '%s'",
                first);
  }

  parse_state st = {.hidden_act = DN_ACT_RELU};
  for (int i = 2; i < argc; i++) {
    const char *arg = argv[i];
    if (is_help(arg)) return CLI_HELP;
    if (strncmp(arg, "--", 2) != 0 || !arg[2]) return fail(err, err_size, "unexpected argument '%s'", arg);
    const char *eq = strchr(arg, '=');
    const size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const opt_spec *o = find_option(arg, len);
    if (!o) return fail(err, err_size, "unknown option '%.*s'", (int)len, arg);
    if (!(o->commands & (1u << cfg->command)))
      return fail(err, err_size, "%s is not an option of 'deepnet %s'", o->name, first);
    const char *value = NULL;
    if (!takes_value(o->kind)) {
      if (eq) return fail(err, err_size, "%s takes no value", o->name);
    } else if (eq) {
      value = eq + 1;
    } else {
      /* A following "--flag" is a forgotten value, not a value. */
      if (i + 1 >= argc || (strncmp(argv[i + 1], "--", 2) == 0 && argv[i + 1][2]))
        return fail(err, err_size, "%s needs a value (%s)", o->name, o->metavar);
      value = argv[++i];
    }
    if (apply(o, value, cfg, &st, err, err_size) != CLI_RUN) return CLI_ERROR;
    st.seen[o - options] = true;
  }

  switch (cfg->command) {
    case CLI_CMD_TRAIN: return finish_train(cfg, &st, err, err_size);
    case CLI_CMD_EVAL:
    case CLI_CMD_PREDICT: return finish_run(cfg, err, err_size);
    default: return CLI_RUN;
  }
}

/* ---- help ----------------------------------------------------------------- */

void cli_usage(FILE *out, cli_command command) {
  if (command == CLI_CMD_NONE) {
    fputs("usage: deepnet COMMAND [options]\n\n"
          "Trains and runs fully connected neural networks on the CPU.\n\n"
          "commands:\n",
          out);
    for (int c = CLI_CMD_INFO; c <= CLI_CMD_PREDICT; c++)
      fprintf(out, "  %-9s %s\n", commands[c].name, commands[c].summary);
    fputs("\noptions:\n"
          "  -h, --help  this help; 'deepnet COMMAND --help' for a command's options\n"
          "  --version   print the version\n\n"
          "environment: DEEPNET_ISA caps the kernels, DEEPNET_VERBOSE=1 logs each GEMM,\n"
          "OMP_NUM_THREADS, OMP_PROC_BIND and OMP_PLACES as usual for OpenMP.\n"
          "Quick start: deepnet train   (Fashion-MNIST, about 0.88 test accuracy)\n",
          out);
    return;
  }
  const char *summary = commands[command].summary;
  fprintf(out, "usage: deepnet %s [options]\n\n%c%s.\n\noptions:\n", commands[command].name,
          toupper((unsigned char)summary[0]), summary + 1);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt_spec *o = &options[i];
    if (!(o->commands & (1u << command))) continue;
    char left[40];
    snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    fprintf(out, "  %-22s %s\n", left, o->help);
  }
  fprintf(out, "  %-22s %s\n", "-h, --help", "this help");
  if (commands[command].notes) fprintf(out, "\n%s", commands[command].notes);
}

size_t cli_checkpoint_epoch(size_t first_epoch, size_t epochs_done, size_t every,
                            bool stopped_at_epoch_end, bool resumed) {
  const bool ran = first_epoch > 0 && epochs_done >= first_epoch; /* an epoch completed */
  if (ran && stopped_at_epoch_end) return epochs_done;
  const size_t last_multiple = every ? epochs_done / every * every : epochs_done;
  if (ran && last_multiple >= first_epoch) return last_multiple;
  return resumed && first_epoch > 1 ? first_epoch - 1 : 0;
}
