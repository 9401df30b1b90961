#!/usr/bin/python3
"""The bench report's loader (tools/plot_data.py): a benchmark measured in several processes
(BENCH_GEMM_ROUNDS, or a bundle's per-library files) becomes one row holding the median of
each figure over the rounds, its cv the larger of the rounds' own and their spread; a
benchmark found once is left as it was; a cv aggregate is read as the fraction it is. Plain
Python, no matplotlib needed."""
import json
import os
import statistics
import subprocess
import sys
import tempfile

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path.insert(0, TOOLS)
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
    # A bundle folder holding only bench-gemm-vs's and deepnet-kernel-pair's outputs (the
    # round-by-round steps): bench-report.py reports their tables, as a markdown table with
    # a blank line before it; an empty folder is refused.
    with tempfile.TemporaryDirectory() as folder:
        report = [sys.executable, os.path.join(TOOLS, "bench-report.py"), folder]
        empty = subprocess.run(report, capture_output=True, text=True)
        expect(empty.returncode != 0, "an empty folder is refused")
        row = "| NN/sq1024 | 150.0 | 80 | 140.0 | 1.07 [1.05 1.09] |"
        with open(os.path.join(folder, "vs-1t.txt"), "w") as f:
            f.write("bench-gemm-vs: deepnet 0.1.0 (avx2 kernels), 1 thread\n"
                    "  openblas OpenBLAS 0.3.21\n\n"
                    "| shape | deepnet GFLOP/s | % peak | openblas GFLOP/s | vs openblas [p25 p75] |\n"
                    "|---|---|---|---|---|\n" + row + "\n\n"
                    "vs openblas: ahead (median ratio >= 1) on 1 of 1 shapes, geometric mean 1.07\n")
        with open(os.path.join(folder, "pair.txt"), "w") as f:
            f.write("ukr_rows TN 256 128 10: with/without 1.062 [1.060 1.064]\n")
        step_row = "| 2 | 3.852 | 66466 | 1.86 [1.86 1.88] | 197.1 | 1.92 [1.92 2.00] | 0.95 |"
        with open(os.path.join(folder, "trainscale-host.txt"), "w") as f:
            f.write("deepnet-step-breakdown --scaling: small net, batch 256, Adam, avx2 kernels\n\n"
                    "| threads | ms a step | samples/s | step speed-up [p25 p75] | host FMA GFLOP/s | "
                    "host speed-up [p25 p75] | of the host's |\n|---|---|---|---|---|---|---|\n"
                    + step_row + "\n")
        got = subprocess.run(report, capture_output=True, text=True)
        expect(got.returncode == 0, f"report of the paired files: exit {got.returncode} {got.stderr}")
        out = got.stdout
        expect(row in out, "the bench-gemm-vs table row is in the report")
        expect("\n\n| shape |" in out, "a blank line before the table")
        expect("geometric mean 1.07" in out, "the summary line is in the report")
        expect("with/without 1.062" in out and "## Paired kernel entries" in out, "pair.txt is in the report")
        expect(step_row in out and "deepnet-step-breakdown --scaling: small net" in out,
               "trainscale-host.txt's header line and row are in the report")
    # bench-report.sh --help prints its header and exits 0; an unknown flag exits 2 (it
    # used to be taken for the output folder, and mkdir printed its own help).
    script = os.path.join(TOOLS, "bench-report.sh")
    got = subprocess.run(["bash", script, "--help"], capture_output=True, text=True)
    expect(got.returncode == 0 and "BENCH_SUITES" in got.stdout and "set -euo" not in got.stdout,
           f"bench-report.sh --help: exit {got.returncode}, {got.stdout[:200]!r}")
    got = subprocess.run(["bash", script, "--bogus"], capture_output=True, text=True)
    expect(got.returncode == 2 and "unknown option '--bogus'" in got.stderr,
           f"bench-report.sh --bogus: exit {got.returncode}, {got.stderr!r}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("bench tools: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
