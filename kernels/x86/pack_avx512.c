/* AVX-512 packing for the GEMM driver: the copy and the 16x16-block transpose that lay
 * op(A) and op(B) out as micro-panels of the AVX-512 table (w = 32, 16 or 12).
 *
 * Why not the AVX2 pair: in a training step the optimizer re-packs every weight and the
 * GEMMs pack their activations, about a tenth of a step. The AVX2 copy works eight
 * floats at a time and works out the live lanes of every line again; here the opmasks
 * (live rows to load, panel width to store) are fixed once per call, a line of a 32-wide
 * panel is two loads and two stores, and a 12-wide one one masked pair. Masked-off lanes
 * are neither read nor written (AVX-512 suppresses their faults), so the tails need no
 * separate path. */
#include <immintrin.h>

#include "x86/x86.h"

enum { MAX_W = 32 }; /* the widest panel this file packs (the 32x12 tile's MR) */

/* Lanes [0, n) of sixteen, n clamped to 0..16. */
static inline __mmask16 first16(size_t n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

static inline size_t sub_or_zero(size_t a, size_t b) { return a > b ? a - b : 0; }

void dn_sgemm_pack_n_avx512(size_t k, size_t r, size_t w, const float *src, size_t ld,
                            float *dst) {
  if (w > MAX_W) {
    dn_sgemm_pack_n_avx2(k, r, w, src, ld, dst);
    return;
  }
  const __mmask16 load0 = first16(r), load1 = first16(sub_or_zero(r, 16));
  const __mmask16 store0 = first16(w), store1 = first16(sub_or_zero(w, 16));
  if (w > 16) {
    for (size_t p = 0; p < k; p++, src += ld, dst += w) {
      _mm512_mask_storeu_ps(dst, store0, _mm512_maskz_loadu_ps(load0, src));
      _mm512_mask_storeu_ps(dst + 16, store1, _mm512_maskz_loadu_ps(load1, src + 16));
    }
  } else {
    for (size_t p = 0; p < k; p++, src += ld, dst += w)
      _mm512_mask_storeu_ps(dst, store0, _mm512_maskz_loadu_ps(load0, src));
  }
}

void dn_sgemm_pack_t_avx512(size_t k, size_t r, size_t w, const float *src, size_t ld,
                            float *dst) {
  if (w > MAX_W) {
    dn_sgemm_pack_t_avx2(k, r, w, src, ld, dst);
    return;
  }
  for (size_t i0 = 0; i0 < w; i0 += 16) {
    const size_t live = r > i0 ? (r - i0 < 16 ? r - i0 : 16) : 0;
    const __mmask16 store = first16(w - i0);
    for (size_t p0 = 0; p0 < k; p0 += 16) {
      const size_t pb = k - p0 < 16 ? k - p0 : 16;
      const __mmask16 load = first16(pb);
      __m512 v[16];
      for (size_t i = 0; i < 16; i++)
        v[i] = i < live ? _mm512_maskz_loadu_ps(load, src + (i0 + i) * ld + p0)
                        : _mm512_setzero_ps();
      dn_transpose16_avx512(v);
      for (size_t p = 0; p < pb; p++) _mm512_mask_storeu_ps(dst + (p0 + p) * w + i0, store, v[p]);
    }
  }
}
