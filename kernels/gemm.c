/* The GEMM driver shared by all ISAs: BLIS-style blocking and packing of op(A) and
 * op(B) around the kernel table's micro-kernel, compiled for the baseline ISA. */
#include <hwloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

enum {
  KC_ALIGN = 8,     /* K blocks are multiples of this (but the last) */
  NC_CAP = 4092,    /* beyond this a bigger B block saves nothing measurable */
  PAGE_BYTES = 4096, /* the L1 set-aliasing period: columns this far apart share sets */
};

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t round_up(size_t a, size_t b) { return ceil_div(a, b) * b; }

/* ---- cache sizes, read once from hwloc ---- */

/* Per-core capacities in bytes; the defaults are what most x86 and arm64 cores have. */
static struct {
  size_t l1, l2, l3;
} caches = {32u << 10, 1u << 20, 2u << 20};
static pthread_once_t caches_once = PTHREAD_ONCE_INIT;

/* The first cache of this type, divided among the cores that share it; 0 if unknown. */
static size_t cache_per_core(hwloc_topology_t topo, hwloc_obj_type_t type) {
  const hwloc_obj_t c = hwloc_get_next_obj_by_type(topo, type, NULL);
  if (!c || !c->attr || c->attr->cache.size == 0) return 0;
  const int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, c->cpuset, HWLOC_OBJ_CORE);
  return (size_t)(c->attr->cache.size / (hwloc_uint64_t)(cores > 0 ? cores : 1));
}

static void read_caches(void) {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return;
  if (hwloc_topology_load(topo) == 0) {
    const size_t l1 = cache_per_core(topo, HWLOC_OBJ_L1CACHE);
    const size_t l2 = cache_per_core(topo, HWLOC_OBJ_L2CACHE);
    const size_t l3 = cache_per_core(topo, HWLOC_OBJ_L3CACHE);
    if (l1) caches.l1 = l1;
    if (l2) caches.l2 = l2;
    caches.l3 = l3 ? l3 : caches.l2 * 2;
  }
  hwloc_topology_destroy(topo);
}

size_t dn_gemm_l2_bytes(void) {
  pthread_once(&caches_once, read_caches);
  return caches.l2;
}

/* ---- blocking ---- */

typedef struct blocking {
  size_t mr, nr;
  size_t kc; /* from K and the ISA only: it fixes every element's summation order */
  size_t mc; /* an MC x KC block of packed A fills about half of L2 */
  size_t nc; /* a KC x NC block of packed B fills about half of this core's L3 share */
} blocking;

/* The size of the fewest equal blocks of at most max that cover n, rounded up to align. */
static size_t balanced(size_t n, size_t max, size_t align) {
  return min_sz(round_up(ceil_div(n, ceil_div(n, max)), align), max);
}

/* kc from K alone: a KC x NR micro-panel of B stays in L1 (the tables pick sgemm_kc so,
 * for their ISA's L1) and K splits into equal blocks, so no block is a short tail. */
static size_t block_k(const dn_kernel_table *kt, size_t K) {
  const size_t kc_max = kt->sgemm_kc ? kt->sgemm_kc : DN_SGEMM_KC_DEFAULT;
  return balanced(K, kc_max, KC_ALIGN);
}

static blocking choose_blocking(const dn_kernel_table *kt, size_t K, size_t rows, size_t cols) {
  pthread_once(&caches_once, read_caches);
  blocking b = {.mr = kt->mr, .nr = kt->nr, .kc = block_k(kt, K)};
  const size_t kc_bytes = b.kc * sizeof(float);
  const size_t mc_max = (caches.l2 / 2 / kc_bytes) / b.mr * b.mr;
  const size_t nc_max = min_sz((caches.l3 / 2 / kc_bytes) / b.nr * b.nr, NC_CAP / b.nr * b.nr);
  b.mc = balanced(rows, mc_max > b.mr ? mc_max : b.mr, b.mr);
  b.nc = balanced(cols, nc_max > b.nr ? nc_max : b.nr, b.nr);
  return b;
}

/* ---- packing: portable C here, per-ISA overrides in the table ---- */

typedef void (*pack_fn)(size_t k, size_t r, size_t w, const float *src, size_t ld, float *dst);

