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
}
