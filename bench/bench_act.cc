// act suite: the elementwise kernels the training step runs besides GEMM (each
// activation forward and backward, softmax, bias add, db row sums, A - Y, the optimizer
// updates), one thread, from the dispatcher's table under each ISA. GB/s counts the
// least traffic the operation needs (see docs/benchmarks.md), so it reads directly
// against the peak suite's triad at the same array size.
#include <string>
#include <vector>

#include "bench_common.h"

extern "C" {
#include "kernels.h"
// From src/internal.h (C only): the dispatcher's table for the active ISA.
const dn_kernel_table *dn_kernels(void);
}

namespace {

enum class Op { fwd, bwd, softmax, bias_add, row_sum, sub, gd, momentum, adam };

struct Case {
  std::string name;
  Op op;
  dn_act act;
  double bytes_per_elem;  // least memory traffic per element
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const dn_act acts[] = {DN_ACT_LINEAR, DN_ACT_RELU, DN_ACT_LEAKY_RELU, DN_ACT_SIGMOID, DN_ACT_TANH};
  for (dn_act a : acts) out.push_back({std::string(dn_act_name(a)) + "_fwd", Op::fwd, a, 8});
  // dZ = dA * g'(.) reads dA and one cache (Z or A) and writes dZ; linear needs no cache.
  for (dn_act a : acts)
    out.push_back({std::string(dn_act_name(a)) + "_bwd", Op::bwd, a, a == DN_ACT_LINEAR ? 8.0 : 12.0});
  out.push_back({"softmax_fwd", Op::softmax, DN_ACT_SOFTMAX, 8});
  out.push_back({"bias_add", Op::bias_add, DN_ACT_LINEAR, 8});
  out.push_back({"row_sum", Op::row_sum, DN_ACT_LINEAR, 4});
  out.push_back({"sub", Op::sub, DN_ACT_LINEAR, 12});
  out.push_back({"gd_update", Op::gd, DN_ACT_LINEAR, 12});
  out.push_back({"momentum_update", Op::momentum, DN_ACT_LINEAR, 20});
  out.push_back({"adam_update", Op::adam, DN_ACT_LINEAR, 28});
  return out;
}

constexpr std::size_t kRows = 512;      // bias_add, row_sum: a 512-wide layer
constexpr std::size_t kSoftmaxRows = 10;  // softmax: the 10-class output

void run(benchmark::State &st, dn_isa isa, Case c, std::size_t n) {
  if (!bench::use(st, isa, 1)) return;
  const dn_kernel_table *kt = dn_kernels();
  // Inputs in [-4, 4): every branch of every activation; dA in [-1, 1). The optimizer
  // states exist only for the updates that use them (the big size is 128 MiB each).
  const bool moments = c.op == Op::momentum || c.op == Op::adam;
  bench::Buffer Z(n, -4, 4, 1), A(n, 0.01f, 0.99f, 2), dA(n, -1, 1, 3), dZ(n, 0, 0, 4);
  bench::Buffer b(kRows, -1, 1, 5), m1(moments ? n : 0, 0, 0, 6), v2(c.op == Op::adam ? n : 0, 0, 0, 7);
  for (auto _ : st) {
    switch (c.op) {
      case Op::fwd: kt->act_fwd[c.act](n, Z.data(), A.data()); break;
      case Op::bwd: kt->act_bwd[c.act](n, Z.data(), A.data(), dA.data(), dZ.data()); break;
      case Op::softmax: kt->softmax_fwd(kSoftmaxRows, n / kSoftmaxRows, Z.data(), A.data()); break;
      case Op::bias_add: kt->bias_add(kRows, n / kRows, b.data(), dZ.data()); break;
      case Op::row_sum: kt->row_sum(kRows, n / kRows, dA.data(), kRows, 0.5f, b.data()); break;
      case Op::sub: kt->sub(n, A.data(), dA.data(), dZ.data()); break;
      case Op::gd: kt->gd_update(n, 1e-7f, dA.data(), dZ.data()); break;
      case Op::momentum: kt->momentum_update(n, 1e-7f, 0.9f, dA.data(), m1.data(), dZ.data()); break;
      case Op::adam:
        kt->adam_update(n, 1e-7f, 0.9f, 0.999f, 1e-8f, dA.data(), m1.data(), v2.data(), dZ.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  st.counters["GBps"] = bench::per_second(c.bytes_per_elem * n * 1e-9);
  st.counters["Gelem_per_s"] = bench::per_second(n * 1e-9);
}

// The same per-array sizes as the peak suite's triad: L2, L2/L3 edge, memory.
const std::size_t kSizes[] = {1u << 16, 1u << 20, 1u << 24};

void register_all() {
  for (dn_isa isa : bench::isas())
    for (const Case &c : cases())
      for (std::size_t n : kSizes)
        bench::clock_for(benchmark::RegisterBenchmark(
            bench::name({"act", c.name, "n" + std::to_string(n), "deepnet", dn_isa_name(isa), "threads:1"}).c_str(),
            run, isa, c, n), 1)
            ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char **argv) { return bench::run_main(argc, argv, register_all); }