/* dst[p*w + i] = src[i + p*ld]: whole lines of the panel are contiguous in src. */
static void pack_n_portable(size_t k, size_t r, size_t w, const float *src, size_t ld,
                            float *restrict dst) {
  for (size_t p = 0; p < k; p++, dst += w) {
    for (size_t i = 0; i < r; i++) dst[i] = src[i + p * ld];
    for (size_t i = r; i < w; i++) dst[i] = 0.0f;
  }
}

/* dst[p*w + i] = src[p + i*ld]: each of the r lines is contiguous along k. */
static void pack_t_portable(size_t k, size_t r, size_t w, const float *src, size_t ld,
                            float *restrict dst) {
  for (size_t p = 0; p < k; p++, dst += w) {
    for (size_t i = 0; i < r; i++) dst[i] = src[p + i * ld];
    for (size_t i = r; i < w; i++) dst[i] = 0.0f;
  }
}

/* Contiguous-rows packs go PACK_COLUMNS columns of X at a time across every panel, so the
 * source is read down whole columns (long runs the hardware prefetcher follows) rather than
 * a panel's few rows of each of kb columns (a page apart when ld is large). Measured on
 * cold sources (bench-free harness, AVX-512 packer): 512 x 784 into 32-wide panels
 * 9.8 -> 16.7 GB/s, 784 x 128 into 12-wide ones 6.0 -> 11.1 GB/s; warm, the same within 10%. */
enum { PACK_COLUMNS = 16 };

/* rows x kb of X (op(X) = X when trans is 'N') starting at (r0, p0) into w-wide
 * micro-panels, the last one zero-padded: lines 0..kb-1 of panels that are `lines` lines
 * long (the K block; kb when the whole block is packed at once). For A, rows run along M
 * and w = MR; for B the caller passes op(B)^T (rows along N, w = NR). */
static void pack_lines(const dn_kernel_table *kt, bool contiguous_rows, const float *X,
                       size_t ld, size_t r0, size_t rows, size_t p0, size_t kb, size_t w,
                       size_t lines, float *dst, bool *nonfinite) {
  const pack_fn pack = contiguous_rows ? (kt->sgemm_pack_n ? kt->sgemm_pack_n : pack_n_portable)
                                       : (kt->sgemm_pack_t ? kt->sgemm_pack_t : pack_t_portable);
  const size_t group = contiguous_rows ? PACK_COLUMNS : kb;
  for (size_t p = 0; p < kb; p += group) {
    const size_t g = min_sz(group, kb - p);
    for (size_t i = 0; i < rows; i += w) {
      const size_t r = min_sz(w, rows - i);
      const float *src = contiguous_rows ? X + (r0 + i) + (p0 + p) * ld : X + (p0 + p) + (r0 + i) * ld;
      float *const out = dst + i * lines + p * w;
      pack(g, r, w, src, ld, out);
      /* The lines just written, still in L1 (their padding is zeros): the source's
       * finiteness check at no pass of its own (dn_gemm_epilogue.b_nonfinite). */
      if (nonfinite && kt->any_nonfinite(g * w, out)) __atomic_store_n(nonfinite, true, __ATOMIC_RELAXED);
    }
  }
}

static void pack_panels(const dn_kernel_table *kt, bool contiguous_rows, const float *X,
                        size_t ld, size_t r0, size_t rows, size_t p0, size_t kb, size_t w,
                        float *dst, bool *nonfinite) {
  pack_lines(kt, contiguous_rows, X, ld, r0, rows, p0, kb, w, kb, dst, nonfinite);
}

/* ---- packing buffers: per thread and slot, grown on demand, freed at thread exit ---- */

typedef struct thread_buffers {
  float *p[DN_BUF_SLOTS];
  size_t floats[DN_BUF_SLOTS];
} thread_buffers;

static pthread_key_t buffers_key;
static pthread_once_t buffers_key_once = PTHREAD_ONCE_INIT;
static bool buffers_key_ok;
static _Thread_local thread_buffers *buffers;

static void free_buffers(void *arg) {
  thread_buffers *b = arg;
  for (int i = 0; i < DN_BUF_SLOTS; i++) free(b->p[i]);
  free(b);
}

static void buffers_make_key(void) {
  buffers_key_ok = pthread_key_create(&buffers_key, free_buffers) == 0;
}

/* The main thread's buffers stay reachable from its TLS until exit; other threads' are
 * freed by the key's destructor when they end. */
