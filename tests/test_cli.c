/* The `deepnet` command line: the parser as a function, then the built program end to end. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_args.h"

#ifndef DN_CLI_PATH
#error "DN_CLI_PATH (the built deepnet program) must be defined by the build"
#endif

/* ---- the parser --------------------------------------------------------------- */

#define ARGV(...) ((char *const[]){"deepnet", __VA_ARGS__})
#define ARGC(...) ((int)(sizeof((char *const[]){"deepnet", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) cli_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (cfg), (err), sizeof(err))

/* Parsing must fail, with a message that contains want (usually the flag). */
#define EXPECT_ERROR(want, ...)                                                              \
  do {                                                                                       \
    cli_config cfg_;                                                                         \
    char err_[256] = "";                                                                     \
    cr_expect_eq(PARSE(&cfg_, err_, __VA_ARGS__), CLI_ERROR, "accepted: %s", #__VA_ARGS__);  \
    cr_expect(strstr(err_, want) != NULL, "message for %s does not name %s: %s", #__VA_ARGS__, \
              want, err_);                                                                   \
    cr_expect(strchr(err_, '\n') == NULL, "message is not one line: %s", err_);              \
  } while (0)

Test(cli_parse, defaults_are_the_documented_ones) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "train"), CLI_RUN, "%s", err);
  cr_expect_eq(c.command, CLI_CMD_TRAIN);
  /* [784, 512, 256, 10] on Fashion-MNIST: the hidden widths, n[0] and n[L] from the data. */
  cr_expect(c.dims_hidden_only);
  cr_expect_eq(c.n_dims, 2);
  cr_expect_eq(c.dims[0], 512);
  cr_expect_eq(c.dims[1], 256);
  cr_expect_eq(c.L, 3);
  cr_expect_eq(c.acts[0], DN_ACT_RELU);
  cr_expect_eq(c.acts[1], DN_ACT_RELU);
  cr_expect_eq(c.acts[2], DN_ACT_SOFTMAX);
  cr_expect_eq(c.loss, DN_LOSS_CCE);
  cr_expect_eq(c.opts.optimizer, DN_OPT_ADAM);
  cr_expect_eq(c.opts.learning_rate, 1e-3f);
  cr_expect_eq(c.opts.batch_size, 128);
  cr_expect_eq(c.opts.epochs, 10);
  cr_expect_eq(c.opts.seed, 1);
  cr_expect_eq(c.opts.l2_lambda, 0.0f);
  cr_expect_eq(c.opts.keep_prob, 1.0f);
  cr_expect_eq(c.opts.lr_decay, 0.0f);
  cr_expect_str_eq(c.train_data.images, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  cr_expect_str_eq(c.train_data.labels, "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
  cr_expect_str_eq(c.test_data.images, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  cr_expect_str_eq(c.test_data.labels, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  cr_expect_null(c.train_data.csv);
  cr_expect_str_eq(c.save, "deepnet-model.dnm");
  cr_expect_eq(c.threads, 0);
  cr_expect_eq(c.isa, -1);
  cr_expect(c.flush_denormals);
  cr_expect(!c.quiet);
  cr_expect_eq(c.label_column, -1);
  cr_expect_eq(c.scale, 1.0f);
}

Test(cli_parse, every_train_flag_lands_in_its_field) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "train", "--layers", "4,8,6,3", "--act", "tanh", "--loss", "mse",
                     "--optimizer", "momentum", "--lr", "0.05", "--epochs", "7", "--batch=33",
                     "--l2", "0.5", "--keep-prob", "0.8", "--lr-decay", "0.25", "--seed",
                     "18446744073709551615", "--threads", "3", "--isa", "scalar",
                     "--train-csv", "a.csv", "--test-csv", "b.csv", "--label-column", "0",
                     "--scale", "0.5", "--save", "m.dnm", "--quiet", "--no-flush-denormals"),
               CLI_RUN, "%s", err);
  cr_expect(!c.dims_hidden_only);
  cr_expect_eq(c.n_dims, 4);
  cr_expect_eq(c.L, 3);
  cr_expect(c.dims[0] == 4 && c.dims[1] == 8 && c.dims[2] == 6 && c.dims[3] == 3);
  cr_expect(c.acts[0] == DN_ACT_TANH && c.acts[1] == DN_ACT_TANH && c.acts[2] == DN_ACT_LINEAR);
  cr_expect_eq(c.loss, DN_LOSS_MSE);
  cr_expect_eq(c.opts.optimizer, DN_OPT_MOMENTUM);
  cr_expect_eq(c.opts.learning_rate, 0.05f);
  cr_expect_eq(c.opts.epochs, 7);
  cr_expect_eq(c.opts.batch_size, 33);
  cr_expect_eq(c.opts.l2_lambda, 0.5f);
  cr_expect_eq(c.opts.keep_prob, 0.8f);
  cr_expect_eq(c.opts.lr_decay, 0.25f);
  cr_expect_eq(c.opts.seed, UINT64_MAX);
  cr_expect_eq(c.threads, 3);
  cr_expect_eq(c.isa, DN_ISA_SCALAR);
  cr_expect_str_eq(c.train_data.csv, "a.csv");
  cr_expect_str_eq(c.test_data.csv, "b.csv");
  cr_expect_null(c.train_data.images, "CSV training data must not keep the IDX defaults");
  cr_expect_eq(c.label_column, 0);
  cr_expect_eq(c.scale, 0.5f);
  cr_expect_str_eq(c.save, "m.dnm");
  cr_expect(c.quiet);
  cr_expect(!c.flush_denormals);
}

