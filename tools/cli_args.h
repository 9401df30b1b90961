/* The `deepnet` command line as a pure function: argv in, a config or an error message out. */
#ifndef DN_CLI_ARGS_H
#define DN_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "deepnet.h"

enum { CLI_MAX_LAYERS = 64 }; /* L, the number of weight layers */

#define CLI_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define CLI_DEFAULT_MODEL "deepnet-model.dnm"

typedef enum cli_command {
  CLI_CMD_NONE, /* no subcommand: `deepnet --help`, `deepnet --version` */
  CLI_CMD_INFO,
  CLI_CMD_TRAIN,
  CLI_CMD_EVAL,
  CLI_CMD_PREDICT
} cli_command;

typedef enum cli_result {
  CLI_RUN,     /* cfg holds a command to run */
  CLI_HELP,    /* print cli_usage(cfg->command) and exit 0 */
  CLI_VERSION, /* print the version and exit 0 */
  CLI_ERROR    /* err holds a one-line message; exit 2 */
} cli_result;

/* One labelled (or, for predict, unlabelled) data set: IDX image + label files, or a CSV file. */
typedef struct cli_data {
  const char *images, *labels, *csv; /* NULL when not given */
} cli_data;

typedef struct cli_config {
  cli_command command;

  /* Every command. */
  int threads;          /* 0: OpenMP's default */
  int isa;              /* -1: the dispatcher's choice (DEEPNET_ISA or the best), else a dn_isa */
  bool flush_denormals; /* true */
  bool quiet;           /* train: only the final summary */

  /* train: the net. dims[0..n_dims) are n[0..L], or only the hidden widths when
   * dims_hidden_only (n[0] and n[L] then come from the data). acts[0..L) are g[1..L],
   * always complete after a successful parse. */
  size_t dims[CLI_MAX_LAYERS + 1];
  size_t n_dims;
  bool dims_hidden_only;
  size_t L;
  dn_act acts[CLI_MAX_LAYERS];
  dn_loss loss;
  dn_train_opts opts; /* progress fields are the CLI's to fill */
  cli_data train_data, test_data; /* test_data may be empty: no test set */
  const char *save;               /* NULL: do not save */
  /* --checkpoint, --checkpoint-every land in opts.checkpoint_path, opts.checkpoint_every;
   * --resume in opts.resume after parsing. */
  bool resume;

  /* eval, predict */
  const char *model;
  cli_data data;
  bool probs;

  /* CSV loading (train, eval, predict) */
  long label_column; /* -1: the last column */
  float scale;       /* features multiplied by it: 1 */
} cli_config;

/* Parse argv[0..argc) (argv[0] is the program name). Never exits or prints: on
 * CLI_ERROR err receives a one-line message that names the offending flag. */
cli_result cli_parse(int argc, char *const argv[], cli_config *cfg, char *err, size_t err_size);

/* The epoch a checkpoint holds after a run stopped early, 0 if there is none: dn_net_train
 * saves one after every `every`-th epoch and when it is stopped at an epoch's end. This
 * run began at first_epoch (0: it reached no progress report) and completed epochs_done;
 * resumed: it began from a checkpoint, which holds first_epoch - 1 until a newer one. */
size_t cli_checkpoint_epoch(size_t first_epoch, size_t epochs_done, size_t every,
                            bool stopped_at_epoch_end, bool resumed);

/* Write the help of a command (CLI_CMD_NONE: of the program) to out. */
void cli_usage(FILE *out, cli_command command);
/* "info", "train", ...; "deepnet" for CLI_CMD_NONE. */
const char *cli_command_name(cli_command command);

#endif /* DN_CLI_ARGS_H */
