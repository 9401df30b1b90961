/* Results are bitwise the same for any thread count, and deepnet never
 * oversubscribes inside a caller's parallel region. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <fenv.h>
#include <signal.h>
#include <stdio.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deepnet.h"
#include "internal.h"
#include "test_util.h"

/* Each multi-thread run is made twice: with the size thresholds of normal use (the big
 * GEMMs split, the small ones and most elementwise passes do not at these sizes) and with
 * dn_set_split_everything, which splits every GEMM and elementwise pass (dZ, db, softmax,
 * dropout, the optimizer's units) over the threads. */
static void sgemm_bitwise_for_any_thread_count(size_t Ms, size_t Ns, size_t Ks, bool tiny);
static const size_t DIMS[] = {300, 257, 129, 10};
static const dn_act ACTS[] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SOFTMAX};
enum { M = 203, NP = 257 * 300 + 257 + 129 * 257 + 129 + 10 * 129 + 10 };

typedef struct snapshot {
  float AL[10 * M];
  float grads[NP];
  float cost;
} snapshot;

static void forward_backward(int threads, float keep_prob, snapshot *out) {
  cr_assert_eq(dn_set_num_threads(threads), DN_OK);
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 3, DIMS, ACTS, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, 17), DN_OK);
  cr_assert_eq(dn_net_set_dropout(net, keep_prob, 4), DN_OK);
  cr_assert_eq(dn_net_set_l2(net, 0.01f), DN_OK);
  float *X = tu_random(300 * M, -1, 1, 3), *Y = malloc(10 * M * sizeof *Y);
  tu_fill_one_hot(Y, 10, M, 4);
  cr_assert_eq(dn_net_forward(net, X, M, out->AL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, &out->cost), DN_OK);
  float *g = out->grads;
  for (size_t l = 1; l <= 3; l++) {
    cr_assert_eq(dn_net_get_grad(net, l, g, g + DIMS[l] * DIMS[l - 1]), DN_OK);
    g += DIMS[l] * DIMS[l - 1] + DIMS[l];
  }
  free(X);
  free(Y);
  dn_net_free(net);
  dn_set_num_threads(0);
}

static void expect_same_for_thread_counts(float keep_prob) {
  static snapshot one, many;
  forward_backward(1, keep_prob, &one);
  int counts[16];
  const int ncounts = tu_thread_counts(counts, 16);
  for (int split = 0; split < 2; split++) {
    dn_set_split_everything(split);
    for (int i = 0; i < ncounts; i++) {
      forward_backward(counts[i], keep_prob, &many);
      cr_expect(memcmp(one.AL, many.AL, sizeof one.AL) == 0, "A[L] differs with %d threads%s",
                counts[i], split ? ", all split" : "");
      cr_expect(memcmp(one.grads, many.grads, sizeof one.grads) == 0,
                "dW/db differ with %d threads%s", counts[i], split ? ", all split" : "");
      cr_expect(one.cost == many.cost, "cost differs with %d threads%s", counts[i],
                split ? ", all split" : "");
    }
  }
  dn_set_split_everything(false);
}

Test(threads, outputs_dW_and_db_are_bitwise_identical_for_1_2_3_4_7_and_16_threads) {
  expect_same_for_thread_counts(1.0f);
}

Test(threads, dropout_masks_are_bitwise_identical_for_any_thread_count) {
  expect_same_for_thread_counts(0.7f);
}

/* The caller's own floating-point state does not reach the threads that share the work:
 * in round-upward mode, with flushing off and denormal products, dn_sgemm at 1 thread and
 * at 2 and 3 (the pool's workers, which start with the state of the thread that created
 * them) is bitwise the same. deepnet computes in round-to-nearest; the caller's mode is
 * back afterwards. (Workers once kept their creator's rounding and flushing for good.) */
Test(threads, the_callers_rounding_mode_and_flush_setting_do_not_change_any_thread_count) {
  enum { N = 384 };
  float *A = tu_random(N * N, -1, 1, 21), *B = tu_random(N * N, -1, 1, 22);
  for (size_t i = 0; i < N * N; i++) A[i] *= 0x1p-70f, B[i] *= 0x1p-60f; /* products ~2^-130 */
  float *C[3];
  const int saved_flush = dn_get_flush_denormals();
  dn_set_split_everything(true); /* every call on all the threads asked for */
  /* The workers start here, in the default state (the helper-found case: a caller in
   * another state later). */
  C[0] = calloc(N * N, sizeof(float));
  cr_assert_not_null(C[0]);
  cr_assert_eq(dn_set_num_threads(3), DN_OK);
  cr_assert_eq(dn_sgemm('N', 'N', N, N, N, 1.0f, A, N, B, N, 0.0f, C[0], N), DN_OK);
  free(C[0]);
  for (int mode = 0; mode < 2; mode++) {
    dn_set_flush_denormals(mode); /* 0: denormal results kept, 1: flushed */
    const int round = mode ? FE_DOWNWARD : FE_UPWARD;
    for (int t = 0; t < 3; t++) {
      C[t] = calloc(N * N, sizeof(float));
      cr_assert_not_null(C[t]);
      cr_assert_eq(dn_set_num_threads(t + 1), DN_OK);
      cr_assert_eq(fesetround(round), 0);
      cr_assert_eq(dn_sgemm('N', 'N', N, N, N, 1.0f, A, N, B, N, 0.0f, C[t], N), DN_OK);
      cr_expect_eq(fegetround(), round, "the caller's rounding mode was not restored");
      fesetround(FE_TONEAREST);
    }
    for (int t = 1; t < 3; t++)
      cr_expect(memcmp(C[0], C[t], N * N * sizeof(float)) == 0,
                "flush %d: %d threads differ from 1", mode, t + 1);
    size_t denormals = 0;
    for (size_t i = 0; i < N * N; i++) denormals += C[0][i] != 0.0f && fabsf(C[0][i]) < FLT_MIN;
    cr_expect(mode ? denormals == 0 : denormals > 0, "flush %d: %zu denormal results", mode, denormals);
    for (int t = 0; t < 3; t++) free(C[t]);
  }
  dn_set_flush_denormals(saved_flush);
  dn_set_split_everything(false);
  dn_set_num_threads(0);
  free(A);
  free(B);
}

/* The pool's workers (named "dn-worker") block every signal: a signal to the process
 * (the CLI's Ctrl-C, a host's SIGTERM handler) is handled by one of the caller's threads.
 * Read from /proc/self/task/TID/status (Name, SigBlk); under qemu-user (the arm64 suite)
 * those files describe the emulator's threads, so only x86-64 requires finding them. */
