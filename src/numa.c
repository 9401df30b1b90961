/* Memory for matrices and its NUMA placement: each thread's block of columns on
 * that thread's node, threads pinned to cores; every failure falls back quietly. */
#include <errno.h>
#include <hwloc.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PAGE 4096u

float *dn_alloc_floats(size_t count) {
  size_t bytes;
  if (count == 0 || !dn_floats_bytes(count, &bytes)) return NULL;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded < bytes) return NULL;
  float *p = aligned_alloc(64, rounded);
  if (p) memset(p, 0, rounded);
  return p;
}

void dn_free_floats(float *p) { free(p); }

void dn_block_range(size_t n, size_t grain, size_t t, size_t nt, size_t *begin, size_t *end) {
  const size_t chunks = (n + grain - 1) / grain;
  const size_t c0 = chunks * t / nt, c1 = chunks * (t + 1) / nt;
  *begin = c0 * grain < n ? c0 * grain : n;
  *end = c1 * grain < n ? c1 * grain : n;
}

size_t dn_node_of_thread(size_t t, size_t threads, size_t nodes) {
  return threads ? t * nodes / threads : 0;
}

size_t dn_placement_plan(size_t cols, size_t grain, size_t threads, dn_node_span *spans) {
  const size_t nodes = dn_topology()->numa_nodes;
  size_t count = 0;
  for (size_t t = 0; t < threads; t++) {
    size_t b, e;
    dn_block_range(cols, grain, t, threads, &b, &e);
    const size_t node = dn_node_of_thread(t, threads, nodes);
    if (b == e) continue;
    if (count && spans[count - 1].node == node) {
      spans[count - 1].col_end = e;
    } else {
      spans[count++] = (dn_node_span){.node = node, .col_begin = b, .col_end = e};
    }
  }
  return count;
}

/* How many areas were bound and how many binds failed (for `deepnet info` and tests). */
static atomic_size_t binds_done, binds_failed;

void dn_placement_stats(size_t *bound, size_t *failed) {
  *bound = atomic_load(&binds_done);
  *failed = atomic_load(&binds_failed);
}

/* Bind [p, p + len) (whole pages) to NUMA node `node`, counting the outcome. */
static void bind_area(hwloc_topology_t h, void *p, size_t len, size_t node) {
  const hwloc_obj_t obj = hwloc_get_obj_by_type(h, HWLOC_OBJ_NUMANODE, (unsigned)node);
  if (len == 0 || !obj) return;
  if (hwloc_set_area_membind(h, p, len, obj->nodeset, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET) == 0)
    atomic_fetch_add(&binds_done, 1);
  else
    atomic_fetch_add(&binds_failed, 1); /* ENOSYS under qemu, EXDEV, ...: plain memory */
}

/* Page-aligned and -rounded storage for bytes (NULL on overflow or failure). */
static void *alloc_pages(size_t bytes, size_t *rounded) {
  *rounded = (bytes + PAGE - 1) / PAGE * PAGE;
  return *rounded < bytes ? NULL : aligned_alloc(PAGE, *rounded);
}

float *dn_alloc_matrix_placed(size_t rows, size_t cols, size_t threads) {
  size_t count, bytes, rounded;
  if (!dn_mul_ok(rows, cols, &count) || count == 0 || !dn_floats_bytes(count, &bytes)) return NULL;
  const dn_topology_info *topo = dn_topology();
  hwloc_topology_t h = dn_hwloc_topology();
  if (topo->numa_nodes < 2 || threads < 2 || !h) return dn_alloc_floats(count);
  float *p = alloc_pages(bytes, &rounded);
  if (!p) return NULL;
  dn_node_span spans[DN_MAX_NODES_PLANNED];
  const size_t n = dn_placement_plan(cols, 1, threads < DN_MAX_NODES_PLANNED ? threads : DN_MAX_NODES_PLANNED, spans);
  for (size_t s = 0; s < n; s++) {
    /* Whole pages only: a page shared by two nodes' columns stays where it falls. */
    const size_t b = (spans[s].col_begin * rows * sizeof(float) + PAGE - 1) / PAGE * PAGE;
    const size_t e = spans[s].col_end * rows * sizeof(float) / PAGE * PAGE;
    if (e > b) bind_area(h, (char *)p + b, e - b, spans[s].node);
  }
  memset(p, 0, rounded); /* first touch after binding puts the pages where bound */
  return p;
}

