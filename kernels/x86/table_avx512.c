/* The AVX-512 kernel table: the scalar set with the AVX-512 SGEMM micro-kernel. */
#include "x86/x86.h"

void dn_kernels_fill_avx512(dn_kernel_table *kt) {
  dn_kernels_fill_scalar(kt);
  kt->isa = DN_ISA_AVX512;
  kt->sgemm_ukr_name = "dn_sgemm_ukr_avx512_32x12";
  kt->mr = 32;
  kt->nr = 12;
  kt->sgemm_ukr = dn_sgemm_ukr_avx512_32x12;
  kt->sgemm_ukr_pack_a = dn_sgemm_ukr_pack_a_avx512_32x12;
  kt->sgemm_ukr_bias_act = dn_sgemm_ukr_bias_act_avx512_32x12;
  kt->sgemm_kc = 384;
  kt->sgemm_small_name = "dn_sgemm_small_avx512_16x12";
  kt->small_mr = 16;
  kt->sgemm_small = dn_sgemm_small_avx512_16x12;
  kt->sgemm_pack_n = dn_sgemm_pack_n_avx512;
  kt->sgemm_pack_t = dn_sgemm_pack_t_avx512;
  dn_kernels_fill_act_avx512(kt);
}
