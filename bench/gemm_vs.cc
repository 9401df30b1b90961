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
//
// --refs: the reference libraries to run, "openblas,onednn" (the default: every one the
// build links), "openblas", or "none" (deepnet alone, for its own speed).
//
// On more than one thread each sample is preceded by W ms (default 150) of the same
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
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.h"
#include "gemm_libs.h"

namespace {

using bench::Lib;
using bench::Shape;

struct Options {
  int threads = 1;
  int rounds = 15;
  double sample_s = 0.02;
  double settle_s = -1; /* unset: 0 on one thread, 0.15 s on more */
  std::vector<std::string> filters;
  std::string refs = "all"; /* --refs openblas,onednn (or none) */
};

double now_s(int threads) {
  timespec ts;
  clock_gettime(threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
  std::fprintf(stderr, "usage: bench-gemm-vs [--threads T] [--rounds R] [--sample-ms S] [--settle-ms W] [--refs LIST] [FILTER...]\n");
  return 2;
}

bool parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; i++) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--threads") && has_value) o.threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && has_value) o.rounds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--sample-ms") && has_value) o.sample_s = std::atof(argv[++i]) / 1e3;
    else if (!std::strcmp(argv[i], "--refs") && has_value) o.refs = argv[++i];
    else if (!std::strcmp(argv[i], "--settle-ms") && has_value) o.settle_s = std::atof(argv[++i]) / 1e3;
    else if (argv[i][0] == '-') return false;
    else o.filters.push_back(argv[i]);
  }
  if (o.settle_s < 0) o.settle_s = o.threads > 1 ? 0.15 : 0.0;
  return o.threads >= 1 && o.rounds >= 1 && o.sample_s > 0;
}

// The library's calls, untimed, for settle_s: the previous library's idle threads go to
// sleep meanwhile, while every core stays busy.
void settle(Lib lib, const Shape &s, const float *A, const float *B, float *C, const Options &o) {
  if (o.settle_s <= 0) return;
  for (const double t0 = now_s(0); now_s(0) - t0 < o.settle_s;) bench::gemm_call(lib, s, A, B, C);
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
  if (list == "all") {
    libs.insert(libs.end(), linked.begin(), linked.end());
    return true;
  }
  if (list == "none") return true;
  std::size_t from = 0;
  for (;;) {
    const std::size_t comma = list.find(',', from);
    const std::string name = list.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
    const auto it = std::find_if(linked.begin(), linked.end(),
                                 [&](Lib l) { return name == bench::lib_name(l); });
    if (it == linked.end()) {
      std::fprintf(stderr, "bench-gemm-vs: --refs: '%s' is not a reference library of this build (linked:",
                   name.c_str());
      for (Lib l : linked) std::fprintf(stderr, " %s", bench::lib_name(l));
      std::fprintf(stderr, ")\n");
      return false;
    }
    if (std::find(libs.begin(), libs.end(), *it) == libs.end()) libs.push_back(*it);
    if (comma == std::string::npos) return true;
    from = comma + 1;
  }
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parse(argc, argv, o)) return usage();
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
  for (Lib l : libs) bench::set_lib_threads(l, o.threads);
  const dn_isa isa = dn_isa_active();
  const double peak = bench::peak_for(isa, o.threads);

  std::printf("bench-gemm-vs: deepnet %s (%s kernels), %d thread%s, %d rounds of ~%.0f ms per library"
              " (each after %.0f ms of its calls untimed); peak %.1f GFLOP/s (measured FMA loop x threads)\n",
              dn_version(), dn_isa_name(isa), o.threads, o.threads == 1 ? "" : "s", o.rounds,
              o.sample_s * 1e3, o.settle_s * 1e3, peak);
  for (std::size_t i = 1; i < libs.size(); i++)
    std::printf("  %s %s\n", bench::lib_name(libs[i]), bench::lib_version(libs[i]).c_str());
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
  for (std::size_t l = 1; l < libs.size(); l++) {
    double log_sum = 0;
    for (double x : all_ratios[l]) log_sum += std::log(x);
    std::printf("vs %s: ahead (median ratio >= 1) on %d of %d shapes, geometric mean %.2f\n",
                bench::lib_name(libs[l]), ahead[l], shapes, std::exp(log_sum / shapes));
  }
  return 0;
}
