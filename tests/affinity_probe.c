/* Prints where deepnet's pool threads may run, for tests/affinity.sh: runs a two-thread
 * dn_sgemm (after, with "pinned-first", a first call from a thread pinned to CPU 0), then
 * one line per thread: "main CPUS" for this thread, "worker CPUS" for each dn-worker, and
 * "start CPUS" for the mask the process started with, CPUS as a comma list; and "arch"
 * (x86_64 or other) and "places N" (OpenMP's places). */
#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deepnet.h"

enum { N = 256 };
static float A[N * N], B[N * N], C[N * N];

static void print_mask(const char *who, const cpu_set_t *s) {
  printf("%s", who);
  const char *sep = " ";
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, s)) {
      printf("%s%d", sep, c);
      sep = ",";
    }
  printf("\n");
}

static cpu_set_t start;

static void *pinned_first_call(void *arg) {
  (void)arg;
  cpu_set_t one; /* the first CPU the process may use (not necessarily 0) */
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &start)) {
      CPU_SET(c, &one);
      break;
    }
  if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0) return (void *)1;
  return dn_sgemm('N', 'N', N, N, N, 1.0f, A, N, B, N, 0.0f, C, N) == DN_OK ? NULL : (void *)1;
}

int main(int argc, char **argv) {
  if (sched_getaffinity(0, sizeof start, &start) != 0) return 1;
  if (dn_set_num_threads(2) != DN_OK) return 1;
  if (argc > 1 && strcmp(argv[1], "pinned-first") == 0) {
    pthread_t t;
    void *failed = NULL;
    if (pthread_create(&t, NULL, pinned_first_call, NULL) != 0 || pthread_join(t, &failed) != 0 || failed)
      return 1;
  }
  for (int i = 0; i < 3; i++)
    if (dn_sgemm('N', 'N', N, N, N, 1.0f, A, N, B, N, 0.0f, C, N) != DN_OK) return 1;
#if defined(__x86_64__)
  printf("arch x86_64\n");
#else
  printf("arch other\n");
#endif
  printf("places %d\n", omp_get_num_places());
  print_mask("start", &start);
  cpu_set_t now;
  if (sched_getaffinity(0, sizeof now, &now) != 0) return 1;
  print_mask("main", &now);
  DIR *d = opendir("/proc/self/task");
  if (!d) return 1;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[320], name[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(name, sizeof name, f)) name[0] = '\0';
    fclose(f);
    if (strncmp(name, "dn-worker", 9) != 0) continue;
    cpu_set_t w;
    if (sched_getaffinity(atoi(e->d_name), sizeof w, &w) != 0) return 1;
    print_mask("worker", &w);
  }
  closedir(d);
  return 0;
}