Test(cli_parse, idx_files_hidden_widths_and_no_save_parse) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "train", "--hidden", "32", "--train-images", "ti", "--train-labels", "tl",
                     "--test-images", "si", "--test-labels", "sl", "--no-save", "--loss", "bce"),
               CLI_RUN, "%s", err);
  cr_expect(c.dims_hidden_only);
  cr_expect_eq(c.n_dims, 1);
  cr_expect_eq(c.dims[0], 32);
  cr_expect_eq(c.L, 2);
  cr_expect(c.acts[0] == DN_ACT_RELU && c.acts[1] == DN_ACT_SIGMOID);
  cr_expect_str_eq(c.train_data.images, "ti");
  cr_expect_str_eq(c.train_data.labels, "tl");
  cr_expect_str_eq(c.test_data.images, "si");
  cr_expect_str_eq(c.test_data.labels, "sl");
  cr_expect_null(c.save);
}

Test(cli_parse, training_data_of_ones_own_has_no_default_test_set) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "train", "--train-csv", "t.csv"), CLI_RUN, "%s", err);
  cr_expect_null(c.test_data.images);
  cr_expect_null(c.test_data.labels);
  cr_expect_null(c.test_data.csv);
}

Test(cli_parse, acts_list_sets_every_layer_and_implies_the_loss) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "train", "--acts", "leaky_relu,tanh,sigmoid"), CLI_RUN, "%s", err);
  cr_expect(c.acts[0] == DN_ACT_LEAKY_RELU && c.acts[1] == DN_ACT_TANH && c.acts[2] == DN_ACT_SIGMOID);
  cr_expect_eq(c.loss, DN_LOSS_BCE);
  cr_assert_eq(PARSE(&c, err, "train", "--layers", "2,1", "--acts", "linear"), CLI_RUN, "%s", err);
  cr_expect_eq(c.L, 1);
  cr_expect_eq(c.loss, DN_LOSS_MSE);
}

Test(cli_parse, predict_takes_images_without_labels_but_eval_does_not) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "predict", "--model", "m.dnm", "--images", "i"), CLI_RUN, "%s", err);
  cr_expect_str_eq(c.data.images, "i");
  cr_expect_null(c.data.labels);
  cr_expect_eq(PARSE(&c, err, "eval", "--model", "m.dnm", "--images", "i"), CLI_ERROR);
  cr_expect(strstr(err, "--labels") != NULL, "message: %s", err);
}

