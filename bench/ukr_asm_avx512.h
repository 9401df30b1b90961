/* Candidate assembly k loops for the AVX-512 32x12 tile (ukr_asm_avx512.c), x86-64 only:
 * a full tile from packed panels (Ap: k lines of 32 floats, Bp: k lines of 12), C += A B
 * with the library tile's bits at alpha 1, beta 1. Call only where AVX-512F runs. */
#ifndef BENCH_UKR_ASM_AVX512_H
#define BENCH_UKR_ASM_AVX512_H

#include <stddef.h>

void ukr_asm_avx512_broadcast(size_t k, const float *Ap, const float *Bp, float *C, size_t ldc);
void ukr_asm_avx512_embedded(size_t k, const float *Ap, const float *Bp, float *C, size_t ldc);

#endif
