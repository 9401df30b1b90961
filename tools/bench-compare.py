#!/usr/bin/python3
"""Compares two bench report folders (tools/bench-report.sh) benchmark by benchmark.

usage: /usr/bin/python3 tools/bench-compare.py OLD NEW [--threshold 5] [--suite gemm ...] [--all]

For every benchmark present in both, the figure of merit (GFLOP/s, GB/s or samples/s,
else 1/time; higher is better) of NEW over OLD. A change worse than -threshold % is a
regression, better than +threshold % an improvement; either is marked `noisy` when the
repetitions of that benchmark vary by more than the threshold themselves (coefficient of
variation), since then the change may be chance. Prints a markdown table of regressions
and improvements (--all: every benchmark); exits 1 if any regression is not noisy, 0
otherwise, 2 on bad input.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_data as pd  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--threshold", type=float, default=5.0, help="percent (default 5)")
    ap.add_argument("--suite", action="append", help="only these suites (repeatable)")
    ap.add_argument("--all", action="store_true", help="list unchanged benchmarks too")
    args = ap.parse_args()
    try:
        a, b = pd.load_folder(args.old), pd.load_folder(args.new)
    except (OSError, ValueError) as e:
        print(f"bench-compare: {e}", file=sys.stderr)
        return 2
    for name, d in (("OLD", a), ("NEW", b)):
        if not d["rows"]:
            print(f"bench-compare: {name} folder has no benchmark JSON", file=sys.stderr)
            return 2
    common = [k for k in a["rows"] if k in b["rows"]]
    if args.suite:
        common = [k for k in common if a["rows"][k]["suite"] in args.suite]
    if not common:
        print("bench-compare: no benchmark in common", file=sys.stderr)
        return 2
    ca, cb = a["context"], b["context"]
    print(f"# bench-compare\n\nOLD: `{args.old}` ({ca.get('cpu_model', '?')}, {ca.get('date', '?')})  ")
    print(f"NEW: `{args.new}` ({cb.get('cpu_model', '?')}, {cb.get('date', '?')})  ")
    if ca.get("cpu_model") != cb.get("cpu_model"):
        print("\n**Different CPUs: the changes compare machines, not code.**")
    t = args.threshold
    regress, improve, same = [], [], []
    for k in common:
        ra, rb = a["rows"][k], b["rows"][k]
        m, va = ra.metric()
        vb = rb.get(m) if m in rb else rb.metric()[1]
        if not va or vb is None:
            continue
        change = (vb / va - 1.0) * 100.0
        cv = max(ra.get("cv") or 0.0, rb.get("cv") or 0.0) * 100.0
        row = (k, m, va, vb, change, cv > t, cv)
        (regress if change < -t else improve if change > t else same).append(row)
    regress.sort(key=lambda r: r[4])
    improve.sort(key=lambda r: -r[4])

    def show(title, rows):
        if not rows:
            return
        print(f"\n## {title} ({len(rows)})\n")
        print("| benchmark | metric | OLD | NEW | change | note |")
        print("|---|---|---|---|---|---|")
        for k, m, va, vb, ch, is_noisy, cv in rows:
            note = f"noisy (cv {cv:.0f}%)" if is_noisy else ""
            print(f"| `{k}` | {m} | {va:,.2f} | {vb:,.2f} | {ch:+.1f}% | {note} |")

    show(f"Regressions (worse than -{t:g}%)", regress)
    show(f"Improvements (better than +{t:g}%)", improve)
    if args.all:
        show("Within the threshold", sorted(same, key=lambda r: r[4]))
    firm = [r for r in regress if not r[5]]
    print(f"\n{len(common)} benchmarks compared: {len(regress)} regressions "
          f"({len(firm)} beyond the noise), {len(improve)} improvements, {len(same)} within +-{t:g}%.")
    only = (set(a["rows"]) ^ set(b["rows"]))
    if only:
        print(f"{len(only)} benchmarks are in only one of the folders (not compared).")
    return 1 if firm else 0


if __name__ == "__main__":
    sys.exit(main())
