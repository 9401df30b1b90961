// bench-gemm-vs: deepnet's dn_sgemm against OpenBLAS and oneDNN on the MLP's shapes, the
// libraries alternated in one process.
//
// On a shared host whose speed moves by tens of percent for minutes at a time (the KVM
// guests this project is measured on), a suite that times each library in its own stretch
// compares the host's phases as much as the code: in one bench-gemm run (five repetitions
// interleaved at random) deepnet read 0.74x OpenBLAS on NN 512-256 m512, where this
// program's rounds read 1.01-1.10x (docs/benchmarks.md). Here every round times each library once, ~sample-ms each, in a
// rotating order, so the three samples of a round see the same phase; the figure per shape
// is the median over rounds of deepnet's speed over each library's in that round, with its
// quartiles. Speeds are the medians of the rounds.
//
//   bench-gemm-vs [--threads T] [--rounds R] [--sample-ms S] [--settle-ms W] [--refs LIST] [FILTER...]
//   bench-gemm-vs --scaling T1,T2,... [--rounds R] [--sample-ms S] [--settle-ms W] [FILTER...]
//
// --scaling: deepnet alone at each thread count in turn, round by round, all on the wall
// clock: per shape each count's median speed and its speed-up over T1 as the median of the
// per-round ratios, with quartiles. A scaling table from separate runs divides one moment's
// 16-thread speed by another moment's one-thread speed; on hosts whose speed moves by up to
// 2x between minutes (the lent 16-vCPU machines, docs/benchmarks.md) that ratio read
// anything from 9x to 16x for the same code. After each sample the host's FMA loop runs on
// as many threads at once (host_fma.h), and the last columns give the host's own speed-up
// over T1 in the same rounds: what the machine allowed at that moment (on the 2-vCPU Zen 3
// guest, 1.94-1.99x in some minutes and 1.00x in others).
//
// --refs: the reference libraries to run, "openblas,onednn" (the default: every one the
// build links), "openblas", or "none" (deepnet alone, for its own speed); "deepnet-fma",
// only by name and only where the CPU has AMX tiles, is deepnet with the AMX path off, so
// the tile path and the FMA kernels are compared round by round too.
//
// On more than one thread the header names the wait policy (OMP_WAIT_POLICY,
// GOMP_SPINCOUNT and what deepnet's idle workers do: whether a call finds threads awake),
// and the header and the end each give the FMA loop's speed on that
// many threads at once against one (host_fma.h), and a cache line's round trip between two
// CPUs (whether they share a core, a cache or neither): what the host allowed at the time. And
// each sample is preceded by W ms (default 150) of the same
// library's calls, untimed: a library's idle threads keep spinning after its last call
// (OpenBLAS's server threads for about 2^28 cycles, ~0.1 s; libgomp's, under oneDNN, for
// their spin count), and they took a core from whichever library ran next (measured:
// deepnet at two threads ran at 70-120 GFLOP/s right after oneDNN, 166 alone). Pausing
// instead of settling does not work on a VM: an idle vCPU is descheduled by the host, and
// waking it again cost deepnet a third of a 20 ms sample.
//
// FILTER: substrings of "OP/SHAPE" names (e.g. "TN/256-10", "_m128", "sq1024"); by default
// every MLP shape (the squares only when a filter names them). One thread is timed with the
// thread's CPU time (time slices lost to other processes are not counted), more with wall
// time. The ISA is DEEPNET_ISA's (or the best available). Prints a markdown table.
#include <omp.h>
#include <strings.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "gemm_libs.h"
#include "host_fma.h"

// What idle pool workers do (src/parallel.c; internal to the library, which this program
// links statically): the line `deepnet info` prints.
extern "C" const char *dn_wait_describe(void);

