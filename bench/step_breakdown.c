/* Where one training step goes: forward, backward and the optimizer step (which also
 * re-packs the weights), each timed separately over many steps, for the Fashion-MNIST net
 * [784,512,256,10] or the deep net [784,1024,1024,512,10], Adam, synthetic data.
 *
 *   deepnet-step-breakdown THREADS [deep 0|1] [batch] [steps]
 *
 * Prints mean milliseconds per phase after a warm-up of 50 steps (batch 128 and 300 steps
 * by default; steps must exceed 50). For the per-layer split (GEMM vs elementwise, update),
 * run it with DEEPNET_VERBOSE=1.
 *
 *   deepnet-step-breakdown --scaling T1,T2,... [--rounds R] [--steps S] [--deep] [--batch M]
 *
 * The whole step's speed-up with threads, the thread counts taking turns within each of R
 * rounds (default 5; the order rotating), batch M (default 256), each sample S steps
 * (default 30) after 5 untimed
 * ones at the same count, on the wall clock; after each sample the host's FMA loop runs on
 * as many threads at once (host_fma.h), so each round gives the step's speed-up over T1
 * and the host's in the same minute. Prints a table: per thread count the median ms a step
 * and samples/s, the speed-up over T1 and the host's with their quartiles, and the step's
 * speed-up as a share of the host's (the median of the rounds' quotients); quartiles are
 * interpolated as bench-gemm-vs's. Under the table, a cache line's round trip between the
 * first two CPUs, measured once a round (host_fma.h): the kind of minute the rounds saw. Both forms exit 2 on bad arguments, 1 if the net cannot
 * be set up or a step fails. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deepnet.h"
#include "host_fma.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The net and its synthetic batch. */
typedef struct bench_net {
  dn_net *net;
  float *X, *Y;
  size_t m;
} bench_net;

static bool bench_net_make(bench_net *b, bool deep, size_t m) {
  static const size_t small_dims[] = {784, 512, 256, 10}, deep_dims[] = {784, 1024, 1024, 512, 10};
  static const dn_act acts[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_RELU, DN_ACT_SOFTMAX};
  static const dn_act small_acts[] = {DN_ACT_RELU, DN_ACT_RELU, DN_ACT_SOFTMAX};
  *b = (bench_net){.m = m};
  if ((deep ? dn_net_create(&b->net, 4, deep_dims, acts, DN_LOSS_CCE)
            : dn_net_create(&b->net, 3, small_dims, small_acts, DN_LOSS_CCE)) != DN_OK ||
      dn_net_init(b->net, 1) != DN_OK) {
    fprintf(stderr, "setup failed: %s\n", dn_last_error());
    return false;
  }
  b->X = malloc(784 * m * sizeof *b->X);
  b->Y = calloc(10 * m, sizeof *b->Y);
  if (!b->X || !b->Y) {
    fprintf(stderr, "setup failed: out of memory\n");
    return false;
  }
  for (size_t i = 0; i < 784 * m; i++) b->X[i] = (float)(i % 255) / 255.0f;
  for (size_t j = 0; j < m; j++) b->Y[j * 10 + j % 10] = 1.0f;
  return true;
}

static void bench_net_free(bench_net *b) {
  free(b->X);
  free(b->Y);
  dn_net_free(b->net);
}

/* One training step, its three phases' ends in t[0..2] (each after start); false on an
 * error, with the message printed. */
static bool train_step(const bench_net *b, const dn_train_opts *opts, double t[3]) {
  dn_status s = dn_net_forward(b->net, b->X, b->m, NULL);
  t[0] = now_s();
  if (s == DN_OK) s = dn_net_backward(b->net, b->Y, NULL);
  t[1] = now_s();
  if (s == DN_OK) s = dn_net_step(b->net, opts);
  t[2] = now_s();
  if (s != DN_OK) fprintf(stderr, "training step failed: %s\n", dn_last_error());
  return s == DN_OK;
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile of n values, interpolated between neighbours as bench-gemm-vs's is (sorts
 * a copy). */
