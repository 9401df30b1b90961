#!/usr/bin/python3
"""Trains the same nets with deepnet and with PyTorch on the CPU and prints the throughput ratio.

Both sides: relu hidden layers, softmax + categorical cross-entropy (PyTorch's
CrossEntropyLoss on logits is the same math), Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8),
the same batch, a reshuffle every epoch, the first M examples of Fashion-MNIST (or
synthetic data), the same number of threads, each configuration in its own process.
deepnet runs through bench/train_throughput.c (dn_net_train); PyTorch through a
plain training loop. A round runs each library once, in its own process, one right
after the other (the order alternates from round to round, so a drift of the machine's
speed favours neither); its figures are each process's median epoch samples/s and their
ratio deepnet / PyTorch. With several rounds the line shows the median of each figure
and of the per-round ratios, and the lowest and highest ratio: PyTorch's own throughput
moves 15-20% between processes on a shared machine, and one pair of processes is not
enough to tell a ratio of 1.95 from 2.05.

usage: /usr/bin/python3 tools/pytorch_compare.py [--threads 1,2] [--batch 128] [--m 10000]
           [--epochs 3] [--rounds 3] [--nets "784,512,256,10;784,1024,1024,512,10"] [--synthetic]
           [--build build-bench | --driver PATH] [--json OUT.json] [--torch-flush-denormal]
           [--omp-wait-policy passive|active]

Run it with Debian's /usr/bin/python3 (python3-torch); a pyenv python on PATH lacks torch.
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"


def load_fashion(m):
    """First m training examples: X (m, 784) float32 in [0, 1], labels (m,) int64."""
    import torch
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[4 * i:4 * i + 4], "big") for i in (1, 2, 3))
    m = min(m, n)
    X = torch.frombuffer(bytearray(raw[16:16 + m * rows * cols]), dtype=torch.uint8)
    X = X.reshape(m, rows * cols).to(torch.float32) / 255.0
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"), "rb") as f:
        lab = f.read()
    y = torch.frombuffer(bytearray(lab[8:8 + m]), dtype=torch.uint8).to(torch.int64)
    return X, y


def torch_worker(args):
    """Runs in its own process: trains with PyTorch and prints one JSON line."""
    import torch
    torch.set_num_threads(args.threads)
    if args.torch_flush_denormal:
        torch.set_flush_denormal(True)
    dims = [int(x) for x in args.dims.split(",")]
    torch.manual_seed(1)
    if args.synthetic:
        X = torch.rand(args.m, dims[0])
        y = torch.arange(args.m) % dims[-1]
    else:
        X, y = load_fashion(args.m)
    layers = []
    for i in range(1, len(dims)):
        layers.append(torch.nn.Linear(dims[i - 1], dims[i]))
        if i + 1 < len(dims):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    m = X.shape[0]
    epoch_s = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(m)
        for i in range(0, m, args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
        epoch_s.append(time.perf_counter() - t0)
    print(json.dumps({"lib": "pytorch", "threads": torch.get_num_threads(), "batch": args.batch,
                      "m": m, "dims": dims, "epoch_s": epoch_s,
                      "samples_per_s_median": m / statistics.median(epoch_s),
                      "torch_version": torch.__version__, "final_loss": float(loss)}))


def run_json(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.strip()}")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON:\n{p.stdout}\n{p.stderr}")
    return json.loads(lines[-1])


def ensure_driver(build):
    exe = os.path.join(ROOT, build, "bench", "deepnet-train-bench")
    if not os.path.exists(os.path.join(ROOT, build, "build.ninja")):
        subprocess.run(["meson", "setup", os.path.join(ROOT, build), "--buildtype=release",
                        "-Dtests=false"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", os.path.join(ROOT, build), "bench/deepnet-train-bench"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--m", type=int, default=10000, help="training examples per epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3,
                    help="deepnet/PyTorch process pairs per configuration (median ratio shown)")
    ap.add_argument("--nets", default="784,512,256,10;784,1024,1024,512,10")
    ap.add_argument("--synthetic", action="store_true", help="random data instead of Fashion-MNIST")
    ap.add_argument("--build", default="build-bench", help="meson build dir (made if missing)")
    ap.add_argument("--driver", help="a deepnet-train-bench built elsewhere (another machine "
                    "without meson, say); nothing is built")
    ap.add_argument("--isa", default=None, help="cap deepnet's kernels (default: the best)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--torch-flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True) (deepnet flushes by default)")
    ap.add_argument("--omp-wait-policy", choices=("passive", "active"), default=None,
                    help="set OMP_WAIT_POLICY for both processes (default: leave it unset)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dims", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        torch_worker(args)
        return 0

    try:
        import torch
    except ImportError:
        print(f"pytorch_compare: no torch in {sys.executable}; run it with /usr/bin/python3 "
              "(Debian's python3-torch)", file=sys.stderr)
        return 2
    if not args.synthetic and not os.path.exists(os.path.join(FASHION, "train-images-idx3-ubyte.gz")):
        print(f"pytorch_compare: {FASHION} missing (dataset-fashion-mnist); using --synthetic",
              file=sys.stderr)
        args.synthetic = True
    exe = args.driver if args.driver else ensure_driver(args.build)
    if not os.access(exe, os.X_OK):
        sys.exit(f"pytorch_compare: {exe} is not an executable deepnet-train-bench")
    threads = [int(t) for t in args.threads.split(",")]
    if args.rounds < 1:
        sys.exit("pytorch_compare: --rounds must be at least 1")
    results = []
    print(f"{'net':<24} {'batch':>5} {'thr':>3} {'deepnet':>10} {'PyTorch':>10} {'ratio':>6}"
          + ("   lowest-highest of rounds" if args.rounds > 1 else ""))
    for dims in args.nets.split(";"):
        for t in threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
            if args.omp_wait_policy:
                env["OMP_WAIT_POLICY"] = args.omp_wait_policy
            common = ["--batch", str(args.batch), "--m", str(args.m), "--epochs", str(args.epochs)]
            dn_cmd = [exe, "--dims", dims, "--threads", str(t)] + common
            dn_cmd += ["--synthetic"] if args.synthetic else ["--data", FASHION]
            if args.isa:
                dn_cmd += ["--isa", args.isa]
            th_cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--dims", dims,
                      "--threads", str(t)] + common
            th_cmd += ["--synthetic"] if args.synthetic else []
            th_cmd += ["--torch-flush-denormal"] if args.torch_flush_denormal else []
            rounds = []
            for r in range(args.rounds):
                if r % 2 == 0:
                    dn = run_json(dn_cmd, env)
                    th = run_json(th_cmd, env)
                else:
                    th = run_json(th_cmd, env)
                    dn = run_json(dn_cmd, env)
                rounds.append({"deepnet": dn["samples_per_s_median"],
                               "pytorch": th["samples_per_s_median"],
                               "ratio": dn["samples_per_s_median"] / th["samples_per_s_median"],
                               "deepnet_isa": dn.get("isa"), "deepnet_epoch_s": dn["epoch_s"],
                               "pytorch_epoch_s": th["epoch_s"]})
            ratios = [x["ratio"] for x in rounds]
            row = {"dims": dims, "batch": args.batch, "threads": t,
                   "deepnet": statistics.median(x["deepnet"] for x in rounds),
                   "pytorch": statistics.median(x["pytorch"] for x in rounds),
                   "ratio": statistics.median(ratios), "ratio_min": min(ratios),
                   "ratio_max": max(ratios), "deepnet_isa": rounds[0]["deepnet_isa"],
                   "rounds": rounds}
            spread = f"   {row['ratio_min']:.2f}-{row['ratio_max']:.2f}x" if args.rounds > 1 else ""
            print(f"{dims:<24} {args.batch:>5} {t:>3} {row['deepnet']:>10.0f} "
                  f"{row['pytorch']:>10.0f} {row['ratio']:>5.2f}x{spread}", flush=True)
            results.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": "/usr/bin/python3 tools/pytorch_compare.py " + " ".join(sys.argv[1:]),
                       "torch_version": torch.__version__, "m": args.m, "epochs": args.epochs,
                       "rounds": args.rounds,
                       "data": "synthetic" if args.synthetic else "fashion-mnist",
                       "torch_flush_denormal": args.torch_flush_denormal,
                       "omp_wait_policy": args.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY"),
                       "load_average": open("/proc/loadavg").read().split()[:3],
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
