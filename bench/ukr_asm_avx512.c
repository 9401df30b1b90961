/* Candidate k loops for the AVX-512 32x12 tile, in assembly, for deepnet-ukr-speed --asm
 * to time beside the library's tile (docs/kernels.md, "Left to do"). On Emerald Rapids the
 * library's tile reached 92-93% of the FMA loop with its operands in L2, where the AVX2 tile
 * reaches 97-98% on Zen 3 and oneDNN's whole products 93-96%. GCC compiles the library's
 * loop to one k step an iteration: 24 FMAs, 12 broadcasts, 2 loads, 2 prefetches and four
 * integer uops (two pointer adds, the counter, a fused compare-and-branch); on Intel cores
 * an integer uop the allocator sends to port 0 or 5 takes an FMA slot. These loops run four
 * k steps an iteration at constant offsets (three integer uops per 96 FMAs), as the AVX2
 * tile's assembly loop does (kernels/x86/sgemm_avx2.c):
 *
 *   broadcast  each B value broadcast once into a register for its two FMAs (the library's
 *              choice of instructions, unrolled)
 *   embedded   each FMA takes its B value as an embedded {1to16} broadcast operand: no
 *              broadcast instructions, each B value loaded twice
 *
 * Both keep the library tile's FMA chains (one accumulator per element, k in order) and its
 * store step for alpha 1, beta 1 (C + acc, one rounding), so their C is bitwise the
 * library's; deepnet-ukr-speed checks that before it times them. Built with -mavx512f
 * only on x86-64; called only when the active kernels are the AVX-512 ones. */
#include <immintrin.h>
#include <stddef.h>

#include "ukr_asm_avx512.h"

/* The library tile's software prefetch of packed A (A_PREFETCH_AHEAD, 1024 floats). */
#define DN_AHEAD "4096"

/* The whole tile is one asm statement with fixed registers (24 accumulators as "+v"
 * operands would be 48 operands, over GCC's 30): column j's two accumulators in zmm(2j)
 * and zmm(2j+1), A's two vectors in zmm24/25, the broadcast in zmm26. One k step s (0-3)
 * reads the packed panels at ap (32 floats a step) and bp (12 floats a step). */
#define DN_A_LOADS(s)                                   \
  "prefetcht0 " DN_AHEAD "+" #s "*128(%[ap])\n\t"       \
  "prefetcht0 " DN_AHEAD "+" #s "*128+64(%[ap])\n\t"    \
  "vmovups " #s "*128(%[ap]), %%zmm24\n\t"              \
  "vmovups " #s "*128+64(%[ap]), %%zmm25\n\t"
#define DN_BCAST(s, j, r0, r1)                          \
  "vbroadcastss " #s "*48+" #j "*4(%[bp]), %%zmm26\n\t" \
  "vfmadd231ps %%zmm26, %%zmm24, %%zmm" #r0 "\n\t"      \
  "vfmadd231ps %%zmm26, %%zmm25, %%zmm" #r1 "\n\t"
#define DN_EMBED(s, j, r0, r1)                                             \
  "vfmadd231ps " #s "*48+" #j "*4(%[bp])%{1to16%}, %%zmm24, %%zmm" #r0 "\n\t" \
  "vfmadd231ps " #s "*48+" #j "*4(%[bp])%{1to16%}, %%zmm25, %%zmm" #r1 "\n\t"
#define DN_COLUMNS(OP, s)                                                      \
  OP(s, 0, 0, 1) OP(s, 1, 2, 3) OP(s, 2, 4, 5) OP(s, 3, 6, 7) OP(s, 4, 8, 9)   \
  OP(s, 5, 10, 11) OP(s, 6, 12, 13) OP(s, 7, 14, 15) OP(s, 8, 16, 17)          \
  OP(s, 9, 18, 19) OP(s, 10, 20, 21) OP(s, 11, 22, 23)
#define DN_STEP_BCAST(s) DN_A_LOADS(s) DN_COLUMNS(DN_BCAST, s)
#define DN_STEP_EMBED(s) DN_A_LOADS(s) DN_COLUMNS(DN_EMBED, s)