Test(threads, pool_workers_block_signals) {
  cr_assert_eq(dn_set_num_threads(3), DN_OK);
  dn_set_split_everything(true);
  /* 96: three blocks of 32 rows, so the AMX path, where it runs, also uses three threads */
  float A[96 * 96] = {0}, C[96 * 96];
  cr_assert_eq(dn_sgemm('N', 'N', 96, 96, 96, 1.0f, A, 96, A, 96, 0.0f, C, 96), DN_OK);
  dn_set_split_everything(false);
  dn_set_num_threads(0);
  char path[300], line[256];
  int workers = 0;
  DIR *dir = opendir("/proc/self/task");
  cr_assert_not_null(dir);
  for (struct dirent *e; (e = readdir(dir));) {
    const int tid = atoi(e->d_name);
    if (tid <= 0 || tid == (int)getpid()) continue; /* ".", "..", the caller */
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    bool worker = false;
    while (fgets(line, sizeof line, f)) {
      if (!strncmp(line, "Name:", 5)) worker = strstr(line, "dn-worker") != NULL;
      if (worker && !strncmp(line, "SigBlk:", 7)) {
        const unsigned long long blk = strtoull(line + 7, NULL, 16);
        cr_expect(blk & (1ull << (SIGINT - 1)) && blk & (1ull << (SIGTERM - 1)),
                  "worker %d: SigBlk %llx", tid, blk);
        workers++;
      }
    }
    fclose(f);
  }
  closedir(dir);
#if defined(__x86_64__)
  cr_expect(workers >= 2, "found %d worker threads", workers);
#endif
}

static void train_with(int threads, float *W1) {
  cr_assert_eq(dn_set_num_threads(threads), DN_OK);
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 3, DIMS, ACTS, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, 5), DN_OK);
  enum { MT = 300 };
  float *X = tu_random(300 * MT, 0, 1, 8), *Y = malloc(10 * MT * sizeof *Y);
  tu_fill_one_hot(Y, 10, MT, 9);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.epochs = 2;
  o.batch_size = 128;
  o.keep_prob = 0.9f;
  cr_assert_eq(dn_net_train(net, X, Y, MT, &o), DN_OK, "%s", dn_last_error());
  cr_assert_eq(dn_net_get_layer(net, 1, W1, NULL), DN_OK);
  free(X);
  free(Y);
  dn_net_free(net);
  dn_set_num_threads(0);
}

/* train_with at every tested thread count, each split as usual and split everywhere, gives
 * W[1] bitwise ref. */
static void expect_training_bitwise(const float *ref, const char *what) {
  static float got[257 * 300];
  int counts[16];
  const int ncounts = tu_thread_counts(counts, 16);
  for (int split = 0; split < 2; split++) {
    dn_set_split_everything(split);
    for (int i = 0; i < ncounts; i++) {
      train_with(counts[i], got);
      cr_expect(memcmp(ref, got, sizeof got) == 0, "%sW[1] after training differs with %d threads%s",
                what, counts[i], split ? ", all split" : "");
    }
  }
  dn_set_split_everything(false);
}

Test(threads, a_whole_training_run_is_bitwise_identical_for_1_2_3_4_7_and_16_threads) {
  static float ref[257 * 300];
  train_with(1, ref);
  expect_training_bitwise(ref, "");
}

/* The AMX path (DEEPNET_AMX=1, where the CPU has tiles): a whole training run and every
 * transpose of dn_sgemm are bitwise the same for any thread count too, both with operands
 * it takes and with one it refuses (a 1e-30 in B: the FMA kernels then compute C, the
 * same for every thread count). Its bits differ from the FMA kernels', which shows it ran. */
Test(threads, the_amx_path_is_bitwise_identical_for_any_thread_count) {
  if (!dn_amx_can_run()) cr_skip_test("AMX (tiles, bf16) is not available here");
  static float fma[257 * 300], ref[257 * 300];
  dn_amx_set_enabled(false);
  train_with(1, fma);
  dn_amx_set_enabled(true);
  cr_assert(dn_gemm_uses_amx(dn_kernels(), 257, 128, 300), "the forward of layer 1 takes AMX");
  train_with(1, ref);
  cr_expect(memcmp(ref, fma, sizeof ref) != 0, "AMX gave the FMA kernels' bits: did it run?");
  expect_training_bitwise(ref, "AMX: ");
  const size_t shapes[2][3] = {{157, 211, 301}, {611, 53, 419}};
  for (int k = 0; k < 2; k++) sgemm_bitwise_for_any_thread_count(shapes[k][0], shapes[k][1], shapes[k][2], false);
  sgemm_bitwise_for_any_thread_count(157, 211, 301, true);
  /* operands smaller than C, rows cut: op(B) packed once over the threads */
  sgemm_bitwise_for_any_thread_count(300, 256, 200, false);
  sgemm_bitwise_for_any_thread_count(300, 256, 200, true);
  dn_amx_set_enabled(false);
}

/* Training steps on layers large enough that 4 and 7 threads cut their GEMMs into several
 * blocks a thread (dn_gemm_blocks_per_thread: 520 x 516 x 256 is 69 M multiply-adds), with
 * the forward's bias and relu applied per block, dA_prev's dZ and db per row block, dW's
 * finiteness scan per block: W[1] and W[2] after three Adam steps are bitwise the one-thread
 * ones. */
Test(threads, steps_on_gemms_cut_in_several_blocks_a_thread_are_bitwise_a_one_thread_run) {
  static const size_t dims[] = {516, 520, 520, 10};
  static const dn_act acts[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_SOFTMAX};
  enum { M = 256 };
  cr_assert_geq(dn_gemm_blocks_per_thread((size_t)520 * 516 * M, 4), 2);
  float *X = tu_random(516 * M, 0, 1, 21), *Y = malloc(10 * M * sizeof *Y);
  tu_fill_one_hot(Y, 10, M, 22);
  static float ref[2][520 * 520], got[2][520 * 520];
  const int counts[] = {1, 4, 7};
  for (int c = 0; c < 3; c++) {
    cr_assert_eq(dn_set_num_threads(counts[c]), DN_OK);
    dn_net *net;
    cr_assert_eq(dn_net_create(&net, 3, dims, acts, DN_LOSS_CCE), DN_OK);
    cr_assert_eq(dn_net_init(net, 7), DN_OK);
    dn_train_opts o;
    dn_train_opts_default(&o);
    for (int step = 0; step < 3; step++) {
      cr_assert_eq(dn_net_forward(net, X, M, NULL), DN_OK, "%s", dn_last_error());
      cr_assert_eq(dn_net_backward(net, Y, NULL), DN_OK, "%s", dn_last_error());
      cr_assert_eq(dn_net_step(net, &o), DN_OK, "%s", dn_last_error());
    }
    float *dst = c == 0 ? ref[0] : got[0];
    cr_assert_eq(dn_net_get_layer(net, 1, dst, NULL), DN_OK);
    cr_assert_eq(dn_net_get_layer(net, 2, c == 0 ? ref[1] : got[1], NULL), DN_OK);
    if (c > 0) {
      cr_expect(memcmp(ref[0], got[0], 520 * 516 * sizeof(float)) == 0, "W[1] differs with %d threads", counts[c]);
      cr_expect(memcmp(ref[1], got[1], 520 * 520 * sizeof(float)) == 0, "W[2] differs with %d threads", counts[c]);
    }
    dn_net_free(net);
  }
  dn_set_num_threads(0);
  free(X);
  free(Y);
}

static void sgemm_bitwise_for_any_thread_count(size_t Ms, size_t Ns, size_t Ks, bool tiny);

