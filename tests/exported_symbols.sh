#!/usr/bin/env bash
# The shared library exports exactly the functions declared in include/deepnet.h.
# Usage: exported_symbols.sh LIBDEEPNET_SO DEEPNET_H
set -euo pipefail
lib=$1 header=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort)
declared=$(grep -oE '^DN_API [^(]*\b(dn_[a-z0-9_]+)\(' "$header" | grep -oE 'dn_[a-z0-9_]+\($' | tr -d '(' | sort)
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[ -z "$extra" ] || { echo "exported but not in deepnet.h:"; echo "$extra"; }
[ -z "$missing" ] || { echo "declared in deepnet.h but not exported:"; echo "$missing"; }
# Loaded as a plugin and unloaded, the library must stay mapped (its detached pool workers
# and a thread-exit destructor point into it): linked with -z nodelete.
nodelete=
dynamic=$(readelf -d "$lib") # not piped into grep -q: under pipefail readelf could die of SIGPIPE
grep -q 'Flags:.*NODELETE' <<<"$dynamic" || nodelete="not linked with -z nodelete (dlclose would unmap a live thread pool)"
[ -z "$nodelete" ] || echo "$nodelete"
n=$(echo "$declared" | wc -l)
if [ -z "$extra$missing$nodelete" ]; then echo "1 passed, 0 failed ($n public functions, NODELETE)"; else echo "0 passed, 1 failed"; exit 1; fi
