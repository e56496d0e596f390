#!/usr/bin/env bash
# A C++ program (//tests:cxx_workload: containers, strings, shared_ptr, aligned new, sized delete,
# four threads) run with glibc and under LD_PRELOAD=libhakmem.so; identical output, exit 0.
source "$(dirname "$0")/preload_lib.sh"
[ ${#EXTRA_ARGS[@]} -eq 1 ] || fail "usage: cxx_test.sh --preload LIB PROGRAM"
PROGRAM=${EXTRA_ARGS[0]}
case "$PROGRAM" in /*) ;; *) PROGRAM=$PWD/$PROGRAM ;; esac
run_program() { "$PROGRAM"; }
compare_program run_program
cat "$WORK/hakmem.out"
echo PASS