Test(threads, sgemm_is_bitwise_identical_for_any_thread_count_and_transpose) {
  /* Wide C (threads split columns, op(A) packed once and shared), wider C (at 2-4 threads
   * chunks of over 128 columns, each of which packs op(A) itself: OWN_A_PACK_MIN_COLUMNS in
   * src/dispatch.c) and tall C (rows split, op(B) shared). */
  const size_t shapes[3][3] = {{157, 211, 301}, {157, 601, 301}, {611, 53, 419}};
  for (int s = 0; s < 3; s++)
    sgemm_bitwise_for_any_thread_count(shapes[s][0], shapes[s][1], shapes[s][2], false);
}

/* tiny: one value of B is 1e-30, which the AMX path refuses (the FMA kernels take over). */
static void sgemm_bitwise_for_any_thread_count(size_t Ms, size_t Ns, size_t Ks, bool tiny) {
  float *A = tu_random(Ms * Ks, -1, 1, 1), *B = tu_random(Ks * Ns, -1, 1, 2);
  if (tiny) B[Ks * Ns - 5] = 1e-30f;
  float *C1 = malloc(Ms * Ns * sizeof *C1), *Cn = malloc(Ms * Ns * sizeof *Cn);
  const char tr[2] = {'N', 'T'};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      const size_t lda = tr[ta] == 'N' ? Ms : Ks, ldb = tr[tb] == 'N' ? Ks : Ns;
      dn_set_num_threads(1);
      cr_assert_eq(dn_sgemm(tr[ta], tr[tb], Ms, Ns, Ks, 1.0f, A, lda, B, ldb, 0.0f, C1, Ms), DN_OK);
      int counts[16];
      const int ncounts = tu_thread_counts(counts, 16);
      for (int i = 0; i < ncounts; i++) {
        const int t = counts[i];
        dn_set_num_threads(t);
        memset(Cn, 0xff, Ms * Ns * sizeof *Cn); /* NaNs: a block no thread wrote cannot pass */
        cr_assert_eq(dn_sgemm(tr[ta], tr[tb], Ms, Ns, Ks, 1.0f, A, lda, B, ldb, 0.0f, Cn, Ms), DN_OK);
        cr_expect(memcmp(C1, Cn, Ms * Ns * sizeof *C1) == 0, "%c%c differs with %d threads", tr[ta], tr[tb], t);
      }
    }
  dn_set_num_threads(0);
  free(A);
  free(B);
  free(C1);
  free(Cn);
}

/* From 4 threads, a GEMM large enough gives each thread 2 to 16 blocks (so the pool can
 * move work from a slow thread to a fast one; no more than the threads), never blocks under
 * 4 M multiply-adds. A 515 x 509 x 523 product (edge tiles both ways) is cut in 4 blocks a
 * thread at 4 and 7 threads and 2 at 16: the bits are still a one-thread run's, for every
 * transpose. */
Test(threads, large_gemms_cut_in_several_blocks_per_thread_are_bitwise_a_one_thread_run) {
  unsetenv("DEEPNET_GEMM_BLOCKS"); /* the rule, not a forced count */
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 2), 1);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 16), 16);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)1024 * 1024 * 256, 16), 4);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)512 * 256 * 784, 16), 1);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 4), 4);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 8), 8);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 15), 8);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)515 * 509 * 523, 4), 4);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)515 * 509 * 523, 7), 4);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)515 * 509 * 523, 16), 2);
  for (int t = 4; t <= 64; t++) { /* no block under the minimum, whatever the count */
    const size_t macs = (size_t)1000 * 1000 * 100;
    const size_t k = dn_gemm_blocks_per_thread(macs, t);
    cr_expect(k == 1 || macs / ((size_t)t * k) >= ((size_t)1 << 22), "%d threads: %zu blocks", t, k);
  }
  sgemm_bitwise_for_any_thread_count(515, 509, 523, false);
  /* The plan dn_gemm_run uses: the blocks a thread are real blocks (or tiles of a 1-D cut),
   * and no plan engages fewer threads than the one-block plan did (64 x 128 x 16384 at 16
   * threads was a 2 x 8 grid; 32 blocks would have fallen back to 11 column tiles). */
  const dn_kernel_table *kt = dn_kernels();
  const size_t dims[] = {32, 48, 64, 96, 128, 256, 515, 1024, 4096};
  for (size_t a = 0; a < 9; a++)
    for (size_t b = 0; b < 9; b++)
      for (int t = 4; t <= 64; t *= 2) {
        const size_t M = dims[a], N = dims[b], K = 16384;
        const size_t row_tiles = (M + kt->mr - 1) / kt->mr, col_tiles = (N + kt->nr - 1) / kt->nr;
        size_t rows, cols, rows1, cols1;
        const size_t k = dn_gemm_plan(kt, 'N', M, N, K, false, false, t, &rows, &cols);
        dn_gemm_plan_cut(kt, 'N', M, N, K, false, false, t, &rows1, &cols1);
        const size_t units = rows > 1 && cols > 1 ? rows * cols : cols == 1 ? row_tiles : col_tiles;
        const size_t units1 = rows1 > 1 && cols1 > 1 ? rows1 * cols1 : cols1 == 1 ? row_tiles : col_tiles;
        cr_expect(k >= 1 && k <= 16 && (k == 1 || units >= (size_t)t * k),
                  "%zu x %zu, %d threads: %zu a thread but %zu units", M, N, t, k, units);
        const size_t busy = units < (size_t)t ? units : (size_t)t, busy1 = units1 < (size_t)t ? units1 : (size_t)t;
        cr_expect(busy >= busy1, "%zu x %zu, %d threads: %zu threads busy, %zu with one block each",
                  M, N, t, busy, busy1);
      }
  if (kt->isa == DN_ISA_AVX512) {
    size_t rows, cols;
    cr_expect_eq(dn_gemm_plan(kt, 'N', 256, 4096, 4096, false, false, 16, &rows, &cols), 16);
    cr_expect_eq(rows * cols, 256, "256 x 4096 x 4096 at 16 threads: %zu x %zu", rows, cols);
    cr_expect_eq(dn_gemm_plan(kt, 'N', 64, 128, 16384, false, false, 16, &rows, &cols), 1);
  }
}

/* Many threads on a C of few tile columns cut it in a grid of blocks (both operands
 * packed once and shared) when op(B) is not transposed; 2 threads, a transposed B and a
 * row-summing epilogue keep a 1-D cut. Each block is whole micro-tiles, so the bits are a
 * one-thread run's. */
