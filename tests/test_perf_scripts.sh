#!/usr/bin/env bash
# The perf scripts (tools/perf-*.sh, tools/flamegraph.py) as a specification:
# without perf they stop with exit 3 and say how to install it; when the kernel refuses
# perf they stop with exit 4 and name perf_event_paranoid and the fix; a bad command
# line is exit 2; the flame graph folds perf script output into the right stacks; and,
# where perf works on this machine, a real stat, record and report succeed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=$root/tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset PERF
failures=0

check() { # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then
    echo "ok   - $what"
  else
    echo "FAIL - $what"
    failures=$((failures + 1))
  fi
}

# run SCRIPT ARGS... with PATH=$path: sets rc, out (stdout), err (stderr)
run() {
  local path=$1
  shift
  PATH=$path "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
}

# ---- a PATH with everything but perf ------------------------------------------
noperf=$tmp/noperf-bin
mkdir -p "$noperf"
for d in /usr/local/bin /usr/bin /bin; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    b=$(basename "$f")
    case "$b" in perf | perf_* | perf-*) continue ;; esac
    [ -e "$noperf/$b" ] || ln -s "$f" "$noperf/$b"
  done
done

for script in perf-record.sh perf-stat.sh; do
  run "$noperf" "$tools/$script" -- true
  check "$script without perf exits 3" test "$rc" -eq 3
  check "$script without perf says perf is not found and how to install it" \
    grep -q "perf not found in PATH.*apt-get install linux-perf" <<<"$err"
done
mkdir -p "$tmp/prof" && : >"$tmp/prof/perf.data"
run "$noperf" "$tools/perf-report.sh" "$tmp/prof"
check "perf-report.sh without perf exits 3" test "$rc" -eq 3

# ---- a perf that the kernel refuses (what perf prints at a high perf_event_paranoid)
denied=$tmp/denied-bin
mkdir -p "$denied"
cat >"$denied/perf" <<'EOF'
#!/bin/sh
case "$1" in
  version) echo "perf version 6.1.0 (test double)"; exit 0 ;;
esac
cat >&2 <<'MSG'
Error:
No permission to enable task-clock event.

You may not have permission to collect stats.

Consider tweaking /proc/sys/kernel/perf_event_paranoid,
which controls use of the performance events system by
unprivileged users (without CAP_PERFMON or CAP_SYS_ADMIN).
MSG
exit 255
EOF
chmod +x "$denied/perf"
for script in perf-record.sh perf-stat.sh; do
  run "$denied:$noperf" "$tools/$script" -- true
  check "$script with perf refused exits 4" test "$rc" -eq 4
  check "$script with perf refused names perf_event_paranoid and the sysctl fix" \
    grep -q "not permitted.*perf_event_paranoid.*sysctl kernel.perf_event_paranoid=1" <<<"$err"
done

# ---- usage errors ---------------------------------------------------------------
run "$PATH" "$tools/perf-record.sh"
check "perf-record.sh without a command exits 2 with its usage" \
  bash -c "test $rc -eq 2 && grep -q 'usage\|perf-record.sh' <<<\"\$0\"" "$err"
run "$PATH" "$tools/perf-stat.sh" --bogus
check "perf-stat.sh with an unknown flag exits 2" test "$rc" -eq 2
run "$PATH" "$tools/perf-report.sh" "$tmp/no-such-dir"
check "perf-report.sh on a missing profile exits 2 and says so" \
  bash -c "test $rc -eq 2 && grep -q 'not found' <<<\"\$0\"" "$err"
# The usage is the header comment, not lines of the script's code (session 21 review).
for script in perf-record.sh perf-stat.sh perf-report.sh; do
  run "$PATH" "$tools/$script" --help
  check "$script --help exits 2 with the header comment and no code" \
    bash -c "test $rc -eq 2 && grep -q 'Exit codes' <<<\"\$0\" && ! grep -q 'set -euo\|here=' <<<\"\$0\"" "$err"
done
# Numbers and the command are checked before perf runs: these used to exit 129 or 234,
# or print "profile in ..." for a command that does not exist.
run "$PATH" "$tools/perf-stat.sh" -r abc -- true
check "perf-stat.sh -r abc exits 2 naming -r" bash -c "test $rc -eq 2 && grep -q -- '-r takes a positive' <<<\"\$0\"" "$err"
run "$PATH" "$tools/perf-record.sh" -F 0 -- true
check "perf-record.sh -F 0 exits 2 naming -F" bash -c "test $rc -eq 2 && grep -q -- '-F takes a positive' <<<\"\$0\"" "$err"
run "$PATH" "$tools/perf-record.sh" -o "$tmp/none" -- no-such-command-here
check "perf-record.sh of a missing command exits 2 and records nothing" \
  bash -c "test $rc -eq 2 && grep -q 'command not found: no-such-command-here' <<<\"\$0\" && test ! -e '$tmp/none'" "$err"

