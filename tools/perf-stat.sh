#!/usr/bin/env bash
# perf stat of any command with the events this machine has: hardware ones (cycles,
# instructions, cache and branch misses) where the CPU exposes them, and always the
# software ones (task-clock, context switches, CPU migrations, page faults).
#
#   tools/perf-stat.sh [-r N] [-o FILE] [--] CMD [ARGS...]
#
#   -r N      run N times, print means and variation (perf stat -r)
#   -o FILE   also write perf's output to FILE
# Exit codes: 2 usage, 3 perf missing, 4 perf not permitted, else the command's.
set -euo pipefail
here=$(cd "${0%/*}" && pwd)
. "$here/perf-common.sh"

repeat=1 outfile=""
usage() { perf_usage; }
while [ $# -gt 0 ]; do
  case "$1" in
    -r) [ $# -ge 2 ] || usage; repeat=$2; shift 2; perf_require_count -r "$repeat" ;;
    -o) [ $# -ge 2 ] || usage; outfile=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
perf_require_command "$1"
perf_require

software=task-clock,context-switches,cpu-migrations,page-faults
hardware=$(perf_supported_events cycles,instructions,cache-references,cache-misses,branches,branch-misses)
if [ -n "$hardware" ]; then
  events="$hardware,$software"
  echo "$perf_me: hardware events: $hardware" >&2
else
  events=$software
  echo "$perf_me: no hardware counters on this machine (a VM without a virtual PMU?);" \
    "software events only: $software" >&2
fi
args=(stat -e "$events" -r "$repeat")
[ -n "$outfile" ] && args+=(-o "$outfile")
rc=0
"$PERF" "${args[@]}" -- "$@" || rc=$?
[ -n "$outfile" ] && cat "$outfile" >&2
exit "$rc"
