// Shared by the bench suites: ISA and thread sweeps, measured peaks, buffers, context.
#include "bench_common.h"

#include <hwloc.h>
#include <omp.h>
#include <unistd.h>

// The AMX switch (src/internal.h, which is C only): the suites link the static library.
extern "C" {
bool dn_amx_can_run(void);
void dn_amx_set_enabled(bool on);
}

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "peak.h"

namespace bench {
namespace {

struct Topo {
  int cores = 1, numa_nodes = 1, packages = 1;
  std::string caches;  // "L1d 48 KiB x2, L2 2 MiB x2, ..."
};

const Topo &topo() {
  static Topo t;
  static std::once_flag once;
  std::call_once(once, [] {
    hwloc_topology_t h;
    if (hwloc_topology_init(&h) != 0) return;
    if (hwloc_topology_load(h) != 0) {
      hwloc_topology_destroy(h);
      return;
    }
    t.cores = std::max(1, hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_CORE));
    t.numa_nodes = std::max(1, hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE));
    t.packages = std::max(1, hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PACKAGE));
    const struct { hwloc_obj_type_t type; const char *name; } levels[] = {
        {HWLOC_OBJ_L1CACHE, "L1d"}, {HWLOC_OBJ_L2CACHE, "L2"}, {HWLOC_OBJ_L3CACHE, "L3"}};
    std::ostringstream os;
    for (const auto &lv : levels) {
      const int n = hwloc_get_nbobjs_by_type(h, lv.type);
      if (n <= 0) continue;
      hwloc_obj_t o = hwloc_get_obj_by_type(h, lv.type, 0);
      if (!o || !o->attr) continue;
      if (os.tellp() > 0) os << ", ";
      os << lv.name << " " << (o->attr->cache.size >> 10) << " KiB x" << n;
    }
    t.caches = os.str();
    hwloc_topology_destroy(h);
  });
  return t;
}

std::vector<std::string> split(const char *s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char *p = s; ; p++) {
    if (*p == ',' || *p == '\0') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else if (*p != ' ') {
      cur += *p;
    }
  }
  return out;
}

using peak_fn = double (*)(long);

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

volatile double sink;

// Wall time of `threads` threads each running iters rounds at once.
double time_fma(peak_fn fn, long iters, int threads) {
  const double t0 = now_s();
  double s = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
  s += fn(iters);
  const double t = now_s() - t0;
  sink = s;
  return t;
}

}  // namespace

std::vector<dn_isa> isas() {
  static std::vector<dn_isa> list;
  static std::once_flag once;
  std::call_once(once, [] {
    const dn_isa all[] = {DN_ISA_SCALAR, DN_ISA_AVX2, DN_ISA_AVX512, DN_ISA_NEON};
    const char *env = std::getenv("DEEPNET_BENCH_ISAS");
    std::vector<std::string> wanted = env ? split(env) : std::vector<std::string>{};
    for (dn_isa isa : all) {
      if (isa > dn_isa_detected() && isa != DN_ISA_NEON) continue;
      if (dn_isa_set(isa) != DN_OK) continue;
      if (!wanted.empty() &&
          std::find(wanted.begin(), wanted.end(), dn_isa_name(isa)) == wanted.end())
        continue;
      list.push_back(isa);
    }
    dn_isa_set(dn_isa_detected());
  });
  return list;
}

int num_cores() { return topo().cores; }

std::vector<int> threads() {
  static std::vector<int> list;
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char *env = std::getenv("DEEPNET_BENCH_THREADS")) {
      for (const auto &s : split(env)) {
        const int n = std::atoi(s.c_str());
        if (n > 0) list.push_back(n);
      }
    }
    if (list.empty()) {
      const int n = num_cores();
      for (int t = 1; t < n; t *= 2) list.push_back(t);
      list.push_back(n);
    }
  });
  return list;
}

std::vector<KernelSet> kernel_sets() {
  std::vector<KernelSet> sets;
  for (dn_isa isa : isas()) sets.push_back({isa, false, dn_isa_name(isa)});
  const char *env = std::getenv("DEEPNET_BENCH_ISAS");
  const std::vector<std::string> wanted = env ? split(env) : std::vector<std::string>{};
  const bool named = wanted.empty() || std::find(wanted.begin(), wanted.end(), "amx") != wanted.end();
  if (named && dn_amx_can_run() && dn_isa_detected() == DN_ISA_AVX512)
    sets.push_back({DN_ISA_AVX512, true, "amx"});
  return sets;
}

dn_isa best_isa() {
  const auto l = isas();
  return l.empty() ? DN_ISA_SCALAR : l.back();
}

