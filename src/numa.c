/* Memory for matrices and its NUMA placement: each thread's block of columns on
 * that thread's node, threads pinned to cores; every failure falls back quietly. */
#include <errno.h>
#include <hwloc.h>
#include <omp.h>
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

/* ---- thread pinning ---- */

static int binding_wanted(void) {
  static atomic_int wanted = -1;
  int w = atomic_load(&wanted);
  if (w >= 0) return w;
  const char *env = getenv("DEEPNET_BIND");
  if (env && (!strcmp(env, "0") || !strcmp(env, "1"))) {
    w = env[0] == '1';
  } else {
    if (env && *env)
      fprintf(stderr, "deepnet: DEEPNET_BIND=%s is neither 0 nor 1; using the default (pinned on "
              "machines with more than one NUMA node unless OMP_PROC_BIND or OMP_PLACES is set)\n", env);
    /* The user's OpenMP binding wins; on one node pinning buys no locality and
     * only hurts on a shared machine, so it is on by default for NUMA machines. */
    const bool user_binds = getenv("OMP_PROC_BIND") || getenv("OMP_PLACES");
    w = !user_binds && dn_topology()->numa_nodes > 1;
  }
  atomic_store(&wanted, w);
  return w;
}

static _Thread_local int bound_as = -1; /* core this thread is pinned to, -1 none */

void dn_bind_worker(size_t t, size_t threads) {
  if (!binding_wanted()) return;
  hwloc_topology_t h = dn_hwloc_topology();
  const dn_topology_info *topo = dn_topology();
  if (!h || !topo->is_this_system) return;
  const size_t core = threads <= topo->cores ? t * topo->cores / threads : t % topo->cores;
  if (bound_as == (int)core) return;
  const hwloc_obj_t obj = hwloc_get_obj_by_type(h, HWLOC_OBJ_CORE, (unsigned)core);
  if (obj && hwloc_set_cpubind(h, obj->cpuset, HWLOC_CPUBIND_THREAD) == 0)
    bound_as = (int)core;
  else
    bound_as = -2; /* cgroup without that core, ENOSYS: stay unpinned, quietly */
}

const char *dn_placement_describe(void) {
  const dn_topology_info *topo = dn_topology();
  if (!binding_wanted())
    return topo->numa_nodes > 1 ? "column blocks bound to their thread's NUMA node, packed weights copied per node in use, threads not pinned (OMP_PROC_BIND/OMP_PLACES or DEEPNET_BIND=0)"
                                : "one NUMA node: plain allocation, threads not pinned";
  return "threads pinned to cores, column blocks bound to their thread's NUMA node, packed weights copied per node in use";
}
