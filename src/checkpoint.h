/* Training checkpoints (checkpoint.c), used by dn_net_train (train.c). */
#ifndef DN_CHECKPOINT_H
#define DN_CHECKPOINT_H

#include "internal.h"

/* What identifies a training run: a checkpoint resumes only the run that wrote it. */
typedef struct dn_ckpt_run {
  const dn_train_opts *opts;
  size_t m;
  uint64_t data_hash; /* dn_ckpt_data_hash of X and Y */
} dn_ckpt_run;

/* What continues a run, as read from a checkpoint. */
typedef struct dn_ckpt_state {
  size_t epochs_done;
  uint64_t opt_t, dropout_calls;
  dn_rng rng;                    /* the shuffle generator after epochs_done epochs */
  size_t *order;                 /* the example order then (m indices); NULL without shuffle */
  float *params, *opt_m, *opt_v; /* n_params floats each; opt_m, opt_v NULL when absent */
} dn_ckpt_state;

/* A 64-bit fingerprint of the training data (X (n0, m), Y (nL, m)): resuming on other
 * data would silently continue a different run. */
uint64_t dn_ckpt_data_hash(const float *X, size_t n0, const float *Y, size_t nL, size_t m);

/* Save net's training state after epochs_done epochs, rng being the shuffle generator and
 * order the run's m example indices in their current order (read only with shuffle). */
dn_status dn_ckpt_save(const char *path, const dn_net *net, const dn_ckpt_run *run,
                       size_t epochs_done, const dn_rng *rng, const size_t *order);

/* Read the checkpoint at path into st (its arrays malloc'd; free with dn_ckpt_state_free)
 * after checking it: DN_ERR_FORMAT if it is damaged (magic, version, size, CRC, non-finite
 * values, an example order that is not a permutation, an impossible Adam step count),
 * DN_ERR_STATE if it is sound but of another net or run. net is not touched. */
dn_status dn_ckpt_load(const char *path, const dn_net *net, const dn_ckpt_run *run,
                       dn_ckpt_state *st);
void dn_ckpt_state_free(dn_ckpt_state *st);

#endif /* DN_CHECKPOINT_H */