Test(threads, sgemm_cut_in_a_2d_grid_is_bitwise_a_one_thread_run) {
  const dn_kernel_table *kt = dn_kernels();
  size_t rows, cols;
  if (kt->isa == DN_ISA_AVX512) { /* the cost model's figures are for 32 x 12 tiles */
    dn_gemm_plan_cut(kt, 'N', 256, 256, 256, false, false, 4, &rows, &cols);
    cr_expect(rows == 2 && cols == 2, "4 threads on 256 x 256: %zu x %zu", rows, cols);
    dn_gemm_plan_cut(kt, 'N', 512, 256, 256, false, false, 16, &rows, &cols);
    cr_expect(rows > 1 && cols > 1, "16 threads on 512 x 256: %zu x %zu", rows, cols);
    dn_gemm_plan_cut(kt, 'N', 512, 256, 256, false, true, 16, &rows, &cols);
    cr_expect(rows > 1 && cols > 1, "16 threads, A pre-packed: %zu x %zu", rows, cols);
    /* Pre-packed A at 2 threads: the column cut, which needs no shared packing phase. */
    dn_gemm_plan_cut(kt, 'N', 512, 256, 256, false, true, 2, &rows, &cols);
    cr_expect(rows == 1 && cols == 2, "2 threads, A pre-packed: %zu x %zu", rows, cols);
    /* A square C at 2 threads: rows while the op(B) a row cut shares fits in half an L2
     * (K = 64: 128 KiB), columns once it does not (K = 10^5: 200 MB). */
    dn_gemm_plan_cut(kt, 'N', 512, 512, 64, false, false, 2, &rows, &cols);
    cr_expect(rows == 2 && cols == 1, "512 x 512, small B: %zu x %zu", rows, cols);
    dn_gemm_plan_cut(kt, 'N', 512, 512, 100000, false, false, 2, &rows, &cols);
    cr_expect(rows == 1 && cols == 2, "512 x 512, B over L2: %zu x %zu", rows, cols);
  }
  dn_gemm_plan_cut(kt, 'T', 512, 256, 256, false, false, 16, &rows, &cols);
  cr_expect(rows == 1 || cols == 1, "B transposed: a 1-D cut, not %zu x %zu", rows, cols);
  for (int t = 2; t <= 16; t++) {
    dn_gemm_plan_cut(kt, 'N', 300, 260, 256, false, false, t, &rows, &cols);
    cr_expect(rows * cols == (size_t)t, "%d threads: %zu x %zu blocks", t, rows, cols);
    dn_gemm_plan_cut(kt, 'N', 300, 260, 256, true, false, t, &rows, &cols);
    cr_expect(rows == (size_t)t && cols == 1, "rows only, %d threads: %zu x %zu", t, rows, cols);
  }
  dn_gemm_plan_cut(kt, 'N', 512, 256, 256, false, false, 2, &rows, &cols);
  cr_expect(rows == 1 || cols == 1, "2 threads: a 1-D cut, not %zu x %zu", rows, cols);
  /* Shapes whose 4-, 6-, 8- and 16-thread cuts are grids on AVX-512 (and some on the other
   * ISAs), with edge tiles on both sides in the second; split_everything makes every
   * count really run (the second is too small for more than 4 threads otherwise). */
  dn_set_split_everything(true);
  sgemm_bitwise_for_any_thread_count(256, 256, 300, false);
  sgemm_bitwise_for_any_thread_count(250, 253, 77, false);
  for (int i = 0; i < 2; i++) {
    const size_t M = i ? 250 : 256, N = i ? 253 : 256, K = i ? 77 : 300;
    float *A = tu_random(M * K, -1, 1, 5), *B = tu_random(K * N, -1, 1, 6);
    float *C1 = malloc(M * N * sizeof *C1), *Cn = malloc(M * N * sizeof *Cn);
    dn_set_num_threads(1);
    cr_assert_eq(dn_sgemm('N', 'N', M, N, K, 1.0f, A, M, B, K, 0.0f, C1, M), DN_OK);
    const int counts[] = {4, 6, 8, 16};
    for (int c = 0; c < 4; c++) {
      dn_set_num_threads(counts[c]);
      memset(Cn, 0xff, M * N * sizeof *Cn); /* NaNs: a block no thread wrote cannot pass */
      cr_assert_eq(dn_sgemm('N', 'N', M, N, K, 1.0f, A, M, B, K, 0.0f, Cn, M), DN_OK);
      cr_expect(memcmp(C1, Cn, M * N * sizeof *C1) == 0, "%zu x %zu x %zu differs with %d threads",
                M, N, K, counts[c]);
    }
    dn_set_num_threads(0);
    free(A);
    free(B);
    free(C1);
    free(Cn);
  }
  dn_set_split_everything(false);
}

Test(threads, inside_a_callers_parallel_region_each_call_runs_on_one_thread) {
  /* Every caller thread drives its own net; the results equal a serial run. */
  static snapshot serial, par[2];
  forward_backward(1, 1.0f, &serial);
  dn_set_num_threads(4);
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    dn_net *net;
    float *X = tu_random(300 * M, -1, 1, 3), *Y = malloc(10 * M * sizeof *Y);
    tu_fill_one_hot(Y, 10, M, 4);
    if (dn_net_create(&net, 3, DIMS, ACTS, DN_LOSS_CCE) == DN_OK) {
      dn_net_init(net, 17);
      dn_net_set_l2(net, 0.01f);
      dn_net_forward(net, X, M, par[t].AL);
      dn_net_backward(net, Y, &par[t].cost);
      dn_net_free(net);
    }
    free(X);
    free(Y);
  }
  dn_set_num_threads(0);
  for (int t = 0; t < 2; t++) {
    cr_expect(memcmp(serial.AL, par[t].AL, sizeof serial.AL) == 0, "caller thread %d", t);
    cr_expect(serial.cost == par[t].cost);
  }
}

Test(threads, thread_count_setting_is_honoured_and_zero_means_openmp_default) {
  cr_assert_eq(dn_set_num_threads(3), DN_OK);
  cr_expect_eq(dn_get_num_threads(), 3);
  /* reads back as what runs: the pool's 256, or OMP_THREAD_LIMIT if lower */
  const int limit = omp_get_thread_limit() < 256 ? omp_get_thread_limit() : 256;
  cr_assert_eq(dn_set_num_threads(1000), DN_OK);
  cr_expect_eq(dn_get_num_threads(), limit);
  cr_assert_eq(dn_set_num_threads(0), DN_OK);
  cr_expect_eq(dn_get_num_threads(), omp_get_max_threads() < limit ? omp_get_max_threads() : limit);
}

/* Everything a public call computes is in round-to-nearest whatever the caller's rounding
 * mode, not only the threaded kernels: the weights dn_net_init draws, the cost and Adam's
 * bias-corrected factors, the decayed learning rate, accuracy's division, and the CSV and
 * IDX loaders' parsing and scaling (glibc's strtof reads the x87 rounding mode as well as
 * MXCSR). Found by session 21's review: init differed in ~400 of 829 weights upward, and
 * a trained net in ~100 parameters. Each result under FE_UPWARD, FE_DOWNWARD and
 * FE_TOWARDZERO must be bitwise the FE_TONEAREST one, and the caller's mode comes back. */
typedef struct rounding_results {
  float init[20 * 33 + 33 + 33 * 4 + 4], trained[20 * 33 + 33 + 33 * 4 + 4], csv[4], idx[4];
  float cost, backward_cost;
  double accuracy;
  int callback_mode; /* what a progress callback saw */
} rounding_results;