Test(cli_parse, eval_and_predict_flags_parse) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "eval", "--model", "m.dnm", "--images", "i", "--labels", "l", "--threads=1"),
               CLI_RUN, "%s", err);
  cr_expect_eq(c.command, CLI_CMD_EVAL);
  cr_expect_str_eq(c.model, "m.dnm");
  cr_expect_str_eq(c.data.images, "i");
  cr_expect_str_eq(c.data.labels, "l");
  cr_expect_eq(c.threads, 1);
  cr_assert_eq(PARSE(&c, err, "eval", "--model", "m.dnm"), CLI_RUN, "%s", err);
  cr_expect_str_eq(c.data.images, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  cr_expect_str_eq(c.data.labels, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  cr_assert_eq(PARSE(&c, err, "predict", "--model", "m.dnm", "--csv", "x.csv", "--label-column", "-1",
                     "--probs"),
               CLI_RUN, "%s", err);
  cr_expect_eq(c.command, CLI_CMD_PREDICT);
  cr_expect_str_eq(c.data.csv, "x.csv");
  cr_expect_eq(c.label_column, -1);
  cr_expect(c.probs);
  cr_assert_eq(PARSE(&c, err, "info", "--isa", "avx2"), CLI_RUN, "%s", err);
  cr_expect_eq(c.command, CLI_CMD_INFO);
  cr_expect_eq(c.isa, DN_ISA_AVX2);
}

Test(cli_parse, help_and_version_are_recognized) {
  cli_config c;
  char err[256];
  cr_expect_eq(PARSE(&c, err, "--help"), CLI_HELP);
  cr_expect_eq(c.command, CLI_CMD_NONE);
  cr_expect_eq(PARSE(&c, err, "-h"), CLI_HELP);
  cr_expect_eq(PARSE(&c, err, "train", "--epochs", "3", "--help"), CLI_HELP);
  cr_expect_eq(c.command, CLI_CMD_TRAIN);
  cr_expect_eq(PARSE(&c, err, "eval", "-h"), CLI_HELP);
  cr_expect_eq(c.command, CLI_CMD_EVAL);
  cr_expect_eq(PARSE(&c, err, "help", "predict"), CLI_HELP);
  cr_expect_eq(c.command, CLI_CMD_PREDICT);
  cr_expect_eq(PARSE(&c, err, "--version"), CLI_VERSION);
}

Test(cli_parse, unknown_flags_and_commands_are_errors_naming_them) {
  EXPECT_ERROR("--frobnicate", "train", "--frobnicate");
  EXPECT_ERROR("--frobnicate", "train", "--frobnicate=3");
  EXPECT_ERROR("--lr", "eval", "--lr", "0.1", "--model", "m", "--csv", "c");
  EXPECT_ERROR("fly", "fly");
  EXPECT_ERROR("stray", "train", "stray");
  EXPECT_ERROR("--epochs", "--epochs", "3");
  EXPECT_ERROR("--quiet", "train", "--quiet=yes");
}

Test(cli_parse, no_command_is_an_error) {
  cli_config c;
  char err[256] = "";
  cr_expect_eq(cli_parse(1, (char *const[]){"deepnet"}, &c, err, sizeof err), CLI_ERROR);
  cr_expect(strstr(err, "command") != NULL, "%s", err);
}

Test(cli_parse, a_missing_value_is_an_error_naming_the_flag) {
  EXPECT_ERROR("--lr", "train", "--lr");
  EXPECT_ERROR("--lr", "train", "--lr", "--epochs", "3");
  EXPECT_ERROR("--save", "train", "--save");
  EXPECT_ERROR("--model", "eval", "--model");
  EXPECT_ERROR("--save", "train", "--save=");
}

Test(cli_parse, malformed_floats_are_rejected) {
  EXPECT_ERROR("--lr", "train", "--lr", "abc");
  EXPECT_ERROR("--lr", "train", "--lr", "1e-3x");
  EXPECT_ERROR("--lr", "train", "--lr", "");
  EXPECT_ERROR("--lr", "train", "--lr", " 0.1");
  EXPECT_ERROR("--lr", "train", "--lr", "nan");
  EXPECT_ERROR("--lr", "train", "--lr", "inf");
  EXPECT_ERROR("--lr", "train", "--lr", "1e40");
  EXPECT_ERROR("--lr", "train", "--lr", "0");
  EXPECT_ERROR("--lr", "train", "--lr", "-0.1");
  EXPECT_ERROR("--l2", "train", "--l2", "-1");
  EXPECT_ERROR("--keep-prob", "train", "--keep-prob", "0");
  EXPECT_ERROR("--keep-prob", "train", "--keep-prob", "1.5");
  EXPECT_ERROR("--lr-decay", "train", "--lr-decay", "-0.5");
  EXPECT_ERROR("--scale", "train", "--scale", "0");
}

Test(cli_parse, negative_zero_and_malformed_counts_are_rejected) {
  EXPECT_ERROR("--epochs", "train", "--epochs", "-1");
  EXPECT_ERROR("--epochs", "train", "--epochs", "0");
  EXPECT_ERROR("--epochs", "train", "--epochs", "3.5");
  EXPECT_ERROR("--epochs", "train", "--epochs", "+3");
  EXPECT_ERROR("--batch", "train", "--batch", "0");
  EXPECT_ERROR("--batch", "train", "--batch", "12k");
  EXPECT_ERROR("--threads", "train", "--threads", "-2");
  EXPECT_ERROR("--seed", "train", "--seed", "-1");
  EXPECT_ERROR("--label-column", "train", "--label-column", "-2");
}

Test(cli_parse, overflowing_integers_are_rejected) {
  EXPECT_ERROR("--epochs", "train", "--epochs", "99999999999999999999999");
  EXPECT_ERROR("--batch", "train", "--batch", "18446744073709551616");
  EXPECT_ERROR("--seed", "train", "--seed", "18446744073709551616");
  EXPECT_ERROR("--threads", "train", "--threads", "2147483648");
  EXPECT_ERROR("--label-column", "train", "--label-column", "9223372036854775808");
  EXPECT_ERROR("--layers", "train", "--layers", "784,18446744073709551616,10");
}

Test(cli_parse, malformed_layer_lists_are_rejected) {
  EXPECT_ERROR("--layers", "train", "--layers", "784,,10");
  EXPECT_ERROR("--layers", "train", "--layers", "784,0,10");
  EXPECT_ERROR("--layers", "train", "--layers", ",784,10");
  EXPECT_ERROR("--layers", "train", "--layers", "784,10,");
  EXPECT_ERROR("--layers", "train", "--layers", "784");
  EXPECT_ERROR("--layers", "train", "--layers", "784,x,10");
  EXPECT_ERROR("--layers", "train", "--layers", "784,-5,10");
  EXPECT_ERROR("--hidden", "train", "--hidden", "0");
  EXPECT_ERROR("--hidden", "train", "--hidden", "");
}

Test(cli_parse, unknown_activation_loss_optimizer_and_isa_are_rejected) {
  EXPECT_ERROR("--act", "train", "--act", "gelu");
  EXPECT_ERROR("--act", "train", "--act", "softmax");
  EXPECT_ERROR("--acts", "train", "--acts", "relu,swish,softmax");
  EXPECT_ERROR("--loss", "train", "--loss", "hinge");
  EXPECT_ERROR("--optimizer", "train", "--optimizer", "sgd");
  EXPECT_ERROR("--isa", "info", "--isa", "sse2");
}

Test(cli_parse, inconsistent_options_are_rejected) {
  EXPECT_ERROR("--acts", "train", "--acts", "relu,softmax");                  /* L = 3 */
  EXPECT_ERROR("--acts", "train", "--acts", "relu,relu,softmax", "--loss", "mse");
  EXPECT_ERROR("--acts", "train", "--acts", "softmax,relu,softmax");
  EXPECT_ERROR("--acts", "train", "--acts", "relu,relu,tanh");
  EXPECT_ERROR("--hidden", "train", "--layers", "4,3", "--hidden", "8");
  EXPECT_ERROR("--acts", "train", "--act", "tanh", "--acts", "relu,relu,softmax");
  EXPECT_ERROR("--train-labels", "train", "--train-images", "x");
  EXPECT_ERROR("--train-csv", "train", "--train-csv", "a", "--train-images", "x", "--train-labels", "y");
  EXPECT_ERROR("--model", "eval", "--csv", "c");
  EXPECT_ERROR("--csv", "predict", "--model", "m");
  EXPECT_ERROR("--labels", "eval", "--model", "m", "--images", "i");
}

Test(cli_parse, checkpoint_flags_land_in_the_training_options) {
  cli_config c;
  char err[256];
  cr_assert_eq(PARSE(&c, err, "train", "--checkpoint", "run.dnc", "--checkpoint-every", "3", "--resume"),
               CLI_RUN, "%s", err);
  cr_expect_str_eq(c.opts.checkpoint_path, "run.dnc");
  cr_expect_eq(c.opts.checkpoint_every, 3);
  cr_expect_eq(c.opts.resume, 1);
  cr_assert_eq(PARSE(&c, err, "train"), CLI_RUN, "%s", err);
  cr_expect_null(c.opts.checkpoint_path);
  cr_expect_eq(c.opts.resume, 0);
}

/* Review findings, session 21: a value that looks like a flag is not "negative", and an
 * option before the command is said to belong after it. */
Test(cli_parse, a_dash_value_is_not_called_negative_and_an_option_before_the_command_is_placed) {
  EXPECT_ERROR("'-h' is not an integer", "train", "--epochs", "-h");
  EXPECT_ERROR("'-3' must not be negative", "train", "--epochs", "-3");
  EXPECT_ERROR("--threads goes after the command (deepnet COMMAND --threads ...)", "--threads", "2", "info");
  EXPECT_ERROR("--isa goes after the command", "--isa=avx2", "info");
  EXPECT_ERROR("unknown option '--frobnicate' (give a command first)", "--frobnicate", "info");
}

Test(cli_parse, resume_or_checkpoint_every_without_a_checkpoint_and_bad_counts_are_rejected) {
  EXPECT_ERROR("--resume", "train", "--resume");
  EXPECT_ERROR("--checkpoint-every", "train", "--checkpoint-every", "2");
  EXPECT_ERROR("--checkpoint-every", "train", "--checkpoint", "c", "--checkpoint-every", "0");
  EXPECT_ERROR("--checkpoint", "train", "--checkpoint", "");
  EXPECT_ERROR("--resume", "train", "--checkpoint", "c", "--resume=yes");
  EXPECT_ERROR("--checkpoint", "eval", "--model", "m", "--checkpoint", "c");
}

/* After Ctrl-C the program names the epoch its checkpoint holds, or says none was written:
 * dn_net_train saves after every `every`-th epoch and when stopped at an epoch's end. */
Test(cli_parse, the_checkpoint_epoch_after_a_stop_follows_the_saving_rule) {
  cr_expect_eq(cli_checkpoint_epoch(0, 0, 1, false, false), 0);  /* stopped in the first batch */
  cr_expect_eq(cli_checkpoint_epoch(1, 0, 1, false, false), 0);  /* in epoch 1 */
  cr_expect_eq(cli_checkpoint_epoch(1, 1, 1, false, false), 1);  /* in epoch 2 */
  cr_expect_eq(cli_checkpoint_epoch(1, 4, 3, false, false), 3);  /* in epoch 5, every 3 */
  cr_expect_eq(cli_checkpoint_epoch(1, 2, 3, false, false), 0);  /* in epoch 3, every 3 */
  cr_expect_eq(cli_checkpoint_epoch(1, 2, 3, true, false), 2);   /* at the end of epoch 2 */
  cr_expect_eq(cli_checkpoint_epoch(5, 5, 3, false, true), 4);   /* resumed at 5, in 6 */
  cr_expect_eq(cli_checkpoint_epoch(5, 6, 3, false, true), 6);   /* resumed at 5, in 7 */
  cr_expect_eq(cli_checkpoint_epoch(5, 4, 3, false, true), 4);   /* resumed at 5, in 5 */
}

/* ---- the program, end to end ---------------------------------------------------- */

typedef struct run_result {
  int status; /* exit code, or -1 if it did not exit normally */
  char out[8192], err[4096];
} run_result;

static char workdir[64];

/* A fresh directory with a 3-class CSV set of well-separated blobs in 4 dimensions. */
static void make_workdir(void) {
  strcpy(workdir, "/tmp/deepnet-cli-XXXXXX");
  cr_assert_not_null(mkdtemp(workdir));
  char path[128];
  snprintf(path, sizeof path, "%s/blobs.csv", workdir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "x0,x1,x2,x3,label\n");
  uint64_t s = 12345;
  for (int j = 0; j < 300; j++) {
    const int c = j % 3;
    for (int i = 0; i < 4; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      const double noise = (double)(s >> 11) / 9007199254740992.0 - 0.5; /* [-0.5, 0.5) */
      fprintf(f, "%.4f,", (i == c ? 3.0 : 0.0) + noise);
    }
    fprintf(f, "%d\n", c);
  }
  cr_assert_eq(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t size) {
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f) return;
  const size_t n = fread(buf, 1, size - 1, f);
  buf[n] = '\0';
  fclose(f);
}

/* Run the deepnet program with args (NULL-terminated). The child dies with the test
 * (a Criterion timeout) and after RUN_LIMIT_S seconds in any case, so a parser that
 * wrongly accepts a bad flag cannot leave a long default training run behind. */
enum { RUN_LIMIT_S = 100 };

static void run_cli(run_result *r, const char *const *args) {
  char out_path[128], err_path[128];
  snprintf(out_path, sizeof out_path, "%s/stdout", workdir);
  snprintf(err_path, sizeof err_path, "%s/stderr", workdir);
  char *argv[64] = {DN_CLI_PATH};
  size_t n = 1;
  for (; args[n - 1]; n++) argv[n] = (char *)args[n - 1];
  argv[n] = NULL;

  const int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int in = open("/dev/null", O_RDONLY);
  cr_assert(out >= 0 && err >= 0 && in >= 0);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    alarm(RUN_LIMIT_S);
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
      _exit(127);
    execv(DN_CLI_PATH, argv);
    _exit(127);
  }
  close(in);
  close(out);
  close(err);
  int ws;
  cr_assert_eq(waitpid(pid, &ws, 0), pid);
  r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  read_file(out_path, r->out, sizeof r->out);
  read_file(err_path, r->err, sizeof r->err);
  unlink(out_path);
  unlink(err_path);
  cr_assert_neq(r->status, 127, "cannot run %s", DN_CLI_PATH);
}

