/* Threading settings and the per-thread floating-point environment (FTZ/DAZ). */
#include <stdatomic.h>

#include <omp.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "internal.h"

static atomic_int num_threads;        /* 0: OpenMP's default */
static atomic_int flush_denormals = 1;

dn_status dn_set_num_threads(int n) {
  if (n < 0) return dn_fail(DN_ERR_ARG, "dn_set_num_threads: %d is negative", n);
  atomic_store(&num_threads, n);
  return DN_OK;
}

int dn_get_num_threads(void) {
  const int n = atomic_load(&num_threads);
  return n > 0 ? n : omp_get_max_threads();
}

void dn_set_flush_denormals(int on) { atomic_store(&flush_denormals, on != 0); }
int dn_get_flush_denormals(void) { return atomic_load(&flush_denormals); }

#if defined(__x86_64__)
#define FTZ_DAZ_BITS 0x8040u /* MXCSR: FTZ (bit 15) | DAZ (bit 6) */
static unsigned fp_state_get(void) { return _mm_getcsr(); }
static void fp_state_set(unsigned s) { _mm_setcsr(s); }
#elif defined(__aarch64__)
#define FTZ_DAZ_BITS (1u << 24) /* FPCR.FZ flushes inputs and outputs */
static unsigned fp_state_get(void) {
  uint64_t v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  return (unsigned)v;
}
static void fp_state_set(unsigned s) {
  uint64_t v = s;
  __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#else
#define FTZ_DAZ_BITS 0u
static unsigned fp_state_get(void) { return 0; }
static void fp_state_set(unsigned s) { (void)s; }
#endif

void dn_fpenv_enter(dn_fpenv *env) {
  env->active = FTZ_DAZ_BITS != 0 && atomic_load(&flush_denormals);
  if (!env->active) return;
  env->saved = fp_state_get();
  fp_state_set(env->saved | FTZ_DAZ_BITS);
}

void dn_fpenv_leave(const dn_fpenv *env) {
  if (env->active) fp_state_set(env->saved);
}

int dn_threads_for(size_t units, size_t min_units_per_thread) {
  if (omp_in_parallel()) return 1; /* inside the caller's own parallel region: never oversubscribe */
  const int want = dn_get_num_threads();
  const size_t by_work = min_units_per_thread ? units / min_units_per_thread : units;
  if (by_work < 2 || want < 2) return 1;
  return by_work < (size_t)want ? (int)by_work : want;
}

void dn_parallel_for(size_t n, size_t grain, int threads, dn_range_fn fn, void *ctx) {
  if (n == 0) return;
  if (grain == 0) grain = 1;
  const size_t chunks = (n + grain - 1) / grain;
  if (threads > (int)chunks) threads = (int)chunks;
  if (threads <= 1) {
    fn(ctx, 0, n);
    return;
  }
  /* Contiguous, equal shares in thread order: each thread owns one block of
   * columns (the NUMA-friendly layout); callers guarantee results do not depend
   * on the boundaries, so any thread count gives the same bits. */
#pragma omp parallel num_threads(threads)
  {
    dn_fpenv env;
    dn_fpenv_enter(&env);
    const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
    dn_bind_worker(t, nt);
    size_t begin, end;
    dn_block_range(n, grain, t, nt, &begin, &end);
    if (begin < end) fn(ctx, begin, end);
    dn_fpenv_leave(&env);
  }
}