static int record_mode(const dn_progress *p, void *user) {
  (void)p;
  *(int *)user = fegetround();
  return 0;
}

static void read_params(const dn_net *net, float *out) {
  cr_assert_eq(dn_net_get_layer(net, 1, out, out + 20 * 33), DN_OK);
  cr_assert_eq(dn_net_get_layer(net, 2, out + 20 * 33 + 33, out + 20 * 33 + 33 + 33 * 4), DN_OK);
}

static void rounding_run(int mode, const char *csv, const char *images, rounding_results *r) {
  enum { M = 301 };
  static float X[20 * M], Y[4 * M];
  tu_fill_uniform(X, 20 * M, -1.0f, 1.0f, 5);
  tu_fill_one_hot(Y, 4, M, 6);
  const size_t dims[] = {20, 33, 4};
  const dn_act acts[] = {DN_ACT_TANH, DN_ACT_SOFTMAX};
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(fesetround(mode), 0);
  cr_assert_eq(dn_net_init(net, 42), DN_OK);
  read_params(net, r->init);
  cr_assert_eq(dn_net_forward(net, X, M, NULL), DN_OK);
  cr_assert_eq(dn_net_backward(net, Y, &r->backward_cost), DN_OK);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.epochs = 3;
  o.batch_size = 64;
  o.learning_rate = 0.0123f;
  o.lr_decay = 0.37f;
  o.progress = record_mode;
  o.progress_user = &r->callback_mode;
  cr_assert_eq(dn_net_train(net, X, Y, M, &o), DN_OK, "%s", dn_last_error());
  read_params(net, r->trained);
  cr_assert_eq(dn_net_cost(net, X, Y, M, &r->cost), DN_OK);
  cr_assert_eq(dn_net_accuracy(net, X, Y, M, &r->accuracy), DN_OK);
  dn_dataset d;
  dn_csv_opts co;
  dn_csv_opts_default(&co);
  co.scale = 0.7f;
  cr_assert_eq(dn_dataset_load_csv(&d, csv, &co), DN_OK, "%s", dn_last_error());
  memcpy(r->csv, d.X, sizeof r->csv);
  dn_dataset_free(&d);
  cr_assert_eq(dn_dataset_load_idx(&d, images, NULL), DN_OK, "%s", dn_last_error());
  memcpy(r->idx, d.X, sizeof r->idx);
  dn_dataset_free(&d);
  cr_expect_eq(fegetround(), mode, "the caller's rounding mode was not restored");
  fesetround(FE_TONEAREST);
  dn_net_free(net);
}

