/* The AVX2+FMA kernel table: the scalar set with the AVX2 SGEMM micro-kernel. */
#include "x86/x86.h"

void dn_kernels_fill_avx2(dn_kernel_table *kt) {
  dn_kernels_fill_scalar(kt);
  kt->isa = DN_ISA_AVX2;
  kt->sgemm_ukr_name = "dn_sgemm_ukr_avx2_16x6";
  kt->mr = 16;
  kt->nr = 6;
  kt->sgemm_ukr = dn_sgemm_ukr_avx2_16x6;
  kt->sgemm_ukr_rows = dn_sgemm_ukr_rows_avx2_16x6;
  kt->sgemm_ukr_pack_a = dn_sgemm_ukr_pack_a_avx2_16x6;
  kt->sgemm_kc = 384;
  kt->sgemm_small_name = "dn_sgemm_small_avx2_16x6";
  kt->small_mr = 16;
  kt->sgemm_small = dn_sgemm_small_avx2_16x6;
  kt->sgemm_small_dot_name = "dn_sgemm_small_dot_avx2";
  kt->sgemm_small_dot = dn_sgemm_small_dot_avx2;
  kt->small_dot_max_m = 12; /* M = 13-16: 0.85-0.89x the 16-row tile (paired runs) */
  kt->sgemm_pack_n = dn_sgemm_pack_n_avx2;
  kt->sgemm_pack_t = dn_sgemm_pack_t_avx2;
  dn_kernels_fill_act_avx2(kt);
}
