#!/usr/bin/env bash
# The preload library's thread-local storage stays within its budget. Every thread a program starts
# gets a copy, and the bytes sit next to glibc's thread descriptor at the top of the thread's stack:
# measured on 2026-12-07, 600 more bytes than 5,760 cost every new thread one more page fault and
# thread_churn 20 % of its speed (docs/compaction.md, "Thread-local storage"). A change that needs
# more TLS must measure thread creation and move this budget on purpose.
source "$(dirname "$0")/preload_lib.sh"
BUDGET=5760
command -v readelf > /dev/null || fail "readelf (binutils) not found"
SIZE_HEX=$(readelf -lW "$PRELOAD" | awk '$1 == "TLS" {print $6}')
[ -n "$SIZE_HEX" ] || fail "no TLS segment in $PRELOAD"
SIZE=$((SIZE_HEX))
echo "TLS of $(basename "$PRELOAD"): $SIZE bytes (budget $BUDGET)"
[ "$SIZE" -le "$BUDGET" ] || fail "TLS is $SIZE bytes, over the budget of $BUDGET"
echo "ok"
