/* The wrapped allocators (see fault_alloc.h): count while armed, fail the chosen call,
 * and keep the set of live blocks. */
#include "fault_alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_free(void *p);
ssize_t __real_getline(char **line, size_t *cap, FILE *f);
ssize_t __real___getdelim(char **line, size_t *cap, int delim, FILE *f);

static atomic_bool armed, fail_after, fired;
static atomic_size_t target, calls;

void fa_arm(size_t k, bool and_after) {
  atomic_store(&calls, 0);
  atomic_store(&target, k);
  atomic_store(&fail_after, and_after);
  atomic_store(&fired, false);
  atomic_store(&armed, true);
}

size_t fa_disarm(void) {
  atomic_store(&armed, false);
  return atomic_load(&calls);
}

bool fa_fired(void) { return atomic_load(&fired); }

/* The live blocks: an open-addressing set of pointers, stored XOR-masked so that LSan
 * does not take the set for a reference and still reports leaks (EMPTY and TOMB are
 * never a masked pointer). Frees of blocks the wrappers never saw (libc's getline
 * buffer, ...) are ignored. */
enum { SLOTS = 1 << 17 };
#define MASK ((uintptr_t)0xA5A5A5A5A5A5A5A5ull)
#define EMPTY ((uintptr_t)0)
#define TOMB ((uintptr_t)1)
static uintptr_t live[SLOTS];
static size_t live_count;
static atomic_flag lock = ATOMIC_FLAG_INIT;

static size_t slot_of(uintptr_t key) { return (size_t)((key >> 4) * 0x9E3779B97F4A7C15ull >> 47); }

static void track(void *p) {
  if (!p) return;
  const uintptr_t key = (uintptr_t)p ^ MASK;
  while (atomic_flag_test_and_set(&lock)) continue;
  for (size_t i = slot_of(key);; i = (i + 1) % SLOTS)
    if (live[i] == EMPTY || live[i] == TOMB) {
      live[i] = key;
      live_count++;
      break;
    }
  atomic_flag_clear(&lock);
}

static void untrack(void *p) {
  if (!p) return;
  const uintptr_t key = (uintptr_t)p ^ MASK;
  while (atomic_flag_test_and_set(&lock)) continue;
  for (size_t i = slot_of(key), n = 0; live[i] != EMPTY && n < SLOTS; i = (i + 1) % SLOTS, n++)
    if (live[i] == key) {
      live[i] = TOMB;
      live_count--;
      break;
    }
  atomic_flag_clear(&lock);
}

size_t fa_live(void) {
  while (atomic_flag_test_and_set(&lock)) continue;
  const size_t n = live_count;
  atomic_flag_clear(&lock);
  return n;
}

/* Count this allocation; true if it must fail. */
static bool fail_now(void) {
  if (!atomic_load(&armed)) return false;
  const size_t n = atomic_fetch_add(&calls, 1) + 1, k = atomic_load(&target);
  if (n == k || (atomic_load(&fail_after) && n > k)) {
    atomic_store(&fired, true);
    errno = ENOMEM;
    return true;
  }
  return false;
}

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void __wrap_free(void *p);

static void *tracked(void *p) {
  track(p);
  return p;
}

void *__wrap_malloc(size_t size) { return fail_now() ? NULL : tracked(__real_malloc(size)); }
void *__wrap_calloc(size_t n, size_t size) { return fail_now() ? NULL : tracked(__real_calloc(n, size)); }
void *__wrap_realloc(void *p, size_t size) {
  if (fail_now()) return NULL;
  void *q = __real_realloc(p, size);
  if (q || size == 0) untrack(p);
  return tracked(q);
}
void *__wrap_aligned_alloc(size_t align, size_t size) {
  return fail_now() ? NULL : tracked(__real_aligned_alloc(align, size));
}
int __wrap_posix_memalign(void **p, size_t align, size_t size) {
  if (fail_now()) return ENOMEM;
  const int r = __real_posix_memalign(p, align, size);
  if (r == 0) track(*p);
  return r;
}
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : tracked(__real_strdup(s)); }
char *__wrap_strndup(const char *s, size_t n) { return fail_now() ? NULL : tracked(__real_strndup(s, n)); }
void __wrap_free(void *p) {
  untrack(p);
  __real_free(p);
}

static atomic_size_t getline_fail_at, getline_calls;

void fa_fail_getline(size_t n) {
  atomic_store(&getline_calls, 0);
  atomic_store(&getline_fail_at, n);
}

static bool getline_fails_now(void) {
  const size_t n = atomic_fetch_add(&getline_calls, 1) + 1;
  if (n != atomic_load(&getline_fail_at)) return false;
  errno = ENOMEM;
  return true;
}

/* Optimized builds reach getline through glibc's inline wrapper, as __getdelim. */
ssize_t __wrap_getline(char **line, size_t *cap, FILE *f);
ssize_t __wrap___getdelim(char **line, size_t *cap, int delim, FILE *f);
ssize_t __wrap_getline(char **line, size_t *cap, FILE *f) {
  return getline_fails_now() ? -1 : __real_getline(line, cap, f);
}
ssize_t __wrap___getdelim(char **line, size_t *cap, int delim, FILE *f) {
  return getline_fails_now() ? -1 : __real___getdelim(line, cap, delim, f);
}
