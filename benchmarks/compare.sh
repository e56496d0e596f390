#!/usr/bin/env bash
# `bazel run //benchmarks:compare -- [options]`: runs compare.py with the benchmark binaries from this
# target's runfiles. Options: see `bazel run //benchmarks:compare -- --help`.
set -euo pipefail
here="${BASH_SOURCE[0]}"
if [ -n "${RUNFILES_DIR:-}" ] && [ -d "$RUNFILES_DIR/hakmem/benchmarks" ]; then
  runfiles="$RUNFILES_DIR"
elif [ -d "$here.runfiles/hakmem/benchmarks" ]; then
  runfiles="$here.runfiles"
else
  # `bazel run` starts us with the runfiles tree as the working directory.
  runfiles="$(cd .. && pwd)"
fi
benchmarks="$runfiles/hakmem/benchmarks"
export HAKMEM_COMPARE_COMMAND="bazel run //benchmarks:compare --${*:+ $*}"
exec python3 "$benchmarks/compare.py" --bin-dir "$benchmarks" --programs-dir "$benchmarks/programs" "$@"
