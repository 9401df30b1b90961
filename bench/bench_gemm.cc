// gemm suite: dn_sgemm on the MLP's shapes (forward NN, backward NT for dW and TN for
// dA_prev) and on squares, beside OpenBLAS cblas_sgemm and oneDNN dnnl_sgemm when the
// build found them. Names: gemm/<op>/<shape>/<lib>/<isa>/threads:<n>.
#include <string>
#include <vector>

#include "bench_common.h"
#include "gemm_libs.h"

namespace {

using bench::Lib;
using bench::Shape;

void run(benchmark::State &st, Lib lib, dn_isa isa, bool amx, int threads, Shape s) {
  if (!bench::use(st, isa, threads, amx)) return;
  bench::set_lib_threads(lib, threads);
  bench::Buffer A(s.M * s.K, -1, 1, 1), B(s.K * s.N, -1, 1, 2), C(s.M * s.N, 0, 0, 3);
  if (!bench::gemm_call(lib, s, A.data(), B.data(), C.data())) {
    st.SkipWithError("the GEMM call failed");
    return;
  }
  if (!bench::gemm_spot_check(s, A.data(), B.data(), C.data())) {
    st.SkipWithError("result differs from a double-precision reference");
    return;
  }
  for (auto _ : st) {
    bench::gemm_call(lib, s, A.data(), B.data(), C.data());
    benchmark::ClobberMemory();
  }
  st.counters["M"] = (double)s.M;
  st.counters["N"] = (double)s.N;
  st.counters["K"] = (double)s.K;
  bench::set_flop_counters(st, 2.0 * s.M * s.N * s.K, bench::peak_for(isa, threads));
  bench::set_lib_threads(lib, 1);
}

// The scalar kernels are 10-20x slower: sweep them on the shapes up to 1024 only,
// so the whole suite stays within minutes.
bool too_big_for_scalar(const Shape &s) { return (double)s.M * s.N * s.K > 1024.0 * 1024 * 1024; }

void register_all() {
  const std::vector<Lib> refs = bench::reference_libs();
  for (Lib lib : refs) benchmark::AddCustomContext(bench::lib_name(lib), bench::lib_version(lib));
  for (const Shape &s : bench::gemm_shapes()) {
    for (int t : bench::threads()) {
      for (const bench::KernelSet &ks : bench::kernel_sets()) {
        if (ks.isa == DN_ISA_SCALAR && too_big_for_scalar(s)) continue;
        bench::clock_for(benchmark::RegisterBenchmark(
            bench::name({"gemm", s.op, s.label, "deepnet", ks.name, "threads:" + std::to_string(t)}).c_str(),
            run, Lib::deepnet, ks.isa, ks.amx, t, s), t)
            ->Unit(benchmark::kMicrosecond);
      }
      for (Lib lib : refs)
        bench::clock_for(benchmark::RegisterBenchmark(
            bench::name({"gemm", s.op, s.label, bench::lib_name(lib), "own", "threads:" + std::to_string(t)}).c_str(),
            run, lib, bench::best_isa(), false, t, s), t)
            ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char **argv) { return bench::run_main(argc, argv, register_all); }