namespace {

// Before each host line of a threaded table, so that threads still spinning stop (see there).
constexpr int HOST_LINE_PAUSE_MS = 300;

using bench::Lib;
using bench::Shape;

struct Options {
  int threads = 1;
  int rounds = 15;
  double sample_s = 0.02;
  double settle_s = -1; /* unset: 0 on one thread, 0.15 s on more */
  std::vector<std::string> filters;
  std::string refs = "all"; /* --refs openblas,onednn (or none) */
  std::vector<int> scaling;  /* --scaling T1,T2,...: thread counts alternated, deepnet alone */
};

double now_s(int threads) {
  timespec ts;
  clock_gettime(threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The wall clock, whatever the thread count (now_s(0)).
double wall_s() { return now_s(0); }

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (double)(v.size() - 1);
  const std::size_t lo = (std::size_t)pos;
  const double frac = pos - (double)lo;
  return lo + 1 < v.size() ? v[lo] * (1 - frac) + v[lo + 1] * frac : v[lo];
}

bool selected(const Options &o, const Shape &s) {
  const std::string n = s.name();
  if (o.filters.empty()) return n.find("/sq") == std::string::npos;
  for (const std::string &f : o.filters)
    if (n.find(f) != std::string::npos) return true;
  return false;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench-gemm-vs [--threads T] [--rounds R] [--sample-ms S] [--settle-ms W] [--refs LIST] [FILTER...]\n"
               "       bench-gemm-vs --scaling T1,T2,... [--rounds R] [--sample-ms S] [--settle-ms W] [FILTER...]\n");
  return 2;
}

// "1,2,16" into {1, 2, 16}: false for an empty item, a non-number or a count outside 1..1024.
bool parse_counts(const char *text, std::vector<int> &out) {
  const char *p = text;
  for (;;) {
    char *end;
    const long v = std::strtol(p, &end, 10);
    if (end == p || v < 1 || v > 1024 || (*end != ',' && *end != '\0')) return false;
    out.push_back((int)v);
    if (*end == '\0') return true;
    p = end + 1;
  }
}

bool parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--scaling") && i + 1 < argc) {
      if (!parse_counts(argv[++i], o.scaling)) return false;
      continue;
    }
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--threads") && has_value) o.threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && has_value) o.rounds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--sample-ms") && has_value) o.sample_s = std::atof(argv[++i]) / 1e3;
    else if (!std::strcmp(argv[i], "--refs") && has_value) o.refs = argv[++i];
    else if (!std::strcmp(argv[i], "--settle-ms") && has_value) o.settle_s = std::atof(argv[++i]) / 1e3;
    else if (argv[i][0] == '-') return false;
    else o.filters.push_back(argv[i]);
  }
  if (!o.scaling.empty()) o.threads = *std::max_element(o.scaling.begin(), o.scaling.end());
  if (o.settle_s < 0) o.settle_s = o.threads > 1 ? 0.15 : 0.0;
  return o.threads >= 1 && o.rounds >= 1 && o.sample_s > 0;
}

// The library's calls, untimed, for settle_s: the previous library's idle threads go to
// sleep meanwhile, while every core stays busy.
void settle(Lib lib, const Shape &s, const float *A, const float *B, float *C, const Options &o) {
  if (o.settle_s <= 0) return;
  for (const double t0 = wall_s(); wall_s() - t0 < o.settle_s;) bench::gemm_call(lib, s, A, B, C);
}

// Calls per sample so one sample lasts about sample_s (from a timed warm-up).
long calls_per_sample(Lib lib, const Shape &s, const float *A, const float *B, float *C,
                      const Options &o) {
  long calls = 1;
  for (;;) {
    const double t0 = now_s(o.threads);
    for (long c = 0; c < calls; c++) bench::gemm_call(lib, s, A, B, C);
    const double dt = now_s(o.threads) - t0;
    if (dt >= o.sample_s / 4 || calls > (1L << 30)) return std::max(1L, (long)(calls * o.sample_s / std::max(dt, 1e-9)));
    calls *= 4;
  }
}

// Appends the reference libraries --refs names ("all", "none" or a comma list) to libs;
// false, with a message, for a name this build does not link.
bool choose_refs(const std::string &list, std::vector<Lib> &libs) {
  const std::vector<Lib> linked = bench::reference_libs();
  std::vector<Lib> known = linked;
  for (Lib l : bench::optional_libs()) known.push_back(l);
  if (list == "all") {
    libs.insert(libs.end(), linked.begin(), linked.end());
    return true;
  }
  if (list == "none") return true;
  std::size_t from = 0;
  for (;;) {
    const std::size_t comma = list.find(',', from);
    const std::string name = list.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
    const auto it = std::find_if(known.begin(), known.end(),
                                 [&](Lib l) { return name == bench::lib_name(l); });
    if (it == known.end()) {
      std::fprintf(stderr, "bench-gemm-vs: --refs: '%s' is not a reference library of this build and CPU (known:",
                   name.c_str());
      for (Lib l : known) std::fprintf(stderr, " %s", bench::lib_name(l));
      std::fprintf(stderr, ")\n");
      return false;
    }
    if (std::find(libs.begin(), libs.end(), *it) == libs.end()) libs.push_back(*it);
    if (comma == std::string::npos) return true;
    from = comma + 1;
  }
}

