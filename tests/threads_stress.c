/* Threaded paths without Criterion, so the suite's threading can run under
 * ThreadSanitizer (Criterion's runner cannot start under TSan: its inheritable
 * arena collides with TSan's memory layout, Snaipe/Criterion#274). Prints
 * "N passed, N failed" and exits non-zero on any failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepnet.h"
#include "internal.h"
#include "test_util.h"

static int passed, failed;

static void check(int ok, const char *what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL: %s (%s)\n", what, dn_last_error());
  }
}

static const size_t DIMS[] = {96, 80, 48, 10};
static const dn_act ACTS[] = {DN_ACT_RELU, DN_ACT_TANH, DN_ACT_SOFTMAX};
enum { M = 150, W1 = 80 * 96 };

/* Train briefly with `threads` threads and return W[1] in out. */
static int train(int threads, float keep_prob, float *out) {
  dn_net *net;
  if (dn_net_create(&net, 3, DIMS, ACTS, DN_LOSS_CCE) != DN_OK) return 0;
  dn_net_init(net, 3);
  float *X = tu_random(96 * M, 0, 1, 1), *Y = malloc(10 * M * sizeof *Y);
  tu_fill_one_hot(Y, 10, M, 2);
  dn_train_opts o;
  dn_train_opts_default(&o);
  o.epochs = 2;
  o.batch_size = 64;
  o.keep_prob = keep_prob;
  dn_set_num_threads(threads);
  const int ok = dn_net_train(net, X, Y, M, &o) == DN_OK && dn_net_get_layer(net, 1, out, NULL) == DN_OK;
  free(X);
  free(Y);
  dn_net_free(net);
  return ok;
}

typedef struct user_thread {
  float W[W1];
  int ok;
} user_thread;

static void *user_main(void *p) {
  user_thread *u = p;
  u->ok = train(0, 0.9f, u->W); /* each user thread drives its own net */
  return NULL;
}

int main(void) {
  static float ref[W1], got[W1];
  check(train(1, 0.9f, ref), "one-thread training runs");
  /* With the normal size thresholds, then with every pass split (dZ, db, softmax, dropout
   * and the optimizer's units too), so the sanitizer sees every threaded path. */
  const int counts[] = {2, 3, 4};
  for (int split = 0; split < 2; split++) {
    dn_set_split_everything(split);
    for (int i = 0; i < 3; i++) {
      check(train(counts[i], 0.9f, got), "multi-thread training runs");
      check(memcmp(ref, got, sizeof ref) == 0, "training is bitwise identical for any thread count");
    }
  }

  /* Independent nets from several user threads at once match the serial run (every pass
   * still split). */
  dn_set_num_threads(2);
  static user_thread users[3];
  pthread_t tid[3];
  for (int i = 0; i < 3; i++) pthread_create(&tid[i], NULL, user_main, &users[i]);
  for (int i = 0; i < 3; i++) pthread_join(tid[i], NULL);
  dn_set_num_threads(1);
  for (int i = 0; i < 3; i++) {
    check(users[i].ok, "training from a user thread runs");
    check(memcmp(users[i].W, ref, sizeof ref) == 0, "concurrent nets give the serial result");
  }

  /* dn_sgemm split over threads. */
  const size_t n = 173;
  float *A = tu_random(n * n, -1, 1, 5), *B = tu_random(n * n, -1, 1, 6);
  float *C1 = malloc(n * n * sizeof *C1), *C2 = malloc(n * n * sizeof *C2);
  dn_set_num_threads(1);
  check(dn_sgemm('T', 'N', n, n, n, 1.0f, A, n, B, n, 0.0f, C1, n) == DN_OK, "sgemm runs");
  dn_set_num_threads(4);
  check(dn_sgemm('T', 'N', n, n, n, 1.0f, A, n, B, n, 0.0f, C2, n) == DN_OK, "threaded sgemm runs");
  check(memcmp(C1, C2, n * n * sizeof *C1) == 0, "threaded sgemm is bitwise identical");
  free(A);
  free(B);
  free(C1);
  free(C2);

  /* A C of few tile columns on 4 and 16 threads: cut in a 2-D grid, both operands packed
   * once by all the threads before any block is multiplied. */
  const size_t gm = 256, gn = 256, gk = 300;
  A = tu_random(gm * gk, -1, 1, 7);
  B = tu_random(gk * gn, -1, 1, 8);
  C1 = malloc(gm * gn * sizeof *C1);
  C2 = malloc(gm * gn * sizeof *C2);
  dn_set_num_threads(1);
  check(dn_sgemm('N', 'N', gm, gn, gk, 1.0f, A, gm, B, gk, 0.0f, C1, gm) == DN_OK, "sgemm runs");
  for (int t = 4; t <= 16; t += 12) {
    dn_set_num_threads(t);
    memset(C2, 0xff, gm * gn * sizeof *C2); /* NaNs: a block no thread wrote cannot pass */
    check(dn_sgemm('N', 'N', gm, gn, gk, 1.0f, A, gm, B, gk, 0.0f, C2, gm) == DN_OK,
          "grid-cut sgemm runs");
    check(memcmp(C1, C2, gm * gn * sizeof *C1) == 0, "grid-cut sgemm is bitwise identical");
  }
  free(A);
  free(B);
  free(C1);
  free(C2);
  dn_set_split_everything(false);

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
