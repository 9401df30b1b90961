#!/usr/bin/python3
"""Flame graph SVG from `perf script` output (no packaged FlameGraph in Debian 12).

usage: perf script -i perf.data | tools/flamegraph.py [--title T] [--fold-out F] > flame.svg
       tools/flamegraph.py --folded FOLDED.txt > flame.svg     (already folded stacks)

Folding follows stackcollapse-perf: each sample's stack, root first, as
"comm;caller;...;leaf count", with +0x offsets dropped and unknown frames named after
their object file. Every frame is a box as wide as its share of samples; hover for
the function, its samples and percentage. Colours are stable per function name
(deepnet's own dn_* functions in blue, others warm).
"""
import argparse
import hashlib
import html
import re
import sys
from collections import defaultdict

HEADER = re.compile(r"^(\S.*?)\s+(\d+)(?:/(\d+))?\s+(?:\[\d+\]\s+)?[\d.]+:\s*(\d+)?\s*(\S+):")
FRAME = re.compile(r"^\s+([0-9a-fA-F]+)\s+(.+?)(?:\s+\((.*)\))?$")


def fold(lines):
    """{stack string: count} from perf script text."""
    folded = defaultdict(int)
    comm, frames = None, []

    def flush():
        if comm is not None:
            folded[";".join([comm] + frames[::-1])] += 1

    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if comm is None and not line[0].isspace():
            m = HEADER.match(line)
            comm = (m.group(1) if m else line.split()[0]).strip().replace(";", ":").replace(" ", "_")
            continue
        m = FRAME.match(line)
        if m and comm is not None:
            sym, dso = m.group(2), m.group(3) or ""
            sym = re.sub(r"\+0x[0-9a-fA-F]+$", "", sym)
            if sym in ("[unknown]", ""):
                base = dso.rsplit("/", 1)[-1]
                sym = base if base.startswith("[") else f"[{base}]" if base else "[unknown]"
            frames.append(sym.replace(";", ":"))
    flush()
    return folded


def read_folded(lines):
    folded = defaultdict(int)
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            folded[stack] += int(n)
    return folded


class Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name):
        self.name, self.count, self.children = name, 0, {}


def build_tree(folded):
    root = Node("all")
    for stack, n in folded.items():
        root.count += n
        node = root
        for f in stack.split(";"):
            node = node.children.setdefault(f, Node(f))
            node.count += n
    return root


def colour(name):
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)
    a, b = (h & 0xFF) / 255.0, ((h >> 8) & 0xFF) / 255.0
    if name.startswith("dn_") or name.startswith("cli_"):
        return f"rgb({int(80 + 60 * a)},{int(130 + 70 * b)},{int(210 + 40 * a)})"
    if name.startswith("["):
        return f"rgb({int(170 + 40 * a)},{int(170 + 40 * a)},{int(170 + 40 * b)})"
    return f"rgb({int(205 + 50 * a)},{int(80 + 130 * b)},{int(40 + 40 * a)})"


def depth_of(node):
    return 1 + max((depth_of(c) for c in node.children.values()), default=0)


def svg(root, title, width=1200, frame_h=16, min_px=0.3):
    depth = depth_of(root)
    top, bottom = 44, 24
    height = top + depth * frame_h + bottom
    total = max(root.count, 1)
    scale = (width - 20) / total
    out = [f'<?xml version="1.0" standalone="no"?>',
           f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg" font-family="Verdana,sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f8f8"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">{html.escape(title)}</text>',
           f'<text x="10" y="{height - 8}" font-size="10">{root.count} samples; width = share of '
           f'samples, root at the bottom; hover a box for details</text>']

    def emit(node, x, level):
        w = node.count * scale
        if w < min_px:
            return
        y = top + (depth - 1 - level) * frame_h
        pct = 100.0 * node.count / total
        name = html.escape(node.name)
        out.append(f'<g><title>{name} ({node.count} samples, {pct:.2f}%)</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{max(w - 0.5, 0.1):.2f}" height="{frame_h - 1}" '
                   f'fill="{colour(node.name)}" rx="2"/>')
        chars = int((w - 6) / 6.5)
        if chars >= 3:
            label = node.name if len(node.name) <= chars else node.name[:chars - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + frame_h - 5}">{html.escape(label)}</text>')
        out.append("</g>")
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            emit(child, cx, level + 1)
            cx += child.count * scale

    emit(root, 10.0, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", nargs="?", help="perf script output (default: stdin)")
    ap.add_argument("--folded", action="store_true", help="input is already folded")
    ap.add_argument("--fold-out", help="also write the folded stacks here")
    ap.add_argument("--title", default="", help="title (default: Flame graph)")
    ap.add_argument("--width", type=int, default=1200)
    args = ap.parse_args()
    src = open(args.input, errors="replace") if args.input else sys.stdin
    folded = read_folded(src) if args.folded else fold(src)
    if not folded:
        print("flamegraph.py: no samples in the input (is it `perf script` output?)", file=sys.stderr)
        return 1
    if args.fold_out:
        with open(args.fold_out, "w") as f:
            for stack, n in sorted(folded.items()):
                f.write(f"{stack} {n}\n")
    sys.stdout.write(svg(build_tree(folded), args.title or "Flame graph", width=args.width))
    return 0


if __name__ == "__main__":
    sys.exit(main())