static void path_in(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", workdir, name); }

static void remove_workdir(void) {
  DIR *d = opendir(workdir);
  if (d) {
    char path[512];
    for (struct dirent *e; (e = readdir(d));)
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        snprintf(path, sizeof path, "%s/%s", workdir, e->d_name);
        unlink(path);
      }
    closedir(d);
  }
  rmdir(workdir);
}

static void train_blobs(run_result *r, char *model, size_t size) {
  char csv[128];
  path_in(csv, sizeof csv, "blobs.csv");
  path_in(model, size, "model.dnm");
  const char *const args[] = {"train", "--train-csv", csv, "--test-csv", csv, "--hidden", "8",
                              "--epochs", "40", "--batch", "16", "--lr", "0.01", "--save", model,
                              NULL};
  run_cli(r, args);
}

TestSuite(cli_program, .init = make_workdir, .fini = remove_workdir, .timeout = 120);

Test(cli_program, train_exits_0_and_writes_the_model_file) {
  run_result r;
  char model[128];
  train_blobs(&r, model, sizeof model);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  struct stat st;
  cr_expect_eq(stat(model, &st), 0, "no model file at %s", model);
  cr_expect_gt(st.st_size, 0);
  cr_expect(strstr(r.out, "epoch 40/40") != NULL, "no line for the last epoch:\n%s", r.out);
  cr_expect(strstr(r.out, "test accuracy") != NULL, "no final test accuracy:\n%s", r.out);
  cr_expect(strstr(r.out, "samples/s") != NULL, "no throughput:\n%s", r.out);
  cr_expect(strstr(r.out, model) != NULL, "the saved model path is not printed:\n%s", r.out);
  cr_expect(strchr(r.err, '\r') == NULL, "a live progress line was written to a non-terminal");
}

