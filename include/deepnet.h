/* deepnet: a CPU engine for training and running L-layer fully connected networks.
 *
 * Layout (see docs/architecture.md): every matrix is column-major float32;
 * X, A[l], Y are (n[l], m) with one example per column; W[l] is (n[l], n[l-1]);
 * b[l] is n[l] floats. Every fallible call returns a dn_status and, on failure,
 * leaves its outputs and the net unchanged; dn_last_error() says why.
 * Threads: different nets may be used from different threads at once; one net from
 * only one thread at a time (docs/architecture.md, "Embedding deepnet"). */
#ifndef DEEPNET_H
#define DEEPNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DN_BUILDING_LIBRARY) && defined(__GNUC__)
#define DN_API __attribute__((visibility("default")))
#else
#define DN_API
#endif

#define DN_VERSION_MAJOR 0
#define DN_VERSION_MINOR 1
#define DN_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked (compare with the macros). */
DN_API const char *dn_version(void);

/* ---- errors ---------------------------------------------------------------- */
typedef enum dn_status {
  DN_OK = 0,
  DN_ERR_ARG,         /* NULL pointer, unknown enum, value out of range */
  DN_ERR_SHAPE,       /* dimensions that do not fit together, or overflow size_t */
  DN_ERR_NOMEM,
  DN_ERR_IO,          /* open/read/write/fsync/rename failed */
  DN_ERR_FORMAT,      /* a file that is not what it claims (magic, sizes, CRC) */
  DN_ERR_STATE,       /* call out of order (backward before forward, ...) */
  DN_ERR_UNSUPPORTED, /* asked for an ISA the CPU lacks, ... */
  DN_ERR_NUMERIC      /* NaN/Inf where a finite value is required; diverged training */
} dn_status;

DN_API const char *dn_status_str(dn_status s);
/* Thread-local human-readable detail of the last failure in this thread. */
DN_API const char *dn_last_error(void);

/* ---- network --------------------------------------------------------------- */
typedef enum dn_act {
  DN_ACT_LINEAR,
  DN_ACT_RELU,
  DN_ACT_LEAKY_RELU, /* slope 0.01 for z < 0 */
  DN_ACT_SIGMOID,
  DN_ACT_TANH,
  DN_ACT_SOFTMAX /* last layer only, over each column */
} dn_act;
typedef enum dn_loss { DN_LOSS_BCE, DN_LOSS_CCE, DN_LOSS_MSE } dn_loss;
typedef enum dn_isa { DN_ISA_SCALAR, DN_ISA_AVX2, DN_ISA_AVX512, DN_ISA_NEON } dn_isa;

DN_API const char *dn_act_name(dn_act a);   /* "linear", "relu", ...; NULL if unknown */
DN_API const char *dn_loss_name(dn_loss l); /* "bce", "cce", "mse"; NULL if unknown */

typedef struct dn_net dn_net;

/* dims has L+1 entries n[0..L]; acts has L entries g[1..L]. The loss fixes the
 * output activation: bce needs sigmoid, cce needs softmax, mse needs linear. */
DN_API dn_status dn_net_create(dn_net **out, size_t L, const size_t *dims, const dn_act *acts,
                               dn_loss loss);
DN_API void dn_net_free(dn_net *net);
/* He (relu family) or Xavier (others) normal weights, zero biases, from a
 * seeded generator of our own: the same seed gives the same weights everywhere. */
DN_API dn_status dn_net_init(dn_net *net, uint64_t seed);
/* W is (n[l], n[l-1]) column-major, b has n[l] floats; l in 1..L. Either may be
 * NULL on get (skip it); both are required on set and must be finite. */
DN_API dn_status dn_net_set_layer(dn_net *net, size_t l, const float *W, const float *b);
DN_API dn_status dn_net_get_layer(const dn_net *net, size_t l, float *W, float *b);

DN_API size_t dn_net_num_layers(const dn_net *net);      /* L, 0 for NULL */
DN_API size_t dn_net_dim(const dn_net *net, size_t l);   /* n[l], 0 if out of range */
DN_API dn_act dn_net_act(const dn_net *net, size_t l);   /* g[l], l in 1..L */
DN_API dn_loss dn_net_loss(const dn_net *net);

/* Forward pass over m examples (X is (n[0], m)); keeps the caches backward
 * needs. Applies dropout if dn_net_set_dropout enabled it. AL, if not NULL,
 * receives A[L] as (n[L], m). An Inf or NaN in X: DN_ERR_NUMERIC naming its
 * index, AL untouched, and no forward pass kept (a dn_net_backward after it is
 * DN_ERR_STATE); parameters and gradients are left as they were. */
DN_API dn_status dn_net_forward(dn_net *net, const float *X, size_t m, float *AL);
/* Backward from the last dn_net_forward against labels Y (n[L], m): fills dW,
 * db for every layer; cost (if not NULL) gets the cost including the L2 term. */