float *dn_gemm_thread_buffer(int slot, size_t floats) {
  if (buffers && buffers->floats[slot] >= floats) return buffers->p[slot];
  pthread_once(&buffers_key_once, buffers_make_key);
  if (!buffers_key_ok || floats > (SIZE_MAX - 64) / sizeof(float)) return NULL;
  if (!buffers) {
    thread_buffers *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    if (pthread_setspecific(buffers_key, b) != 0) {
      free(b);
      return NULL;
    }
    buffers = b;
  }
  const size_t bytes = round_up(floats * sizeof(float), 64);
  float *p = aligned_alloc(64, bytes);
  if (!p) return NULL;
  free(buffers->p[slot]);
  buffers->p[slot] = p;
  buffers->floats[slot] = bytes / sizeof(float);
  return p;
}

/* ---- pre-packed op(A) ---- */

/* The small-M path: chosen from the global M alone, so every range of one GEMM agrees. */
static bool use_small(const dn_kernel_table *kt, size_t M) {
  return kt->sgemm_small && M <= kt->small_mr;
}

/* Within the small-M path, the dot kernel: op(B)'s columns contiguous and M small enough
 * that the 16-row tile would leave lanes idle (from the global M and transb only). */
static bool use_small_dot(const dn_kernel_table *kt, char transb, size_t M) {
  return transb == 'N' && kt->sgemm_small_dot && M <= kt->small_dot_max_m;
}

/* Whether the micro-kernel packs op(A) = A itself (sgemm_ukr_pack_a) at this lda: on Intel
 * not at a multiple of 4 KiB, where every column falls in the same L1 sets and the loads
 * alias the packed panel's stores (measured in gemm_blocked); on AMD Zen at any lda. */
static bool ukr_packs_a(const dn_kernel_table *kt, size_t lda) {
  return kt->sgemm_ukr_pack_a &&
         (kt->ukr_pack_a_any_lda || lda % (PAGE_BYTES / sizeof(float)) != 0);
}

size_t dn_gemm_packed_a_width(const dn_kernel_table *kt, size_t M) {
  return use_small(kt, M) ? kt->small_mr : kt->mr;
}

size_t dn_gemm_packed_a_floats(const dn_kernel_table *kt, size_t M, size_t K) {
  const size_t w = dn_gemm_packed_a_width(kt, M);
  size_t floats;
  if (M > SIZE_MAX - w || __builtin_mul_overflow(round_up(M, w), K, &floats)) return SIZE_MAX;
  return floats;
}

/* K block pc of the packed op(A) starts at pc * Mp; its panel of rows i0.. at i0 * kb, and
 * line p of that panel (depth pc + p) at p * w within it. */
void dn_gemm_pack_a_block(const dn_kernel_table *kt, char transa, size_t M, size_t K,
                          const float *A, size_t lda, float *dst, size_t m_begin, size_t m_end,
                          size_t k_begin, size_t k_end) {
  if (m_begin >= m_end || k_begin >= k_end) return;
  const size_t w = dn_gemm_packed_a_width(kt, M), Mp = round_up(M, w), kc = block_k(kt, K);
  for (size_t pc = k_begin / kc * kc; pc < k_end; pc += kc) {
    const size_t kb = min_sz(kc, K - pc);
    const size_t p0 = pc > k_begin ? pc : k_begin, p1 = min_sz(pc + kb, k_end);
    pack_lines(kt, transa == 'N', A, lda, m_begin, m_end - m_begin, p0, p1 - p0, w, kb,
               dst + pc * Mp + m_begin * kb + (p0 - pc) * w, NULL);
  }
}

void dn_gemm_pack_a_rows(const dn_kernel_table *kt, char transa, size_t M, size_t K,
                         const float *A, size_t lda, float *dst, size_t m_begin, size_t m_end) {
  dn_gemm_pack_a_block(kt, transa, M, K, A, lda, dst, m_begin, m_end, 0, K);
}

void dn_gemm_pack_a(const dn_kernel_table *kt, char transa, size_t M, size_t K, const float *A,
                    size_t lda, float *dst) {
  dn_gemm_pack_a_rows(kt, transa, M, K, A, lda, dst, 0, M);
}