Test(cli_program, eval_of_a_trained_model_prints_its_accuracy_and_confusion_matrix) {
  run_result r;
  char model[128], csv[128];
  train_blobs(&r, model, sizeof model);
  cr_assert_eq(r.status, 0, "train failed: %s", r.err);
  path_in(csv, sizeof csv, "blobs.csv");
  const char *const args[] = {"eval", "--model", model, "--csv", csv, NULL};
  run_cli(&r, args);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  double acc = -1.0;
  const char *line = strstr(r.out, "accuracy ");
  cr_assert_not_null(line, "no accuracy line:\n%s", r.out);
  cr_assert_eq(sscanf(line, "accuracy %lf", &acc), 1);
  cr_expect_geq(acc, 0.95, "blobs 6 sigma apart should be separated, accuracy %g", acc);
  /* Rows are true classes: each sums to its 100 examples, the diagonal to the correct ones. */
  const char *row = strstr(r.out, "recall\n");
  cr_assert_not_null(row, "no confusion matrix header:\n%s", r.out);
  row += strlen("recall\n");
  unsigned diag = 0;
  for (unsigned i = 0; i < 3; i++) {
    unsigned cls, c[3];
    cr_assert_eq(sscanf(row, "%u %u %u %u", &cls, &c[0], &c[1], &c[2]), 4, "bad row: %s", row);
    cr_expect_eq(cls, i);
    cr_expect_eq(c[0] + c[1] + c[2], 100, "row %u does not hold its 100 examples", i);
    diag += c[i];
    row = strchr(row, '\n') + 1;
  }
  cr_expect_eq(diag, (unsigned)(acc * 300.0 + 0.5), "the diagonal disagrees with the accuracy");
}

