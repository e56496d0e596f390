#!/usr/bin/env bash
# gawk under HAKMEM: the compare suite's awk program (benchmarks/programs/awk_workload.awk:
# associative arrays keyed by built strings, growing strings, gsub) over its generated log at a
# small size, run with glibc and with the preload; the reports must be identical.
source "$(dirname "$0")/preload_lib.sh"
command -v gawk >/dev/null || fail "gawk not found (tools/setup.sh installs it)"
PROGRAMS=$PWD/benchmarks/programs
LOG=$WORK/access.log
/usr/bin/python3 "$PROGRAMS/gen_log.py" --lines=30000 >"$LOG"
run_awk() { gawk -f "$PROGRAMS/awk_workload.awk" "$LOG"; }
compare_program run_awk
tail -n 3 "$WORK/hakmem.out"
echo PASS
