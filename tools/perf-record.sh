#!/usr/bin/env bash
# Records a call-graph profile of any command (the deepnet CLI, a bench suite, your
# program) into a folder, for tools/perf-report.sh. Samples hardware cycles where the
# CPU exposes them, else the cpu-clock timer (VMs): detected, not assumed.
#
#   tools/perf-record.sh [-o DIR] [-F HZ] [--dwarf] [--] CMD [ARGS...]
#
#   -o DIR    output folder (default reports/perf-<date>); gets perf.data, command.txt
#   -F HZ     sampling frequency (default 999)
#   --dwarf   unwind with DWARF (--call-graph dwarf) instead of frame pointers: works
#             without -fno-omit-frame-pointer, at a much bigger perf.data
#
# Call graphs need frame pointers and symbols: profile a build made with
#   meson setup build-prof --buildtype=release -Dc_args='-fno-omit-frame-pointer -g' \
#     -Dcpp_args='-fno-omit-frame-pointer -g'
# (tools/perf-record.sh --build-prof configures and builds that tree, then exits).
# Exit codes: 2 usage, 3 perf missing, 4 perf not permitted, else the command's.
set -euo pipefail
here=$(cd "${0%/*}" && pwd)
. "$here/perf-common.sh"

out="" freq=999 callgraph=fp
usage() { perf_usage; }
while [ $# -gt 0 ]; do
  case "$1" in
    -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    -F) [ $# -ge 2 ] || usage; freq=$2; shift 2; perf_require_count -F "$freq" ;;
    --dwarf) callgraph=dwarf; shift ;;
    --build-prof)
      cd "$here/.."
      [ -f build-prof/build.ninja ] || meson setup build-prof --buildtype=release \
        -Dc_args='-fno-omit-frame-pointer -g' -Dcpp_args='-fno-omit-frame-pointer -g' -Dtests=false
      exec ninja -C build-prof ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
perf_require_command "$1"
perf_require

out=${out:-reports/perf-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
event=$(perf_sampling_event)
{
  printf 'command:'; printf ' %q' "$@"; echo
  echo "event: $event (call graph: $callgraph, $freq Hz)"
  echo "date: $(date -Is)"
} >"$out/command.txt"
[ "$event" = cycles ] || echo "$perf_me: no hardware cycle counter here; sampling the cpu-clock timer" >&2

rc=0
"$PERF" record -e "$event" -F "$freq" --call-graph "$callgraph" -o "$out/perf.data" -- "$@" || rc=$?
if [ -s "$out/perf.data" ]; then
  echo "$perf_me: profile in $out/perf.data (command exit $rc); next: tools/perf-report.sh $out" >&2
else
  echo "$perf_me: perf record wrote no profile (exit $rc); see its messages above" >&2
fi
exit "$rc"
