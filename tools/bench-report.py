#!/usr/bin/python3
"""Writes report.md (to stdout) for a bench report folder made by tools/bench-report.sh.

usage: /usr/bin/python3 tools/bench-report.py FOLDER [--command "what produced it"]

Every figure is the median of the repetitions; % of peak is against the measured
one-thread FMA peak of the ISA times the threads (OpenBLAS/oneDNN: of the best ISA).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_data as pd  # noqa: E402


def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


def geomean(xs):
    import math
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def noisy(r):
    return r is not None and r.get("cv") is not None and r["cv"] > 0.10


def cell_gflops(r):
    if r is None:
        return "-"
    s = fmt(r.get("GFLOPS"))
    if r.get("pct_peak") is not None:
        s += f" ({r['pct_peak']:.0f}%)"
    return s + (" ~" if noisy(r) else "")


def machine(d):
    c = d["context"]
    lines = [
        f"- CPU: {c.get('cpu_model', '?')}; {c.get('packages', '?')} package(s), "
        f"{c.get('cores', '?')} cores, {c.get('numa_nodes', '?')} NUMA node(s); caches: {c.get('caches', '?')}",
        f"- deepnet {c.get('deepnet_version', '?')}: ISA detected {c.get('isa_detected', '?')}, "
        f"swept {c.get('isas', '?')}, threads {c.get('thread_counts', '?')}",
        f"- measured one-thread FMA peak (GFLOP/s): " + ", ".join(
            f"{k[len('peak_gflops_'):-3]} {v}" for k, v in sorted(c.items())
            if k.startswith("peak_gflops_")),
        f"- compiler (bench): {c.get('compiler', '?')}; host: {c.get('host_name', '?')}, "
        f"{c.get('num_cpus', '?')} CPUs at {c.get('mhz_per_cpu', '?')} MHz (as Google Benchmark sees it)",
    ]
    if c.get("openblas"):
        lines.append(f"- OpenBLAS: {c['openblas']}")
    if c.get("onednn"):
        lines.append(f"- oneDNN: {c['onednn']}")
    for line in d["system"]:
        if line.startswith(("compiler:", "git:", "kernel:", "package ", "load average", "OMP_")):
            lines.append("- " + line)
    return "\n".join(lines)


def peak_section(d):
    rows = d["rows"]
    fma = sorted(pd.select(rows, suite="peak", op="fma"), key=lambda r: (pd.isa_rank(r["isa"]), r["threads"]))
    out = ["## Peak (suite `peak`)", "",
           "FMA throughput: 12 independent multiply-add chains per thread at the ISA's width "
           "(scalar: the baseline SSE2 target, separate mul and add).", ""]
    out.append(table(["ISA (loop)", "threads", "GFLOP/s"],
                     [[f"{r['isa']} ({r['lib']})", r["threads"], fmt(r.get("GFLOPS"))] for r in fma]))
    stream = pd.select(rows, suite="peak", op=("triad", "copy"))
    if stream:
        sizes = sorted({r["shape"] for r in stream}, key=pd.shape_sort_key)
        out += ["", "STREAM-like bandwidth, GB/s (triad a = b + s c counts 12 bytes per element, "
                "copy 8; sizes are floats per array):", ""]
        body = []
        for op in ("triad", "copy"):
            for isa in sorted({r["isa"] for r in stream}, key=pd.isa_rank):
                for t in sorted({r["threads"] for r in stream}):
                    cells = []
                    for s in sizes:
                        r = pd.select(rows, suite="peak", op=op, shape=s, isa=isa, threads=t)
                        cells.append(fmt(r[0].get("GBps")) if r else "-")
                    body.append([op, isa, t] + cells)
        out.append(table(["op", "ISA", "threads"] + sizes, body))
    return "\n".join(out)


def gemm_section(d):
    rows = d["rows"]
    g = pd.select(rows, suite="gemm")
    if not g:
        return ""
    isas = sorted({r["isa"] for r in g if r["lib"] == "deepnet"}, key=pd.isa_rank, reverse=True)
    refs = [lib for lib in ("openblas", "onednn") if any(r["lib"] == lib for r in g)]
    out = ["## GEMM (suite `gemm`)", "",
           "GFLOP/s (% of peak). NN is the forward Z = W A_prev (M = n[l], N = m, K = n[l-1]), "
           "NT is dW = dZ A_prev^T (M = n[l], N = n[l-1], K = m), TN is dA_prev = W^T dZ "
           "(M = n[l-1], N = m, K = n[l]); shape n[l-1]-n[l]_m<batch>, sqN is N x N x N. "
           "`~`: coefficient of variation of the repetitions above 10%. The last column is "
           "deepnet's best ISA over the faster of the references.", ""]
    for t in sorted({r["threads"] for r in g}):
        body = []
        keys = sorted({(r["op"], r["shape"]) for r in g if r["threads"] == t},
                      key=lambda k: (k[1].startswith("sq"), pd.shape_sort_key(k[1]), k[0]))
        for op, shape in keys:
            dn = [rows.get(f"gemm/{op}/{shape}/deepnet/{i}/threads:{t}") for i in isas]
            rf = [rows.get(f"gemm/{op}/{shape}/{lib}/own/threads:{t}") for lib in refs]
            best_ref = max((r["GFLOPS"] for r in rf if r), default=None)
            ratio = (dn[0]["GFLOPS"] / best_ref) if dn[0] and best_ref else None
            body.append([op, shape] + [cell_gflops(r) for r in dn] + [cell_gflops(r) for r in rf] +
                        [fmt(ratio, 2) + "x" if ratio else "-"])
        out += [f"### {t} thread{'s' if t > 1 else ''}", "",
                table(["op", "shape"] + [f"deepnet {i}" for i in isas] + refs + ["deepnet/best ref"], body), ""]
        summary = []
        for lib in refs:
            ratios = []
            for op, shape in keys:
                dn = rows.get(f"gemm/{op}/{shape}/deepnet/{isas[0]}/threads:{t}")
                rf = rows.get(f"gemm/{op}/{shape}/{lib}/own/threads:{t}")
                if dn and rf and dn.get("GFLOPS") and rf.get("GFLOPS"):
                    ratios.append(dn["GFLOPS"] / rf["GFLOPS"])
            if ratios:
                wins = sum(r >= 1.0 for r in ratios)
                summary.append(f"deepnet {isas[0]} / {lib}: geometric mean {geomean(ratios):.2f}x, "
                               f"at least as fast on {wins} of {len(ratios)} shapes")
        if summary:
            out += ["Summary: " + "; ".join(summary) + ".", ""]
    return "\n".join(out)


def scaling_section(d):
    rows = d["rows"]
    threads = sorted({r["threads"] for r in rows.values() if r["suite"] in ("gemm", "train")})
    if len(threads) < 2:
        return ""
    isa = pd.best_isa(rows, "gemm") or pd.best_isa(rows, "train")
    out = ["## Scaling with threads", "",
           f"deepnet at {isa}; speed-up over one thread in brackets. GEMM in GFLOP/s, training in samples/s.", ""]
    body = []
    for suite, op_filter in (("gemm", None), ("train", None)):
        keys = sorted({(r["op"], r["shape"], r["lib"]) for r in rows.values() if r["suite"] == suite},
                      key=lambda k: (k[2] != "deepnet", k[1].startswith("sq"), pd.shape_sort_key(k[1]), k[0]))
        for op, shape, lib in keys:
            if suite == "gemm" and not (shape.endswith("_m256") or shape.startswith("sq")):
                continue  # one batch is enough to see the trend
            the_isa = isa if lib == "deepnet" else "own"
            base = rows.get(f"{suite}/{op}/{shape}/{lib}/{the_isa}/threads:{threads[0]}")
            if not base:
                continue
            m, _ = base.metric()
            cells = []
            for t in threads:
                r = rows.get(f"{suite}/{op}/{shape}/{lib}/{the_isa}/threads:{t}")
                if r and m in r and base.get(m):
                    cells.append(f"{fmt(r[m])} ({r[m] / base[m]:.2f}x)")
                else:
                    cells.append("-")
            body.append([suite, op, shape, lib] + cells)
    out.append(table(["suite", "op", "shape", "lib"] + [f"{t} thr" for t in threads], body))
    return "\n".join(out)


def act_section(d):
    rows = d["rows"]
    a = pd.select(rows, suite="act")
    if not a:
        return ""
    sizes = sorted({r["shape"] for r in a}, key=pd.shape_sort_key)
    isas = sorted({r["isa"] for r in a}, key=pd.isa_rank, reverse=True)
    out = ["## Elementwise kernels (suite `act`)", "",
           "GB/s of the least traffic each operation needs, one thread; in brackets the fraction of "
           "the one-thread triad of the same ISA at the same array size (suite `peak`).", ""]
    for isa in isas:
        body = []
        for op in sorted({r["op"] for r in a}):
            cells = []
            for s in sizes:
                r = rows.get(f"act/{op}/{s}/deepnet/{isa}/threads:1")
                tri = [x for x in pd.select(rows, suite="peak", op="triad", shape=s, isa=isa, threads=1)]
                if r and tri and tri[0].get("GBps"):
                    cells.append(f"{fmt(r['GBps'])} ({r['GBps'] / tri[0]['GBps']:.0%})")
                else:
                    cells.append(fmt(r.get("GBps")) if r else "-")
            body.append([op] + cells)
        out += [f"### {isa}", "", table(["kernel"] + sizes, body), ""]
    return "\n".join(out)


def layer_section(d):
    rows = d["rows"]
    ly = pd.select(rows, suite="layer")
    if not ly:
        return ""
    out = ["## One layer (suite `layer`)", "",
           "Layer 1 of [n0, n1 relu, 1 linear] with mse: forward is Z = W A_prev + b and relu, "
           "backward is dZ, dW, db (no dA_prev below layer 1). GFLOP/s (% of peak); `vs GEMM` is the "
           "layer's time over the bare dn_sgemm of the same shape in this run (NN for forward, NT for "
           "backward; 1.00 = the rest is free).", ""]
    body = []
    for r in sorted(ly, key=lambda r: (r["threads"], -pd.isa_rank(r["isa"]), pd.shape_sort_key(r["shape"]), r["op"])):
        op = "NN" if r["op"] == "fwd" else "NT"
        g = rows.get(f"gemm/{op}/{r['shape']}/deepnet/{r['isa']}/threads:{r['threads']}")
        ratio = r["time_s"] / g["time_s"] if g and g.get("time_s") and r.get("time_s") else None
        body.append([r["op"], r["shape"], r["isa"], r["threads"], cell_gflops(r),
                     fmt(r.get("samples_per_s"), 0), fmt(ratio, 2) if ratio else "-"])
    out.append(table(["pass", "shape", "ISA", "threads", "GFLOP/s", "samples/s", "vs GEMM"], body))
    return "\n".join(out)


def train_section(d):
    rows = d["rows"]
    tr = pd.select(rows, suite="train")
    if not tr:
        return ""
    out = ["## Training (suite `train`)", "",
           "Synthetic data, relu hidden layers, softmax + cce, Adam. `step`: forward, backward and "
           "update of one batch; `epoch4096`: dn_net_train over 4096 examples (shuffle and batch "
           "gather included). samples/s, with GFLOP/s (% of peak) of the GEMM work.", ""]
    body = []
    for r in sorted(tr, key=lambda r: (pd.shape_sort_key(r["shape"]), r["op"], -pd.isa_rank(r["isa"]), r["threads"])):
        body.append([r["shape"], r["op"], r["isa"], r["threads"], fmt(r.get("samples_per_s"), 0)
                     + (" ~" if noisy(r) else ""), cell_gflops(r)])
    out.append(table(["net_batch", "what", "ISA", "threads", "samples/s", "GFLOP/s"], body))
    return "\n".join(out)


def pytorch_section(d):
    p = d["pytorch"]
    if not p:
        return ""
    rounds = p.get("rounds", 1)
    out = ["## deepnet vs PyTorch (tools/pytorch_compare.py)", "",
           f"Command: `{p.get('command', '?')}`; PyTorch {p.get('torch_version', '?')}. "
           "Median epoch throughput, samples/s"
           + (f"; medians over {rounds} alternating process pairs, and the lowest and highest "
              "ratio of those pairs." if rounds > 1 else "."), ""]
    head = ["net", "batch", "threads", "deepnet", "PyTorch", "ratio"]
    body = [[r["dims"], r["batch"], r["threads"], fmt(r["deepnet"], 0), fmt(r["pytorch"], 0),
             fmt(r["ratio"], 2) + "x"]
            + ([f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}x"] if rounds > 1 else [])
            for r in p.get("results", [])]
    out.append(table(head + (["lowest-highest"] if rounds > 1 else []), body))
    return "\n".join(out)


# The bundle's round-by-round outputs (tools/bundle-run.sh): file, heading, how to show it.
PAIRED_FILES = [
    ("vs-1t.txt", "dn_sgemm against the libraries, one thread, round by round (bench-gemm-vs)", "table"),
    ("vs-1t-amx.txt", "The same with the AMX path on (DEEPNET_AMX=1), the FMA kernels as deepnet-fma", "table"),
    ("scaling.txt", "dn_sgemm's speed-up with threads, the counts alternated (bench-gemm-vs --scaling)", "table"),
    ("midsize-scaling.txt", "Mid-size layers: speed-up with threads (bench-gemm-vs --scaling)", "table"),
    ("midsize-vs-passive-openblas.txt", "Mid-size layers at the most threads against OpenBLAS, workers asleep between calls", "table"),
    ("midsize-vs-passive-onednn.txt", "The same against oneDNN", "table"),
    ("midsize-vs-active-openblas.txt", "Mid-size layers against OpenBLAS with OMP_WAIT_POLICY=active (workers spin between calls)", "table"),
    ("midsize-vs-active-onednn.txt", "The same against oneDNN", "table"),
    ("midsize-trace-passive.txt", "Mid-size traces at the most threads, workers asleep between calls", "text"),
    ("midsize-trace-active.txt", "The same traces with OMP_WAIT_POLICY=active", "text"),
    ("trainscale.txt", "Training step at each thread count (deepnet-train-bench, samples/s)", "text"),
    ("trainscale-host.txt", "Training step's speed-up with threads beside the host's FMA loop (deepnet-step-breakdown --scaling)", "table"),
    ("trainscale-host-deep.txt", "The same for the deep net", "table"),
    ("pair.txt", "Paired kernel entries (deepnet-kernel-pair, with/without)", "text"),
    ("ukr.txt", "Micro-kernels in the caches against the FMA loop (deepnet-ukr-speed)", "text"),
    ("ukr-asm.txt", "The AVX-512 tile's candidate assembly k loops beside it (deepnet-ukr-speed --asm)", "text"),
]


def paired_section(folder):
    """The tables bench-gemm-vs and deepnet-step-breakdown --scaling printed (the header
    line, the markdown table and the summary lines) and the plain-text outputs, as they are: they are medians of per-round ratios
    already, which the JSON loader's per-process medians cannot give."""
    out = []
    for name, heading, kind in PAIRED_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [ln.rstrip("\n") for ln in f]
        if not any(ln.strip() for ln in lines):
            continue
        out += [f"## {heading}", "", f"From `{name}`.", ""]
        if kind == "table":
            rows = [ln for ln in lines if ln.startswith("|")]
            head = [ln.strip() for ln in lines if ln.startswith(("bench-gemm-vs", "deepnet-step-breakdown", "  "))]
            tail = [ln for ln in lines if ln.startswith("vs ")]
            out += ["; ".join(head), ""] + rows + ([""] + tail if tail else [])
        else:
            out += ["```"] + lines + ["```"]
        out.append("")
    return "\n".join(out).rstrip("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--command", default=None, help="the command that produced the folder")
    args = ap.parse_args()
    d = pd.load_folder(args.folder)
    paired = paired_section(args.folder)
    if not d["rows"] and not paired:
        sys.exit(f"bench-report.py: no benchmark results in {args.folder}")
    parts = ["# deepnet benchmark report", ""]
    rounds = max((r.get("rounds", 1) for r in d["rows"].values()), default=1)
    how = ("medians of the repetitions" if rounds == 1 else
           f"medians of the repetitions, then of {rounds} rounds of separate processes "
           "(the libraries taking turns) for the gemm suite; `~` there marks a spread over "
           "10% between rounds or repetitions")
    if args.command:
        parts += [f"Produced by `{args.command}`; {how}.", ""]
    parts += ["## Machine", "", machine(d), ""]
    plots = sorted(f for f in os.listdir(args.folder) if f.endswith(".png"))
    if paired:
        parts += [paired, ""]
    if d["rows"]:
        for sec in (peak_section, gemm_section, scaling_section, layer_section, act_section,
                    train_section, pytorch_section):
            s = sec(d)
            if s:
                parts += [s, ""]
    if d["errors"]:
        parts += ["## Skipped with errors", ""] + [f"- `{n}`: {m}" for n, m in d["errors"]] + [""]
    parts += ["## Plots", "", "gemm_t<N>.png (GFLOP/s per shape per library), scaling.png "
              "(speed-up with threads), act.png (elementwise GB/s against the triad)."]
    for f in plots:
        parts.append(f"![{f}]({f})")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
