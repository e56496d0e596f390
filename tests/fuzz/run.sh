#!/usr/bin/env bash
# Builds the libFuzzer target with clang (bazel --config=fuzz) and runs it from the committed seed
# corpus for a fixed number of inputs. New interesting inputs go to a temporary directory, so the
# committed corpus is only read. Exits non-zero when the fuzzer finds a failure (its crash file
# is kept in $FUZZ_ARTIFACTS, default /tmp/hakmem_fuzz_artifacts).
#   tests/fuzz/run.sh                 # CI: 50000 runs, seed 1 (about 6 minutes on 2 cores, build included: 359 s in the CI run of 2026-12-02)
#   FUZZ_RUNS=-1 FUZZ_SECONDS=600 tests/fuzz/run.sh   # a longer exploration
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${FUZZ_RUNS:-50000}
seconds=${FUZZ_SECONDS:-0}
artifacts=${FUZZ_ARTIFACTS:-/tmp/hakmem_fuzz_artifacts}
bazel build --config=fuzz --color=no --curses=no //tests/fuzz:hakmem_fuzzer
fuzzer=$(bazel info --config=fuzz bazel-bin 2>/dev/null)/tests/fuzz/hakmem_fuzzer
new_inputs=$(mktemp -d)
trap 'rm -rf "$new_inputs"' EXIT
mkdir -p "$artifacts"
echo "fuzz: $fuzzer -runs=$runs -max_total_time=$seconds from tests/fuzz/corpus"
"$fuzzer" -runs="$runs" -max_total_time="$seconds" -seed=1 -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$new_inputs" tests/fuzz/corpus 2>&1 | grep -vE '^(INFO|#[0-9]+\s+(NEW|REDUCE|pulse))' || status=${PIPESTATUS[0]}
status=${status:-0}
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED (exit $status); crash inputs in $artifacts" >&2
  exit 1
fi
echo "fuzz: passed"
