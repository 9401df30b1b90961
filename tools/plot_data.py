"""Loads a bench report folder (tools/bench-report.sh) for the report, plot and compare scripts.

Every suite's JSON (Google Benchmark --benchmark_out) becomes rows keyed by the
benchmark name suite/op/shape/lib/isa/threads:N, holding the median of the
repetitions of each counter (GFLOPS, pct_peak, GBps, samples_per_s, ...), the
median real time in seconds and, where repetitions ran, the coefficient of variation.
"""
import glob
import json
import os
import statistics

SUITES = ("peak", "gemm", "act", "layer", "train")
METRICS = ("GFLOPS", "GBps", "samples_per_s", "Gelem_per_s")  # higher is better
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class Row(dict):
    """One benchmark: name parts (suite, op, shape, lib, isa, threads) and its numbers."""

    @property
    def key(self):
        return self["name"]

    def metric(self):
        """(counter name, value) of the figure to compare, higher is better."""
        for m in METRICS:
            if m in self:
                return m, self[m]
        return "1/time", 1.0 / self["time_s"] if self.get("time_s") else 0.0


def _parse_name(run_name):
    parts = [p for p in run_name.split("/") if p not in ("real_time", "manual_time")]
    if len(parts) < 6 or not parts[5].startswith("threads:"):
        return None
    return {"suite": parts[0], "op": parts[1], "shape": parts[2], "lib": parts[3],
            "isa": parts[4], "threads": int(parts[5].split(":", 1)[1])}


def _numbers(entry, real):
    out = {}
    for k, v in entry.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in (
                "family_index", "per_family_instance_index", "repetitions", "repetition_index",
                "threads", "iterations", "real_time", "cpu_time"):
            out[k] = float(v)
    unit = _UNIT_S.get(entry.get("time_unit", "ns"), 1e-9)
    # The clock the benchmark's rates used: wall time with UseRealTime (name ends in
    # /real_time), else the thread's CPU time (one-thread runs, see bench/bench_common.h).
    key = "real_time" if real else "cpu_time"
    if key in entry:
        out["time_s"] = float(entry[key]) * unit
    return out


def load_json(path):
    """(context, rows, errors) of one Google Benchmark JSON file."""
    with open(path) as f:
        data = json.load(f)
    context = data.get("context", {})
    groups, aggregates, errors = {}, {}, []
    for b in data.get("benchmarks", []):
        run_name = b.get("run_name", b.get("name", ""))
        if b.get("error_occurred"):
            errors.append((run_name, b.get("error_message", "")))
            continue
        if b.get("run_type") == "aggregate":
            nums = _numbers(b, "/real_time" in run_name)
            if b.get("aggregate_name") == "cv" and "time_s" in nums:
                # A cv aggregate's times are already fractions (aggregate_unit
                # "percentage"), not durations in time_unit: undo the unit scaling.
                nums["time_s"] /= _UNIT_S.get(b.get("time_unit", "ns"), 1e-9)
            aggregates.setdefault(run_name, {})[b.get("aggregate_name")] = nums
        else:
            groups.setdefault(run_name, []).append(_numbers(b, "/real_time" in run_name))
    rows = []
    for run_name in list(aggregates) + [n for n in groups if n not in aggregates]:
        parts = _parse_name(run_name)
        if parts is None:
            continue
        if run_name in aggregates and "median" in aggregates[run_name]:
            nums = dict(aggregates[run_name]["median"])
            cv = aggregates[run_name].get("cv", {})
            nums["cv"] = cv.get("time_s")
            nums["reps"] = len(groups.get(run_name, [])) or None
        else:
            runs = groups[run_name]
            nums = {k: statistics.median(r[k] for r in runs if k in r)
                    for k in set().union(*runs)}
            times = [r["time_s"] for r in runs if "time_s" in r]
            nums["cv"] = (statistics.stdev(times) / statistics.mean(times)
                          if len(times) > 1 else None)
            nums["reps"] = len(runs)
        row = Row(parts)
        row.update(nums)
        row["name"] = "/".join([parts["suite"], parts["op"], parts["shape"], parts["lib"],
                                parts["isa"], "threads:%d" % parts["threads"]])
        rows.append(row)
    return context, rows, errors


