#!/usr/bin/env bash
# jq under HAKMEM: the compare suite's jq program (benchmarks/programs/jq_workload.jq: group_by,
# sort_by, split, tojson over many small objects) on generated JSON at a small size; the glibc and
# the HAKMEM run must print the same summary.
source "$(dirname "$0")/preload_lib.sh"
command -v jq >/dev/null || fail "jq not found (tools/setup.sh installs it)"
PROGRAMS=$PWD/benchmarks/programs
DATA=$WORK/orders.json
/usr/bin/python3 "$PROGRAMS/gen_json.py" --orders=4000 >"$DATA"
run_jq() { jq -c -f "$PROGRAMS/jq_workload.jq" "$DATA"; }
compare_program run_jq
head -c 300 "$WORK/hakmem.out"; echo
echo PASS
