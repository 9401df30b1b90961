#!/usr/bin/env bash
# Packs the bench suites, the thread-count tests and the shared libraries they load into
# one tarball that runs on another x86-64 Linux machine with nothing installed: no
# meson, no compiler, no OpenBLAS, oneDNN, hwloc or Google Benchmark packages (a cloud
# VM, a lab server, a machine without network). Unpack it there and run its run.sh:
#
#   tools/bench-bundle.sh [OUT.tar.xz]          default: deepnet-bench-bundle.tar.xz
#   # on the other machine:
#   mkdir b && tar -C b -xJf deepnet-bench-bundle.tar.xz && b/run.sh RESULTS_DIR
#   # back here:
#   /usr/bin/python3 tools/bench-report.py RESULTS_DIR > RESULTS_DIR/report.md
#
# run.sh (tools/bundle-run.sh) checks bitwise reproducibility at thread counts up to the
# machine's cores, then measures the FMA peak, dn_sgemm against OpenBLAS and oneDNN (each
# library in its own process) and the training step at 1, 2, 4, ... cores threads, and
# PyTorch when the other machine's python3 has torch. The libraries travel as this
# machine's (Debian 12) builds; the other machine needs glibc 2.36 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-deepnet-bench-bundle.tar.xz}
case "$out" in /*) ;; *) out="$root/$out" ;; esac
build=${BUNDLE_BUILD_DIR:-build-bundle}

die() { echo "bench-bundle: $*" >&2; exit 1; }
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dbench=enabled -Dtests=true >/dev/null ||
    die "meson setup failed: are libbenchmark-dev and libcriterion-dev installed? (tools/install-deps.sh)"
fi
ninja -C "$build" >/dev/null || die "build failed: ninja -C $build"

bins=(bench/bench-peak bench/bench-gemm bench/bench-gemm-vs bench/bench-train bench/bench-layer
      bench/deepnet-train-bench bench/deepnet-step-breakdown bench/deepnet-pool-latency bench/deepnet-gemm-trace
      bench/deepnet-kernel-pair bench/deepnet-ukr-speed tools/deepnet
      tests/test_threads tests/test_numa tests/test_train tests/test_gradcheck tests/test_gemm
      tests/test_activations tests/test_vecmath tests/test_optim tests/threads_stress)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for b in "${bins[@]}"; do
  [ -x "$build/$b" ] || die "$build/$b missing"
  cp "$build/$b" "$stage/bin/"
done
# Every shared library the programs load but glibc's own (those come with any Linux,
# and a copy of the loader or libc would not match the other machine's kernel setup).
for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
cp tools/bundle-run.sh "$stage/run.sh"
cp tools/pytorch_compare.py "$stage/"
git -C "$root" describe --always --dirty >"$stage/VERSION" 2>/dev/null || echo unknown >"$stage/VERSION"
tar -C "$stage" -cJf "$out" .
echo "bench-bundle: $out ($(du -h "$out" | cut -f1), $(ls "$stage/lib" | wc -l) libraries, deepnet $(cat "$stage/VERSION"))"