// --scaling: deepnet at each of o.scaling's thread counts, taking turns within each round
// (the order rotating), on the wall clock; each sample after settle_s of the same count's
// calls, so the pool has its workers awake or asleep as that count leaves them.
int run_scaling(const Options &o, const std::vector<Shape> &chosen) {
  const std::vector<int> &T = o.scaling;
  const dn_isa isa = dn_isa_active();
  const double peak1 = bench::peak_for(isa, 1);
  std::printf("bench-gemm-vs --scaling: deepnet %s (%s kernels), %d rounds of ~%.0f ms per thread count"
              " (each after %.0f ms of its calls untimed), wall clock; one-thread FMA peak %.1f GFLOP/s\n",
              dn_version(), dn_isa_name(isa), o.rounds, o.sample_s * 1e3, o.settle_s * 1e3, peak1);
  std::printf("\n| shape |");
  for (int t : T) std::printf(" %d thr GFLOP/s |", t);
  for (std::size_t i = 1; i < T.size(); i++) std::printf(" %d/%d [p25 p75] |", T[i], T[0]);
  std::printf(" %% of %d x peak |", T.back());
  for (std::size_t i = 1; i < T.size(); i++) std::printf(" host %d/%d [p25 p75] |", T[i], T[0]);
  std::printf("\n|---|");
  for (std::size_t i = 1; i < 3 * T.size(); i++) std::printf("---|");
  std::printf("\n");
  // The host's own speed-up, from its FMA loop on as many threads right after each sample.
  const host_fma probe = host_fma_for(isa, 0.02);
  Options wall = o;
  wall.threads = 0; /* calls_per_sample times with now_s(threads): 0 is the wall clock */
  for (const Shape &s : chosen) {
    bench::Buffer A(s.M * s.K, -1, 1, 1), B(s.K * s.N, -1, 1, 2), C(s.M * s.N, 0, 0, 3);
    std::vector<long> calls(T.size());
    for (std::size_t i = 0; i < T.size(); i++) {
      if (dn_set_num_threads(T[i]) != DN_OK) {
        std::fprintf(stderr, "bench-gemm-vs: %s\n", dn_last_error());
        return 1;
      }
      if (!bench::gemm_call(Lib::deepnet, s, A.data(), B.data(), C.data()) ||
          !bench::gemm_spot_check(s, A.data(), B.data(), C.data())) {
        std::fprintf(stderr, "bench-gemm-vs: deepnet on %s at %d threads: failed or wrong\n",
                     s.name().c_str(), T[i]);
        return 1;
      }
      calls[i] = calls_per_sample(Lib::deepnet, s, A.data(), B.data(), C.data(), wall);
    }
    const double flops = 2.0 * (double)s.M * (double)s.N * (double)s.K;
    std::vector<std::vector<double>> speed(T.size()), host(T.size());
    for (int r = 0; r < o.rounds; r++) {
      for (std::size_t k = 0; k < T.size(); k++) {
        const std::size_t i = (k + (std::size_t)r) % T.size();
        dn_set_num_threads(T[i]);
        settle(Lib::deepnet, s, A.data(), B.data(), C.data(), o);
        const double t0 = wall_s();
        for (long c = 0; c < calls[i]; c++) bench::gemm_call(Lib::deepnet, s, A.data(), B.data(), C.data());
        speed[i].push_back(flops * (double)calls[i] / (wall_s() - t0) * 1e-9);
        host[i].push_back(host_fma_gflops(&probe, T[i]));
      }
    }
    std::printf("| %s |", s.name().c_str());
    for (std::size_t i = 0; i < T.size(); i++) std::printf(" %.1f |", quantile(speed[i], 0.5));
    for (std::size_t i = 1; i < T.size(); i++) {
      std::vector<double> ratio;
      for (int r = 0; r < o.rounds; r++) ratio.push_back(speed[i][r] / speed[0][r]);
      std::printf(" %.2f [%.2f %.2f] |", quantile(ratio, 0.5), quantile(ratio, 0.25), quantile(ratio, 0.75));
    }
    std::printf(" %.0f |", 100.0 * quantile(speed.back(), 0.5) / (peak1 * T.back()));
    for (std::size_t i = 1; i < T.size(); i++) {
      std::vector<double> ratio;
      for (int r = 0; r < o.rounds; r++) ratio.push_back(host[0][r] > 0 ? host[i][r] / host[0][r] : 0.0);
      std::printf(" %.2f [%.2f %.2f] |", quantile(ratio, 0.5), quantile(ratio, 0.25), quantile(ratio, 0.75));
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parse(argc, argv, o)) return usage();
  if (!o.scaling.empty() && o.refs != "all") {
    std::fprintf(stderr, "bench-gemm-vs: --scaling times deepnet alone: no --refs\n");
    return 2;
  }
  if (dn_set_num_threads(o.threads) != DN_OK) {
    std::fprintf(stderr, "bench-gemm-vs: %s\n", dn_last_error());
    return 1;
  }
  omp_set_num_threads(o.threads);
  std::vector<Lib> libs = {Lib::deepnet};
  if (!choose_refs(o.refs, libs)) return 2;
  std::vector<Shape> chosen;
  for (const Shape &s : bench::gemm_shapes())
    if (selected(o, s)) chosen.push_back(s);
  if (chosen.empty()) {
    std::fprintf(stderr, "bench-gemm-vs: no shape matches\n");
    return 2;
  }
  if (!o.scaling.empty()) return run_scaling(o, chosen);
  for (Lib l : libs) bench::set_lib_threads(l, o.threads);
  const dn_isa isa = dn_isa_active();
  const double peak = bench::peak_for(isa, o.threads);

  std::printf("bench-gemm-vs: deepnet %s (%s kernels), %d thread%s, %d rounds of ~%.0f ms per library"
              " (each after %.0f ms of its calls untimed); peak %.1f GFLOP/s (measured FMA loop x threads)\n",
              dn_version(), dn_isa_name(isa), o.threads, o.threads == 1 ? "" : "s", o.rounds,
              o.sample_s * 1e3, o.settle_s * 1e3, peak);
  for (std::size_t i = 1; i < libs.size(); i++)
    std::printf("  %s %s\n", bench::lib_name(libs[i]), bench::lib_version(libs[i]).c_str());
  // The wait policy decides whether idle threads sleep or spin between calls (deepnet's and
  // libgomp's alike), which moves the small shapes' multi-thread figures (session 20).
  if (o.threads > 1) {
    const char *wait = std::getenv("OMP_WAIT_POLICY"), *spins = std::getenv("GOMP_SPINCOUNT");
    std::printf("  OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s; deepnet's idle workers %s\n", wait ? wait : "(unset)",
                spins ? spins : "(unset)", dn_wait_describe());
    // Under OMP_WAIT_POLICY=active libgomp's threads (oneDNN's) spin 3e10 times between
    // its calls unless GOMP_SPINCOUNT bounds it, so on a machine with no spare core they
    // take one from every other library's threads: measured on the 2-vCPU guest (session
    // 20), deepnet and OpenBLAS at two threads then ran at one core's speed (~90 GFLOP/s
    // where they run at 160-185). GOMP_SPINCOUNT=300000 gives libgomp its default spin back.
    const bool gomp_spins = wait && !strcasecmp(wait, "active") && !spins;
    if (gomp_spins && std::find(libs.begin(), libs.end(), Lib::onednn) != libs.end())
      std::printf("  warning: OMP_WAIT_POLICY=active: oneDNN's OpenMP threads (libgomp) spin without end"
                  " between its calls and take cores from the other libraries; bound them with"
                  " GOMP_SPINCOUNT=300000 (libgomp's default) or leave onednn out (--refs openblas or none)\n");
  }
  // On more than one thread, what the host gives that many threads, at the start and at
  // the end: a table from a minute in which the threads shared one core's FMA units reads
  // as the libraries' scaling, not as the host's.
  const host_fma probe = host_fma_for(isa, 0.02);
  const auto host_line = [&](const char *when) {
    if (o.threads < 2) return;
    // A library's threads may still be waiting for work, spinning (OpenBLAS's for tens of
    // milliseconds after its last call): measured at once, the end line read 1.00x on 2
    // threads after every table that ended with OpenBLAS (session 19).
    std::this_thread::sleep_for(std::chrono::milliseconds(HOST_LINE_PAUSE_MS));
    const double one = host_fma_gflops(&probe, 1), all = host_fma_gflops(&probe, o.threads);
    // The cache line's round trip tells minutes apart in which the threads' cores share a
    // cache from those in which they do not (the Zen 3 guest's vCPUs moved between both).
    const double trip = host_line_round_trip_ns();
    char trip_text[64];
    if (trip > 0) std::snprintf(trip_text, sizeof trip_text, "%.0f ns", trip);
    else std::snprintf(trip_text, sizeof trip_text, "not measured");
    std::printf("  host at the %s: the FMA loop on %d threads at once %.1f GFLOP/s, %.2fx one thread;"
                " a cache line to a second CPU and back %s\n",
                when, o.threads, all, one > 0 ? all / one : 0.0, trip_text);
  };
  host_line("start");
  std::printf("\n| shape | deepnet GFLOP/s | %% peak |");
  for (std::size_t i = 1; i < libs.size(); i++) std::printf(" %s GFLOP/s |", bench::lib_name(libs[i]));
  for (std::size_t i = 1; i < libs.size(); i++) std::printf(" vs %s [p25 p75] |", bench::lib_name(libs[i]));
  std::printf("\n|---|---|---|");
  for (std::size_t i = 1; i < 2 * libs.size() - 1; i++) std::printf("---|");
  std::printf("\n");

  std::vector<std::vector<double>> all_ratios(libs.size());
  std::vector<int> ahead(libs.size(), 0);
  const int shapes = (int)chosen.size();
  for (const Shape &s : chosen) {
    bench::Buffer A(s.M * s.K, -1, 1, 1), B(s.K * s.N, -1, 1, 2), C(s.M * s.N, 0, 0, 3);
    std::vector<long> calls(libs.size());
    bool ok = true;
    for (std::size_t l = 0; l < libs.size() && ok; l++) {
      ok = bench::gemm_call(libs[l], s, A.data(), B.data(), C.data()) &&
           bench::gemm_spot_check(s, A.data(), B.data(), C.data());
      if (!ok) std::fprintf(stderr, "bench-gemm-vs: %s on %s: failed or wrong\n", bench::lib_name(libs[l]), s.name().c_str());
      else calls[l] = calls_per_sample(libs[l], s, A.data(), B.data(), C.data(), o);
    }
    if (!ok) return 1;
    const double flops = 2.0 * (double)s.M * (double)s.N * (double)s.K;
    std::vector<std::vector<double>> speed(libs.size());
    for (int r = 0; r < o.rounds; r++) {
      for (std::size_t t = 0; t < libs.size(); t++) {
        const std::size_t l = (t + (std::size_t)r) % libs.size();
        settle(libs[l], s, A.data(), B.data(), C.data(), o);
        const double t0 = now_s(o.threads);
        for (long c = 0; c < calls[l]; c++) bench::gemm_call(libs[l], s, A.data(), B.data(), C.data());
        speed[l].push_back(flops * (double)calls[l] / (now_s(o.threads) - t0) * 1e-9);
      }
    }
    std::printf("| %s | %.1f | %.0f |", s.name().c_str(), quantile(speed[0], 0.5),
                100.0 * quantile(speed[0], 0.5) / peak);
    for (std::size_t l = 1; l < libs.size(); l++) std::printf(" %.1f |", quantile(speed[l], 0.5));
    for (std::size_t l = 1; l < libs.size(); l++) {
      std::vector<double> ratio;
      for (int r = 0; r < o.rounds; r++) ratio.push_back(speed[0][r] / speed[l][r]);
      const double med = quantile(ratio, 0.5);
      all_ratios[l].push_back(med);
      ahead[l] += med >= 1.0;
      std::printf(" %.2f [%.2f %.2f] |", med, quantile(ratio, 0.25), quantile(ratio, 0.75));
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("\n");
  host_line("end");
  for (std::size_t l = 1; l < libs.size(); l++) {
    double log_sum = 0;
    for (double x : all_ratios[l]) log_sum += std::log(x);
    std::printf("vs %s: ahead (median ratio >= 1) on %d of %d shapes, geometric mean %.2f\n",
                bench::lib_name(libs[l]), ahead[l], shapes, std::exp(log_sum / shapes));
  }
  return 0;
}
