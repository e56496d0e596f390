#!/usr/bin/env bash
# Smoke test of the compare tool: glibc only, two quick workloads; the result files must exist and
# name the workloads. (CI runs the full `tools/compare --quick` separately.)
# Usage: compare_smoke_test.sh COMPARE_PY A_BENCHMARK_BINARY
set -euo pipefail
compare_py="$PWD/$1"
bin_dir=$(cd "$(dirname "$2")" && pwd)
out="${TEST_TMPDIR:-$(mktemp -d)}/compare"
python3 "$compare_py" --quick --allocators glibc --workloads random_mixed,larson_t1 \
  --bin-dir "$bin_dir" --workspace "${TEST_TMPDIR:-/tmp}" --out "$out"
for file in results.md results.csv chart.svg; do
  if [ ! -s "$out/$file" ]; then
    echo "FAIL: $out/$file missing or empty"
    exit 1
  fi
done
grep -q '^| random_mixed ' "$out/results.md" || { echo "FAIL: random_mixed row missing"; exit 1; }
grep -q '^larson_t1,glibc,ok,' "$out/results.csv" || { echo "FAIL: larson_t1 row missing in CSV"; exit 1; }
grep -q '<svg' "$out/chart.svg" || { echo "FAIL: chart.svg is not SVG"; exit 1; }
echo "compare smoke test passed"
