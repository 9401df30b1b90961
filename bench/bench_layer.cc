// layer suite: one hidden layer's forward (Z = W A_prev + b, A = relu(Z)) and backward
// (dZ, dW, db) through the public API. The net is [n0, n1 (relu), 1 (linear, mse)]: the
// one-unit output layer adds about 1/n0 of the work and makes n1 a hidden layer, as in
// the real nets. Layer 1 computes no dA_prev (nothing below it), so the backward
// GFLOP/s counts the dW GEMM only. Read beside gemm/NN and gemm/NT of the same shape.
#include <string>

#include "bench_common.h"

namespace {

struct Net {
  dn_net *p = nullptr;
  ~Net() { dn_net_free(p); }
};

void run(benchmark::State &st, dn_isa isa, bool amx, int threads, std::size_t n0, std::size_t n1,
         std::size_t m, bool backward) {
  if (!bench::use(st, isa, threads, amx)) return;
  const std::size_t dims[] = {n0, n1, 1};
  const dn_act acts[] = {DN_ACT_RELU, DN_ACT_LINEAR};
  Net net;
  if (dn_net_create(&net.p, 2, dims, acts, DN_LOSS_MSE) != DN_OK || dn_net_init(net.p, 1) != DN_OK) {
    st.SkipWithError(dn_last_error());
    return;
  }
  bench::Buffer X(n0 * m, 0, 1, 1), Y(m, -1, 1, 2);
  if (dn_net_forward(net.p, X.data(), m, nullptr) != DN_OK ||
      dn_net_backward(net.p, Y.data(), nullptr) != DN_OK) {
    st.SkipWithError(dn_last_error());
    return;
  }
  for (auto _ : st) {
    if (backward)
      dn_net_backward(net.p, Y.data(), nullptr);
    else
      dn_net_forward(net.p, X.data(), m, nullptr);
  }
  st.counters["M"] = (double)n1;
  st.counters["N"] = (double)(backward ? n0 : m);
  st.counters["K"] = (double)(backward ? m : n0);
  st.counters["samples_per_s"] = bench::per_second((double)m);
  bench::set_flop_counters(st, 2.0 * n1 * n0 * m, bench::peak_for(isa, threads));
}

void register_all() {
  const std::size_t layers[][2] = {{784, 512}, {512, 256}, {1024, 1024}, {4096, 4096}};
  for (const auto &ly : layers)
    for (std::size_t m : {128, 256})
      for (int t : bench::threads())
        for (const bench::KernelSet &ks : bench::kernel_sets()) {
          if (ks.isa == DN_ISA_SCALAR && (double)ly[0] * ly[1] * m > 1024.0 * 1024 * 1024) continue;
          const std::string shape = std::to_string(ly[0]) + "-" + std::to_string(ly[1]) + "_m" + std::to_string(m);
          for (bool bwd : {false, true})
            bench::clock_for(benchmark::RegisterBenchmark(
                bench::name({"layer", bwd ? "bwd" : "fwd", shape, "deepnet", ks.name,
                             "threads:" + std::to_string(t)}).c_str(),
                run, ks.isa, ks.amx, t, ly[0], ly[1], m, bwd), t)
                ->Unit(benchmark::kMicrosecond);
        }
}

}  // namespace

int main(int argc, char **argv) { return bench::run_main(argc, argv, register_all); }