Test(threads, every_public_call_computes_in_round_to_nearest_whatever_the_callers_mode) {
  char dir[] = "/tmp/deepnet-round-XXXXXX", csv[64], images[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(csv, sizeof csv, "%s/x.csv", dir);
  snprintf(images, sizeof images, "%s/x.idx", dir);
  FILE *f = fopen(csv, "w");
  cr_assert_not_null(f);
  fputs("0.1,0.3,1\n0.7,1e-3,0\n", f); /* none exact in binary: each rounds one way or the other */
  cr_assert_eq(fclose(f), 0);
  const unsigned char idx[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 3, 77, 254};
  f = fopen(images, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(idx, 1, sizeof idx, f), sizeof idx);
  cr_assert_eq(fclose(f), 0);
  static rounding_results nearest, other;
  rounding_run(FE_TONEAREST, csv, images, &nearest);
  cr_expect_eq(nearest.callback_mode, FE_TONEAREST);
  const int modes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
  const char *names[] = {"upward", "downward", "toward zero"};
  for (int i = 0; i < 3; i++) {
    rounding_run(modes[i], csv, images, &other);
    cr_expect(memcmp(nearest.init, other.init, sizeof other.init) == 0, "%s: dn_net_init", names[i]);
    cr_expect(nearest.backward_cost == other.backward_cost, "%s: dn_net_backward's cost", names[i]);
    cr_expect(memcmp(nearest.trained, other.trained, sizeof other.trained) == 0, "%s: dn_net_train",
              names[i]);
    cr_expect(nearest.cost == other.cost, "%s: dn_net_cost", names[i]);
    cr_expect(nearest.accuracy == other.accuracy, "%s: dn_net_accuracy", names[i]);
    cr_expect(memcmp(nearest.csv, other.csv, sizeof other.csv) == 0, "%s: the CSV loader", names[i]);
    cr_expect(memcmp(nearest.idx, other.idx, sizeof other.idx) == 0, "%s: the IDX loader", names[i]);
    cr_expect_eq(other.callback_mode, modes[i], "%s: the progress callback ran in mode %d", names[i],
                 other.callback_mode);
  }
  unlink(csv);
  unlink(images);
  rmdir(dir);
}

/* ---- idle workers: OMP_WAIT_POLICY ---- */

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Threaded dn_sgemm calls (the pool's workers take part), bitwise the one-thread result;
 * then the CPU time the whole process uses over 200 ms of idling. */
static double idle_cpu_after_threaded_calls(void) {
  enum { N = 256 };
  float *A = tu_random(N * N, -1, 1, 21), *B = tu_random(N * N, -1, 1, 22);
  float *C1 = malloc(N * N * sizeof *C1), *C2 = malloc(N * N * sizeof *C2);
  cr_assert(A && B && C1 && C2);
  dn_set_num_threads(1);
  cr_assert_eq(dn_sgemm('N', 'N', N, N, N, 1.0f, A, N, B, N, 0.0f, C1, N), DN_OK);
  dn_set_num_threads(2);
  for (int i = 0; i < 20; i++)
    cr_assert_eq(dn_sgemm('N', 'N', N, N, N, 1.0f, A, N, B, N, 0.0f, C2, N), DN_OK);
  cr_expect(memcmp(C1, C2, N * N * sizeof *C1) == 0, "threaded result differs");
  const double before = cpu_seconds();
  usleep(200000);
  const double idle = cpu_seconds() - before;
  dn_set_num_threads(0);
  free(A), free(B), free(C1), free(C2);
  return idle;
}

Test(threads, by_default_idle_workers_sleep_as_soon_as_a_call_returns) {
  unsetenv("OMP_WAIT_POLICY");
  cr_expect_eq(dn_worker_spin_ns(), 0);
  const double idle = idle_cpu_after_threaded_calls();
  cr_expect(idle < 0.005, "%.1f ms of CPU in 200 ms after the last call: a worker spins", idle * 1e3);
}

Test(threads, with_omp_wait_policy_passive_idle_workers_sleep_at_once) {
  setenv("OMP_WAIT_POLICY", "passive", 1);
  cr_expect_eq(dn_worker_spin_ns(), 0);
  const double idle = idle_cpu_after_threaded_calls();
  cr_expect(idle < 0.005, "%.1f ms of CPU in 200 ms after the last call: a worker spins", idle * 1e3);
}

/* Active: the workers spin for the next call (2 ms), then sleep: a bounded cost. */
Test(threads, with_omp_wait_policy_active_idle_workers_spin_briefly_then_sleep) {
  setenv("OMP_WAIT_POLICY", "ACTIVE", 1);
  cr_expect_eq(dn_worker_spin_ns(), 2000000);
  const double idle = idle_cpu_after_threaded_calls();
  cr_expect(idle < 0.03, "%.1f ms of CPU in 200 ms after the last call: the spin is not bounded",
            idle * 1e3);
}

/* A product too small to pay for waking a worker stays on one thread by default; with
 * OMP_WAIT_POLICY=active (workers spinning between calls) it takes a second thread from
 * 2^17 multiply-adds a thread (GEMM_MIN_MACS_PER_THREAD_AWAKE in src/dispatch.c), and
 * only the step from one thread to two moves: larger products keep their count. */
static void expect_gemm_threads_for_16(bool awake) {
  cr_assert_eq(dn_set_num_threads(16), DN_OK);
  cr_expect_eq(dn_gemm_threads(10, 128, 256), awake ? 2 : 1);  /* 2^18.3 multiply-adds */
  cr_expect_eq(dn_gemm_threads(256, 512, 10), awake ? 2 : 1);  /* 2^20.3 */
  cr_expect_eq(dn_gemm_threads(10, 64, 256), 1);               /* 2^17.3: under two threads' worth */
  cr_expect_eq(dn_gemm_threads(256, 256, 64), 4);              /* 2^22: four threads either way */
  cr_expect_eq(dn_gemm_threads(1024, 1024, 128), 16);
  cr_expect_eq(dn_gemm_threads(SIZE_MAX / 2, 4, 4), 16, "an overflowing count is a large product");
  cr_assert_eq(dn_set_num_threads(1), DN_OK);
  cr_expect_eq(dn_gemm_threads(10, 128, 256), 1);
  cr_expect_eq(dn_gemm_threads(1024, 1024, 128), 1);
  dn_set_num_threads(0);
}

/* How many pool jobs one 10 x 128 x 256 dn_sgemm at two threads dispatches (0: inline). */
static size_t pool_jobs_of_a_small_sgemm(void) {
  float *A = tu_random(10 * 256, -1, 1, 5), *B = tu_random(256 * 128, -1, 1, 6), C[10 * 128];
  cr_assert_eq(dn_set_num_threads(2), DN_OK);
  static dn_pool_trace trace;
  dn_pool_trace_begin(&trace);
  cr_assert_eq(dn_sgemm('N', 'N', 10, 128, 256, 1.0f, A, 10, B, 256, 0.0f, C, 10), DN_OK);
  dn_pool_trace_end();
  dn_set_num_threads(0);
  free(A), free(B);
  return trace.jobs;
}

Test(threads, by_default_small_gemms_stay_on_one_thread) {
  unsetenv("OMP_WAIT_POLICY");
  expect_gemm_threads_for_16(false);
  cr_expect_eq(pool_jobs_of_a_small_sgemm(), 0, "the product went to the pool");
}

Test(threads, with_omp_wait_policy_active_small_gemms_take_a_second_thread) {
  setenv("OMP_WAIT_POLICY", "active", 1);
  expect_gemm_threads_for_16(true);
  cr_expect_eq(pool_jobs_of_a_small_sgemm(), 1, "the product did not go to the pool");
  /* The bits of the split are a one-thread run's (every transpose, 10 x 128 x 256 and
   * 256 x 128 x 10: the small-M path and the general one, cut by columns). */
  sgemm_bitwise_for_any_thread_count(10, 128, 256, false);
  sgemm_bitwise_for_any_thread_count(256, 128, 10, false);
}

/* A short threaded training run (every pass split over 2 threads); returns its status. */
static dn_status short_threaded_run(float learning_rate, dn_progress_fn progress, void *user) {
  static const size_t dims[] = {64, 300, 10};
  static const dn_act acts[] = {DN_ACT_RELU, DN_ACT_SOFTMAX};
  enum { MT = 256 };
  float *X = tu_random(64 * MT, 0, 1, 33), *Y = calloc(10 * MT, sizeof *Y);
  cr_assert(X && Y);
  for (size_t j = 0; j < MT; j++) Y[j * 10 + j % 10] = 1.0f;
  dn_net *net;
  cr_assert_eq(dn_net_create(&net, 2, dims, acts, DN_LOSS_CCE), DN_OK);
  cr_assert_eq(dn_net_init(net, 3), DN_OK);
  dn_set_split_everything(true);
  cr_assert_eq(dn_set_num_threads(2), DN_OK);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.epochs = 2;
  o.batch_size = 32;
  o.learning_rate = learning_rate;
  o.progress = progress;
  o.progress_user = user;
  const dn_status s = dn_net_train(net, X, Y, MT, &o);
  /* The other public calls that open a call: each closes it, whether it succeeds or not
   * (after a diverged run the step and the cost may fail). */
  float cost;
  double acc;
  uint32_t labels[MT];
  const dn_status results[] = {dn_net_forward(net, X, MT, NULL), dn_net_backward(net, Y, &cost),
                               dn_net_step(net, &o), dn_net_predict(net, X, MT, NULL),
                               dn_net_classify(net, X, MT, labels), dn_net_accuracy(net, X, Y, MT, &acc),
                               dn_net_cost(net, X, Y, MT, &cost)};
  cr_expect_eq(dn_calls_open(), 0);
  for (size_t i = 0; i < sizeof results / sizeof *results; i++)
    if (s == DN_OK) cr_expect_eq(results[i], DN_OK, "call %zu: %s", i, dn_last_error());
  dn_set_split_everything(false);
  dn_set_num_threads(0);
  dn_net_free(net);
  free(X), free(Y);
  return s;
}

/* Call-scoped spinning (DEEPNET_CALL_SPIN_US): the workers may spin between the jobs of
 * a call, but stop when it returns. With a 100 ms spin allowed, a worker that ignored the
 * end of the calls would burn up to 100 ms of CPU in the idle 200 ms after them. */
Test(threads, call_scoped_spinning_stops_when_the_call_returns) {
  unsetenv("OMP_WAIT_POLICY");
  setenv("DEEPNET_CALL_SPIN_US", "100000", 1);
  cr_expect_eq(dn_call_spin_ns(2), 100000000LL);
  cr_assert_eq(short_threaded_run(0.01f, NULL, NULL), DN_OK);
  const double before = cpu_seconds();
  usleep(200000);
  const double idle = cpu_seconds() - before;
  cr_expect(idle < 0.005, "%.1f ms of CPU in 200 ms after the last call returned: a worker spins",
            idle * 1e3);
}

static int calls_open_in_callback = -1;
static int note_calls_open(const dn_progress *p, void *user) {
  (void)p, (void)user;
  if (dn_calls_open() != 0) calls_open_in_callback = dn_calls_open();
  else if (calls_open_in_callback < 0) calls_open_in_callback = 0;
  return 0;
}

/* Workers spin between the jobs of a call when asked to, and every public call closes
 * what it opened, also when it fails (a diverging run) and around the user's progress
 * callback, where no worker should spin. */
Test(threads, workers_spin_inside_calls_and_every_call_closes) {
  setenv("DEEPNET_CALL_SPIN_US", "1000", 1);
  /* A worker kept off the CPU by other processes for a whole run (~30 ms; the suite runs two
   * test programs at once on a 2-core CI machine) is never idle between two jobs, and CI
   * once saw no spin at all: up to five runs, so only a worker that never spins fails. */
  for (int run = 0; run < 5 && (run == 0 || dn_call_spins() == 0); run++)
    cr_expect_eq(short_threaded_run(0.01f, note_calls_open, NULL), DN_OK);
  cr_expect_eq(calls_open_in_callback, 0, "%d calls open in the progress callback", calls_open_in_callback);
  cr_expect_gt(dn_call_spins(), 0, "no worker spun between the jobs of a call");
  cr_expect_eq(short_threaded_run(1e30f, NULL, NULL), DN_ERR_NUMERIC); /* diverges */
  cr_expect_eq(dn_calls_open(), 0);
}
/* After fork() the child keeps the forking thread's open calls, not another thread's
 * (which would keep its workers spinning after every job for good). */
static pthread_barrier_t fork_barrier;
static void *hold_a_call_open(void *arg) {
  (void)arg;
  dn_call_enter();
  pthread_barrier_wait(&fork_barrier); /* open */
  pthread_barrier_wait(&fork_barrier); /* the parent has forked */
  dn_call_leave();
  return NULL;
}
Test(threads, a_forked_child_keeps_only_the_forking_threads_calls) {
  pthread_barrier_init(&fork_barrier, NULL, 2);
  pthread_t other;
  cr_assert_eq(pthread_create(&other, NULL, hold_a_call_open, NULL), 0);
  pthread_barrier_wait(&fork_barrier);
  dn_call_enter();
  cr_expect_eq(dn_calls_open(), 2);
  const pid_t pid = fork();
  if (pid == 0) _exit(dn_calls_open() == 1 ? 0 : 10 + dn_calls_open());
  int status = -1;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child saw %d calls open",
            WIFEXITED(status) ? WEXITSTATUS(status) - 10 : -1);
  dn_call_leave();
  pthread_barrier_wait(&fork_barrier);
  pthread_join(other, NULL);
  cr_expect_eq(dn_calls_open(), 0);
  pthread_barrier_destroy(&fork_barrier);
}

Test(threads, by_default_two_threads_never_spin_in_a_call) {
  unsetenv("DEEPNET_CALL_SPIN_US");
  unsetenv("OMP_WAIT_POLICY");
  cr_expect_eq(short_threaded_run(0.01f, NULL, NULL), DN_OK);
  cr_expect_eq(dn_call_spins(), 0);
}
Test(threads, a_call_spin_of_0_turns_spinning_off) {
  setenv("DEEPNET_CALL_SPIN_US", "0", 1);
  cr_expect_eq(short_threaded_run(0.01f, NULL, NULL), DN_OK);
  cr_expect_eq(dn_call_spins(), 0);
}

Test(threads, call_spin_setting_is_read_in_microseconds_for_any_thread_count) {
  setenv("DEEPNET_CALL_SPIN_US", "50", 1);
  setenv("OMP_WAIT_POLICY", "passive", 1); /* the explicit setting wins */
  cr_expect_eq(dn_call_spin_ns(2), 50000);
  cr_expect_eq(dn_call_spin_ns(16), 50000);
}
Test(threads, by_default_workers_spin_in_a_call_from_8_threads, .init = cr_redirect_stderr) {
  unsetenv("OMP_WAIT_POLICY");
  setenv("DEEPNET_CALL_SPIN_US", "50x", 1); /* not a number: the default, with a warning */
  cr_expect_eq(dn_call_spin_ns(2), 0);
  fflush(stderr);
  cr_expect_stderr_eq_str("deepnet: DEEPNET_CALL_SPIN_US=50x is not a number of microseconds; using the default\n");
  cr_expect_eq(dn_call_spin_ns(7), 0);
  cr_expect_eq(dn_call_spin_ns(8), 300000);
  cr_expect_eq(dn_call_spin_ns(64), 300000);
}
Test(threads, omp_wait_policy_passive_turns_call_spinning_off) {
  unsetenv("DEEPNET_CALL_SPIN_US");
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  cr_expect_eq(dn_call_spin_ns(16), 0);
}
Test(threads, deepnet_info_says_what_idle_workers_do) {
  unsetenv("OMP_WAIT_POLICY");
  unsetenv("DEEPNET_CALL_SPIN_US");
  cr_expect(strstr(dn_wait_describe(), "300 us between the jobs of a call on 8+ threads, sleep when no call is open"), "%s",
            dn_wait_describe());
}
Test(threads, deepnet_info_says_when_idle_workers_spin_between_calls) {
  setenv("OMP_WAIT_POLICY", "active", 1);
  cr_expect(strstr(dn_wait_describe(), "spin up to 2000 us for the next job, then sleep (OMP_WAIT_POLICY=active); "
                                       "GEMMs take a second thread from 2^18 multiply-adds"), "%s", dn_wait_describe());
}
Test(threads, deepnet_info_says_when_idle_workers_never_spin) {
  setenv("OMP_WAIT_POLICY", "passive", 1);
  unsetenv("DEEPNET_CALL_SPIN_US");
  cr_expect(strstr(dn_wait_describe(), "sleep as soon as"), "%s", dn_wait_describe());
}
Test(threads, call_spin_setting_is_capped_at_a_tenth_of_a_second) {
  setenv("DEEPNET_CALL_SPIN_US", "99999999", 1);
  cr_expect_eq(dn_call_spin_ns(2), 100000000LL);
}

/* DEEPNET_GEMM_BLOCKS forces the blocks a thread from 2 threads on (a tuning knob), and
 * the bits stay a one-thread run's: 16 blocks a thread of a 515 x 509 x 523 product. */
Test(threads, forced_blocks_a_thread_are_bitwise_a_one_thread_run) {
  setenv("DEEPNET_GEMM_BLOCKS", "16", 1);
  cr_expect_eq(dn_gemm_blocks_per_thread(1000, 2), 16);
  cr_expect_eq(dn_gemm_blocks_per_thread(1000, 1), 1);
  sgemm_bitwise_for_any_thread_count(515, 509, 523, false);
}
Test(threads, a_blocks_setting_out_of_range_keeps_the_rule, .init = cr_redirect_stderr) {
  setenv("DEEPNET_GEMM_BLOCKS", "17", 1);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 16), 16);
  cr_expect_eq(dn_gemm_blocks_per_thread((size_t)4096 * 4096 * 256, 2), 1);
  fflush(stderr);
  cr_expect_stderr_eq_str("deepnet: DEEPNET_GEMM_BLOCKS=17 is not a number of blocks from 1 to 16; "
                          "using the built-in rule\n");
}

