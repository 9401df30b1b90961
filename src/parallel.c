/* Threading settings and the per-thread floating-point environment (FTZ/DAZ). */
#include <stdatomic.h>

#ifdef _OPENMP
#include <omp.h>
#endif
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
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
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
