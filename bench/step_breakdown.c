/* Where one training step goes: forward, backward and the optimizer step (which also
 * re-packs the weights), each timed separately over many steps, for the Fashion-MNIST net
 * [784,512,256,10] or the deep net [784,1024,1024,512,10], Adam, synthetic data.
 *
 *   deepnet-step-breakdown THREADS [deep 0|1] [batch] [steps]
 *
 * Prints mean milliseconds per phase after a warm-up of 50 steps. For the per-layer split
 * (GEMM vs elementwise, update), run it with DEEPNET_VERBOSE=1. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "deepnet.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s THREADS [deep 0|1] [batch] [steps]\n", argv[0]);
    return 2;
  }
  const int threads = atoi(argv[1]), deep = argc > 2 && atoi(argv[2]);
  const size_t m = argc > 3 ? (size_t)atol(argv[3]) : 128;
  const int steps = argc > 4 ? atoi(argv[4]) : 300, warmup = 50;
  static const size_t small_dims[] = {784, 512, 256, 10}, deep_dims[] = {784, 1024, 1024, 512, 10};
  static const dn_act acts[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_RELU, DN_ACT_SOFTMAX};
  static const dn_act small_acts[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_SOFTMAX};
  dn_net *net;
  if ((deep ? dn_net_create(&net, 4, deep_dims, acts, DN_LOSS_CCE)
            : dn_net_create(&net, 3, small_dims, small_acts, DN_LOSS_CCE)) != DN_OK ||
      dn_net_init(net, 1) != DN_OK || m == 0 || steps <= warmup) {
    fprintf(stderr, "setup failed: %s\n", dn_last_error());
    return 1;
  }
  float *X = malloc(784 * m * sizeof *X), *Y = calloc(10 * m, sizeof *Y);
  if (!X || !Y) return 1;
  for (size_t i = 0; i < 784 * m; i++) X[i] = (float)(i % 255) / 255.0f;
  for (size_t j = 0; j < m; j++) Y[j * 10 + j % 10] = 1.0f;
  dn_set_num_threads(threads);
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  double tf = 0, tb = 0, ts = 0;
  for (int s = 0; s < steps; s++) {
    const double a = now_s();
    if (dn_net_forward(net, X, m, NULL) != DN_OK) break;
    const double b = now_s();
    if (dn_net_backward(net, Y, NULL) != DN_OK) break;
    const double c = now_s();
    if (dn_net_step(net, &opts) != DN_OK) break;
    const double d = now_s();
    if (s >= warmup) tf += b - a, tb += c - b, ts += d - c;
  }
  const int n = steps - warmup;
  printf("%s net, batch %zu, %d thread(s): forward %.3f  backward %.3f  step %.3f  total %.3f ms"
         "  (%.0f samples/s)\n", deep ? "deep" : "small", m, threads, tf / n * 1e3, tb / n * 1e3,
         ts / n * 1e3, (tf + tb + ts) / n * 1e3, (double)m * n / (tf + tb + ts));
  free(X);
  free(Y);
  dn_net_free(net);
  return 0;
}
