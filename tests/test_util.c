/* Helpers shared by the test files. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((double)(next(&seed) >> 11) * 0x1.0p-53);
}

void tu_fill_one_hot(float *Y, size_t classes, size_t m, uint64_t seed) {
  for (size_t j = 0; j < m; j++) {
    const size_t c = (size_t)(next(&seed) % classes);
    for (size_t i = 0; i < classes; i++) Y[i + j * classes] = i == c ? 1.0f : 0.0f;
  }
}

float *tu_random(size_t n, float lo, float hi, uint64_t seed) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  if (x) tu_fill_uniform(x, n, lo, hi, seed);
  return x;
}

double tu_max_rel_diff(const float *a, const float *b, size_t n) {
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
    if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
  }
  return worst;
}

int tu_thread_counts(int *counts, int max) {
  static const int fallback[] = {2, 3, 4, 7, 16};
  const char *env = getenv("DN_TEST_THREAD_COUNTS");
  int n = 0;
  while (env && *env && n < max) {
    char *end;
    const long t = strtol(env, &end, 10);
    if (end == env || t < 1 || t > 1024 || (*end != ',' && *end != '\0')) {
      /* A typo must not pass for a run of the counts it meant: stop the test loudly. */
      fprintf(stderr, "DN_TEST_THREAD_COUNTS='%s' is not a comma-separated list of thread counts "
              "1..1024\n", getenv("DN_TEST_THREAD_COUNTS"));
      abort();
    }
    counts[n++] = (int)t;
    env = *end == ',' ? end + 1 : end;
  }
  if (n > 0) return n;
  for (; n < 5 && n < max; n++) counts[n] = fallback[n];
  return n;
}
