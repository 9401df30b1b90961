/* The machine's topology from hwloc, loaded once per process (HWLOC_SYNTHETIC and
 * HWLOC_XMLFILE are honoured by hwloc itself), and what deepnet reads from it. */
#include <hwloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static hwloc_topology_t topology;
static dn_topology_info info;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static size_t first_cache(hwloc_obj_type_t type) {
  const hwloc_obj_t c = hwloc_get_next_obj_by_type(topology, type, NULL);
  return c && c->attr ? (size_t)c->attr->cache.size : 0;
}

static void load(void) {
  info.numa_nodes = info.cores = info.pus = 1;
  if (hwloc_topology_init(&topology) != 0) {
    topology = NULL;
    return;
  }
  if (hwloc_topology_load(topology) != 0) {
    hwloc_topology_destroy(topology);
    topology = NULL;
    return;
  }
  const int nodes = hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_NUMANODE);
  const int cores = hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_CORE);
  const int pus = hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_PU);
  info.numa_nodes = nodes > 0 ? (size_t)nodes : 1;
  info.cores = cores > 0 ? (size_t)cores : 1;
  info.pus = pus > 0 ? (size_t)pus : info.cores;
  info.l1d = first_cache(HWLOC_OBJ_L1CACHE);
  info.l2 = first_cache(HWLOC_OBJ_L2CACHE);
  info.l3 = first_cache(HWLOC_OBJ_L3CACHE);
  info.is_this_system = hwloc_topology_is_thissystem(topology) != 0;
  /* hwloc falls back to the real machine, silently, when it cannot use what these name
   * (a misspelt synthetic description, a missing XML file): say so once, as a user who
   * set them expects the planned placement of that topology. */
  const char *synthetic = getenv("HWLOC_SYNTHETIC"), *xml = getenv("HWLOC_XMLFILE");
  if (info.is_this_system && !getenv("HWLOC_THISSYSTEM") && ((synthetic && *synthetic) || (xml && *xml)))
    fprintf(stderr, "deepnet: hwloc could not use %s=%s; using this machine's topology\n",
            synthetic && *synthetic ? "HWLOC_SYNTHETIC" : "HWLOC_XMLFILE",
            synthetic && *synthetic ? synthetic : xml);
}

const dn_topology_info *dn_topology(void) {
  pthread_once(&once, load);
  return &info;
}

void *dn_hwloc_topology(void) {
  pthread_once(&once, load);
  return topology;
}
