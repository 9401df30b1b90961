/* CPU feature detection in one place: CPUID + XGETBV on x86, getauxval on aarch64. */
#include <pthread.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

static void detect(dn_cpu_features *f) {
  unsigned a, b, c, d;
  unsigned vendor[3];
  if (!__get_cpuid(0, &a, &vendor[0], &vendor[2], &vendor[1])) return;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  /* The family: base 0xF adds the extended family (Zen 1/2 are 17h, Zen 3/4 19h, Zen 5 1Ah). */
  const unsigned family = ((a >> 8) & 0xF) == 0xF ? 0xF + ((a >> 20) & 0xFF) : (a >> 8) & 0xF;
  f->amd_zen = memcmp(vendor, "AuthenticAMD", 12) == 0 && family >= 0x17;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx) return;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;            /* XMM + YMM state */
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;          /* + opmask, ZMM_Hi256, Hi16_ZMM */
  if (__get_cpuid_max(0, NULL) < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  f->avx2_fma = avx2 && fma && ymm_os;
  f->avx512 = f->avx2_fma && avx512f && avx512dq && avx512bw && avx512vl && zmm_os;

  unsigned brand[12];
  if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
    for (unsigned i = 0; i < 3; i++)
      __cpuid(0x80000002u + i, brand[4 * i], brand[4 * i + 1], brand[4 * i + 2], brand[4 * i + 3]);
    memcpy(f->brand, brand, 48);
    f->brand[48] = '\0';
  }
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
static void detect(dn_cpu_features *f) {
  f->neon = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
  strcpy(f->brand, "aarch64");
}
#else
static void detect(dn_cpu_features *f) { (void)f; }
#endif

static dn_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void detect_once(void) {
  detect(&features);
  /* Trim the leading blanks some vendors pad the brand string with. */
  size_t lead = strspn(features.brand, " ");
  memmove(features.brand, features.brand + lead, strlen(features.brand + lead) + 1);
}

const dn_cpu_features *dn_cpu_features_get(void) {
  pthread_once(&features_once, detect_once);
  return &features;
}
