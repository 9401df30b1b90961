// train suite: the Fashion-MNIST nets (relu hidden layers, softmax + cce, Adam) on
// synthetic data: one training step (forward, backward, Adam update on one batch) and
// one epoch-equivalent (dn_net_train over 4096 examples: shuffling, batch gathering
// and all). samples/s is the figure to compare; GFLOP/s counts the three GEMMs per
// layer (no dA_prev for layer 1).
#include <string>
#include <vector>

#include "bench_common.h"

namespace {

constexpr std::size_t kEpochM = 4096;

struct Net {
  dn_net *p = nullptr;
  ~Net() { dn_net_free(p); }
};

double flops_per_sample(const std::vector<std::size_t> &dims) {
  double f = 0.0;
  for (std::size_t l = 1; l < dims.size(); l++) {
    const double w = (double)dims[l] * dims[l - 1];
    f += 2 * w * (l == 1 ? 2 : 3);  // Z, dW, and dA_prev above layer 1
  }
  return f;
}

std::string dims_name(const std::vector<std::size_t> &dims) {
  std::string s;
  for (std::size_t d : dims) s += (s.empty() ? "" : "-") + std::to_string(d);
  return s;
}

void run(benchmark::State &st, dn_isa isa, bool amx, int threads, std::vector<std::size_t> dims,
         std::size_t batch, bool epoch) {
  if (!bench::use(st, isa, threads, amx)) return;
  const std::size_t L = dims.size() - 1, n0 = dims[0], nL = dims[L];
  std::vector<dn_act> acts(L, DN_ACT_RELU);
  acts[L - 1] = DN_ACT_SOFTMAX;
  Net net;
  if (dn_net_create(&net.p, L, dims.data(), acts.data(), DN_LOSS_CCE) != DN_OK ||
      dn_net_init(net.p, 1) != DN_OK) {
    st.SkipWithError(dn_last_error());
    return;
  }
  const std::size_t m = epoch ? kEpochM : batch;
  bench::Buffer X(n0 * m, 0, 1, 1), Y(nL * m, 0, 0, 2);
  for (std::size_t j = 0; j < m; j++) Y.data()[(j * 7) % nL + j * nL] = 1.0f;
  dn_train_opts opts;
  dn_train_opts_default(&opts);
  opts.optimizer = DN_OPT_ADAM;
  opts.batch_size = batch;
  opts.epochs = 1;
  dn_status s = DN_OK;
  // One untimed step first: the first one allocates the optimizer state and the caches
  // and packs the weights (page faults included), which at the deep net's 12-15 ms a step
  // was half of a 0.02 s measurement (4.4k samples/s against 8.6k in its epoch run).
  if (!epoch && (s = dn_net_forward(net.p, X.data(), m, nullptr)) == DN_OK &&
      (s = dn_net_backward(net.p, Y.data(), nullptr)) == DN_OK)
    s = dn_net_step(net.p, &opts);
  if (s != DN_OK) {
    st.SkipWithError(dn_last_error());
    return;
  }
  for (auto _ : st) {
    if (epoch) {
      s = dn_net_train(net.p, X.data(), Y.data(), m, &opts);
    } else if (!(s = dn_net_forward(net.p, X.data(), m, nullptr)) &&
               !(s = dn_net_backward(net.p, Y.data(), nullptr))) {
      s = dn_net_step(net.p, &opts);
    }
    if (s != DN_OK) {
      st.SkipWithError(dn_last_error());
      break;
    }
  }
  st.counters["batch"] = (double)batch;
  st.counters["samples_per_s"] = bench::per_second((double)m);
  bench::set_flop_counters(st, flops_per_sample(dims) * m, bench::peak_for(isa, threads));
}

void register_all() {
  const std::vector<std::vector<std::size_t>> nets = {{784, 512, 256, 10}, {784, 1024, 1024, 512, 10}};
  for (const auto &dims : nets)
    for (std::size_t batch : {128, 256})
      for (int t : bench::threads())
        for (const bench::KernelSet &ks : bench::kernel_sets())
          for (bool epoch : {false, true}) {
            // Epochs at the batch only, and not scalar (minutes each): steps cover the rest.
            if (epoch && (ks.isa == DN_ISA_SCALAR || batch != 128)) continue;
            bench::clock_for(benchmark::RegisterBenchmark(
                bench::name({"train", epoch ? "epoch" + std::to_string(kEpochM) : "step",
                             dims_name(dims) + "_m" + std::to_string(batch), "deepnet",
                             ks.name, "threads:" + std::to_string(t)}).c_str(),
                run, ks.isa, ks.amx, t, dims, batch, epoch), t)
                ->Unit(benchmark::kMillisecond);
          }
}

}  // namespace

int main(int argc, char **argv) { return bench::run_main(argc, argv, register_all); }
