/* What the data loaders share: one-hot labels, filling and freeing a dn_dataset. */
#include "dataset.h"

#include <stdlib.h>
#include <string.h>

size_t dn_labels_n_classes(const uint32_t *labels, size_t m) {
  uint32_t max = 0;
  for (size_t j = 0; j < m; j++) max = labels[j] > max ? labels[j] : max;
  return max < 1 ? 2 : (size_t)max + 1;
}

dn_status dn_dataset_fill(dn_dataset *out, float *X, uint32_t *labels, size_t n_features,
                          size_t m, size_t n_classes, const char *who) {
  size_t count;
  float *Y = dn_mul_ok(n_classes, m, &count) ? dn_alloc_floats(count) : NULL;
  if (!Y) {
    dn_free_floats(X);
    free(labels);
    return dn_fail(DN_ERR_NOMEM, "%s: out of memory for the %zu x %zu one-hot labels", who,
                   n_classes, m);
  }
  for (size_t j = 0; j < m; j++) Y[labels[j] + j * n_classes] = 1.0f; /* the rest is zeroed */
  *out = (dn_dataset){.X = X, .Y = Y, .labels = labels, .n_features = n_features,
                      .n_classes = n_classes, .m = m};
  return DN_OK;
}

void dn_dataset_free(dn_dataset *d) {
  if (!d) return;
  dn_free_floats(d->X);
  dn_free_floats(d->Y);
  free(d->labels);
  memset(d, 0, sizeof *d);
}
