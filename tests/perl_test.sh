#!/usr/bin/env bash
# perl under HAKMEM: a hash/string/regex heavy script of our own, then the compare suite's perl
# row (benchmarks/programs/perl_workload.pl over its generated log, at a small size), each run
# with glibc and with the preload; their outputs (digests of everything they built) must be
# identical.
source "$(dirname "$0")/preload_lib.sh"
command -v perl >/dev/null || fail "perl not found (tools/setup.sh installs it)"
SCRIPT=$PWD/tests/perl_workload.pl
run_perl() { perl "$SCRIPT"; }
compare_program run_perl
cat "$WORK/hakmem.out"

echo "== the compare suite's perl row, small"
PROGRAMS=$PWD/benchmarks/programs
LOG=$WORK/access.log
/usr/bin/python3 "$PROGRAMS/gen_log.py" --lines=30000 >"$LOG"
run_log_report() { perl "$PROGRAMS/perl_workload.pl" "$LOG"; }
compare_program run_log_report
tail -n 1 "$WORK/hakmem.out"
echo PASS
