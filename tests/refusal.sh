# Sourced by the bench tools' shell tests. expect_refusal WHAT ARGS... runs "$exe" ARGS and
# marks the test failed (failed=1) unless it exits 2 with a message on stderr that matches
# the grep pattern $refusal_pattern (any non-empty message when unset).
expect_refusal() {
  local what=$1; shift
  local err rc
  err=$("$exe" "$@" 2>&1 >/dev/null); rc=$?
  # A here-string, not `echo | grep -q`: under pipefail, grep -q quitting at its first
  # match could kill echo with SIGPIPE and fail the pipeline (a flaky FAIL, session 21).
  if [ "$rc" -ne 2 ] || [ -z "$err" ] || ! grep -q -- "${refusal_pattern:-.}" <<<"$err"; then
    echo "FAIL $what: exit $rc, message '$err'"; failed=1
  fi
}
