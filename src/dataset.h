/* Shared by the data loaders (data_idx.c, data_csv.c): finishing a dn_dataset. */
#ifndef DN_DATASET_H
#define DN_DATASET_H

#include "internal.h"

/* n_classes a loader infers from its labels: max label + 1, at least 2 (a one-class
 * one-hot matrix is of no use for training). */
size_t dn_labels_n_classes(const uint32_t *labels, size_t m);

/* Build the one-hot Y (n_classes, m) for labels (each already < n_classes) and fill
 * *out. Takes ownership of X (n_features, m) from dn_alloc_floats and of labels[m]
 * from malloc: on failure it frees both and leaves *out untouched. who prefixes
 * the error message. */
dn_status dn_dataset_fill(dn_dataset *out, float *X, uint32_t *labels, size_t n_features,
                          size_t m, size_t n_classes, const char *who);

#endif /* DN_DATASET_H */
