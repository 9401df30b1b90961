#!/usr/bin/env bash
# deepnet-ukr-speed refuses bad arguments with exit 2 (and --asm unless the AVX-512 kernels
# are active), and a short run prints its three levels, each with a speed and a share of
# the FMA loop.
# Usage: ukr_speed.sh DEEPNET_UKR_SPEED
set -uo pipefail
exe=$1 failed=0
for bad in "0" "5000" "16 0" "16 100" "16 1 x" "--asm 0" "--asm 16 1 x" "16 --asm"; do
  # shellcheck disable=SC2086
  err=$("$exe" $bad 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne 2 ] || [ -z "$err" ]; then echo "FAIL args '$bad': exit $rc, message '$err'"; failed=1; fi
done
out=$("$exe" 16 1 2>&1); rc=$?
rows=$(echo "$out" | grep -c -E '^\| (tile|panel|block) \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \|$')
if [ "$rc" -ne 0 ] || [ "$rows" -ne 3 ]; then echo "FAIL short run: exit $rc, $rows rows: $out"; failed=1; fi
# --asm times the AVX-512 tile's candidate loops: with other kernels active it refuses.
err=$(DEEPNET_ISA=scalar "$exe" --asm 16 1 2>&1 >/dev/null); rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "AVX-512" <<<"$err"; then
  echo "FAIL --asm on the scalar kernels: exit $rc, message '$err'"; failed=1
fi
if [ "$failed" -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
