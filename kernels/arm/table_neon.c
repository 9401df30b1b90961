/* The NEON kernel table: the scalar set with the NEON overrides. */
#include "kernels.h"
#include "arm/neon.h"

void dn_kernels_fill_neon(dn_kernel_table *kt) {
  dn_kernels_fill_scalar(kt);
  kt->isa = DN_ISA_NEON;
  kt->sgemm_ukr_name = "dn_sgemm_ukr_neon_8x12";
  kt->mr = 8;
  kt->nr = 12;
  kt->sgemm_ukr = dn_sgemm_ukr_neon_8x12;
  /* Bp's 12 KiB and Ap's 8 KiB micro-panels fit a 32 KiB L1D together (Cortex-A53/A72). */
  kt->sgemm_kc = 256;
  /* The driver's portable packing: no NEON packer is worth its code until measured on
   * real hardware (qemu says nothing about speed). */
  kt->sgemm_pack_n = NULL;
  kt->sgemm_pack_t = NULL;
  dn_kernels_fill_act_neon(kt);
}
