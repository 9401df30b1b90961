#!/usr/bin/env bash
# Reads a profile made by tools/perf-record.sh: the top functions (self time), the
# callers of the hottest ones, a per-instruction annotation of the hottest deepnet
# kernel, and a flame graph (flame.svg, tools/flamegraph.py). Writes them next to
# perf.data and prints the top of each.
#
#   tools/perf-report.sh [DIR | DIR/perf.data] [--top N] [--symbol SYM]
#
#   DIR        folder of tools/perf-record.sh (default: the newest reports/perf-*)
#   --top N    lines of the top-functions table to print (default 25)
#   --symbol   annotate SYM instead of the hottest kernel
# Writes DIR/top.txt, DIR/callers.txt, DIR/annotate.txt, DIR/folded.txt, DIR/flame.svg.
# Exit codes: 2 usage or no profile, 3 perf missing, 4 perf not permitted.
set -euo pipefail
here=$(cd "${0%/*}" && pwd)
. "$here/perf-common.sh"

dir="" top=25 symbol=""
usage() { perf_usage; }
while [ $# -gt 0 ]; do
  case "$1" in
    --top) [ $# -ge 2 ] || usage; top=$2; shift 2
      case "$top" in '' | *[!0-9]* | 0) perf_die 2 "--top takes a positive number of lines, not '$top'" ;; esac ;;
    --symbol) [ $# -ge 2 ] || usage; symbol=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) dir=$1; shift ;;
  esac
done
if [ -z "$dir" ]; then
  dir=$(ls -dt reports/perf-* 2>/dev/null | head -1 || true)
  [ -n "$dir" ] || perf_die 2 "no profile folder given and none under reports/perf-*; run tools/perf-record.sh first"
fi
data=$dir
if [ -d "$dir" ]; then data=$dir/perf.data; else dir=$(dirname "$dir"); fi
[ -f "$data" ] || perf_die 2 "$data not found; run tools/perf-record.sh first"
perf_require_binary

# Top functions by self time (leaf samples), one line per symbol.
"$PERF" report -i "$data" --stdio --no-children --sort symbol,dso --percent-limit 0.3 \
  -g none 2>/dev/null >"$dir/top.txt"
echo "== top functions (self), $dir/top.txt"
# One reader of the file: a grep | grep | head pipeline under pipefail died of SIGPIPE
# (exit 141) when the listing passed the 4 KiB stdio buffer and head had its lines before
# the second write (CI, the ASan stage, twice in a row).
awk -v top="$top" '!/^#/ && NF { print; if (++n >= top) exit }' "$dir/top.txt"

# Who calls the hottest functions: each one's call chains up to main (self time).
"$PERF" report -i "$data" --stdio --no-children --sort symbol --percent-limit 2 \
  -g callee,0.5 2>/dev/null >"$dir/callers.txt" || true
echo
echo "== callers of the functions above 2% (self): $dir/callers.txt ($(wc -l <"$dir/callers.txt") lines)"

# The hottest deepnet kernel: a dn_* symbol of a kernel (ISA-suffixed or the GEMM
# micro-kernel); failing that, the hottest dn_* symbol, then the hottest of all. perf
# annotate prints nothing for a symbol it cannot disassemble (a stripped or JIT-ed
# object, an address without a symbol), so the next candidates are tried in turn.
pick() { grep -v '^#' "$dir/top.txt" | grep -oE '\[\.\] [^ ]+' | sed 's/^\[\.\] //' | grep -E "$1" | head -"${2:-1}" || true; }
annotated() { grep -qE '^ +[0-9]+\.[0-9]+ +:' "$dir/annotate.txt"; }
if [ -n "$symbol" ]; then
  candidates=$symbol
else
  candidates=$( (pick '^dn_.*_(avx512|avx2|neon|scalar)'; pick '^dn_'; pick '.' 5) | awk '!seen[$0]++')
fi
: >"$dir/annotate.txt"
for candidate in $candidates; do
  symbol=$candidate
  "$PERF" annotate -i "$data" --stdio -s "$symbol" 2>/dev/null >"$dir/annotate.txt" || true
  annotated && break
done
if [ -n "$symbol" ] && annotated; then
  echo
  echo "== hottest instructions of $symbol ($dir/annotate.txt)"
  # perf annotate lines: " percent :  address: instruction"; show the 20 hottest.
  grep -E '^ +[0-9]+\.[0-9]+ +:' "$dir/annotate.txt" | sort -t: -k1,1 -rn | head -20 || true
else
  echo "perf annotate printed nothing for: ${candidates:-no user-space symbol} (stripped or" \
    "unknown code; pass --symbol SYM for another)" | tee "$dir/annotate.txt"
fi

# Flame graph.
"$PERF" script -i "$data" 2>/dev/null | /usr/bin/python3 "$here/flamegraph.py" \
  --fold-out "$dir/folded.txt" --title "$(sed -n 's/^command: //p' "$dir/command.txt" 2>/dev/null | head -c 120)" \
  >"$dir/flame.svg"
echo
echo "== flame graph: $dir/flame.svg ($(wc -l <"$dir/folded.txt") distinct stacks)"