Test(cli_program, predict_prints_one_class_per_example) {
  run_result r;
  char model[128], csv[128];
  train_blobs(&r, model, sizeof model);
  cr_assert_eq(r.status, 0, "train failed: %s", r.err);
  path_in(csv, sizeof csv, "blobs.csv");
  const char *const args[] = {"predict", "--model", model, "--csv", csv, NULL};
  run_cli(&r, args);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  size_t lines = 0, right = 0;
  for (const char *p = r.out; *p; lines++) {
    const char *nl = strchr(p, '\n');
    cr_assert_not_null(nl, "unterminated last line");
    cr_assert_eq(nl - p, 1, "a line is not a single class digit");
    right += p[0] - '0' == (int)(lines % 3);
    p = nl + 1;
  }
  cr_expect_eq(lines, 300);
  cr_expect_geq(right, 285);
}

Test(cli_program, a_bad_flag_exits_2_with_one_line_on_stderr) {
  run_result r;
  char csv[128];
  path_in(csv, sizeof csv, "blobs.csv");
  const char *const args[] = {"train", "--train-csv", csv, "--epochs", "1", "--no-save", "--lr", "1e-3x",
                              NULL};
  run_cli(&r, args);
  cr_expect_eq(r.status, 2);
  cr_expect_eq(strncmp(r.err, "deepnet: ", 9), 0, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "--lr") != NULL, "stderr: %s", r.err);
  const char *nl = strchr(r.err, '\n');
  cr_expect(nl != NULL && nl[1] == '\0', "not exactly one line: %s", r.err);
  cr_expect_str_empty(r.out);
}

Test(cli_program, a_missing_data_file_exits_1_with_the_reason) {
  run_result r;
  char csv[128];
  path_in(csv, sizeof csv, "no-such-file.csv");
  const char *const args[] = {"train", "--train-csv", csv, "--no-save", NULL};
  run_cli(&r, args);
  cr_expect_eq(r.status, 1);
  cr_expect_eq(strncmp(r.err, "deepnet: ", 9), 0, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "no-such-file.csv") != NULL, "the file is not named: %s", r.err);
}

