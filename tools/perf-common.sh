# Sourced by tools/perf-record.sh, perf-stat.sh and perf-report.sh: finding perf,
# checking that this user may use it, and picking hardware or software events.
# Exit codes shared by the scripts: 2 usage, 3 perf missing, 4 perf not permitted.

PERF=${PERF:-perf}
perf_me=${0##*/}

# The script's header comment (after the #! line, up to the first line of code) as its
# usage, on stderr, and exit 2.
perf_usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

# Exits 2 unless $2 is a positive integer; $1 names the option.
perf_require_count() {
  case "$2" in
    '' | *[!0-9]* | 0) perf_die 2 "$1 takes a positive whole number, not '$2'" ;;
  esac
}

# Exits 2 unless the command $1 exists (a path or a name on PATH): perf would otherwise
# report a profile of nothing.
perf_require_command() {
  command -v -- "$1" >/dev/null 2>&1 || perf_die 2 "command not found: $1"
}

perf_die() { # code message...
  local code=$1
  shift
  printf '%s: %s\n' "$perf_me" "$*" >&2
  exit "$code"
}

# Exits 3 with a clear message when perf is not installed (or is Debian's wrapper
# without a perf for the running kernel).
perf_require_binary() {
  if ! command -v "$PERF" >/dev/null 2>&1; then
    perf_die 3 "perf not found in PATH. Install it (Debian/Ubuntu: apt-get install linux-perf;" \
      "Fedora: dnf install perf) or set PERF=/path/to/perf."
  fi
  local v
  if ! v=$("$PERF" version 2>&1); then
    perf_die 3 "perf is installed but does not run: ${v//$'\n'/ }"
  fi
}

# Exits 4 when the kernel refuses even a software event to this user.
perf_require_permission() {
  local err paranoid
  paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo unknown)
  if ! err=$("$PERF" stat -e task-clock -x, -- true 2>&1 >/dev/null); then
    if grep -qiE 'permission|paranoid|not permitted|EACCES|EPERM' <<<"$err"; then
      perf_die 4 "perf is not permitted for this user (kernel.perf_event_paranoid = $paranoid)." \
        "Profiling your own processes needs perf_event_paranoid <= 2 (call graphs of the kernel <= 1):" \
        "sudo sysctl kernel.perf_event_paranoid=1, or run as root / with CAP_PERFMON." \
        "In a container, the runtime must allow perf_event_open (e.g. docker --cap-add PERFMON" \
        "or a seccomp profile that permits it). perf said: $(head -c 300 <<<"$err" | tr '\n' ' ')"
    fi
    perf_die 4 "perf stat -e task-clock failed (perf_event_paranoid = $paranoid): $(head -c 300 <<<"$err" | tr '\n' ' ')"
  fi
}

perf_require() {
  perf_require_binary
  perf_require_permission
}

# Prints the events of the comma list $1 that this machine counts (not "<not supported>",
# not refused), comma-separated; empty if none. perf stat -x, prints one line per event.
perf_supported_events() {
  local out ok="" line ev
  out=$("$PERF" stat -x, -e "$1" -- true 2>&1 >/dev/null) || { echo ""; return 0; }
  while IFS= read -r line; do
    ev=$(cut -d, -f3 <<<"$line")
    [ -n "$ev" ] || continue
    case "$line" in
      "<not supported>"* | "<not counted>"*) ;;
      *) ok="${ok:+$ok,}$ev" ;;
    esac
  done <<<"$out"
  echo "$ok"
}

# The sampling event for perf record: hardware cycles where the CPU exposes them (bare
# metal), else the cpu-clock software timer (VMs without a virtual PMU).
perf_sampling_event() {
  if [ -n "$(perf_supported_events cycles)" ]; then echo cycles; else echo cpu-clock; fi
}
