#include "gemm_libs.h"

#include <cmath>
#include <cstdio>

extern "C" {
#include "deepnet.h"
bool dn_amx_enabled(void);
bool dn_amx_can_run(void);
void dn_amx_set_enabled(bool on);
}

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace bench {

std::vector<Shape> gemm_shapes() {
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

const char *lib_name(Lib l) {
  switch (l) {
    case Lib::openblas: return "openblas";
    case Lib::onednn: return "onednn";
    case Lib::deepnet_fma: return "deepnet-fma";
    default: return "deepnet";
  }
}

std::string lib_version(Lib l) {
  switch (l) {
    case Lib::openblas:
#ifdef BENCH_HAVE_OPENBLAS
      return openblas_get_config();
#else
      return "a CBLAS (no version query)";
#endif
#ifdef BENCH_HAVE_DNNL
    case Lib::onednn: {
      const dnnl_version_t *v = dnnl_version();
      char ver[64];
      std::snprintf(ver, sizeof ver, "%d.%d.%d (%s)", v->major, v->minor, v->patch,
                    v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
      return ver;
    }
#endif
    case Lib::deepnet_fma: return std::string(dn_version()) + " with DEEPNET_AMX=0";
    default: return dn_version();
  }
}

std::vector<Lib> reference_libs() {
  std::vector<Lib> refs;
#ifdef BENCH_HAVE_CBLAS
  refs.push_back(Lib::openblas);
#endif
#ifdef BENCH_HAVE_DNNL
  refs.push_back(Lib::onednn);
#endif
  return refs;
}

std::vector<Lib> optional_libs() {
  std::vector<Lib> opt;
  if (dn_amx_can_run() && dn_isa_active() == DN_ISA_AVX512) opt.push_back(Lib::deepnet_fma);
  return opt;
}

// deepnet_fma switches AMX off for its calls; deepnet's calls after that switch it back to
// what it was before the first deepnet_fma call. Programs that never name deepnet_fma
// (bench-gemm sets AMX per kernel set itself) see no change.
static bool fma_switched = false, amx_before_fma = false;

bool gemm_call(Lib lib, const Shape &s, const float *A, const float *B, float *C) {
  const std::size_t lda = s.lda(), ldb = s.ldb();
  switch (lib) {
    case Lib::deepnet:
    case Lib::deepnet_fma:
      if (lib == Lib::deepnet_fma) {
        if (!fma_switched) amx_before_fma = dn_amx_enabled(), fma_switched = true;
        dn_amx_set_enabled(false);
      } else if (fma_switched) {
        dn_amx_set_enabled(amx_before_fma);
      }
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

bool gemm_spot_check(const Shape &s, const float *A, const float *B, const float *C) {
  const std::size_t lda = s.lda(), ldb = s.ldb();
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

}  // namespace bench
