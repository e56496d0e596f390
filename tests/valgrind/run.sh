#!/usr/bin/env bash
# Runs a small malloc program under valgrind memcheck in the two ways that exist
# (docs/reliability.md, "Valgrind"):
#   1. LD_PRELOAD=libhakmem.so (with or without --soname-synonyms=somalloc=libhakmem.so):
#      memcheck's own preload comes first, so ITS malloc serves the program and HAKMEM's code does
#      not run; memcheck checks the program (overflows, use after free, leaks).
#   2. //:hakmem_static with --soname-synonyms=somalloc=nouserintercepts: memcheck leaves the
#      executable's malloc alone, so HAKMEM's malloc runs and memcheck checks HAKMEM's own code
#      (invalid accesses, uninitialised reads); the program's heap bugs inside HAKMEM's slabs are
#      invisible to it.
# Way 1 must report 0 errors for the clean program and find the planted bug; way 2 must show
# HAKMEM ran (mmap calls > 0) with 0 errors, planted bug or not.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind: SKIPPED: valgrind is not installed"; exit 0; }
bazel build --color=no --curses=no //:hakmem_preload //tests/valgrind:all
bin=$(bazel info bazel-bin 2>/dev/null)
lib=$bin/libhakmem.so
program=$bin/tests/valgrind/valgrind_program
log=$(mktemp)
trap 'rm -f "$log" "$log.stderr"' EXIT
failed=0
errors() { grep -oE 'ERROR SUMMARY: [0-9]+' "$log" | grep -oE '[0-9]+$'; }
run() {  # run <label> <expected errors: 0 | nonzero> <valgrind args...> -- <program args>
  local label=$1 expect=$2
  shift 2
  HAKMEM_STATS=all valgrind --tool=memcheck --trace-children=yes --error-exitcode=0 --log-file="$log" "$@" >/dev/null 2>"$log.stderr"
  local n
  n=$(errors)
  echo "valgrind: $label: $n errors ($(grep -cE 'Invalid (read|write)' "$log") invalid accesses)"
  if { [ "$expect" = 0 ] && [ "$n" != 0 ]; } || { [ "$expect" = nonzero ] && [ "$n" = 0 ]; }; then
    echo "valgrind: $label: UNEXPECTED (wanted $expect errors); log:"; cat "$log"; failed=1
  fi
}
run "LD_PRELOAD, memcheck's malloc, clean program" 0 env LD_PRELOAD="$lib" "$program"
run "LD_PRELOAD, memcheck's malloc, planted bug" nonzero env LD_PRELOAD="$lib" "$program" bug
run "LD_PRELOAD + somalloc=libhakmem.so, planted bug" nonzero --soname-synonyms=somalloc=libhakmem.so env LD_PRELOAD="$lib" "$program" bug
for arg in clean bug; do
  run "hakmem_static + somalloc=nouserintercepts, HAKMEM's malloc, $arg" 0 --soname-synonyms=somalloc=nouserintercepts \
    "$program"_static $arg
  if ! grep -qE 'hakmem: os.mmap_calls [1-9]' "$log.stderr"; then echo "valgrind: HAKMEM's malloc did not run"; failed=1; fi
done
[ $failed = 0 ] && echo "valgrind: passed" || { echo "valgrind: FAILED"; exit 1; }
