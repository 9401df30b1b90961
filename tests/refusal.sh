# Sourced by the bench tools' shell tests. expect_refusal WHAT ARGS... runs "$exe" ARGS and
# marks the test failed (failed=1) unless it exits 2 with a message on stderr that matches
# the grep pattern $refusal_pattern (any non-empty message when unset).
expect_refusal() {
  local what=$1; shift
  local err rc
  err=$("$exe" "$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne 2 ] || [ -z "$err" ] || ! echo "$err" | grep -q -- "${refusal_pattern:-.}"; then
    echo "FAIL $what: exit $rc, message '$err'"; failed=1
  fi
}
