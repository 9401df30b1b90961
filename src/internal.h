/* Engine-internal declarations shared by the files of src/ (never installed). */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deepnet.h"
#include "kernels.h"

/* ---- errors (error.c) ---- */
/* Record a thread-local message for dn_last_error() and return s. */
dn_status dn_fail(dn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a * b into *out; false (and *out untouched) if it overflows size_t. */
bool dn_mul_ok(size_t a, size_t b, size_t *out);
/* Bytes for count floats, false on overflow. */
bool dn_floats_bytes(size_t count, size_t *bytes);

/* ---- topology (topology.c) ---- */
typedef struct dn_topology_info {
  size_t numa_nodes, cores, pus; /* at least 1 each */
  size_t l1d, l2, l3;            /* bytes of the first cache of each level, 0 if unknown */
  bool is_this_system;           /* false for HWLOC_SYNTHETIC / XML topologies */
} dn_topology_info;
const dn_topology_info *dn_topology(void);
/* The loaded hwloc_topology_t (NULL if hwloc failed), as void * to keep hwloc.h out. */
void *dn_hwloc_topology(void);

/* ---- memory and NUMA placement (numa.c) ---- */
/* 64-byte aligned, zero-filled; NULL on failure or count == 0. */
float *dn_alloc_floats(size_t count);
void dn_free_floats(float *p);
/* Thread t of nt's contiguous share of [0, n) in grain-aligned blocks (the split
 * dn_parallel_for uses, so placement and compute agree). */
void dn_block_range(size_t n, size_t grain, size_t t, size_t nt, size_t *begin, size_t *end);
/* Threads are spread over the NUMA nodes in contiguous groups. */
size_t dn_node_of_thread(size_t t, size_t threads, size_t nodes);
typedef struct dn_node_span {
  size_t node, col_begin, col_end;
} dn_node_span;
#define DN_MAX_NODES_PLANNED 1024
/* The per-node column split of a (rows x cols) matrix worked by `threads`
 * threads: spans[] (at most `threads` entries) in column order; returns the count. */
size_t dn_placement_plan(size_t cols, size_t grain, size_t threads, dn_node_span *spans);
/* A zeroed matrix whose column blocks are bound to the NUMA node of the thread
 * that works them (plain memory on one node or when binding fails); free with
 * dn_free_floats. */
float *dn_alloc_matrix_placed(size_t rows, size_t cols, size_t threads);
void dn_placement_stats(size_t *bound, size_t *failed);
/* Zeroed floats bound to NUMA node `node` (plain memory on one node, or when binding
 * fails); free with dn_free_floats. */
float *dn_alloc_floats_on_node(size_t count, size_t node);

/* Packed weights are read by every thread of every GEMM, so each NUMA node the threads
 * run on gets its own copy: dn_pack_copies(threads) copies (one per node in use, at most
 * DN_MAX_PACK_COPIES; 1 on one node or one thread); copy c lives on dn_copy_node(c) and
 * a thread reads the copy of the node it works for (dn_thread_copy). */
#define DN_MAX_PACK_COPIES 8
size_t dn_pack_copies(int threads);
size_t dn_copy_node(size_t copy, size_t copies);
size_t dn_thread_copy(size_t copies);
/* The node the calling thread works for: set by the pool for each job (thread t of
 * `threads` works for dn_node_of_thread), 0 outside it. */
size_t dn_thread_node(void);
void dn_set_thread_node(size_t node);
/* Place worker t of `threads` for a job: on its core (deepnet's pinning), on its OpenMP
 * place (the user's OMP_PROC_BIND / OMP_PLACES), or on the CPUs the process started with
 * (neither); quiet on failure (src/numa.c, "thread placement"). */
void dn_bind_worker(size_t t, size_t threads);
/* One line on the placement policy in effect, for `deepnet info` and DEEPNET_VERBOSE. */
const char *dn_placement_describe(void);

/* A piece of work over the index range [begin, end). */
typedef void (*dn_range_fn)(void *ctx, size_t begin, size_t end);

/* ---- CPU features (cpu_features.c): the only place that asks the CPU ---- */
typedef struct dn_cpu_features {
  bool avx2_fma;   /* AVX2 + FMA, with YMM state enabled by the OS */
  bool avx512;     /* AVX-512 F/BW/DQ/VL, with ZMM/opmask state enabled by the OS */
  bool neon;       /* AdvSIMD (always on aarch64) */
  bool amd_zen;    /* AuthenticAMD, family 17h or later: Zen cores (kernel choices, dispatch.c) */
  char brand[64];  /* CPU model string, "" if unknown */
} dn_cpu_features;
const dn_cpu_features *dn_cpu_features_get(void);

/* ---- dispatch (dispatch.c) ---- */
/* The active kernel table (initializes the dispatcher on first use). */
const dn_kernel_table *dn_kernels(void);
/* GEMM through the active table over the configured threads, logged when
 * DEEPNET_VERBOSE=1; what and layer (0: none) name the call site; the driver's epilogue
 * (ep may be NULL) runs on each part of C as it is finished. */
void dn_gemm_run(const char *what, size_t layer, char transa, char transb, size_t M, size_t N,
                 size_t K, float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                 float beta, float *C, size_t ldc, const dn_gemm_epilogue *ep);
/* The same with op(A) pre-packed for kt (dn_gemm_pack_a; transa only names it in the log)
 * in `copies` byte-identical copies, each thread reading packedA[dn_thread_copy(copies)],
 * and the driver's fused epilogue (ep may be NULL), split over threads the same way. */
void dn_gemm_run_packed(const char *what, size_t layer, const dn_kernel_table *kt, char transa,
                        size_t M, size_t N, size_t K, float alpha, const float *const *packedA,
                        size_t copies, char transb, const float *B, size_t ldb, float beta,
                        float *C, size_t ldc, const dn_gemm_epilogue *ep);
/* Grid blocks per thread for a threaded GEMM of `macs` multiply-adds (1 to 16;
 * DEEPNET_GEMM_BLOCKS forces it from 2 threads on). */
size_t dn_gemm_blocks_per_thread(size_t macs, int threads);
/* Thread counts beyond this plan as this many (the pool has no more threads than that). */
enum { DN_MAX_PLAN_THREADS = 256 };
/* Threads for an M x N x K product at the configured count: by its multiply-adds a thread,
 * and with OMP_WAIT_POLICY=active (workers awake between calls) a second thread from a
 * smaller size (GEMM_MIN_MACS_PER_THREAD_AWAKE). */
int dn_gemm_threads(size_t M, size_t N, size_t K);
/* The whole plan of a threaded GEMM, as dn_gemm_run uses it: the cut (dn_gemm_plan_cut
 * for threads x blocks a thread) and the blocks a thread it returns, lowered from
 * dn_gemm_blocks_per_thread until the cut has that many blocks (or tiles, for a 1-D cut). */
size_t dn_gemm_plan(const dn_kernel_table *kt, char transb, size_t M, size_t N, size_t K,
                    bool rows_only, bool a_prepacked, int threads, size_t *grid_rows,
                    size_t *grid_cols);
/* How an M x N product C = op(A) op(B) for kt is cut into `blocks` blocks (threads times
 * dn_gemm_blocks_per_thread): a grid_rows x grid_cols grid of blocks of whole micro-tiles
 * (grid_rows * grid_cols == blocks; one of them 1 for a 1-D cut, which the pool then
 * deals out in its own chunks). rows_only: only rows may be cut (an epilogue that sums
 * along rows); a_prepacked: op(A) comes packed (dn_gemm_run_packed); K sizes the packed
 * op(B) a cut of the rows shares. Only transb 'N' products are cut in 2-D (dispatch.c says
 * why). */
void dn_gemm_plan_cut(const dn_kernel_table *kt, char transb, size_t M, size_t N, size_t K,
                      bool rows_only, bool a_prepacked, int blocks, size_t *grid_rows,
                      size_t *grid_cols);
/* Elementwise work fn over [0, n) in grain blocks on as many threads as `elems`
 * elements justify, timed and logged like dn_gemm_run when DEEPNET_VERBOSE=1. */
void dn_elementwise_run(const char *what, size_t layer, size_t elems, size_t n, size_t grain,
                        dn_range_fn fn, void *ctx);
bool dn_verbose(void);
double dn_now_s(void);

/* ---- floating-point environment (parallel.c) ---- */
typedef struct dn_fpenv {
  unsigned int saved;
  bool active;
  unsigned short x87_saved; /* x86-64: the x87 control word, when its rounding was changed */
  bool x87_changed;
} dn_fpenv;
/* Set deepnet's floating-point state on the calling thread (round to nearest, no traps,
 * FTZ/DAZ if flushing is on), remembering the thread's own; leave puts it back. On x86-64
 * the x87 control word's rounding is set to nearest too: the vector units follow MXCSR,
 * but glibc's strtof (the CSV loader) and fegetround read both. Every public call that
 * computes anything enters it before its first floating-point operation, so results
 * do not depend on the caller's rounding mode (fesetround) or flushing. */
void dn_fpenv_enter(dn_fpenv *env);
/* The value of `call`, a dn_status expression, evaluated in deepnet's floating-point state
 * and the caller's restored after it: the body of a public function that computes. */
#define DN_IN_FPENV(call) DN_IN_FPENV_WITH(dn_fpenv_enter, call)
/* Round to nearest without FTZ/DAZ, whatever dn_set_flush_denormals says: for the data
 * loaders, which store the values as the file writes them (a 1e-40 feature stays
 * 1e-40; flushing is for the kernels' arithmetic). */
void dn_fpenv_enter_nearest(dn_fpenv *env);
#define DN_IN_NEAREST(call) DN_IN_FPENV_WITH(dn_fpenv_enter_nearest, call)
#define DN_IN_FPENV_WITH(enter, call) \
  __extension__({                     \
    dn_fpenv fpenv_;                  \
    enter(&fpenv_);                   \
    const dn_status status_ = (call); \
    dn_fpenv_leave(&fpenv_);          \
    status_;                          \
  })
void dn_fpenv_leave(const dn_fpenv *env);

/* ---- threading (parallel.c) ---- */
/* Threads to use for `units` of work: 1 inside the caller's own parallel region,
 * or when there are fewer than 2 * min_units_per_thread units; else up to the
 * configured count. */
int dn_threads_for(size_t units, size_t min_units_per_thread);
/* fn over [0, n) split into contiguous grain-aligned blocks, one per thread, each
 * thread running with deepnet's floating-point environment. fn's results must
 * not depend on where the blocks start and end. */
void dn_parallel_for(size_t n, size_t grain, int threads, dn_range_fn fn, void *ctx);
/* Two passes in one dispatch: every chunk of `first` is done before any chunk of `second`
 * starts (threads that run out of first-phase chunks wait inside the call), which saves
 * waking the workers a second time. Either may be NULL or empty. */
typedef struct dn_phase {
  size_t n, grain;
  dn_range_fn fn;
  void *ctx;
  size_t chunks_per_thread; /* how finely the pool deals [0, n) out; 0: its default (2) */
} dn_phase;
void dn_parallel_phases(int threads, const dn_phase *first, const dn_phase *second);
/* Tests only: split every pass over the configured threads whatever its size (one unit
 * per thread at least), so the threaded form of passes too small to be split in normal
 * use runs at test sizes, where it is checked bitwise and under ThreadSanitizer. */
void dn_set_split_everything(bool on);
/* How long an idle pool worker spins for the next job before sleeping, in ns: 0 (sleep at
 * once) unless OMP_WAIT_POLICY=active (read once). */
long long dn_worker_spin_ns(void);
/* Call-scoped spinning: between dn_call_enter and dn_call_leave (a pass that runs several
 * pool jobs in a row; calls nest and may come from several threads) an idle worker spins
 * up to dn_call_spin_ns(threads of its last job) for the next job, and sleeps as soon as
 * no call of any thread is open. Under OMP_WAIT_POLICY=active the 2 ms idle spin
 * (dn_worker_spin_ns) applies instead. By default 300 us from 8 threads, none below or under
 * OMP_WAIT_POLICY=passive; DEEPNET_CALL_SPIN_US sets it for any count (read once). */
void dn_call_enter(void);
void dn_call_leave(void);
long long dn_call_spin_ns(int threads);
/* Where a threaded job's time goes, per thread (bench/gemm_trace.c): between
 * dn_pool_trace_begin and dn_pool_trace_end every pool job adds its wall time (publish to
 * the last chunk done, as its caller sees it) and each thread its busy time in chunks, its
 * chunk count and, for each job it ran a chunk of, the delay from the job's publication
 * to its first chunk. Thread 0 is the caller. One tracer at a time; costs one relaxed
 * load per chunk when off. */
typedef struct dn_pool_trace {
  size_t jobs;
  double wall_s;
  struct {
    double busy_s, delay_s;
    size_t chunks, jobs;
  } thread[DN_MAX_PLAN_THREADS];
} dn_pool_trace;
void dn_pool_trace_begin(dn_pool_trace *trace);
void dn_pool_trace_end(void);
/* Tests: the calls open now, and how many call-scoped spins workers have started. */
int dn_calls_open(void);
unsigned long dn_call_spins(void);
/* One line on what idle pool workers do, for `deepnet info`. */
const char *dn_wait_describe(void);

/* ---- random numbers (rng.c) ---- */
typedef struct dn_rng {
  uint64_t s[4];
} dn_rng;
void dn_rng_seed(dn_rng *r, uint64_t seed);
uint64_t dn_rng_next(dn_rng *r);
double dn_rng_uniform(dn_rng *r);          /* [0, 1) */
double dn_rng_normal(dn_rng *r);           /* N(0, 1) */
/* A stateless hash of (key, index) to [0, 1): dropout masks independent of threading. */
float dn_hash_uniform(uint64_t key, uint64_t index);

/* ---- the net (net.c) ---- */
/* W[l] laid out as the GEMM driver's packed op(A) (kernels.h: dn_gemm_pack_a), in one
 * byte-identical copy per NUMA node in use (numa.c: dn_pack_copies). */
typedef struct dn_packed_weights {
  float **W[DN_MAX_PACK_COPIES]; /* W[c][1..L]: copy c (NULL entries for layers not packed),
                                  * NULL until used */
  size_t copies;                 /* copies allocated (0 until used) */
  const dn_kernel_table *kt;     /* the table whose layout they have */
  uint64_t version;              /* the params_version they were packed from (0: none) */
  /* The last pass that asked for this set ran under dn_training_reads_w_unpacked: its
   * GEMMs read W itself and packed it as they went, and nothing here was (re)packed. */
  bool unpacked;
} dn_packed_weights;
/* Layer l's copies, for dn_gemm_run_packed: out[c] = pw->W[c][l]; returns pw->copies. */
size_t dn_packed_layer(const dn_packed_weights *pw, size_t l, const float **out);
enum { DN_PACK_FWD, DN_PACK_BWD };

struct dn_net {
  size_t L;
  size_t *n;   /* n[0..L] */
  dn_act *act; /* act[1..L]; act[0] unused */
  dn_loss loss;

  /* All parameters in one array (W1 b1 W2 b2 ...), gradients likewise, so an
   * optimizer is one flat loop and saving is one write. */
  size_t n_params;
  float *params, *grads;
  float **W, **b, **dW, **db; /* [1..L], views into params/grads */

  /* Bumped by everything that writes params (dn_net_init, dn_net_set_layer, the optimizer
   * step; a loaded net starts fresh): the packed weights follow it lazily, so W is packed
   * once per weight update, not once per GEMM. */
  uint64_t params_version;
  /* Wp[DN_PACK_FWD]: op(A) = W[l] of Z = W A, l = 1..L; Wp[DN_PACK_BWD]: op(A) = W[l]^T of
   * dA_prev = W^T dZ, l = 2..L. One copy per NUMA node in use. */
  dn_packed_weights Wp[2];

  /* Optimizer state, allocated on first use: velocity / first moment, second moment. */
  float *opt_m, *opt_v;
  uint64_t opt_t;

  /* Caches of the last forward pass, sized for m_cap columns. */
  size_t m_cap, m;
  const float *X;   /* A[0], the caller's input (must stay valid until backward) */
  /* [1..L]. Z[l] is its own buffer only where something reads Z after the forward pass
   * (dn_layer_keeps_z); elsewhere Z[l] == A[l] and the activation is applied in place. */
  float **Z, **A;
  /* [1..L-1] A[l] after inverted dropout (what layer l+1 consumes), NULL when
   * dropout is off; the mask itself is re-derived from dropout_key by hashing. */
  float **A_drop;
  float *dA, *dZ;   /* backward scratch, max n[l] x m_cap each */
  bool have_forward; /* caches hold a training forward pass */
  bool dropout_on;   /* the last forward pass applied dropout */
  bool have_grad;
  /* The first non-finite gradient the backward pass found (an index into grads), SIZE_MAX
   * if none: each layer's gradients are checked right after they are computed, while in
   * cache, instead of one more pass over all of them in the optimizer step. */
  size_t grad_first_bad;
  /* The optimizer's overflow bound (optim.c): the largest |gradient| the backward pass
   * found (by the same scans), and the largest |value| among the parameters and the
   * optimizer state, which each update returns (state_absmax_known false: recomputed,
   * after anything else wrote them). */
  float grad_absmax;
  float state_absmax;
  bool state_absmax_known;

  float l2_lambda;
  float keep_prob;
  uint64_t dropout_seed, dropout_calls, dropout_key;
};

/* Whether layer l keeps Z = W A_prev + b apart from A = g(Z): the output layer does (bce
 * and cce cost from Z; the output's derivative), and so does softmax (not elementwise).
 * A hidden layer's g' is a function of A alone (relu and leaky relu: A > 0 exactly when
 * Z > 0, NaN included; sigmoid and tanh from A; linear: 1), so it computes A in place of
 * Z: one write of each activation instead of two, and one cache fewer. */
bool dn_layer_keeps_z(const dn_net *net, size_t l);

/* Inverted-dropout multiplier of element idx of layer l under key: 0 or 1/keep_prob. */
float dn_dropout_multiplier(uint64_t key, size_t l, size_t idx, float keep_prob);
/* What layer l+1 reads as its input: A_drop[l] when dropout is on, else A[l] (A[0] = X). */
const float *dn_layer_input(const dn_net *net, size_t l);

/* Make the caches hold at least m columns (keeps them if already large enough). */
dn_status dn_net_reserve(dn_net *net, size_t m);
/* Make net->Wp[which] hold the current W for kt's layout (re-packs only after the
 * parameters or the table changed); DN_ERR_NOMEM leaves the net as it was. */
dn_status dn_net_pack_weights(dn_net *net, const dn_kernel_table *kt, int which, bool training);
/* Training passes on at most this many threads read W (forward) and W^T (dA_prev) unpacked:
 * each GEMM packs the blocks of them it needs as it goes (the AVX-512 and AVX2 micro-kernels
 * pack W while reading it), and the optimizer writes no packed copies (8 bytes a parameter
 * and layout less per step). With more threads, every thread packs the rows of W its part
 * of the product needs, so packing repeats across threads, while the copies are written
 * once, in parallel. Measured (docs/kernels.md): one thread gains (deep net -8%, AVX2 -10%);
 * on Intel two threads split both ways (deep net -4%, small net at batch 128 +4%): so one;
 * on AMD Zen 3, where the micro-kernel packs W at every lda, two threads gain 1-9%: so two. */
int dn_unpacked_w_max_threads(void);
/* The AMX path (src/dispatch.c): DEEPNET_AMX and the CPU allow it (dn_amx_enabled), the
 * active table is AVX-512's and so GEMMs of suitable shapes take it (dn_amx_in_use), and
 * whether one of M x N x K does (dn_gemm_uses_amx: only GEMMs given op(A) unpacked).
 * dn_amx_set_enabled overrides DEEPNET_AMX (tests). */
bool dn_amx_enabled(void);
bool dn_amx_in_use(void);
void dn_amx_set_enabled(bool on);
bool dn_amx_can_run(void); /* built with AMX, and the CPU, OS and process allow tiles */
bool dn_gemm_uses_amx(const dn_kernel_table *kt, size_t M, size_t N, size_t K);
/* Whether a pass (training or not) reads W unpacked now. With the FMA kernels inference
 * always reads the copies (W does not change between calls, so they are packed once);
 * while the AMX path is in use every pass reads W itself (it splits W into its own
 * pieces, and the copies' bits would differ). */
bool dn_training_reads_w_unpacked(bool training);
/* Check an l in 1..L. */
/* The most layers a net may have (dn_net_create; the model and checkpoint loaders refuse
 * more as damage). */
#define DN_MAX_LAYERS 4096
dn_status dn_net_check_layer(const dn_net *net, size_t l, const char *fn);
/* Validate a float array of count values: finite everywhere, else DN_ERR_NUMERIC naming what. */
dn_status dn_check_finite(const float *x, size_t count, const char *what);
/* The index of the first NaN or infinity in x, count if none. */
size_t dn_first_nonfinite(const float *x, size_t count);
/* After a forward pass over a finite X: DN_ERR_NUMERIC if the output A[L] holds an Inf or
 * NaN (parameters that overflow it), naming the element (its example counted from
 * first_col) and dropping the pass as a refused X does (have_forward false, the dropout
 * masks not advanced); fn names the caller. */
dn_status dn_check_output(dn_net *net, size_t first_col, const char *fn);

/* ---- pipeline (forward.c, backward.c, loss.c) ---- */
/* Forward over X (n[0], m), keeping the caches backward needs when training. check_x: the
 * public caller's name when X must be refused if not finite (checked inside layer 1's
 * GEMM; a refusal drops the last forward pass), NULL when the caller checked it already. */
dn_status dn_forward_pass(dn_net *net, const float *X, size_t m, bool training,
                          const char *check_x);
/* Cost of the output layer (Z, A = g(Z), each rows x m) against Y, L2 term excluded.
 * bce and cce are computed from Z (log-sigmoid, log-softmax) so they stay finite
 * when A saturates to 0 or 1. */
double dn_loss_cost(dn_loss loss, size_t rows, size_t m, const float *Z, const float *A,
                    const float *Y);
/* (lambda / 2m) sum ||W[l]||^2 */
double dn_l2_cost(const dn_net *net, size_t m);
dn_status dn_backward_pass(dn_net *net, const float *Y, float *cost);

/* ---- optimizers (optim.c) ---- */
dn_status dn_check_train_opts(const dn_train_opts *opts, const char *fn);
dn_status dn_optim_step(dn_net *net, const dn_train_opts *opts, float learning_rate);

#endif /* DN_INTERNAL_H */
