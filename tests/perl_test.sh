#!/usr/bin/env bash
# perl under HAKMEM: a hash/string/regex heavy script of our own, run with glibc and with the
# preload; its output (digests of everything it built) must be identical.
source "$(dirname "$0")/preload_lib.sh"
command -v perl >/dev/null || fail "perl not found (tools/setup.sh installs it)"
SCRIPT=$PWD/tests/perl_workload.pl
run_perl() { perl "$SCRIPT"; }
compare_program run_perl
cat "$WORK/hakmem.out"
echo PASS