const char *dn_gemm_kernel_name(const dn_kernel_table *kt, char transb, size_t M) {
  if (!use_small(kt, M)) return kt->sgemm_ukr_name;
  return use_small_dot(kt, transb, M) ? kt->sgemm_small_dot_name : kt->sgemm_small_name;
}

/* ---- the loops ---- */

/* Where the micro-panels of op(A) come from: the caller's pre-packed buffer, or packed
 * here from A per (K block, MC block) into the DN_BUF_PANELS buffer. */
typedef struct a_source {
  const float *packed; /* the whole pre-packed op(A), or NULL */
  size_t Mp;           /* its rows (M rounded up to the panel width) */
  char trans;
  const float *A;
  size_t lda;
} a_source;

/* Where the micro-panels of op(B) come from: the caller's pre-packed buffer (K block pc
 * at pc * Np, the panel of columns j0.. at j0 * kb in it), or packed here per block. */
typedef struct b_source {
  const float *packed;
  size_t Np; /* N rounded up to NR */
} b_source;

/* The panels of rows [i0, i0 + rows) of K block [pc, pc + kb), w wide. */
static const float *a_panels(const dn_kernel_table *kt, const a_source *a, size_t i0,
                             size_t rows, size_t pc, size_t kb, size_t w, float *buf) {
  if (a->packed) return a->packed + pc * a->Mp + i0 * kb;
  pack_panels(kt, a->trans == 'N', a->A, a->lda, i0, rows, pc, kb, w, buf, NULL);
  return buf;
}

/* ---- the Inf/NaN scan of the epilogue (and of every finiteness check, via net.c) ---- */

