/* Helpers shared by the test files: seeded random matrices and small nets. */
#ifndef DN_TEST_UTIL_H
#define DN_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "deepnet.h"

/* Fill x[0..n) with uniform values in [lo, hi) from a seeded generator. */
void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
/* One-hot labels (classes x m) with class j % classes shuffled by seed. */
void tu_fill_one_hot(float *Y, size_t classes, size_t m, uint64_t seed);
/* malloc'd copy of n floats filled uniform in [lo, hi). */
float *tu_random(size_t n, float lo, float hi, uint64_t seed);
/* Largest |a-b| / max(1, |b|) over n values. */
double tu_max_rel_diff(const float *a, const float *b, size_t n);

/* The thread counts the bitwise tests compare with one thread: 2, 3, 4, 7 and 16 (more
 * threads than this machine's cores; 16 cuts the GEMMs in 2-D grids), or the comma list in
 * DN_TEST_THREAD_COUNTS (e.g. "2,8,15,16" on a 16-core machine). Fills at most max
 * entries and returns how many; a malformed list gives the default. */
int tu_thread_counts(int *counts, int max);

#endif