float *dn_alloc_floats_on_node(size_t count, size_t node) {
  size_t bytes, rounded;
  if (count == 0 || !dn_floats_bytes(count, &bytes)) return NULL;
  hwloc_topology_t h = dn_hwloc_topology();
  if (dn_topology()->numa_nodes < 2 || !h) return dn_alloc_floats(count);
  float *p = alloc_pages(bytes, &rounded);
  if (!p) return NULL;
  bind_area(h, p, rounded, node);
  memset(p, 0, rounded);
  return p;
}

/* ---- per-node copies of the packed weights ---- */

size_t dn_pack_copies(int threads) {
  const size_t nodes = dn_topology()->numa_nodes;
  if (threads < 2 || nodes < 2) return 1;
  /* Threads spread over the nodes (dn_node_of_thread): with fewer threads than nodes, each
   * thread has a node of its own and needs a copy there. */
  size_t copies = (size_t)threads < nodes ? (size_t)threads : nodes;
  return copies < DN_MAX_PACK_COPIES ? copies : DN_MAX_PACK_COPIES;
}

/* Copy c serves the nodes [c * nodes / copies, (c + 1) * nodes / copies) and lives on the
 * first of them, which is where thread c of `copies` threads works. */
size_t dn_copy_node(size_t copy, size_t copies) {
  return copies ? copy * dn_topology()->numa_nodes / copies : 0;
}

static _Thread_local size_t thread_node;

size_t dn_thread_node(void) { return thread_node; }
void dn_set_thread_node(size_t node) { thread_node = node; }

size_t dn_thread_copy(size_t copies) {
  const size_t nodes = dn_topology()->numa_nodes;
  return copies > 1 && thread_node < nodes ? thread_node * copies / nodes : 0;
}

/* ---- thread placement ----
 * Where each pool worker runs, decided per job in dn_bind_worker (thread t of `threads`;
 * the caller is thread 0 and is never moved):
 *  - DEEPNET_PIN: deepnet pins thread t to core t * cores / threads (hwloc): with
 *    DEEPNET_BIND=1, and by default on a NUMA machine when the user sets no OpenMP binding.
 *  - OPENMP_PLACES: the user's OpenMP binding (OMP_PROC_BIND, or OMP_PLACES, which turns
 *    binding on) is followed: thread t goes where OpenMP would put thread t of a team of
 *    `threads` started from place 0, where libgomp binds the initial thread: place t mod
 *    P for close (and true), place t * P / threads for spread, place 0 for primary.
 *  - FREE: not pinned, on the CPUs the process had when it started. A worker inherits the
 *    mask of the thread that creates it, so without this the workers sat on one CPU
 *    whenever that thread had been narrowed: libgomp binds the initial thread to its
 *    first place under OMP_PROC_BIND, and a host thread may have pinned itself (session
 *    21's review: a 1024^3 sgemm at two threads 186 -> 92 GFLOP/s under
 *    OMP_PROC_BIND=true, while placement said "not pinned").
 * Every failure to place (a cgroup without those CPUs, ENOSYS under qemu) leaves the
 * thread where it is, quietly. */
typedef enum { PLACE_FREE, PLACE_DEEPNET_PIN, PLACE_OPENMP } placement_mode;

static cpu_set_t start_mask; /* the process's CPUs before main (see FREE above) */
static bool start_mask_known;
__attribute__((constructor)) static void capture_start_mask(void) {
  start_mask_known = sched_getaffinity(0, sizeof start_mask, &start_mask) == 0;
}

static bool user_openmp_binding(void) {
  return omp_get_proc_bind() != omp_proc_bind_false && omp_get_num_places() > 0;
}

/* Decided once (pthread_once: workers starting their first jobs at once would each warn
 * about a bad DEEPNET_BIND). */
static pthread_once_t placement_once = PTHREAD_ONCE_INIT;
static placement_mode placement_decided;
static void decide_placement(void);
static placement_mode placement(void) {
  pthread_once(&placement_once, decide_placement);
  return placement_decided;
}

static void decide_placement(void) {
  int w;
  const char *env = getenv("DEEPNET_BIND");
  const bool openmp = user_openmp_binding();
  if (env && (!strcmp(env, "0") || !strcmp(env, "1"))) {
    w = env[0] == '1' ? PLACE_DEEPNET_PIN : openmp ? PLACE_OPENMP : PLACE_FREE;
  } else {
    if (env && *env)
      fprintf(stderr, "deepnet: DEEPNET_BIND=%s is neither 0 nor 1; using the default (pinned on "
              "machines with more than one NUMA node unless OMP_PROC_BIND or OMP_PLACES is set)\n", env);
    /* The user's OpenMP binding wins; on one node pinning buys no locality and
     * only hurts on a shared machine, so it is on by default for NUMA machines. */
    w = openmp ? PLACE_OPENMP : dn_topology()->numa_nodes > 1 ? PLACE_DEEPNET_PIN : PLACE_FREE;
  }
  placement_decided = (placement_mode)w;
}

