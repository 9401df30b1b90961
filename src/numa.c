/* Memory for matrices: 64-byte aligned (a cache line, a full AVX-512 vector). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

float *dn_alloc_floats(size_t count) {
  size_t bytes;
  if (count == 0 || !dn_floats_bytes(count, &bytes)) return NULL;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded < bytes) return NULL;
  float *p = aligned_alloc(64, rounded);
  if (p) memset(p, 0, rounded);
  return p;
}

void dn_free_floats(float *p) { free(p); }
