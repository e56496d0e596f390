#!/usr/bin/env bash
# Runs the program given as $1 and checks it reports HAKMEM's malloc.
set -euo pipefail
out=$("$1")
echo "$out"
grep -q "malloc is HAKMEM's" <<<"$out"