size_t dn_kernels_first_nonfinite(const dn_kernel_table *kt, const float *x, size_t n) {
  if (!kt->any_nonfinite(n, x)) return n;
  for (size_t i = 0;; i++) {
    uint32_t u;
    memcpy(&u, &x[i], sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return i;
  }
}

void dn_kernels_raise_max(float *max, float v) {
  float seen;
  __atomic_load(max, &seen, __ATOMIC_RELAXED);
  while (v > seen && !__atomic_compare_exchange(max, &seen, &v, true, __ATOMIC_RELAXED,
                                                __ATOMIC_RELAXED)) {
  }
}

static void lower_to(size_t *first, size_t offset) {
  size_t seen = __atomic_load_n(first, __ATOMIC_RELAXED);
  while (offset < seen && !__atomic_compare_exchange_n(first, &seen, offset, true,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

size_t dn_kernels_scan(const dn_kernel_table *kt, const float *x, size_t n, float *max) {
  if (!max) return dn_kernels_first_nonfinite(kt, x, n);
  const float a = kt->absmax(n, x);
  dn_kernels_raise_max(max, a);
  return a == __builtin_inff() ? dn_kernels_first_nonfinite(kt, x, n) : n;
}

/* The scan half of the epilogue: rows [i0, i1) of columns [j0, j1); columns ascend, so
 * the first hit is this block's smallest offset. */
static void scan_nonfinite(const dn_kernel_table *kt, size_t *first, float *max, const float *C,
                           size_t ldc, size_t i0, size_t i1, size_t j0, size_t j1) {
  if (i1 - i0 == ldc) {
    const size_t n = ldc * (j1 - j0), i = dn_kernels_scan(kt, C + j0 * ldc, n, max);
    if (i < n) lower_to(first, j0 * ldc + i);
    return;
  }
  for (size_t j = j0; j < j1; j++) {
    const size_t i = dn_kernels_scan(kt, C + i0 + j * ldc, i1 - i0, max);
    if (i < i1 - i0) { /* *max is +Inf now: the other columns cannot change it */
      lower_to(first, i0 + i + j * ldc);
      return;
    }
  }
}

/* The bias, activation (or derivative) and row-sum steps of the epilogue over a rows x cols
 * block of C at offset off whose columns are contiguous (ld = rows: one column, or a C as
 * tall as the block); out and grad_of are laid out like C; the block starts at row i0. */
static void epilogue_run(const dn_kernel_table *kt, const dn_gemm_epilogue *ep, float *C,
                         size_t off, size_t rows, size_t cols, size_t i0) {
  float *z = C + off;
  if (ep->bias) kt->bias_add(rows, cols, ep->bias + i0, z);
  if (ep->out && ep->grad_of)
    kt->act_bwd[ep->act](rows * cols, ep->grad_of + off, ep->grad_of + off, z, ep->out + off);
  else if (ep->out)
    kt->act_fwd[ep->act](rows * cols, z, ep->out + off);
  if (ep->row_acc) kt->row_sum_acc(rows, cols, ep->out ? ep->out + off : z, rows, ep->row_acc + i0);
}

/* The epilogue over rows [i0, i1) x columns [j0, j1) of C: one call per column, or one
 * for the whole block when its columns are contiguous (rows span ldc: a 10-row C). */
static void epilogue(const dn_kernel_table *kt, const dn_gemm_epilogue *ep, float *C, size_t ldc,
                     size_t i0, size_t i1, size_t j0, size_t j1) {
  if (!ep || i0 >= i1) return;
  if (i1 - i0 == ldc)
    epilogue_run(kt, ep, C, j0 * ldc, ldc, j1 - j0, 0);
  else if (ep->bias || ep->out || ep->row_acc)
    for (size_t j = j0; j < j1; j++) epilogue_run(kt, ep, C, i0 + j * ldc, i1 - i0, 1, i0);
  if (ep->first_nonfinite)
    scan_nonfinite(kt, ep->first_nonfinite, ep->absmax, C, ldc, i0, i1, j0, j1);
}

/* Whether the table's micro-kernel applies ep itself, in registers, on the last K block:
 * a bias, then nothing (out NULL) or a linear, relu or leaky relu activation in place (out
 * is C: a hidden layer's A = g(W A_prev + b)); nothing else (no backward form, row sums or
 * scan). Its bits are the pass's (bias_add, then act_fwd). Measured, forward layer alone
 * (bench-layer, one thread, AVX-512, alternating runs): see docs/kernels.md. */
static bool epilogue_in_registers(const dn_kernel_table *kt, const dn_gemm_epilogue *ep,
                                  const float *C) {
  if (!ep || !kt->sgemm_ukr_bias_act || !ep->bias || ep->grad_of || ep->row_acc ||
      ep->first_nonfinite)
    return false;
  return !ep->out || (ep->out == C && (ep->act == DN_ACT_LINEAR || ep->act == DN_ACT_RELU ||
                                       ep->act == DN_ACT_LEAKY_RELU));
}

/* C = beta * C over the range (K == 0 or alpha == 0: A and B are not read, as in BLAS). */
static void scale_C(float beta, float *C, size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1) {
  for (size_t j = n0; j < n1; j++)
    for (size_t i = m0; i < m1; i++) C[i + j * ldc] = beta == 0.0f ? 0.0f : beta * C[i + j * ldc];
}

/* Rows [m0, m1) x columns [n0, n1) of C under blocking b, with Ap and Bp sized for mc x kc
 * and kc x nc. Beta applies on the first K block only; later blocks add. The epilogue runs
 * on each MC x NR column panel right after its last K block. */
static void gemm_blocked(const dn_kernel_table *kt, const blocking *b, const a_source *a,
                         const b_source *bs, char transb, size_t K, float alpha, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc, size_t m0, size_t m1,
                         size_t n0, size_t n1, float *Ap, float *Bbuf,
                         const dn_gemm_epilogue *ep) {
  const bool ep_in_ukr = epilogue_in_registers(kt, ep, C);
  const dn_act ep_act = ep_in_ukr && ep->out ? ep->act : DN_ACT_LINEAR;
  for (size_t jc = n0; jc < n1; jc += b->nc) {
    const size_t nb = min_sz(b->nc, n1 - jc);
    for (size_t pc = 0; pc < K; pc += b->kc) {
      const size_t kb = min_sz(b->kc, K - pc);
      const float beta_pc = pc == 0 ? beta : 1.0f;
      const bool last = pc + kb == K;
      const float *Bp = bs->packed ? bs->packed + pc * bs->Np + jc * kb : Bbuf;
      if (!bs->packed)
        pack_panels(kt, transb == 'T', B, ldb, jc, nb, pc, kb, b->nr, Bbuf,
                    ep ? ep->b_nonfinite : NULL);
      for (size_t ic = m0; ic < m1; ic += b->mc) {
        const size_t mb = min_sz(b->mc, m1 - ic);
        /* op(A) = A unpacked: the first column panel's tiles pack A as they read it, which
         * saves the separate pass (NN 512-256 m128 +10%, 784-512 and 1024-1024 m128 +2-6%,
         * AVX-512, one thread) unless lda is a multiple of 4 KiB: then the kernel's columns
         * all fall in the same L1 sets (NN 4096-4096 m128 lost 11%, AVX2 up to 13%). */
        const bool pack_in_ukr = !a->packed && a->trans == 'N' && ukr_packs_a(kt, a->lda);
        const float *A_ic = pack_in_ukr ? Ap : a_panels(kt, a, ic, mb, pc, kb, b->mr, Ap);
        for (size_t jr = 0; jr < nb; jr += b->nr) {
          const size_t n = min_sz(b->nr, nb - jr);
          float *C_j = C + (jc + jr) * ldc;
          size_t ir = 0;
          /* The block's full-height tiles in one call, where no tile needs another kernel. */
          if (kt->sgemm_ukr_rows && mb >= b->mr && !(pack_in_ukr && jr == 0) &&
              !(last && ep_in_ukr)) {
            ir = mb / b->mr * b->mr;
            kt->sgemm_ukr_rows(kb, alpha, A_ic, mb / b->mr, Bp + jr * kb, beta_pc, C_j + ic, ldc, n);
          }
          for (; ir < mb; ir += b->mr) {
            const size_t m = min_sz(b->mr, mb - ir);
            if (pack_in_ukr && jr == 0) {
              kt->sgemm_ukr_pack_a(kb, alpha, a->A + ic + ir + pc * a->lda, a->lda, Ap + ir * kb,
                                   Bp, beta_pc, C_j + ic + ir, ldc, m, n);
              if (last && ep_in_ukr) /* that kernel has no epilogue: the pass, on this tile */
                epilogue(kt, ep, C, ldc, ic + ir, ic + ir + m, jc + jr, jc + jr + n);
            } else if (last && ep_in_ukr) {
              kt->sgemm_ukr_bias_act(kb, alpha, A_ic + ir * kb, Bp + jr * kb, beta_pc,
                                     C_j + ic + ir, ldc, m, n, ep->bias + ic + ir, ep_act);
            } else {
              kt->sgemm_ukr(kb, alpha, A_ic + ir * kb, Bp + jr * kb, beta_pc, C_j + ic + ir, ldc,
                            m, n);
            }
          }
          if (last && !ep_in_ukr) epilogue(kt, ep, C, ldc, ic, ic + mb, jc + jr, jc + jr + n);
        }
      }
    }
  }
}

/* Out of memory: one micro-panel pair at a time, packed on the stack (at most
 * KC x (MR + NR) floats, 66 KiB for AVX-512); the same kc, so the same bits. */
static __attribute__((noinline)) void gemm_on_stack(const dn_kernel_table *kt, blocking b,
                                                    const a_source *a, const b_source *bs,
                                                    char transb, size_t K,
                                                    float alpha, const float *B, size_t ldb,
                                                    float beta, float *C, size_t ldc, size_t m0,
                                                    size_t m1, size_t n0, size_t n1,
                                                    const dn_gemm_epilogue *ep) {
  float panels[b.kc * (b.mr + b.nr)];
  b.mc = b.mr;
  b.nc = b.nr;
  gemm_blocked(kt, &b, a, bs, transb, K, alpha, B, ldb, beta, C, ldc, m0, m1, n0, n1, panels,
               panels + b.kc * b.mr, ep);
}

/* M <= small_mr with op(B)'s columns contiguous, on a table with a dot kernel: per K block,
 * op(A)'s rows [m0, m1) along k, from A itself when transa is 'T', else transposed into a
 * row-major copy (rows x kb, from the pre-packed panel or from A: both are column-major,
 * with leading dimension small_mr or lda), which the kernel reads for every column of C
 * (under 3% of a 10 x 256 x 256 product: perf of deepnet-kernel-pair, docs/kernels.md). */
static __attribute__((noinline)) void gemm_small_dot(const dn_kernel_table *kt, const a_source *a,
                                                     size_t K, float alpha, const float *B,
                                                     size_t ldb, float beta, float *C,
                                                     size_t ldc, size_t m0, size_t m1, size_t n0,
                                                     size_t n1, const dn_gemm_epilogue *ep) {
  const size_t kc = block_k(kt, K), rows = m1 - m0, w = kt->small_mr;
  const bool in_place = !a->packed && a->trans == 'T';
  const pack_fn transpose = kt->sgemm_pack_t ? kt->sgemm_pack_t : pack_t_portable;
  /* Rows at whole cache lines: a row split over two lines cost every other load of A
   * twice (10 x 256 x 256 ran 0.88x or 1.23x the 16-row kernel by the stack's alignment). */
  const size_t stride = round_up(kc, 16);
  float rows_space[in_place ? 1 : rows * stride + 15];
  float *const rows_buf = (float *)(((uintptr_t)rows_space + 63) & ~(uintptr_t)63);
  for (size_t pc = 0; pc < K; pc += kc) {
    const size_t kb = min_sz(kc, K - pc);
    const float *Ar = rows_buf;
    size_t rsa = round_up(kb, 16);
    if (in_place) {
      Ar = a->A + pc + m0 * a->lda;
      rsa = a->lda;
    } else if (a->packed) { /* line p of the K block's one panel at p * w */
      transpose(rows, kb, rsa, a->packed + pc * a->Mp + m0, w, rows_buf);
    } else {
      transpose(rows, kb, rsa, a->A + m0 + pc * a->lda, a->lda, rows_buf);
    }
    kt->sgemm_small_dot(kb, alpha, Ar, rsa, B + pc + n0 * ldb, ldb, pc == 0 ? beta : 1.0f,
                        C + m0 + n0 * ldc, ldc, rows, n1 - n0);
  }
  epilogue(kt, ep, C, ldc, m0, m1, n0, n1);
}

/* M <= small_mr: one panel of op(A) per K block, op(B) read in place by the small kernel
 * (for a 10-row C, packing B cost more than the product). C is at most small_mr rows,
 * so the epilogue after the last K block still finds it in cache. */
static __attribute__((noinline)) void gemm_small(const dn_kernel_table *kt, const a_source *a,
                                                 size_t M, size_t K, float alpha, char transb,
                                                 const float *B, size_t ldb, float beta,
                                                 float *C, size_t ldc, size_t m0, size_t m1,
                                                 size_t n0, size_t n1,
                                                 const dn_gemm_epilogue *ep) {
  if (use_small_dot(kt, transb, M)) {
    gemm_small_dot(kt, a, K, alpha, B, ldb, beta, C, ldc, m0, m1, n0, n1, ep);
    return;
  }
  const size_t w = kt->small_mr, kc = block_k(kt, K);
  const size_t rsb = transb == 'N' ? 1 : ldb, csb = transb == 'N' ? ldb : 1;
  float panel[a->packed ? 1 : kc * w];
  for (size_t pc = 0; pc < K; pc += kc) {
    const size_t kb = min_sz(kc, K - pc);
    const float *Ap = a_panels(kt, a, 0, M, pc, kb, w, panel);
    kt->sgemm_small(kb, alpha, Ap, B + pc * rsb + n0 * csb, rsb, csb, pc == 0 ? beta : 1.0f,
                    C + n0 * ldc, ldc, m0, m1, n1 - n0);
  }
  epilogue(kt, ep, C, ldc, m0, m1, n0, n1);
}

static void gemm_run(const dn_kernel_table *kt, const a_source *a, const b_source *bs, size_t M,
                     size_t K, float alpha, char transb, const float *B, size_t ldb, float beta,
                     float *C, size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1,
                     const dn_gemm_epilogue *ep) {
  if (m0 >= m1 || n0 >= n1) return;
  if (K == 0 || alpha == 0.0f) {
    scale_C(beta, C, ldc, m0, m1, n0, n1);
    epilogue(kt, ep, C, ldc, m0, m1, n0, n1);
    return;
  }
  if (use_small(kt, M)) {
    gemm_small(kt, a, M, K, alpha, transb, B, ldb, beta, C, ldc, m0, m1, n0, n1, ep);
    return;
  }
  const blocking b = choose_blocking(kt, K, m1 - m0, n1 - n0);
  const size_t a_floats = a->packed ? 0 : round_up(b.mc * b.kc, 16);
  const size_t b_floats = bs->packed ? 0 : b.kc * b.nc;
  float *buf = a_floats + b_floats ? dn_gemm_thread_buffer(DN_BUF_PANELS, a_floats + b_floats) : NULL;
  if (buf || a_floats + b_floats == 0)
    gemm_blocked(kt, &b, a, bs, transb, K, alpha, B, ldb, beta, C, ldc, m0, m1, n0, n1, buf,
                 buf ? buf + a_floats : NULL, ep);
  else
    gemm_on_stack(kt, b, a, bs, transb, K, alpha, B, ldb, beta, C, ldc, m0, m1, n0, n1, ep);
}

void dn_gemm_range(const dn_kernel_table *kt, char transa, char transb, size_t M, size_t N,
                   size_t K, float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                   float beta, float *C, size_t ldc, size_t m_begin, size_t m_end, size_t n_begin,
                   size_t n_end) {
  (void)N;
  const a_source a = {.trans = transa, .A = A, .lda = lda};
  const b_source bs = {0};
  gemm_run(kt, &a, &bs, M, K, alpha, transb, B, ldb, beta, C, ldc, m_begin, m_end, n_begin,
           n_end, NULL);
}

void dn_gemm_range_packed(const dn_kernel_table *kt, size_t M, size_t N, size_t K, float alpha,
                          const float *packedA, char transb, const float *B, size_t ldb,
                          float beta, float *C, size_t ldc, size_t m_begin, size_t m_end,
                          size_t n_begin, size_t n_end, const dn_gemm_epilogue *ep) {
  (void)N;
  const a_source a = {.packed = packedA, .Mp = round_up(M, dn_gemm_packed_a_width(kt, M))};
  const b_source bs = {0};
  gemm_run(kt, &a, &bs, M, K, alpha, transb, B, ldb, beta, C, ldc, m_begin, m_end, n_begin,
           n_end, ep);
}

bool dn_gemm_packs_b(const dn_kernel_table *kt, size_t M) { return !use_small(kt, M); }

size_t dn_gemm_packed_b_floats(const dn_kernel_table *kt, size_t N, size_t K) {
  size_t floats;
  if (N > SIZE_MAX - kt->nr || __builtin_mul_overflow(round_up(N, kt->nr), K, &floats))
    return SIZE_MAX;
  return floats;
}

void dn_gemm_pack_b_cols(const dn_kernel_table *kt, char transb, size_t N, size_t K,
                         const float *B, size_t ldb, float *dst, size_t n_begin, size_t n_end,
                         bool *nonfinite) {
  if (n_begin >= n_end) return;
  const size_t Np = round_up(N, kt->nr), kc = block_k(kt, K);
  for (size_t pc = 0; pc < K; pc += kc) {
    const size_t kb = min_sz(kc, K - pc);
    pack_panels(kt, transb == 'T', B, ldb, n_begin, n_end - n_begin, pc, kb, kt->nr,
                dst + pc * Np + n_begin * kb, nonfinite);
  }
}

void dn_gemm_range_prepacked(const dn_kernel_table *kt, char transa, char transb, size_t M,
                             size_t N, size_t K, float alpha, const float *A, size_t lda,
                             const float *packedA, const float *B, size_t ldb,
                             const float *packedB, float beta, float *C, size_t ldc,
                             size_t m_begin, size_t m_end, size_t n_begin, size_t n_end,
                             const dn_gemm_epilogue *ep) {
  const a_source a = {.packed = packedA, .Mp = round_up(M, dn_gemm_packed_a_width(kt, M)),
                      .trans = transa, .A = A, .lda = lda};
  const b_source bs = {.packed = use_small(kt, M) ? NULL : packedB, .Np = round_up(N, kt->nr)};
  gemm_run(kt, &a, &bs, M, K, alpha, transb, B, ldb, beta, C, ldc, m_begin, m_end, n_begin,
           n_end, ep);
}

void dn_gemm_epilogue_range(const dn_kernel_table *kt, const dn_gemm_epilogue *ep, float *C,
                            size_t ldc, size_t m0, size_t m1, size_t n0, size_t n1) {
  epilogue(kt, ep, C, ldc, m0, m1, n0, n1);
}

void dn_gemm(const dn_kernel_table *kt, char transa, char transb, size_t M, size_t N, size_t K,
             float alpha, const float *A, size_t lda, const float *B, size_t ldb, float beta,
             float *C, size_t ldc) {
  dn_gemm_range(kt, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0, M, 0, N);
}
