/* The project's own random numbers (xoshiro256**, seeded by splitmix64): the same
 * seed gives the same weights, shuffles and dropout masks on every machine. */
#include <math.h>

#include "internal.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void dn_rng_seed(dn_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dn_rng_next(dn_rng *r) {
  uint64_t *s = r->s;
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double dn_rng_uniform(dn_rng *r) { return (double)(dn_rng_next(r) >> 11) * 0x1.0p-53; }

/* Box-Muller in double; deterministic because it only uses +,*,log,sqrt,cos on
 * IEEE doubles (glibc's are correctly rounded enough to agree across x86/arm). */
double dn_rng_normal(dn_rng *r) {
  double u1 = dn_rng_uniform(r);
  const double u2 = dn_rng_uniform(r);
  if (u1 < 0x1.0p-60) u1 = 0x1.0p-60;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

float dn_hash_uniform(uint64_t key, uint64_t index) {
  uint64_t x = key ^ (index * 0xD1B54A32D192ED03ull);
  return (float)(splitmix64(&x) >> 40) * 0x1.0p-24f;
}