# ---- flame graph folding ----------------------------------------------------------
cat >"$tmp/script.txt" <<'EOF'
deepnet 1234 [000] 100.000001:    1001001 cpu-clock:
	    55550000001a dn_sgemm_ukr_avx512_32x12+0x1a (/x/deepnet)
	    555500000200 dn_gemm_run+0x20 (/x/deepnet)
	    555500000300 main+0x30 (/x/deepnet)

deepnet 1234 [000] 100.001002:    1001001 cpu-clock:
	    55550000001b dn_sgemm_ukr_avx512_32x12+0x1b (/x/deepnet)
	    555500000200 dn_gemm_run+0x20 (/x/deepnet)
	    555500000300 main+0x30 (/x/deepnet)

deepnet 1234 [001] 100.002003:    1001001 cpu-clock:
	    7f0000000001 [unknown] (/usr/lib/x86_64-linux-gnu/libz.so.1)
	    555500000300 main+0x30 (/x/deepnet)

EOF
/usr/bin/python3 "$tools/flamegraph.py" --fold-out "$tmp/folded.txt" --title t "$tmp/script.txt" \
  >"$tmp/flame.svg" 2>"$tmp/err"
check "flamegraph.py folds samples by stack, root first, offsets dropped" \
  grep -qx "deepnet;main;dn_gemm_run;dn_sgemm_ukr_avx512_32x12 2" "$tmp/folded.txt"
check "flamegraph.py names an unknown frame after its object file" \
  grep -qx "deepnet;main;\[libz.so.1\] 1" "$tmp/folded.txt"
check "flamegraph.py writes well-formed SVG with a box per frame" \
  /usr/bin/python3 -c "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); \
sys.exit(0 if len(d.getElementsByTagName('rect')) == 7 else 1)" "$tmp/flame.svg"
: >"$tmp/empty.txt"
/usr/bin/python3 "$tools/flamegraph.py" "$tmp/empty.txt" >/dev/null 2>"$tmp/err"
rc=$?
check "flamegraph.py on no samples fails with a message" \
  bash -c "test $rc -eq 1 && grep -q 'no samples' \"\$0\"" "$tmp/err"

# ---- real perf, where this machine allows it -------------------------------------
if command -v perf >/dev/null && perf stat -e task-clock -- true >/dev/null 2>&1; then
  run "$PATH" "$tools/perf-stat.sh" -- true
  check "perf-stat.sh runs and reports task-clock (software events at least)" \
    bash -c "test $rc -eq 0 && grep -q 'task-clock' <<<\"\$0\"" "$err"
  record_and_report() { # sets record_rc and rc (perf-report's)
    rm -rf "$tmp/real"
    run "$PATH" "$tools/perf-record.sh" -o "$tmp/real" -F 499 -- \
      /usr/bin/python3 -c "s = 0
for i in range(3000000): s += i * i"
    record_rc=$rc
    run "$PATH" "$tools/perf-report.sh" "$tmp/real" --top 5
  }
  report_ok() {
    test "$rc" -eq 0 -a -s "$tmp/real/top.txt" -a -s "$tmp/real/annotate.txt" -a -s "$tmp/real/flame.svg"
  }
  record_and_report
  if ! report_ok; then
    # This failed once in a while under CI (the arm64 stage twice, the ASan stage twice in a
    # row in session 17, rc 141): perf-report.sh's grep | grep | head under pipefail died of
    # SIGPIPE when the listing passed 4 KiB (fixed: one awk reads the file). Should perf
    # itself fail, say what happened, then try once more.
    echo "note - perf-report.sh failed (rc $rc, perf-record.sh rc $record_rc); its stderr:"
    sed 's/^/       /' "$tmp/err" | head -20
    ls -la "$tmp/real" 2>&1 | sed 's/^/       /'
    echo "note - recording and reporting again"
    record_and_report
  fi
  check "perf-record.sh records a profile" test "$record_rc" -eq 0 -a -s "$tmp/real/perf.data"
  check "perf-report.sh writes top functions, annotation and a flame graph" report_ok
else
  echo "skip - real perf runs: perf missing or not permitted here"
fi

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
