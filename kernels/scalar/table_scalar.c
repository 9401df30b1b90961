/* The scalar kernel table: the starting point every ISA table overrides. */
#include "kernels.h"
#include "scalar/scalar.h"

void dn_kernels_fill_scalar(dn_kernel_table *kt) {
  /* Every field not set below is 0/NULL, which the GEMM driver reads as "use
   * the default" (KC, portable packing, no small-M kernel). */
  *kt = (dn_kernel_table){0};
  kt->isa = DN_ISA_SCALAR;
  kt->sgemm_ukr_name = "dn_sgemm_ukr_scalar_4x4";
  kt->mr = 4;
  kt->nr = 4;
  kt->sgemm_ukr = dn_sgemm_ukr_scalar_4x4;
  kt->act_fwd[DN_ACT_LINEAR] = dn_linear_fwd_scalar;
  kt->act_bwd[DN_ACT_LINEAR] = dn_linear_bwd_scalar;
  kt->act_fwd[DN_ACT_RELU] = dn_relu_fwd_scalar;
  kt->act_bwd[DN_ACT_RELU] = dn_relu_bwd_scalar;
  kt->act_fwd[DN_ACT_LEAKY_RELU] = dn_leaky_relu_fwd_scalar;
  kt->act_bwd[DN_ACT_LEAKY_RELU] = dn_leaky_relu_bwd_scalar;
  kt->act_fwd[DN_ACT_SIGMOID] = dn_sigmoid_fwd_scalar;
  kt->act_bwd[DN_ACT_SIGMOID] = dn_sigmoid_bwd_scalar;
  kt->act_fwd[DN_ACT_TANH] = dn_tanh_fwd_scalar;
  kt->act_bwd[DN_ACT_TANH] = dn_tanh_bwd_scalar;
  kt->softmax_fwd = dn_softmax_fwd_scalar;
  kt->bias_add = dn_bias_add_scalar;
  kt->row_sum = dn_row_sum_scalar;
  kt->row_sum_acc = dn_row_sum_acc_scalar;
  kt->sub = dn_sub_scalar;
  kt->any_nonfinite = dn_any_nonfinite_scalar;
  kt->absmax = dn_absmax_scalar;
  kt->gd_update = dn_gd_update_scalar;
  kt->momentum_update = dn_momentum_update_scalar;
  kt->adam_update = dn_adam_update_scalar;
}