def merge_rounds(found):
    """One Row from the same benchmark measured in several processes (rounds): the median
    of each figure over the rounds; cv becomes the larger of the rounds' own cv and the
    spread of their times (what a ratio between two libraries has to beat)."""
    row = Row({k: found[0][k] for k in ("suite", "op", "shape", "lib", "isa", "threads", "name")})
    numeric = set().union(*(set(k for k, v in r.items() if isinstance(v, float)) for r in found))
    for k in numeric - {"cv", "reps"}:
        values = [r[k] for r in found if isinstance(r.get(k), float)]
        if values:
            row[k] = statistics.median(values)
    times = [r["time_s"] for r in found if r.get("time_s")]
    spread = statistics.stdev(times) / statistics.mean(times) if len(times) > 1 else None
    cvs = [r["cv"] for r in found if r.get("cv") is not None] + ([spread] if spread is not None else [])
    row["cv"] = max(cvs) if cvs else None
    row["reps"] = sum(r.get("reps") or 1 for r in found)
    row["rounds"] = len(found)
    return row


def load_folder(folder):
    """{'context': merged contexts, 'rows': {name: Row}, 'errors': [...], 'suites': [...],
    'pytorch': parsed pytorch.json or None, 'system': system.txt lines}."""
    context, rows, errors, suites = {}, {}, [], []
    runs = {}  # benchmark name -> its Row from every file that has it
    for s in SUITES:
        # A suite is one file, or several run apart (tools/bundle-run.sh runs each library
        # of the gemm suite in its own process: gemm-deepnet.json, gemm-openblas.json, ...;
        # BENCH_GEMM_ROUNDS=N runs them N times: gemm-deepnet-r1.json, ...).
        paths = [p for p in [os.path.join(folder, s + ".json")] if os.path.exists(p)]
        paths += sorted(glob.glob(os.path.join(folder, s + "-*.json")))
        for p in paths:
            c, r, e = load_json(p)
            for k, v in c.items():
                context.setdefault(k, v)
            for row in r:
                runs.setdefault(row.key, []).append(row)
            errors += e
        if paths:
            suites.append(s)
    for key, found in runs.items():
        rows[key] = found[0] if len(found) == 1 else merge_rounds(found)
    pytorch = None
    p = os.path.join(folder, "pytorch.json")
    if os.path.exists(p):
        with open(p) as f:
            pytorch = json.load(f)
    system = []
    p = os.path.join(folder, "system.txt")
    if os.path.exists(p):
        with open(p) as f:
            system = [line.rstrip("\n") for line in f]
    return {"context": context, "rows": rows, "errors": errors, "suites": suites,
            "pytorch": pytorch, "system": system}


def select(rows, **want):
    """Rows whose fields equal every given value (a tuple/list/set value: any of them)."""
    out = []
    for r in rows.values():
        ok = True
        for k, v in want.items():
            if isinstance(v, (tuple, list, set)):
                ok = r.get(k) in v
            else:
                ok = r.get(k) == v
            if not ok:
                break
        if ok:
            out.append(r)
    return out


ISA_ORDER = ("scalar", "neon", "avx2", "avx512", "amx")


def isa_rank(isa):
    return ISA_ORDER.index(isa) if isa in ISA_ORDER else -1


def best_isa(rows, suite="gemm"):
    isas = {r["isa"] for r in rows.values() if r["suite"] == suite and r["lib"] == "deepnet"}
    return max(isas, key=isa_rank) if isas else None


def shape_sort_key(shape):
    """784-512_m128 < 784-512_m256 < ... < sq256 < sq1024; numbers compared as numbers."""
    import re
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", shape)]
