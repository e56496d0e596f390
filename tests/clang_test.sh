#!/usr/bin/env bash
# clang++ under HAKMEM (driver and front end are one process: heavy new/delete) on the compare
# suite's generated template-heavy C++17 file at a small size: the object files of the glibc and
# the HAKMEM run must be byte-identical, and so must `nm -C` of them.
source "$(dirname "$0")/preload_lib.sh"
CLANGXX=$(command -v clang++ || command -v clang++-14) || fail "clang++ not found (tools/setup.sh installs clang)"
GEN=$WORK/templates.cc
/usr/bin/python3 "$PWD/benchmarks/programs/gen_templates_cpp.py" --units=4 >"$GEN"
echo "generated $(wc -l <"$GEN") lines of C++"

compile() {
  cp "$GEN" templates.cc
  "$CLANGXX" -std=c++17 -O1 -c templates.cc -o templates.o
  nm -C templates.o
}
compare_program compile
cmp "$WORK/glibc/templates.o" "$WORK/hakmem/templates.o" || fail "object files differ"
echo "ok: templates.o identical ($(wc -c <"$WORK/hakmem/templates.o") bytes)"
echo PASS