/* The OpenMP place of thread t of a team of `threads` started on place 0. */
static int openmp_place(size_t t, size_t threads) {
  const int places = omp_get_num_places();
  switch (omp_get_proc_bind()) {
    case omp_proc_bind_spread: return (int)(t * (size_t)places / threads) % places;
    case omp_proc_bind_master: return 0; /* "primary" */
    default: return (int)(t % (size_t)places); /* close, true */
  }
}

static bool set_mask_to_place(int place) {
  const int n = omp_get_place_num_procs(place);
  if (n <= 0 || n > CPU_SETSIZE) return false; /* ids[] below holds CPU_SETSIZE */
  int ids[CPU_SETSIZE];
  omp_get_place_proc_ids(place, ids);
  cpu_set_t mask;
  CPU_ZERO(&mask);
  for (int i = 0; i < n && i < CPU_SETSIZE; i++)
    if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], &mask);
  return sched_setaffinity(0, sizeof mask, &mask) == 0;
}

/* What this thread was last placed as: a core or place number, or one of these. */
enum { PLACED_NOT_YET = -1, PLACED_FAILED = -2, PLACED_FREE = -3 };
static _Thread_local int bound_as = PLACED_NOT_YET;

void dn_bind_worker(size_t t, size_t threads) {
  placement_mode mode = placement();
  if (mode == PLACE_DEEPNET_PIN && (!dn_hwloc_topology() || !dn_topology()->is_this_system))
    mode = PLACE_FREE; /* a synthetic topology's cores are not this machine's */
  switch (mode) {
    case PLACE_FREE:
      if (bound_as != PLACED_NOT_YET) return;
      bound_as = start_mask_known && sched_setaffinity(0, sizeof start_mask, &start_mask) == 0
                     ? PLACED_FREE : PLACED_FAILED;
      return;
    case PLACE_OPENMP: {
      const int place = openmp_place(t, threads);
      if (bound_as == place) return;
      bound_as = set_mask_to_place(place) ? place : PLACED_FAILED;
      return;
    }
    case PLACE_DEEPNET_PIN: break;
  }
  hwloc_topology_t h = dn_hwloc_topology();
  const dn_topology_info *topo = dn_topology();
  const size_t core = threads <= topo->cores ? t * topo->cores / threads : t % topo->cores;
  if (bound_as == (int)core) return;
  const hwloc_obj_t obj = hwloc_get_obj_by_type(h, HWLOC_OBJ_CORE, (unsigned)core);
  if (obj && hwloc_set_cpubind(h, obj->cpuset, HWLOC_CPUBIND_THREAD) == 0)
    bound_as = (int)core;
  else
    bound_as = PLACED_FAILED; /* cgroup without that core, ENOSYS: stay unpinned, quietly */
}

const char *dn_placement_describe(void) {
  const dn_topology_info *topo = dn_topology();
  const bool numa = topo->numa_nodes > 1;
  static char line[256];
  switch (placement()) {
    case PLACE_OPENMP: {
      const omp_proc_bind_t bind = omp_get_proc_bind();
      snprintf(line, sizeof line, "threads placed as OpenMP places them (OMP_PROC_BIND=%s over %d "
               "places: thread t on place %s)%s", bind == omp_proc_bind_spread ? "spread"
               : bind == omp_proc_bind_master ? "primary" : "close", omp_get_num_places(),
               bind == omp_proc_bind_spread ? "t * places / threads" : bind == omp_proc_bind_master
               ? "0" : "t mod places", numa ? ", column blocks bound to their thread's NUMA node, "
               "packed weights copied per node in use" : "");
      return line;
    }
    case PLACE_FREE:
      return numa ? "column blocks bound to their thread's NUMA node, packed weights copied per node in use, threads not pinned (DEEPNET_BIND=0)"
                  : "one NUMA node: plain allocation, threads not pinned (on the CPUs the process started with)";
    case PLACE_DEEPNET_PIN: break;
  }
  if (!topo->is_this_system)
    return "threads not pinned: the topology is not this machine's (HWLOC_SYNTHETIC or HWLOC_XMLFILE); column blocks and packed weights planned per node of that topology";
  return "threads pinned to cores, column blocks bound to their thread's NUMA node, packed weights copied per node in use";
}