#define PEAK_FNS(sfx) \
  PeakFns { #sfx, peak_fma_##sfx, peak_fma_flops_##sfx, peak_triad_##sfx, peak_copy_##sfx, peak_fill_##sfx }

PeakFns peak_fns(dn_isa isa) {
#ifdef BENCH_PEAK_X86
  switch (isa) {
    case DN_ISA_AVX512: return PEAK_FNS(avx512);
    case DN_ISA_AVX2: return PEAK_FNS(avx2);
    default: return PEAK_FNS(sse2);
  }
#else
  (void)isa;
  return PEAK_FNS(generic);
#endif
}

double fma_peak_gflops(dn_isa isa, int threads) {
  static std::map<std::pair<int, int>, double> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(static_cast<int>(isa), threads);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (threads == 1)
    if (const char *env = std::getenv("DEEPNET_BENCH_PEAK")) {  // "avx512=222,avx2=118"
      for (const auto &item : split(env)) {
        const auto eq = item.find('=');
        if (eq != std::string::npos && item.substr(0, eq) == dn_isa_name(isa))
          return cache[key] = std::atof(item.c_str() + eq + 1);
      }
    }
  const PeakFns loop = peak_fns(isa);
  long iters = 1 << 12;
  while (time_fma(loop.fma, iters, threads) < 0.002 && iters < (1L << 40)) iters *= 2;
  // Best of many short runs: other processes only ever slow a run down, and a 2 ms run
  // often fits between two preemptions even on a busy machine.
  double best = 0.0;
  for (int rep = 0; rep < 30; rep++) {
    const double t = time_fma(loop.fma, iters, threads);
    best = std::max(best, loop.fma_flops() * iters * threads / t * 1e-9);
  }
  cache[key] = best;
  return best;
}

double peak_for(dn_isa isa, int threads) { return threads * fma_peak_gflops(isa, 1); }

Buffer::Buffer(std::size_t count, float lo, float hi, unsigned seed) : n(count) {
  const std::size_t bytes = ((std::max<std::size_t>(count, 1) * sizeof(float) + 63) / 64) * 64;
  p = static_cast<float *>(std::aligned_alloc(64, bytes));
  if (!p) {
    std::fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
    std::abort();
  }
  std::uint64_t s = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (std::size_t i = 0; i < count; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
    p[i] = lo + (hi - lo) * u;
  }
}

Buffer::~Buffer() { std::free(p); }

benchmark::internal::Benchmark *clock_for(benchmark::internal::Benchmark *b, int threads) {
  return threads > 1 ? b->UseRealTime() : b;
}

void set_flop_counters(benchmark::State &st, double flops_per_iter, double peak_gflops) {
  st.counters["GFLOPS"] = per_second(flops_per_iter * 1e-9);
  if (peak_gflops > 0) st.counters["pct_peak"] = per_second(flops_per_iter * 1e-9 / peak_gflops * 100.0);
}

bool use(benchmark::State &st, dn_isa isa, int threads, bool amx) {
  if (dn_isa_set(isa) != DN_OK || dn_set_num_threads(threads) != DN_OK) {
    st.SkipWithError(dn_last_error());
    return false;
  }
  dn_amx_set_enabled(amx);
  omp_set_num_threads(threads);
  st.counters["threads"] = threads;
  return true;
}

std::string name(const std::vector<std::string> &parts) {
  std::string s;
  for (const auto &p : parts) {
    if (!s.empty()) s += '/';
    s += p;
  }
  return s;
}

void add_context() {
  std::string model = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) model = line.substr(colon + 2);
      break;
    }
  }
  const Topo &t = topo();
  benchmark::AddCustomContext("cpu_model", model);
  benchmark::AddCustomContext("cores", std::to_string(t.cores));
  benchmark::AddCustomContext("packages", std::to_string(t.packages));
  benchmark::AddCustomContext("numa_nodes", std::to_string(t.numa_nodes));
  benchmark::AddCustomContext("caches", t.caches);
  benchmark::AddCustomContext("deepnet_version", dn_version());
  benchmark::AddCustomContext("isa_detected", dn_isa_name(dn_isa_detected()));
  std::string list;
  for (dn_isa isa : isas()) list += std::string(list.empty() ? "" : ",") + dn_isa_name(isa);
  benchmark::AddCustomContext("isas", list);
  std::string tl;
  for (int n : threads()) tl += (tl.empty() ? "" : ",") + std::to_string(n);
  benchmark::AddCustomContext("thread_counts", tl);
  benchmark::AddCustomContext("compiler", "gcc-compatible " __VERSION__);
  for (dn_isa isa : isas()) {
    char v[32];
    std::snprintf(v, sizeof v, "%.2f", fma_peak_gflops(isa, 1));
    benchmark::AddCustomContext(std::string("peak_gflops_") + dn_isa_name(isa) + "_1t", v);
  }
  benchmark::AddCustomContext("pct_peak_basis",
                              "threads x measured one-thread FMA peak of the ISA "
                              "(OpenBLAS/oneDNN: of the best ISA)");
}

int run_main(int argc, char **argv, void (*register_fn)()) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_fn();
  add_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  dn_isa_set(dn_isa_detected());
  return 0;
}

}  // namespace bench
