/* The scalar kernel set: the portable reference twin of every SIMD kernel. */
#ifndef DN_KERNELS_SCALAR_H
#define DN_KERNELS_SCALAR_H

#include <stddef.h>

void dn_sgemm_ukr_scalar_4x4(size_t k, float alpha, const float *Ap, const float *Bp, float beta,
                             float *C, size_t ldc, size_t m, size_t n);

/* One element of exp, sigmoid and tanh: the formulas every SIMD set mirrors. */
float dn_exp1_scalar(float x);
float dn_sigmoid1_scalar(float z);
float dn_tanh1_scalar(float z);
void dn_linear_fwd_scalar(size_t n, const float *Z, float *A);
void dn_linear_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ);
void dn_relu_fwd_scalar(size_t n, const float *Z, float *A);
void dn_relu_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ);
void dn_leaky_relu_fwd_scalar(size_t n, const float *Z, float *A);
void dn_leaky_relu_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ);
void dn_sigmoid_fwd_scalar(size_t n, const float *Z, float *A);
void dn_sigmoid_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ);
void dn_tanh_fwd_scalar(size_t n, const float *Z, float *A);
void dn_tanh_bwd_scalar(size_t n, const float *Z, const float *A, const float *dA, float *dZ);
void dn_softmax_fwd_scalar(size_t rows, size_t cols, const float *Z, float *A);

void dn_bias_add_scalar(size_t rows, size_t cols, const float *b, float *Z);
void dn_row_sum_scalar(size_t rows, size_t cols, const float *X, size_t ldx, float scale, float *out);
void dn_row_sum_acc_scalar(size_t rows, size_t cols, const float *X, size_t ldx, float *acc);
void dn_sub_scalar(size_t n, const float *a, const float *b, float *dst);
bool dn_any_nonfinite_scalar(size_t n, const float *x);
float dn_absmax_scalar(size_t n, const float *x);
float dn_gd_update_scalar(size_t n, float lr, const float *g, float *p);
float dn_momentum_update_scalar(size_t n, float lr, float beta, const float *g, float *v, float *p);
float dn_adam_update_scalar(size_t n, float lr_t, float b1, float b2, float eps_t, const float *g,
                            float *m, float *v, float *p);

#endif
