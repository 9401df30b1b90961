// The GEMM shapes of the MLP and the three libraries that run them (deepnet, OpenBLAS's
// cblas_sgemm, oneDNN's dnnl_sgemm), shared by bench-gemm (Google Benchmark) and
// bench-gemm-vs (the libraries alternated in one process).
#ifndef BENCH_GEMM_LIBS_H
#define BENCH_GEMM_LIBS_H

#include <cstddef>
#include <string>
#include <vector>

namespace bench {

struct Shape {
  std::string op;     // "NN", "NT", "TN"
  std::string label;  // "784-512_m128" or "sq1024"
  char ta, tb;
  std::size_t M, N, K;
  std::size_t lda() const { return ta == 'N' ? M : K; }
  std::size_t ldb() const { return tb == 'N' ? K : N; }
  std::string name() const { return op + "/" + label; }
};

// The layers of the Fashion-MNIST nets and wider ones at the training batches (forward NN,
// backward NT for dW and TN for dA_prev), then the squares.
std::vector<Shape> gemm_shapes();

// deepnet_fma: deepnet's dn_sgemm with the AMX path switched off (the FMA kernels alone),
// a reference only where the CPU can run tiles, and only when asked for by name (its
// calls switch the process-wide AMX setting; deepnet's own calls switch it back).
enum class Lib { deepnet, openblas, onednn, deepnet_fma };
const char *lib_name(Lib l);
// "0.3.21 ..." (OpenBLAS's config string), "3.0.0 (OpenMP)" (oneDNN's version and runtime).
std::string lib_version(Lib l);
// The reference libraries this build links, in the order the reports list them.
std::vector<Lib> reference_libs();
// Those that run only when named (--refs): deepnet_fma where AMX can run.
std::vector<Lib> optional_libs();
// One C = op(A) op(B) (alpha 1, beta 0, column-major, minimal leading dimensions); false
// if the library refused or is not in this build.
bool gemm_call(Lib lib, const Shape &s, const float *A, const float *B, float *C);
// A few entries of C against a double-precision dot product: catches a wrong mapping of a
// library's API before its speed is reported.
bool gemm_spot_check(const Shape &s, const float *A, const float *B, const float *C);
// The library's own thread count (OpenBLAS keeps its own; the others follow OpenMP's).
void set_lib_threads(Lib lib, int threads);

}  // namespace bench

#endif
