#!/usr/bin/env bash
# Compares two report folders of tools/bench-report.sh; flags regressions (> 5% by
# default). Exit 1 when a regression beyond the noise is found. Options: see
# tools/bench-compare.py (--threshold PCT, --suite NAME, --all).
#   tools/bench-compare.sh reports/OLD reports/NEW [--threshold 5]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: tools/bench-compare.sh OLD_REPORT NEW_REPORT [--threshold PCT] [--suite S] [--all]" >&2; exit 2; }
exec /usr/bin/python3 "$(dirname "$0")/bench-compare.py" "$@"
