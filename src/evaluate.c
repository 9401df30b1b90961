/* Evaluation: classes, accuracy and cost of the current parameters, in chunks
 * so the caches stay the size of a training batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { EVAL_CHUNK = 1024 };

static size_t class_of(const float *col, size_t rows) {
  if (rows == 1) return col[0] >= 0.5f ? 1 : 0;
  size_t best = 0;
  for (size_t i = 1; i < rows; i++) best = col[i] > col[best] ? i : best;
  return best;
}

/* Run inference over X in chunks, calling visit(chunk start, chunk size) after each. */
typedef dn_status (*chunk_fn)(dn_net *net, size_t start, size_t count, void *ctx);

static dn_status for_each_chunk(dn_net *net, const float *X, size_t m, const char *fn,
                                chunk_fn visit, void *ctx) {
  if (!net) return dn_fail(DN_ERR_ARG, "%s: net is NULL", fn);
  if (!X) return dn_fail(DN_ERR_ARG, "%s: X is NULL", fn);
  if (m == 0) return dn_fail(DN_ERR_SHAPE, "%s: m is 0", fn);
  size_t count;
  if (!dn_mul_ok(net->n[0], m, &count) || !dn_floats_bytes(count, &(size_t){0}) ||
      !dn_mul_ok(net->n[net->L], m, &count) || !dn_floats_bytes(count, &(size_t){0}))
    return dn_fail(DN_ERR_SHAPE, "%s: %zu examples overflow size_t", fn, m);
  /* The whole input is checked before any output is written. */
  char what[64];
  snprintf(what, sizeof what, "%s: X", fn);
  dn_status s = dn_check_finite(X, net->n[0] * m, what);
  dn_call_enter();
  for (size_t start = 0; !s && start < m; start += EVAL_CHUNK) {
    const size_t n = m - start < EVAL_CHUNK ? m - start : EVAL_CHUNK;
    s = dn_forward_pass(net, X + start * net->n[0], n, false, NULL);
    if (!s) s = dn_check_output(net, start, fn);
    if (!s) s = visit(net, start, n, ctx);
  }
  dn_call_leave();
  return s;
}

typedef struct classify_ctx {
  uint32_t *labels;
  const float *Y;
  size_t correct;
  double cost;
} classify_ctx;

static dn_status store_classes(dn_net *net, size_t start, size_t count, void *p) {
  classify_ctx *c = p;
  const size_t rows = net->n[net->L];
  for (size_t j = 0; j < count; j++) c->labels[start + j] = (uint32_t)class_of(net->A[net->L] + j * rows, rows);
  return DN_OK;
}

static dn_status classify_in_fpenv(dn_net *net, const float *X, size_t m, uint32_t *labels) {
  if (!labels) return dn_fail(DN_ERR_ARG, "dn_net_classify: labels is NULL");
  /* A chunk after the first can still fail (an output that is not finite): over more than
   * one chunk the classes go to a buffer first, so labels is written only on success. */
  uint32_t *buf = NULL;
  if (m > EVAL_CHUNK) {
    size_t bytes;
    if (!dn_mul_ok(m, sizeof *buf, &bytes) || !(buf = malloc(bytes)))
      return dn_fail(DN_ERR_NOMEM, "dn_net_classify: out of memory for %zu classes", m);
  }
  classify_ctx c = {.labels = buf ? buf : labels};
  const dn_status s = for_each_chunk(net, X, m, "dn_net_classify", store_classes, &c);
  if (!s && buf) memcpy(labels, buf, m * sizeof *buf);
  free(buf);
  return s;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_classify(dn_net *net, const float *X, size_t m, uint32_t *labels) {
  return DN_IN_FPENV(classify_in_fpenv(net, X, m, labels));
}

/* Y's columns [start, start + count) must be finite: the error names the element by its
 * index in the whole Y. */
static dn_status check_y(const float *Y, size_t rows, size_t start, size_t count, const char *fn) {
  const float *y = Y + start * rows;
  const size_t i = dn_first_nonfinite(y, rows * count);
  if (i == rows * count) return DN_OK;
  return dn_fail(DN_ERR_NUMERIC, "%s: Y[%zu] is not finite (%g)", fn, start * rows + i, (double)y[i]);
}

static dn_status count_correct(dn_net *net, size_t start, size_t count, void *p) {
  classify_ctx *c = p;
  const size_t rows = net->n[net->L];
  dn_status s = check_y(c->Y, rows, start, count, "dn_net_accuracy");
  if (s) return s;
  for (size_t j = 0; j < count; j++)
    c->correct += class_of(net->A[net->L] + j * rows, rows) == class_of(c->Y + (start + j) * rows, rows);
  return DN_OK;
}

static dn_status accuracy_in_fpenv(dn_net *net, const float *X, const float *Y, size_t m, double *accuracy) {
  if (!Y || !accuracy) return dn_fail(DN_ERR_ARG, "dn_net_accuracy: Y or accuracy is NULL");
  classify_ctx c = {.Y = Y};
  /* Y is checked in count_correct, chunk by chunk: the only output is written last. */
  dn_status s = for_each_chunk(net, X, m, "dn_net_accuracy", count_correct, &c);
  if (!s) *accuracy = (double)c.correct / (double)m;
  return s;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_accuracy(dn_net *net, const float *X, const float *Y, size_t m, double *accuracy) {
  return DN_IN_FPENV(accuracy_in_fpenv(net, X, Y, m, accuracy));
}

static dn_status add_cost(dn_net *net, size_t start, size_t count, void *p) {
  classify_ctx *c = p;
  const size_t L = net->L, rows = net->n[L];
  dn_status s = check_y(c->Y, rows, start, count, "dn_net_cost");
  if (s) return s;
  c->cost += (double)count * dn_loss_cost(net->loss, rows, count, net->Z[L], net->A[L],
                                          c->Y + start * rows);
  return DN_OK;
}

static dn_status cost_in_fpenv(dn_net *net, const float *X, const float *Y, size_t m, float *cost) {
  if (!Y || !cost) return dn_fail(DN_ERR_ARG, "dn_net_cost: Y or cost is NULL");
  classify_ctx c = {.Y = Y};
  /* Y is checked in add_cost, chunk by chunk: the only output, cost, is written last. */
  dn_status s = for_each_chunk(net, X, m, "dn_net_cost", add_cost, &c);
  if (s) return s;
  const double J = c.cost / (double)m + dn_l2_cost(net, m);
  if (!isfinite(J) || !isfinite((float)J)) /* finite in double, but past FLT_MAX as a float */
    return dn_fail(DN_ERR_NUMERIC, "dn_net_cost: the cost is not finite as a float (%g)", J);
  *cost = (float)J;
  return DN_OK;
}

/* In deepnet's floating-point state (round to nearest, whatever the caller's: dn_fpenv). */
dn_status dn_net_cost(dn_net *net, const float *X, const float *Y, size_t m, float *cost) {
  return DN_IN_FPENV(cost_in_fpenv(net, X, Y, m, cost));
}