#define DN_ZERO2(r0, r1) "vpxord %%zmm" #r0 ", %%zmm" #r0 ", %%zmm" #r0 "\n\t" \
                         "vpxord %%zmm" #r1 ", %%zmm" #r1 ", %%zmm" #r1 "\n\t"
#define DN_ZERO                                                                 \
  DN_ZERO2(0, 1) DN_ZERO2(2, 3) DN_ZERO2(4, 5) DN_ZERO2(6, 7) DN_ZERO2(8, 9)    \
  DN_ZERO2(10, 11) DN_ZERO2(12, 13) DN_ZERO2(14, 15) DN_ZERO2(16, 17)           \
  DN_ZERO2(18, 19) DN_ZERO2(20, 21) DN_ZERO2(22, 23)

/* Column j of C += its accumulators, then the next column: vaddps gives C + acc, the
 * library's FMA 1 * C + acc (1 * C is exact, so the one rounding is the same). */
#define DN_PUT(r0, r1)                         \
  "vaddps (%[c]), %%zmm" #r0 ", %%zmm" #r0 "\n\t"    \
  "vaddps 64(%[c]), %%zmm" #r1 ", %%zmm" #r1 "\n\t"  \
  "vmovups %%zmm" #r0 ", (%[c])\n\t"                 \
  "vmovups %%zmm" #r1 ", 64(%[c])\n\t"               \
  "add %[ldc_bytes], %[c]\n\t"
#define DN_PUTS                                                                 \
  DN_PUT(0, 1) DN_PUT(2, 3) DN_PUT(4, 5) DN_PUT(6, 7) DN_PUT(8, 9)              \
  DN_PUT(10, 11) DN_PUT(12, 13) DN_PUT(14, 15) DN_PUT(16, 17) DN_PUT(18, 19)    \
  DN_PUT(20, 21) DN_PUT(22, 23)

/* Zero the accumulators, k / 4 iterations of four steps, the k % 4 last steps one by one
 * (rcx keeps k), then C. */
#define DN_TILE(STEP)                  \
  DN_ZERO                              \
  "mov %[n], %%rcx\n\t"                \
  "shr $2, %[n]\n\t"                   \
  "jz 2f\n\t"                          \
  ".p2align 5\n"                       \
  "1:\n\t"                             \
  STEP(0) STEP(1) STEP(2) STEP(3)      \
  "add $512, %[ap]\n\t"                \
  "add $192, %[bp]\n\t"                \
  "dec %[n]\n\t"                       \
  "jnz 1b\n"                           \
  "2:\n\t"                             \
  "test $2, %%cl\n\t"                  \
  "jz 3f\n\t"                          \
  STEP(0) STEP(1)                      \
  "add $256, %[ap]\n\t"                \
  "add $96, %[bp]\n"                   \
  "3:\n\t"                             \
  "test $1, %%cl\n\t"                  \
  "jz 4f\n\t"                          \
  STEP(0)                              \
  "4:\n\t"                             \
  DN_PUTS

#define DN_OPERANDS                                                                        \
  : [ap] "+r"(Ap), [bp] "+r"(Bp), [n] "+r"(steps), [c] "+r"(C)                              \
  : [ldc_bytes] "r"(ldc_bytes)                                                              \
  : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",    \
    "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", \
    "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "cc", "memory"

/* The library tile's prefetch of C's twelve columns before its k loop. */
static inline void prefetch_c(const float *C, size_t ldc) {
  for (size_t j = 0; j < 12; j++) _mm_prefetch((const char *)(C + j * ldc), _MM_HINT_T0);
}

void ukr_asm_avx512_broadcast(size_t k, const float *Ap, const float *Bp, float *C, size_t ldc) {
  prefetch_c(C, ldc);
  size_t steps = k, ldc_bytes = ldc * sizeof(float);
  __asm__ volatile(DN_TILE(DN_STEP_BCAST) DN_OPERANDS);
}

void ukr_asm_avx512_embedded(size_t k, const float *Ap, const float *Bp, float *C, size_t ldc) {
  prefetch_c(C, ldc);
  size_t steps = k, ldc_bytes = ldc * sizeof(float);
  __asm__ volatile(DN_TILE(DN_STEP_EMBED) DN_OPERANDS);
}
