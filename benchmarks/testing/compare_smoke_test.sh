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
# The speed ratio pairs the runs of each repetition. A is 10 % faster than B in four of five repetitions
# (the machine's state swings between repetitions and, in the third, between A's run and B's); the
# independent medians would say B is nearly 3x faster.
python3 - "$compare_py" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("compare", sys.argv[1])
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)
def cell(values):
    c = compare.Cell()
    for v in values:
        r = compare.RunResult()
        r.value = v
        c.runs.append(r)
    return c
throughput = compare.Workload("w", "bench", "test", binary="w")
a, b = cell([33.0, 11.0, 11.0, 11.0, 33.0]), cell([30.0, 10.0, 30.0, 10.0, 30.0])
assert compare.speed_ratio(throughput, a.value, b.value) < 1.0, "the test's premise: medians mislead"
paired = compare.paired_speed_ratio(throughput, a, b)
assert abs(paired - 1.10) < 1e-9, paired
timed = compare.Workload("p", "program", "test", program="p")  # seconds: smaller is faster
assert abs(compare.paired_speed_ratio(timed, cell([2.0, 4.0]), cell([3.0, 5.0])) - 1.375) < 1e-9
failed = cell([1.0]); failed.runs[0].status = "CRASH(SIGSEGV)"
assert compare.paired_speed_ratio(throughput, failed, b) is None
print("paired ratio: ok")
# --env NAME:VAR=VALUE reaches that allocator's runs and no other's, and a malformed one is refused.
import contextlib, io
listing = io.StringIO()
with contextlib.redirect_stdout(listing):
    assert compare.main(["--list", "--allocators", "glibc", "--env", "glibc:HAKMEM_SMOKE=a=b"]) == 0
assert "no preload HAKMEM_SMOKE=a=b" in listing.getvalue(), listing.getvalue()
with_setting, plain = compare.Allocator("x", "/lib/x.so"), compare.Allocator("y", None)
with_setting.settings["HAKMEM_SMOKE"] = "1"
env = with_setting.environment({"LD_PRELOAD": "/elsewhere.so", "PATH": "/bin"})
assert env == {"LD_PRELOAD": "/lib/x.so", "PATH": "/bin", "HAKMEM_SMOKE": "1"}, env
assert "HAKMEM_SMOKE" not in plain.environment({}) and "LD_PRELOAD" not in plain.environment({"LD_PRELOAD": "z"})
for bad in ["nobody:A=1", "glibc:A", "glibc:=1", "glibcA=1"]:
    with contextlib.redirect_stderr(io.StringIO()):
        assert compare.main(["--list", "--allocators", "glibc", "--env", bad]) == 2, bad
print("--env: ok")
PY
echo "compare smoke test passed"
