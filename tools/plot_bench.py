#!/usr/bin/python3
"""PNG plots for a bench report folder (tools/bench-report.sh): GFLOP/s per GEMM shape per
library at each thread count (gemm_t<N>.png), speed-up with threads (scaling.png) and the
elementwise kernels against the triad (act.png).

usage: /usr/bin/python3 tools/plot_bench.py FOLDER
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_data as pd  # noqa: E402

COLORS = {"deepnet avx512": "#1f77b4", "deepnet avx2": "#8fbbd9", "deepnet neon": "#1f77b4",
          "deepnet scalar": "#d0d0d0", "openblas": "#ff7f0e", "onednn": "#2ca02c"}


def peak_of(context, isa, threads):
    v = context.get(f"peak_gflops_{isa}_1t")
    return float(v) * threads if v else None


def series_label(r):
    return f"deepnet {r['isa']}" if r["lib"] == "deepnet" else r["lib"]


def plot_gemm(d, folder):
    rows, ctx = d["rows"], d["context"]
    g = pd.select(rows, suite="gemm")
    written = []
    for t in sorted({r["threads"] for r in g}):
        groups = [("NN (forward Z = W A_prev)", lambda r: r["op"] == "NN" and not r["shape"].startswith("sq")),
                  ("NT (dW = dZ A_prev^T)", lambda r: r["op"] == "NT"),
                  ("TN (dA_prev = W^T dZ)", lambda r: r["op"] == "TN"),
                  ("squares", lambda r: r["shape"].startswith("sq"))]
        fig, axes = plt.subplots(len(groups), 1, figsize=(12, 17))
        for ax, (title, keep) in zip(axes, groups):
            sel = [r for r in g if r["threads"] == t and keep(r) and r["isa"] != "scalar"]
            shapes = sorted({r["shape"] for r in sel}, key=pd.shape_sort_key)
            series = sorted({series_label(r) for r in sel},
                            key=lambda s: (not s.startswith("deepnet"), -pd.isa_rank(s.split()[-1]), s))
            if not shapes:
                ax.set_visible(False)
                continue
            width = 0.8 / max(1, len(series))
            for i, s in enumerate(series):
                ys = []
                for sh in shapes:
                    r = [x for x in sel if x["shape"] == sh and series_label(x) == s]
                    ys.append(r[0].get("GFLOPS", 0.0) if r else 0.0)
                ax.bar([k + i * width for k in range(len(shapes))], ys, width, label=s,
                       color=COLORS.get(s))
            ax.set_xticks([k + 0.4 - width / 2 for k in range(len(shapes))])
            ax.set_xticklabels(shapes, rotation=35, ha="right", fontsize=8)
            ax.set_ylabel("GFLOP/s")
            ax.set_title(f"{title}, {t} thread{'s' if t > 1 else ''}")
            isas = [s.split()[-1] for s in series if s.startswith("deepnet")]
            for isa in isas:
                p = peak_of(ctx, isa, t)
                if p:
                    ax.axhline(p, ls="--", lw=0.8, color=COLORS.get(f"deepnet {isa}", "k"))
                    ax.text(len(shapes) - 0.5, p, f"{isa} peak {p:.0f}", ha="right", va="bottom", fontsize=7)
            ax.legend(fontsize=8, loc="upper left")
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"dn_sgemm vs OpenBLAS vs oneDNN, {ctx.get('cpu_model', '')}", fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.985))
        name = f"gemm_t{t}.png"
        fig.savefig(os.path.join(folder, name), dpi=90)
        plt.close(fig)
        written.append(name)
    return written


def plot_scaling(d, folder):
    rows = d["rows"]
    threads = sorted({r["threads"] for r in rows.values() if r["suite"] in ("gemm", "train")})
    if len(threads) < 2:
        return []
    isa = pd.best_isa(rows, "gemm") or pd.best_isa(rows, "train")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, suite in zip(axes, ("gemm", "train")):
        keys = sorted({(r["op"], r["shape"], r["lib"]) for r in rows.values() if r["suite"] == suite
                       and (suite != "gemm" or r["shape"].endswith("_m256") or r["shape"].startswith("sq"))})
        for op, shape, lib in keys:
            the_isa = isa if lib == "deepnet" else "own"
            pts = []
            for t in threads:
                r = rows.get(f"{suite}/{op}/{shape}/{lib}/{the_isa}/threads:{t}")
                if r:
                    pts.append((t, r.metric()[1]))
            if len(pts) < 2 or pts[0][0] != threads[0] or not pts[0][1]:
                continue
            base = pts[0][1]
            style = {"deepnet": "-", "openblas": ":", "onednn": "--"}.get(lib, "-")
            ax.plot([p[0] for p in pts], [p[1] / base for p in pts], style, marker="o", ms=3, lw=1,
                    color=COLORS.get(f"deepnet {isa}" if lib == "deepnet" else lib),
                    alpha=0.8, label=f"{lib} {op} {shape}" if suite == "train" else None)
        ax.plot(threads, [t / threads[0] for t in threads], "k-", lw=2, alpha=0.4, label="ideal")
        ax.set_xlabel("threads")
        ax.set_ylabel(f"speed-up over {threads[0]} thread")
        ax.set_xticks(threads)
        ax.grid(alpha=0.3)
        if suite == "gemm":
            for lib, style in (("deepnet", "-"), ("openblas", ":"), ("onednn", "--")):
                ax.plot([], [], style, color=COLORS.get(f"deepnet {isa}" if lib == "deepnet" else lib), label=lib)
            ax.set_title("GEMM (batch 256 shapes and squares)")
        else:
            ax.set_title(f"training, deepnet {isa}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "scaling.png"), dpi=90)
    plt.close(fig)
    return ["scaling.png"]


def plot_act(d, folder):
    rows = d["rows"]
    a = pd.select(rows, suite="act")
    if not a:
        return []
    sizes = sorted({r["shape"] for r in a}, key=pd.shape_sort_key)
    isas = sorted({r["isa"] for r in a if r["isa"] != "scalar"} or {r["isa"] for r in a}, key=pd.isa_rank)
    ops = sorted({r["op"] for r in a})
    fig, axes = plt.subplots(len(sizes), 1, figsize=(12, 4.2 * len(sizes)))
    if len(sizes) == 1:
        axes = [axes]
    width = 0.8 / len(isas)
    for ax, size in zip(axes, sizes):
        for i, isa in enumerate(isas):
            ys = [(rows.get(f"act/{op}/{size}/deepnet/{isa}/threads:1") or {}).get("GBps", 0.0) for op in ops]
            ax.bar([k + i * width for k in range(len(ops))], ys, width, label=f"deepnet {isa}",
                   color=COLORS.get(f"deepnet {isa}"))
            tri = pd.select(rows, suite="peak", op="triad", shape=size, isa=isa, threads=1)
            if tri and tri[0].get("GBps"):
                ax.axhline(tri[0]["GBps"], ls="--", lw=1, color=COLORS.get(f"deepnet {isa}", "k"),
                           label=f"{isa} triad, 1 thread")
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(ops))])
        ax.set_xticklabels(ops, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("GB/s")
        ax.set_title(f"elementwise kernels, one thread, {size[1:]} floats per array")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "act.png"), dpi=90)
    plt.close(fig)
    return ["act.png"]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    d = pd.load_folder(folder)
    if not d["rows"]:
        sys.exit(f"plot_bench.py: no benchmark results in {folder}")
    written = plot_gemm(d, folder) + plot_scaling(d, folder) + plot_act(d, folder)
    print("plot_bench.py: wrote " + ", ".join(written))


if __name__ == "__main__":
    main()
