#!/usr/bin/python3
"""The bench report's loader (tools/plot_data.py): a benchmark measured in several processes
(BENCH_GEMM_ROUNDS, or a bundle's per-library files) becomes one row holding the median of
each figure over the rounds, its cv the larger of the rounds' own and their spread; a
benchmark found once is left as it was; a cv aggregate is read as the fraction it is. Plain
Python, no matplotlib needed."""
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import plot_data  # noqa: E402

NAME = "gemm/NN/784-512_m128/{lib}/avx512/threads:2/real_time"


def write_round(folder, tag, lib, gflops, time_us, cv):
    """One Google Benchmark JSON with a median and a cv aggregate for one benchmark."""
    name = NAME.format(lib=lib)
    common = {"run_name": name, "run_type": "aggregate", "time_unit": "us",
              "real_time": time_us, "cpu_time": time_us}
    data = {"context": {"peak_gflops_avx512_1t": 200.0},
            "benchmarks": [dict(common, name=name + "_median", aggregate_name="median",
                                GFLOPS=gflops),
                           dict(common, name=name + "_cv", aggregate_name="cv",
                                aggregate_unit="percentage", real_time=cv, cpu_time=cv,
                                GFLOPS=0.01)]}
    with open(os.path.join(folder, f"gemm-{tag}.json"), "w") as f:
        json.dump(data, f)


def main():
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as folder:
        for r, (g, t) in enumerate([(300.0, 100.0), (280.0, 110.0), (330.0, 90.0)], 1):
            write_round(folder, f"deepnet-r{r}", "deepnet", g, t, 0.02)
        write_round(folder, "openblas-r1", "openblas", 290.0, 103.0, 0.03)
        d = plot_data.load_folder(folder)
        rows = d["rows"]
        dn = rows["gemm/NN/784-512_m128/deepnet/avx512/threads:2"]
        ob = rows["gemm/NN/784-512_m128/openblas/avx512/threads:2"]
        expect(dn["GFLOPS"] == 300.0, f"median GFLOPS over rounds: {dn['GFLOPS']}")
        expect(abs(dn["time_s"] - 100e-6) < 1e-12, f"median time over rounds: {dn['time_s']}")
        spread = statistics.stdev([100e-6, 110e-6, 90e-6]) / statistics.mean([100e-6, 110e-6, 90e-6])
        expect(abs(dn["cv"] - spread) < 1e-9, f"cv is the spread of the rounds: {dn['cv']} vs {spread}")
        expect(dn.get("rounds") == 3, f"rounds counted: {dn.get('rounds')}")
        expect(ob["GFLOPS"] == 290.0 and "rounds" not in ob, "a benchmark found once is kept as it was")
        # Google Benchmark writes a cv aggregate's fraction in the real_time field beside a
        # time_unit; it must stay a fraction (it was read as 0.03 us, so nothing was ever
        # marked noisy).
        expect(ob["cv"] is not None and abs(ob["cv"] - 0.03) < 1e-12, f"cv as a fraction: {ob['cv']}")
        expect(d["suites"] == ["gemm"], f"suites: {d['suites']}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("bench tools: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