DN_API dn_status dn_net_backward(dn_net *net, const float *Y, float *cost);
/* The gradients of the last dn_net_backward (dW or db may be NULL). They stay available,
 * to this and to dn_net_step, until the next dn_net_forward, dn_net_set_layer, dn_net_init
 * or dn_net_train; inference calls (predict, classify, accuracy, cost) keep them, and so
 * does dn_net_step (a second step applies them again). Otherwise DN_ERR_STATE. */
DN_API dn_status dn_net_get_grad(const dn_net *net, size_t l, float *dW, float *db);

/* Regularization used by dn_net_forward / dn_net_backward (and set for the
 * duration of dn_net_train from its options). lambda >= 0; keep_prob in (0, 1],
 * 1 turns dropout off. Dropout applies to hidden layers only, never at inference. */
DN_API dn_status dn_net_set_l2(dn_net *net, float lambda);
DN_API dn_status dn_net_set_dropout(dn_net *net, float keep_prob, uint64_t seed);

/* Inference (never dropout). It reuses the forward buffers, so a following
 * dn_net_backward returns DN_ERR_STATE until the next dn_net_forward. */
DN_API dn_status dn_net_predict(dn_net *net, const float *X, size_t m, float *AL);
/* Class of each column: argmax of A[L], or A[L] >= 0.5 for one sigmoid output. */
DN_API dn_status dn_net_classify(dn_net *net, const float *X, size_t m, uint32_t *labels);
/* Fraction of columns whose class equals that of Y (one-hot, or 0/1 for one output). */
DN_API dn_status dn_net_accuracy(dn_net *net, const float *X, const float *Y, size_t m,
                                 double *accuracy);
/* Cost of the current parameters on (X, Y) without dropout, L2 term included. */
DN_API dn_status dn_net_cost(dn_net *net, const float *X, const float *Y, size_t m, float *cost);

DN_API dn_status dn_net_save(const dn_net *net, const char *path);
DN_API dn_status dn_net_load(dn_net **out, const char *path);

/* ---- GEMM ------------------------------------------------------------------ */
/* BLAS sgemm semantics, column-major: C = alpha op(A) op(B) + beta C, trans 'N'
 * or 'T' (lowercase accepted). beta == 0 never reads C. */
DN_API dn_status dn_sgemm(char transa, char transb, size_t M, size_t N, size_t K, float alpha,
                          const float *A, size_t lda, const float *B, size_t ldb, float beta,
                          float *C, size_t ldc);

/* ---- training -------------------------------------------------------------- */
typedef enum dn_optimizer { DN_OPT_GD, DN_OPT_MOMENTUM, DN_OPT_ADAM } dn_optimizer;

typedef struct dn_progress {
  size_t epoch, epochs;   /* 1-based current epoch, total */
  size_t batch, batches;  /* 1-based batch within the epoch, batches per epoch */
  float batch_cost;       /* cost of this mini-batch (L2 term included) */
  float epoch_cost;       /* mean batch cost so far this epoch, weighted by batch size */
  int epoch_end;          /* 1 on the last batch of an epoch */
  double samples_per_s;   /* training throughput over this epoch so far */
  double elapsed_s;       /* since dn_net_train started */
  float learning_rate;    /* in effect for this batch (after decay) */
} dn_progress;
/* Return non-zero to stop training after this batch (dn_net_train then returns DN_OK). */
typedef int (*dn_progress_fn)(const dn_progress *p, void *user);

typedef struct dn_train_opts { /* fields may be added; the first five are fixed */
  dn_optimizer optimizer;      /* DN_OPT_ADAM */
  float learning_rate;         /* 1e-3 */
  size_t batch_size;           /* 128; the last partial batch of an epoch is kept */
  size_t epochs;               /* 10 */
  uint64_t seed;               /* shuffling and dropout masks: 1 */
  float beta1;                 /* momentum / Adam first moment: 0.9 */
  float beta2;                 /* Adam second moment: 0.999 */
  float epsilon;               /* Adam: 1e-8; epsilon * sqrt(1 - beta2) >= FLT_MIN */
  float l2_lambda;             /* the course's (lambda/2m) sum ||W||^2: 0 */
  float keep_prob;             /* inverted dropout on hidden layers: 1 (off) */
  float lr_decay;              /* lr / (1 + lr_decay * (epoch-1)): 0 */
  int shuffle;                 /* reshuffle every epoch: 1 */
  dn_progress_fn progress;     /* NULL */
  void *progress_user;
  /* Checkpoints (docs/reliability.md): the whole training state (parameters, optimizer
   * state, epochs done, shuffle and dropout position) saved crash-safely to
   * checkpoint_path after every checkpoint_every-th epoch and after the last one
   * (also when progress stops training at the end of an epoch). NULL: none. */
  const char *checkpoint_path; /* NULL */
  size_t checkpoint_every;     /* 0 or 1: every epoch */
  /* Non-zero: first restore the state saved at checkpoint_path (which must exist), then
   * train the remaining epochs up to `epochs`: the result is bitwise that of one
   * uninterrupted run. A checkpoint of another run (net shape, m or data, batch size,
   * seed, optimizer, shuffle or any hyperparameter differ) is refused with DN_ERR_STATE,
   * a damaged one with DN_ERR_FORMAT; the net is then unchanged. */
  int resume;                  /* 0 */
} dn_train_opts;

