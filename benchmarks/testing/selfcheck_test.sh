#!/usr/bin/env bash
# Proves the benchmarks' self-checks fail loudly: under LD_PRELOAD of broken_malloc.so (which flips a
# byte in live blocks) each benchmark must exit with status 3 and print check=FAILED, and compare must
# show FAILED in the cell and exit non-zero; without the shim each must print check=ok.
# Usage: selfcheck_test.sh [--skip-preload=REASON] BROKEN_SO COMPARE_PY BENCHMARK...
set -uo pipefail

skip_preload=""
if [[ "${1:-}" == --skip-preload=* ]]; then
  skip_preload="${1#--skip-preload=}"
  shift
fi
broken_so="$PWD/$1"
compare_py="$PWD/$2"
shift 2
failures=0
out="${TEST_TMPDIR:-$(mktemp -d)}"

for benchmark in "$@"; do
  name=$(basename "$benchmark")
  if ! output=$("$benchmark" --quick 2>&1); then
    echo "FAIL: $name --quick exited non-zero without the shim: $output"
    failures=$((failures + 1))
  elif ! grep -q 'check=ok' <<<"$output"; then
    echo "FAIL: $name printed no check=ok without the shim: $output"
    failures=$((failures + 1))
  else
    echo "ok: $name passes its self-check on the real allocator"
  fi
done

if [ -n "$skip_preload" ]; then
  echo "SKIPPED the broken-allocator half: $skip_preload"
else
  for benchmark in "$@"; do
    name=$(basename "$benchmark")
    output=$(LD_PRELOAD="$broken_so" BROKEN_MALLOC_EVERY=16 "$benchmark" --quick 2>"$out/$name.stderr")
    status=$?
    if [ "$status" -ne 3 ]; then
      echo "FAIL: $name under broken_malloc.so exited $status, expected 3: $output"
      failures=$((failures + 1))
    elif ! grep -q 'check=FAILED' <<<"$output" || ! grep -q 'check=FAILED' "$out/$name.stderr"; then
      echo "FAIL: $name under broken_malloc.so did not print check=FAILED on stdout and stderr"
      failures=$((failures + 1))
    else
      echo "ok: $name detects the corruption: $(head -1 <<<"$output")"
    fi
  done

  # compare: the corrupted cell reads FAILED and compare exits non-zero after writing its tables.
  first=$(basename "$1")
  bin_dir=$(cd "$(dirname "$1")" && pwd)
  if python3 "$compare_py" --quick --allocators glibc --custom "broken=$broken_so" --workloads "$first" \
      --bin-dir "$bin_dir" --workspace "$out" --out "$out/compare" >"$out/compare.log" 2>&1; then
    echo "FAIL: compare exited 0 although a self-check failed"; cat "$out/compare.log"
    failures=$((failures + 1))
  elif ! grep -q '| FAILED' "$out/compare/results.md"; then
    echo "FAIL: compare's table does not show FAILED"; cat "$out/compare.log"
    failures=$((failures + 1))
  else
    echo "ok: compare shows FAILED and exits non-zero"
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all self-check tests passed"