/* train on the blobs for `epochs` with dropout (so the dropout position matters too). */
static void train_ckpt(run_result *r, const char *epochs, const char *save, bool checkpoint,
                       bool resume, const char *batch) {
  char csv[128], ck[128], model[128];
  path_in(csv, sizeof csv, "blobs.csv");
  path_in(ck, sizeof ck, "ck.dnc");
  path_in(model, sizeof model, save);
  const char *args[32] = {"train", "--train-csv", csv, "--hidden", "8", "--epochs", epochs,
                          "--batch", batch, "--lr", "0.01", "--keep-prob", "0.9", "--quiet",
                          "--save", model};
  size_t n = 16;
  if (checkpoint) {
    args[n++] = "--checkpoint";
    args[n++] = ck;
  }
  if (resume) args[n++] = "--resume";
  args[n] = NULL;
  run_cli(r, args);
}

Test(cli_program, two_epochs_then_resume_to_four_saves_the_same_model_as_four_straight) {
  run_result r;
  train_ckpt(&r, "4", "straight.dnm", false, false, "16");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  train_ckpt(&r, "2", "resumed.dnm", true, false, "16");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  train_ckpt(&r, "4", "resumed.dnm", true, true, "16");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  cr_expect(strstr(r.out, "(600 samples in") != NULL, "not epochs 3 and 4 only:\n%s", r.out);
  char a[128], b[128], fa[8192], fb[8192];
  path_in(a, sizeof a, "straight.dnm");
  path_in(b, sizeof b, "resumed.dnm");
  struct stat sa, sb;
  cr_assert_eq(stat(a, &sa), 0);
  cr_assert_eq(stat(b, &sb), 0);
  cr_assert_eq(sa.st_size, sb.st_size);
  cr_assert_lt((size_t)sa.st_size, sizeof fa);
  FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
  cr_assert(f && g);
  cr_assert_eq(fread(fa, 1, sizeof fa, f), (size_t)sa.st_size);
  cr_assert_eq(fread(fb, 1, sizeof fb, g), (size_t)sb.st_size);
  fclose(f);
  fclose(g);
  cr_expect_eq(memcmp(fa, fb, (size_t)sa.st_size), 0, "the resumed model differs from the straight one");
}

Test(cli_program, resuming_with_another_batch_size_exits_1_naming_it) {
  run_result r;
  train_ckpt(&r, "1", "resumed.dnm", true, false, "16");
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  train_ckpt(&r, "2", "resumed.dnm", true, true, "17");
  cr_expect_eq(r.status, 1);
  cr_expect(strstr(r.err, "batch_size") != NULL, "stderr: %s", r.err);
}

/* Outputs are checked before the data is even loaded: one that names an input would be
 * overwritten by the model (it happened to a training CSV), and one that cannot be
 * written would fail only after the whole run. Exit 2, nothing written. */
static void expect_output_refused(const char *save, const char *checkpoint, const char *needle) {
  char csv[128], before[8192], after[8192];
  path_in(csv, sizeof csv, "blobs.csv");
  read_file(csv, before, sizeof before);
  const char *args[16] = {"train", "--train-csv", csv, "--epochs", "1", "--quiet", "--save", save};
  size_t n = 8;
  if (checkpoint) {
    args[n++] = "--checkpoint";
    args[n++] = checkpoint;
  }
  args[n] = NULL;
  run_result r;
  run_cli(&r, args);
  cr_expect_eq(r.status, 2, "exit %d, stderr: %s", r.status, r.err);
  cr_expect_not_null(strstr(r.err, needle), "stderr lacks '%s': %s", needle, r.err);
  cr_expect_eq(strstr(r.out, "epoch"), NULL, "it trained: %s", r.out);
  read_file(csv, after, sizeof after);
  cr_expect_str_eq(after, before, "the training CSV changed");
}

Test(cli_program, an_output_that_names_an_input_or_cannot_be_written_exits_2_before_training) {
  char csv[128], via_dot[160], model[128], pipe_path[128], dangling[128], missing[128];
  path_in(csv, sizeof csv, "blobs.csv");
  snprintf(via_dot, sizeof via_dot, "%s/./blobs.csv", workdir);
  expect_output_refused(csv, NULL, "is also the --train-csv");
  expect_output_refused(via_dot, NULL, "is also the --train-csv");
  path_in(model, sizeof model, "model.dnm");
  expect_output_refused(model, csv, "--checkpoint");
  expect_output_refused(model, model, "name the same file");
  path_in(pipe_path, sizeof pipe_path, "pipe");
  cr_assert_eq(mkfifo(pipe_path, 0600), 0);
  expect_output_refused(pipe_path, NULL, "not a regular file");
  path_in(dangling, sizeof dangling, "dangling.dnm");
  cr_assert_eq(symlink("no-such-dir/x.dnm", dangling), 0);
  expect_output_refused(dangling, NULL, "names no file");
  path_in(missing, sizeof missing, "no-such-dir/model.dnm");
  expect_output_refused(missing, NULL, "cannot write");
  struct stat st;
  cr_expect_neq(stat(model, &st), 0, "a model was written");
}