/* ---- two-phase pool jobs (dn_parallel_phases) ---- */

enum { PHASE_N = 600 };

typedef struct phase_check {
  atomic_int first_done[PHASE_N]; /* set by the first phase */
  atomic_int second_runs[PHASE_N]; /* how often the second phase ran each index */
  atomic_int early;               /* second-phase chunks that saw a first-phase gap */
} phase_check;

static void first_phase(void *ctx, size_t b, size_t e) {
  phase_check *c = ctx;
  if (b == 0) usleep(3000); /* the first chunk is slow: the others must wait for it */
  for (size_t i = b; i < e; i++) atomic_store(&c->first_done[i], 1);
}

static void second_phase(void *ctx, size_t b, size_t e) {
  phase_check *c = ctx;
  for (size_t i = 0; i < PHASE_N; i++)
    if (!atomic_load(&c->first_done[i])) {
      atomic_fetch_add(&c->early, 1);
      break;
    }
  for (size_t i = b; i < e; i++) atomic_fetch_add(&c->second_runs[i], 1);
}

Test(threads, a_two_phase_job_starts_its_second_phase_after_every_first_phase_chunk) {
  static phase_check c;
  for (int threads = 1; threads <= 4; threads++)
    for (int shape = 0; shape < 4; shape++) { /* both, first empty, second empty, neither */
      memset(&c, 0, sizeof c);
      const size_t n1 = shape & 1 ? 0 : PHASE_N, n2 = shape & 2 ? 0 : PHASE_N;
      const dn_phase one = {.n = n1, .grain = 7, .fn = first_phase, .ctx = &c};
      const dn_phase two = {.n = n2, .grain = 5, .fn = second_phase, .ctx = &c};
      dn_set_num_threads(threads);
      dn_parallel_phases(threads, &one, &two);
      if (n1 && n2) cr_expect_eq(atomic_load(&c.early), 0, "%d threads: a second-phase chunk "
                                 "started before the first phase ended", threads);
      for (size_t i = 0; i < PHASE_N; i++) {
        cr_expect_eq(atomic_load(&c.first_done[i]), n1 ? 1 : 0, "%d threads, shape %d: index %zu",
                     threads, shape, i);
        cr_expect_eq(atomic_load(&c.second_runs[i]), n2 ? 1 : 0, "%d threads, shape %d: index %zu",
                     threads, shape, i);
      }
    }
  dn_set_num_threads(0);
}