static double quantile(const double *v, size_t n, double q) {
  double *c = malloc(n * sizeof *c);
  if (!c || n == 0) {
    free(c);
    return 0;
  }
  memcpy(c, v, n * sizeof *c);
  qsort(c, n, sizeof *c, by_value);
  const double pos = q * (double)(n - 1);
  const size_t lo = (size_t)pos;
  const double frac = pos - (double)lo, r = lo + 1 < n ? c[lo] * (1 - frac) + c[lo + 1] * frac : c[lo];
  free(c);
  return r;
}

enum { MAX_COUNTS = 16, SETTLE_STEPS = 5 };

static int usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s THREADS [deep 0|1] [batch] [steps]\n"
          "       %s --scaling T1,T2,... [--rounds R] [--steps S] [--deep] [--batch M]\n",
          argv0, argv0);
  return 2;
}

/* A whole positive number of decimal digits only, no larger than max, or 0. */
static long positive(const char *s, long max) {
  if (*s < '0' || *s > '9') return 0; /* no sign, space or empty string */
  char *end;
  const long v = strtol(s, &end, 10);
  return *end == '\0' && v >= 1 && v <= max ? v : 0;
}

/* The comma-separated thread counts of --scaling into T (at most MAX_COUNTS); the count
 * of them, or 0 for an empty item, a non-number or too many. */
static int parse_counts(const char *list, int T[MAX_COUNTS]) {
  int counts = 0;
  for (const char *item = list;; item++) {
    const char *comma = strchr(item, ',');
    const size_t len = comma ? (size_t)(comma - item) : strlen(item);
    char buf[16];
    if (len == 0 || len >= sizeof buf || counts == MAX_COUNTS) return 0;
    memcpy(buf, item, len);
    buf[len] = '\0';
    const long t = positive(buf, 1024);
    if (!t) return 0;
    T[counts++] = (int)t;
    if (!comma) return counts;
    item = comma;
  }
}

static int run_scaling(int argc, char **argv) {
  int T[MAX_COUNTS], counts = 0;
  long rounds = 5, steps = 30, batch = 256;
  bool deep = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(a, "--deep") == 0) {
      deep = true;
    } else if (strcmp(a, "--scaling") == 0 && (counts = parse_counts(v, T))) {
      i++;
    } else if (strcmp(a, "--rounds") == 0 && (rounds = positive(v, 1000))) {
      i++;
    } else if (strcmp(a, "--steps") == 0 && (steps = positive(v, 100000))) {
      i++;
    } else if (strcmp(a, "--batch") == 0 && (batch = positive(v, 1 << 16))) {
      i++;
    } else {
      return usage(argv[0]);
    }
  }
  if (counts < 2) return usage(argv[0]);
  bench_net b;
  if (!bench_net_make(&b, deep, (size_t)batch)) {
    bench_net_free(&b);
    return 1;
  }
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  const host_fma probe = host_fma_for(dn_isa_active(), 0.02);
  const size_t n = (size_t)rounds;
  /* ms[i * n + r] and host[i * n + r]: count i's sample in round r; then three rows of
   * per-round quotients for the table. */
  double *ms = malloc(sizeof(double) * (size_t)counts * n);
  double *host = malloc(sizeof(double) * (size_t)counts * n);
  double *q = malloc(sizeof(double) * 3 * n);
  double *trip = malloc(sizeof(double) * n); /* a cache line's round trip, once a round */
  int rc = 1;
  if (!ms || !host || !q || !trip) {
    fprintf(stderr, "out of memory\n");
    goto done;
  }
  double t[3];
  for (size_t r = 0; r < n; r++) {
    for (int k = 0; k < counts; k++) {
      const size_t i = ((size_t)k + r) % (size_t)counts;
      dn_set_num_threads(T[i]);
      for (int s = 0; s < SETTLE_STEPS; s++)
        if (!train_step(&b, &opts, t)) goto done;
      const double t0 = now_s();
      for (long s = 0; s < steps; s++)
        if (!train_step(&b, &opts, t)) goto done;
      ms[i * n + r] = (t[2] - t0) / (double)steps * 1e3;
      host[i * n + r] = host_fma_gflops(&probe, T[i]);
    }
    trip[r] = host_line_round_trip_ns();
  }
  printf("deepnet-step-breakdown --scaling: %s net, batch %ld, Adam, %s kernels, %ld rounds of %ld "
         "steps per thread count (each after %d untimed), wall clock; the host's %s FMA loop on as "
         "many threads after each sample\n\n",
         deep ? "deep" : "small", batch, dn_isa_name(dn_isa_active()), rounds, steps, SETTLE_STEPS,
         dn_isa_name(dn_isa_active()));
  printf("| threads | ms a step | samples/s | step speed-up [p25 p75] | host FMA GFLOP/s | "
         "host speed-up [p25 p75] | of the host's |\n|---|---|---|---|---|---|---|\n");
  double *step_up = q, *host_up = q + n, *share = q + 2 * n;
  for (int c = 0; c < counts; c++) {
    const size_t i = (size_t)c;
    for (size_t r = 0; r < n; r++) {
      step_up[r] = ms[r] / ms[i * n + r];
      host_up[r] = host[r] > 0 ? host[i * n + r] / host[r] : 0;
      share[r] = host_up[r] > 0 ? step_up[r] / host_up[r] : 0;
    }
    const double med = quantile(ms + i * n, n, 0.5);
    printf("| %d | %.3f | %.0f | %.2f [%.2f %.2f] | %.1f | %.2f [%.2f %.2f] | %.2f |\n", T[i], med,
           (double)batch / med * 1e3, quantile(step_up, n, 0.5), quantile(step_up, n, 0.25),
           quantile(step_up, n, 0.75), quantile(host + i * n, n, 0.5), quantile(host_up, n, 0.5),
           quantile(host_up, n, 0.25), quantile(host_up, n, 0.75), quantile(share, n, 0.5));
  }
  /* Which minutes these were: the vCPUs of a guest may share a core (~70 ns on the Zen 3
   * guest), a cache (~100 ns) or neither (~450 ns, where threads that read each other's
   * columns pay for it: docs/benchmarks.md, "Session 19"). */
  if (trip[0] > 0)
    printf("\n  a cache line to a second CPU and back, once a round: median %.0f ns, lowest %.0f, "
           "highest %.0f\n", quantile(trip, n, 0.5), quantile(trip, n, 0.0), quantile(trip, n, 1.0));
  else
    printf("\n  a cache line to a second CPU and back: not measured\n");
  rc = 0;
