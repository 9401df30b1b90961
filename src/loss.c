/* Costs (mean over the m examples, summed over the outputs) and the L2 term. */
#include <math.h>

#include "internal.h"

/* log(1 + e^x) without overflow. */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double dn_loss_cost(dn_loss loss, size_t rows, size_t m, const float *Z, const float *A,
                    const float *Y) {
  double sum = 0.0;
  for (size_t j = 0; j < m; j++) {
    const float *z = Z + j * rows, *a = A + j * rows, *y = Y + j * rows;
    switch (loss) {
      case DN_LOSS_BCE:
        /* -(y log s(z) + (1-y) log(1-s(z))) = softplus(z) - y z */
        for (size_t i = 0; i < rows; i++) sum += softplus(z[i]) - (double)y[i] * z[i];
        break;
      case DN_LOSS_CCE: {
        /* log softmax(z)_i = z_i - zmax - log sum_k e^(z_k - zmax) */
        double zmax = z[0];
        for (size_t i = 1; i < rows; i++) zmax = z[i] > zmax ? z[i] : zmax;
        double se = 0.0;
        for (size_t i = 0; i < rows; i++) se += exp(z[i] - zmax);
        const double lse = zmax + log(se);
        for (size_t i = 0; i < rows; i++) sum -= (double)y[i] * (z[i] - lse);
        break;
      }
      case DN_LOSS_MSE:
        for (size_t i = 0; i < rows; i++) {
          const double d = (double)a[i] - y[i];
          sum += 0.5 * d * d;
        }
        break;
    }
  }
  return sum / (double)m;
}

double dn_l2_cost(const dn_net *net, size_t m) {
  if (net->l2_lambda == 0.0f) return 0.0;
  double sq = 0.0;
  for (size_t l = 1; l <= net->L; l++) {
    const size_t count = net->n[l] * net->n[l - 1];
    for (size_t i = 0; i < count; i++) sq += (double)net->W[l][i] * net->W[l][i];
  }
  return (double)net->l2_lambda / (2.0 * (double)m) * sq;
}