/* ---- chunk sizes ---- */

typedef struct chunk_log {
  atomic_size_t count;
  size_t begin[64], end[64];
} chunk_log;

static void log_chunk(void *ctx, size_t b, size_t e) {
  chunk_log *log = ctx;
  const size_t k = atomic_fetch_add(&log->count, 1);
  if (k < 64) log->begin[k] = b, log->end[k] = e;
}

/* A phase may ask for more chunks a thread (the large GEMMs' blocks): it gets them. */
Test(threads, a_phase_gets_the_chunks_a_thread_it_asks_for) {
  for (int threads = 2; threads <= 8; threads++)
    for (size_t per = 1; per <= 8; per *= 2) {
      static chunk_log log;
      memset(&log, 0, sizeof log);
      const dn_phase only = {.n = 1000, .grain = 1, .fn = log_chunk, .ctx = &log, .chunks_per_thread = per};
      dn_parallel_phases(threads, &only, NULL);
      cr_expect_eq(atomic_load(&log.count), (size_t)threads * per, "%d threads, %zu a thread", threads, per);
    }
}

/* The pool's trace (bench/gemm_trace.c) counts every chunk of a traced job once, on the
 * thread that ran it, with its busy time inside the job's wall time, and stops counting at
 * dn_pool_trace_end. */
Test(threads, a_traced_job_accounts_for_every_chunk) {
  static dn_pool_trace trace;
  static chunk_log log;
  for (int threads = 2; threads <= 4; threads++) {
    memset(&log, 0, sizeof log);
    dn_pool_trace_begin(&trace);
    const dn_phase first = {.n = 1000, .grain = 1, .fn = log_chunk, .ctx = &log, .chunks_per_thread = 4};
    const dn_phase second = {.n = 500, .grain = 1, .fn = log_chunk, .ctx = &log};
    dn_parallel_phases(threads, &first, &second);
    dn_pool_trace_end();
    size_t chunks = 0, jobs_run = 0;
    double busy = 0;
    for (int t = 0; t < DN_MAX_PLAN_THREADS; t++) {
      chunks += trace.thread[t].chunks;
      jobs_run += trace.thread[t].jobs;
      busy += trace.thread[t].busy_s;
      cr_expect(t < threads || trace.thread[t].chunks == 0, "thread %d of %d ran a chunk", t, threads);
      cr_expect(trace.thread[t].busy_s <= trace.wall_s, "thread %d busy longer than the job", t);
      cr_expect(trace.thread[t].delay_s >= 0);
    }
    cr_expect_eq(trace.jobs, 1);
    cr_expect_eq(chunks, (size_t)threads * 4 + (size_t)threads * 2, "%d threads", threads);
    cr_expect_eq(chunks, atomic_load(&log.count));
    cr_expect(jobs_run >= 1 && jobs_run <= (size_t)threads);
    cr_expect(busy > 0 && trace.wall_s > 0);
    const size_t before = trace.jobs;
    dn_parallel_phases(threads, &first, NULL); /* after the end: not counted */
    cr_expect_eq(trace.jobs, before);
  }
}

/* Chunks are whole grains (but the last, cut at n) and differ by at most one grain, so two
 * threads' shares of 22 micro-panels are 11 + 11, not 12 + 10 (uniform chunks rounded up to
 * the grain left the last share short). */
Test(threads, a_jobs_chunks_are_whole_grains_and_differ_by_at_most_one) {
  const size_t grains[] = {1, 12, 32}, units[] = {1, 3, 22, 43, 64, 1000};
  for (int threads = 2; threads <= 16; threads++)
    for (size_t g = 0; g < sizeof grains / sizeof *grains; g++)
      for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        static chunk_log log;
        memset(&log, 0, sizeof log);
        const size_t grain = grains[g], n = units[u] * grain - (grain > 1 ? grain / 2 : 0);
        dn_set_num_threads(threads);
        dn_parallel_for(n, grain, threads, log_chunk, &log);
        const size_t count = atomic_load(&log.count);
        cr_assert(count >= 1 && count <= 64);
        size_t covered = 0, lo = SIZE_MAX, hi = 0; /* in grains, n's partial grain counting one */
        for (size_t k = 0; k < count; k++) {
          const size_t len = log.end[k] - log.begin[k], in_grains = (len + grain - 1) / grain;
          covered += len;
          cr_expect(log.begin[k] % grain == 0 && (log.end[k] % grain == 0 || log.end[k] == n),
                    "%d threads, grain %zu, n %zu: chunk [%zu, %zu)", threads, grain, n,
                    log.begin[k], log.end[k]);
          lo = in_grains < lo ? in_grains : lo;
          hi = in_grains > hi ? in_grains : hi;
        }
        cr_expect_eq(covered, n, "%d threads, grain %zu, n %zu", threads, grain, n);
        cr_expect(count <= (size_t)threads * 2, "%d threads: %zu chunks by default", threads, count);
        cr_expect(hi - lo <= 1, "%d threads, grain %zu, n %zu: chunks of %zu and %zu grains",
                  threads, grain, n, lo, hi);
      }
  dn_set_num_threads(0);
}