/* eval counts a confusion matrix only when it prints one (up to 32 classes): it used to
 * allocate k x k counters whatever k, 80 GB for a 100000-unit output. */
Test(cli_program, eval_of_a_model_with_100000_classes_runs_without_the_matrix) {
  char csv[128], model[128];
  path_in(csv, sizeof csv, "blobs.csv");
  path_in(model, sizeof model, "wide.dnm");
  const char *const train[] = {"train", "--train-csv", csv, "--layers", "4,100000", "--epochs", "1",
                               "--quiet", "--save", model, NULL};
  run_result r;
  run_cli(&r, train);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  const char *const eval[] = {"eval", "--model", model, "--csv", csv, NULL};
  run_cli(&r, eval);
  cr_assert_eq(r.status, 0, "stderr: %s", r.err);
  cr_expect_not_null(strstr(r.out, "accuracy "), "%s", r.out);
  cr_expect_not_null(strstr(r.out, "confusion matrix omitted: 100000 classes"), "%s", r.out);
}

/* Output that cannot be written is a failure: `deepnet info > /dev/full` used to exit 0. */
Test(cli_program, a_report_that_cannot_be_written_exits_1) {
  if (access("/dev/full", W_OK) != 0) cr_skip_test("no /dev/full");
  const int ws = system(DN_CLI_PATH " info > /dev/full 2>/dev/null");
  cr_assert(WIFEXITED(ws));
  cr_expect_eq(WEXITSTATUS(ws), 1);
  const int help = system(DN_CLI_PATH " train --help > /dev/full 2>/dev/null");
  cr_expect_eq(WEXITSTATUS(help), 1);
}

/* Labels above 65535 are refused by the CSV loader's guard against a wrong label column
 * unless the classes are known: --layers' last width (train), the model's (eval,
 * predict). Without --layers the message says to give it. */
Test(cli_program, labels_above_65535_load_when_the_net_has_that_many_classes) {
  char csv[128], model[128];
  path_in(csv, sizeof csv, "wide.csv");
  path_in(model, sizeof model, "wide.dnm");
  FILE *f = fopen(csv, "w");
  cr_assert_not_null(f);
  for (int j = 0; j < 60; j++) fprintf(f, "%d.5,%d,%d\n", j % 3, j % 2, j % 3 == 0 ? 70000 : j % 3);
  cr_assert_eq(fclose(f), 0);
  const char *const hidden[] = {"train", "--train-csv", csv, "--hidden", "4", "--epochs", "1",
                                "--quiet", "--no-save", NULL};
  run_result r;
  run_cli(&r, hidden);
  cr_expect_eq(r.status, 1);
  cr_expect_not_null(strstr(r.err, "label 70000 is above 65535"), "%s", r.err);
  cr_expect_not_null(strstr(r.err, "give --layers"), "%s", r.err);
  const char *const layers[] = {"train", "--train-csv", csv, "--layers", "2,4,70001", "--epochs", "1",
                                "--quiet", "--save", model, NULL};
  run_cli(&r, layers);
  cr_assert_eq(r.status, 0, "%s", r.err);
  const char *const eval[] = {"eval", "--model", model, "--csv", csv, NULL};
  run_cli(&r, eval);
  cr_expect_eq(r.status, 0, "%s", r.err);
  const char *const predict[] = {"predict", "--model", model, "--csv", csv, NULL};
  run_cli(&r, predict);
  cr_expect_eq(r.status, 0, "%s", r.err);
}

/* OMP_THREAD_LIMIT caps deepnet's threads as it caps an OpenMP team's, and a topology
 * hwloc could not use (a misspelt HWLOC_SYNTHETIC, a missing HWLOC_XMLFILE) is said,
 * not silently replaced by the real one (session 21's review). */
Test(cli_program, omp_thread_limit_is_honoured_and_an_unusable_hwloc_topology_is_named) {
  run_result r;
  const char *const info[] = {"info", "--threads", "4", NULL};
  setenv("OMP_THREAD_LIMIT", "1", 1);
  run_cli(&r, info);
  unsetenv("OMP_THREAD_LIMIT");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_expect_not_null(strstr(r.out, "threads          1"), "%s", r.out);
  setenv("HWLOC_SYNTHETIC", "no such topology", 1);
  run_cli(&r, info);
  unsetenv("HWLOC_SYNTHETIC");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_not_null(strstr(r.err, "hwloc could not use HWLOC_SYNTHETIC=no such topology"), "%s", r.err);
  setenv("HWLOC_SYNTHETIC", "numa:2 core:1 pu:1", 1);
  run_cli(&r, info);
  unsetenv("HWLOC_SYNTHETIC");
  cr_expect_eq(strstr(r.err, "hwloc could not use"), NULL, "%s", r.err);
}
