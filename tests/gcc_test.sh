#!/usr/bin/env bash
# gcc -O2 under HAKMEM (the driver, cc1 and as are all preloaded) on a large generated C file:
# the object files of the glibc and the HAKMEM run must be byte-identical, and so must `nm`.
source "$(dirname "$0")/preload_lib.sh"
command -v gcc >/dev/null || fail "gcc not found"

GEN=$WORK/gen.c
# A deterministic translation unit: many functions with loops, switches, structs and inlining
# candidates, so the optimiser builds and frees a lot of IR.
awk 'BEGIN {
  print "#include <stddef.h>";
  print "struct pt { int x, y; double w; };";
  for (i = 0; i < 1200; i++) {
    printf "static int helper%d(int a, int b) { return (a * %d) ^ (b + %d); }\n", i, i + 3, i * 7;
    printf "int func%d(const int *v, size_t n, struct pt *p) {\n", i;
    printf "  int acc = %d;\n", i;
    printf "  for (size_t k = 0; k < n; k++) {\n";
    printf "    switch ((v[k] + %d) %% 5) {\n", i;
    for (c = 0; c < 5; c++)
      printf "      case %d: acc += helper%d(v[k], %d) - p[k %% 4].x; p[k %% 4].w += acc * 0.5; break;\n", c, (i + c) % (i + 1), c * i;
    printf "    }\n  }\n";
    printf "  if (acc > %d) acc = helper%d(acc, n);\n", i * 11, i;
    printf "  return acc + (int)p[0].w;\n}\n";
  }
  printf "int sum_all(const int *v, size_t n, struct pt *p) {\n  int s = 0;\n";
  for (i = 0; i < 1200; i++) printf "  s += func%d(v, n, p);\n", i;
  print "  return s;\n}";
}' >"$GEN"
echo "generated $(wc -l <"$GEN") lines of C"

compile() {
  cp "$GEN" gen.c
  gcc -O2 -c gen.c -o gen.o
  nm gen.o
}
compare_program compile
if ! cmp "$WORK/glibc/gen.o" "$WORK/hakmem/gen.o"; then
  fail "object files differ"
fi
echo "ok: gen.o identical ($(wc -c <"$WORK/hakmem/gen.o") bytes)"
echo PASS