DN_API void dn_train_opts_default(dn_train_opts *opts);
/* Mini-batch training on X (n[0], m) and Y (n[L], m). A NaN/Inf cost or gradient, or
 * an update that would overflow, stops it with DN_ERR_NUMERIC, leaving the parameters
 * and optimizer state of the last completed step (of the call's start if none
 * completed). Whether it succeeds or fails it replaces the net's last forward pass
 * and gradients: dn_net_backward and dn_net_step need a new dn_net_forward after it. */
DN_API dn_status dn_net_train(dn_net *net, const float *X, const float *Y, size_t m,
                              const dn_train_opts *opts);
/* One optimizer update from the gradients of the last dn_net_backward, for
 * users' own loops; the optimizer state (velocities, Adam moments, step count)
 * lives in the net. learning_rate is used as given (no decay). Refused with
 * DN_ERR_NUMERIC, changing nothing, when a gradient is Inf/NaN or when the update would
 * make a parameter or the optimizer state non-finite (a learning rate too large for
 * these gradients, say). */
DN_API dn_status dn_net_step(dn_net *net, const dn_train_opts *opts);
/* Forget velocities, Adam moments and the step count. */
DN_API void dn_net_reset_optimizer(dn_net *net);

/* ---- data sets ------------------------------------------------------------- */
/* A labelled set in the engine's layout: X (n_features, m), Y one-hot (n_classes, m),
 * labels[m] the class indices. Owned by the set; free with dn_dataset_free. */
typedef struct dn_dataset {
  float *X;
  float *Y;
  uint32_t *labels;
  size_t n_features, n_classes, m;
} dn_dataset;

/* IDX image + label files (MNIST, Fashion-MNIST), gzipped or not; pixels scaled
 * to [0, 1]; n_classes = max label + 1 (at least 2). labels_path may be NULL
 * (images only, e.g. to predict): then Y and labels are NULL and n_classes is 0. */
DN_API dn_status dn_dataset_load_idx(dn_dataset *out, const char *images_path,
                                     const char *labels_path);

typedef struct dn_csv_opts {
  long label_column;  /* index of the label column; -1 = last (default) */
  int has_header;     /* 1 skip the first line, 0 none, -1 detect (default) */
  size_t n_classes;   /* 0 = max label + 1 (default) */
  float scale;        /* features are multiplied by it: 1 (default) */
  char delimiter;     /* ',' (default) */
} dn_csv_opts;
DN_API void dn_csv_opts_default(dn_csv_opts *opts);
/* Numeric CSV, one example per line; the label column holds integer classes. */
DN_API dn_status dn_dataset_load_csv(dn_dataset *out, const char *path, const dn_csv_opts *opts);
DN_API void dn_dataset_free(dn_dataset *d);

/* ---- run-time configuration ------------------------------------------------ */
DN_API dn_isa dn_isa_detected(void);  /* best the CPU (and OS) supports */
DN_API dn_isa dn_isa_active(void);    /* what the kernels now use */
/* Cap the kernels at isa; DN_ERR_UNSUPPORTED above dn_isa_detected(). Not while
 * another thread is inside a deepnet call. */
DN_API dn_status dn_isa_set(dn_isa isa);
DN_API const char *dn_isa_name(dn_isa isa); /* "scalar", "avx2", "avx512", "neon" */

/* Threads used by deepnet calls, for the whole process (not per calling thread, unlike
 * omp_set_num_threads); 0 = OpenMP's default (OMP_NUM_THREADS, as the calling thread
 * sees it). At most 256 run: dn_get_num_threads gives the count in effect, so a larger
 * setting reads back as 256. */
DN_API dn_status dn_set_num_threads(int n);
DN_API int dn_get_num_threads(void);
/* Flush denormals to zero (FTZ/DAZ) inside deepnet's kernels: on by default. deepnet
 * computes in round-to-nearest with exceptions masked whatever the caller's state, which
 * is restored before each call returns. */
DN_API void dn_set_flush_denormals(int on);
DN_API int dn_get_flush_denormals(void);

#ifdef __cplusplus
}
#endif
#endif /* DEEPNET_H */
