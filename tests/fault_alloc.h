/* Allocation-failure injection for tests/test_oom.c. The test executable is linked with
 * -Wl,--wrap=malloc,... (tests/meson.build), which routes every allocation made by the
 * objects of the static library and of the test itself (not libc's, zlib's, hwloc's or
 * Criterion's own) through tests/fault_alloc.c. */
#ifndef DN_FAULT_ALLOC_H
#define DN_FAULT_ALLOC_H
/* free is wrapped too, to keep the count of live blocks. */

#include <stdbool.h>
#include <stddef.h>

/* From now on, the k-th allocation (1-based) fails with ENOMEM; with `and_after`, every
 * later one fails too. */
void fa_arm(size_t k, bool and_after);
/* Stop failing; returns how many allocations were attempted while armed. */
size_t fa_disarm(void);
/* Whether an allocation has been failed since the last fa_arm. */
bool fa_fired(void);
/* Blocks allocated through the wrappers and not yet freed: a call that leaks nothing
 * leaves it as it found it (exact, unlike mallinfo, whose counts include glibc's caches). */
size_t fa_live(void);

/* getline allocates inside libc, out of the wrappers' reach; this makes its n-th call
 * from now (1-based; 0: none) fail as glibc's does when out of memory (-1, ENOMEM). */
void fa_fail_getline(size_t n);

#endif /* DN_FAULT_ALLOC_H */