done:
  free(q), free(ms), free(host), free(trip);
  bench_net_free(&b);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strncmp(argv[1], "--", 2) == 0) return run_scaling(argc, argv);
  enum { WARMUP = 50 };
  const long threads = argc >= 2 ? positive(argv[1], 1024) : 0;
  const long deep = argc > 2 ? (strcmp(argv[2], "0") == 0 ? 0 : strcmp(argv[2], "1") == 0 ? 1 : -1) : 0;
  const long m = argc > 3 ? positive(argv[3], 1 << 16) : 128;
  const long steps = argc > 4 ? positive(argv[4], 10000000) : 300;
  if (argc < 2 || argc > 5 || !threads || deep < 0 || !m || steps <= WARMUP) {
    if (argc >= 5 && steps && steps <= WARMUP)
      fprintf(stderr, "steps must exceed the %d warm-up steps\n", WARMUP);
    return usage(argv[0]);
  }
  bench_net b;
  if (!bench_net_make(&b, deep, (size_t)m)) {
    bench_net_free(&b);
    return 1;
  }
  dn_set_num_threads((int)threads);
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  double tf = 0, tb = 0, ts = 0;
  for (long s = 0; s < steps; s++) {
    double t[3];
    const double a = now_s();
    if (!train_step(&b, &opts, t)) break;
    if (s >= WARMUP) tf += t[0] - a, tb += t[1] - t[0], ts += t[2] - t[1];
  }
  const long n = steps - WARMUP;
  printf("%s net, batch %ld, %ld thread(s): forward %.3f  backward %.3f  step %.3f  total %.3f ms"
         "  (%.0f samples/s)\n", deep ? "deep" : "small", m, threads, tf / n * 1e3, tb / n * 1e3,
         ts / n * 1e3, (tf + tb + ts) / n * 1e3, (double)m * n / (tf + tb + ts));
  bench_net_free(&b);
  return 0;
}
