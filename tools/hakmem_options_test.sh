#!/usr/bin/env bash
# //tools:hakmem_options prints every option of allocator/base/config_table.h, each with its
# default as written in the table.
set -euo pipefail
BIN=$1 TABLE=$2
out=$("$BIN")
echo "$out"
names=$(grep -oE 'X\([A-Z0-9_]+, "HAKMEM_[A-Z0-9_]+", [A-Z]+, "[^"]*"' "$TABLE" |
  sed -E 's/^X\([A-Z0-9_]+, "([^"]+)", [A-Z]+, "([^"]*)"$/\1 \2/')
[ -n "$names" ] || { echo "FAIL: no options found in $TABLE" >&2; exit 1; }
count=0
while read -r name default; do
  if ! grep -qE "^$name +(int|string) +$default " <<<"$out"; then
    echo "FAIL: $name (default $default) missing from hakmem_options output" >&2
    exit 1
  fi
  count=$((count + 1))
done <<<"$names"
rows=$(($(wc -l <<<"$out") - 1))
[ "$rows" -eq "$count" ] || { echo "FAIL: $rows rows printed, $count options in the table" >&2; exit 1; }
echo "PASS: all $count options printed"
