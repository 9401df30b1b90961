// gemm suite: dn_sgemm on the MLP's shapes (forward NN, backward NT for dW and TN for
// dA_prev) and on squares, beside OpenBLAS cblas_sgemm and oneDNN dnnl_sgemm when the
// build found them. Names: gemm/<op>/<shape>/<lib>/<isa>/threads:<n>.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.h"

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace {

struct Shape {
  std::string op;     // "NN", "NT", "TN"
  std::string label;  // "784-512_m128" or "sq1024"
  char ta, tb;
  std::size_t M, N, K;
};

// The layers of the Fashion-MNIST nets and wider ones, at the training batches.
std::vector<Shape> shapes() {
  const std::size_t layers[][2] = {{784, 512}, {512, 256}, {256, 10}, {1024, 1024}, {4096, 4096}};
  const std::size_t batches[] = {128, 256, 512};
  std::vector<Shape> out;
  for (const auto &ly : layers) {
    const std::size_t n_prev = ly[0], n = ly[1];
    for (std::size_t m : batches) {
      const std::string l = std::to_string(n_prev) + "-" + std::to_string(n) + "_m" + std::to_string(m);
      out.push_back({"NN", l, 'N', 'N', n, m, n_prev});   // Z = W A_prev
      out.push_back({"NT", l, 'N', 'T', n, n_prev, m});   // dW = dZ A_prev^T
      out.push_back({"TN", l, 'T', 'N', n_prev, m, n});   // dA_prev = W^T dZ
    }
  }
  for (std::size_t s : {256, 512, 1024, 2048})
    out.push_back({"NN", "sq" + std::to_string(s), 'N', 'N', s, s, s});
  return out;
}

enum class Lib { deepnet, openblas, onednn };
const char *lib_name(Lib l) {
  switch (l) {
    case Lib::openblas: return "openblas";
    case Lib::onednn: return "onednn";
    default: return "deepnet";
  }
}

bool call(Lib lib, const Shape &s, const float *A, const float *B, float *C) {
  const std::size_t lda = s.ta == 'N' ? s.M : s.K, ldb = s.tb == 'N' ? s.K : s.N;
  switch (lib) {
    case Lib::deepnet:
      return dn_sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A, lda, B, ldb, 0.0f, C, s.M) == DN_OK;
#ifdef BENCH_HAVE_CBLAS
    case Lib::openblas:
      cblas_sgemm(CblasColMajor, s.ta == 'N' ? CblasNoTrans : CblasTrans,
                  s.tb == 'N' ? CblasNoTrans : CblasTrans, (int)s.M, (int)s.N, (int)s.K, 1.0f, A,
                  (int)lda, B, (int)ldb, 0.0f, C, (int)s.M);
      return true;
#endif
#ifdef BENCH_HAVE_DNNL
    case Lib::onednn:
      // dnnl_sgemm is row-major. Column-major C (M x N) is row-major C^T (N x M), and
      // C^T = op(B)^T op(A)^T: swap the operands (and their trans flags and lds), M and N.
      return dnnl_sgemm(s.tb, s.ta, (dnnl_dim_t)s.N, (dnnl_dim_t)s.M, (dnnl_dim_t)s.K, 1.0f, B,
                        (dnnl_dim_t)ldb, A, (dnnl_dim_t)lda, 0.0f, C, (dnnl_dim_t)s.M) ==
             dnnl_success;
#endif
    default: return false;
  }
}

// A few entries of C against a double-precision dot product: catches a wrong mapping
// of a library's API before its speed is reported.
bool spot_check(const Shape &s, const float *A, const float *B, const float *C) {
  const std::size_t lda = s.ta == 'N' ? s.M : s.K, ldb = s.tb == 'N' ? s.K : s.N;
  for (int t = 0; t < 16; t++) {
    const std::size_t i = (t * 7919u) % s.M, j = (t * 104729u) % s.N;
    double ref = 0.0, mag = 0.0;
    for (std::size_t k = 0; k < s.K; k++) {
      const double a = s.ta == 'N' ? A[i + k * lda] : A[k + i * lda];
      const double b = s.tb == 'N' ? B[k + j * ldb] : B[j + k * ldb];
      ref += a * b;
      mag += std::fabs(a * b);
    }
    if (std::fabs(C[i + j * s.M] - ref) > 1e-5 * mag + 1e-6) return false;
  }
  return true;
}

void set_lib_threads(Lib lib, int threads) {
#ifdef BENCH_HAVE_OPENBLAS
  if (lib == Lib::openblas) openblas_set_num_threads(threads);
#endif
  (void)lib;
  (void)threads;
}

void run(benchmark::State &st, Lib lib, dn_isa isa, bool amx, int threads, Shape s) {
  if (!bench::use(st, isa, threads, amx)) return;
  set_lib_threads(lib, threads);
  bench::Buffer A(s.M * s.K, -1, 1, 1), B(s.K * s.N, -1, 1, 2), C(s.M * s.N, 0, 0, 3);
  if (!call(lib, s, A.data(), B.data(), C.data())) {
    st.SkipWithError("the GEMM call failed");
    return;
  }
  if (!spot_check(s, A.data(), B.data(), C.data())) {
    st.SkipWithError("result differs from a double-precision reference");
    return;
  }
  for (auto _ : st) {
    call(lib, s, A.data(), B.data(), C.data());
    benchmark::ClobberMemory();
  }
  st.counters["M"] = (double)s.M;
  st.counters["N"] = (double)s.N;
  st.counters["K"] = (double)s.K;
  bench::set_flop_counters(st, 2.0 * s.M * s.N * s.K, bench::peak_for(isa, threads));
  set_lib_threads(lib, 1);
}

// The scalar kernels are 10-20x slower: sweep them on the shapes up to 1024 only,
// so the whole suite stays within minutes.
bool too_big_for_scalar(const Shape &s) { return (double)s.M * s.N * s.K > 1024.0 * 1024 * 1024; }

void register_all() {
  std::vector<Lib> refs;
#ifdef BENCH_HAVE_CBLAS
  refs.push_back(Lib::openblas);
#ifdef BENCH_HAVE_OPENBLAS
  benchmark::AddCustomContext("openblas", openblas_get_config());
#endif
#endif
#ifdef BENCH_HAVE_DNNL
  refs.push_back(Lib::onednn);
  const dnnl_version_t *v = dnnl_version();
  char ver[64];
  std::snprintf(ver, sizeof ver, "%d.%d.%d (%s)", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
  benchmark::AddCustomContext("onednn", ver);
#endif
  for (const Shape &s : shapes()) {
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
            bench::name({"gemm", s.op, s.label, lib_name(lib), "own", "threads:" + std::to_string(t)}).c_str(),
            run, lib, bench::best_isa(), false, t, s), t)
            ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char **argv) { return bench::run_main(argc, argv, register_all); }
