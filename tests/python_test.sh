#!/usr/bin/env bash
# python3 under HAKMEM: a workload script of our own (dicts, lists, strings, objects, JSON) and a
# set of CPython's own unit test modules (Debian's libpython3.11-testsuite), each run with glibc
# and with LD_PRELOAD=libhakmem.so; outputs must be identical and both runs must exit 0.
# Also checks, through HAKMEM_STATS=json:..., that the preload really served the allocations.
source "$(dirname "$0")/preload_lib.sh"

SCRIPT=$PWD/tests/python_workload.py
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || fail "$PYTHON not found (tools/setup.sh installs python3)"

echo "== workload script"
workload() { "$PYTHON" "$SCRIPT"; }
run_variant glibc "$WORK/glibc" workload
HAKMEM_STATS="json:$WORK/stats.json" run_variant hakmem "$WORK/hakmem" workload
compare_outputs "$WORK/glibc.out" "$WORK/hakmem.out" "workload stdout"

# The preload was active: HAKMEM mapped memory and refilled tiny caches.
[ -s "$WORK/stats.json" ] || fail "HAKMEM_STATS=json: wrote no $WORK/stats.json: was the preload active?"
mmaps=$(sed -n 's/^ *"os.mmap_calls": *\([0-9]*\).*/\1/p' "$WORK/stats.json")
refills=$(sed -n 's/^ *"tiny\.class[0-9]*\.refills": *\([0-9]*\).*/\1/p' "$WORK/stats.json" |
  awk '{ s += $1 } END { print s + 0 }')
echo "stats: os.mmap_calls=${mmaps:-missing} tiny refills (all classes)=$refills"
[ "${mmaps:-0}" -gt 0 ] || fail "os.mmap_calls is not > 0 in the stats JSON"
[ "$refills" -gt 0 ] || fail "no tiny refills in the stats JSON"

MODULES=(test.test_dict test.test_list test.test_set test.test_unicode test.test_bytes test.test_json
  test.test_re test.test_collections test.test_heapq test.test_deque
  test.test_ordered_dict test.test_userdict test.test_itertools test.test_functools test.test_string
  test.test_textwrap test.test_bisect test.test_struct)
if [ -f /usr/lib/python3.11/test/test_dict.py ]; then
  echo "== CPython unit tests: ${MODULES[*]}"
  # unittest reports on stderr; keep both streams, drop the timing.
  unit() { "$PYTHON" -m unittest -v "${MODULES[@]}" 2>&1; }
  run_variant glibc "$WORK/glibc" unit
  run_variant hakmem "$WORK/hakmem" unit
  for v in glibc hakmem; do
    sed -E 's/^(Ran [0-9]+ tests?) in [0-9.]+s$/\1/' "$WORK/$v.out" >"$WORK/$v.norm"
  done
  tail -n 3 "$WORK/hakmem.norm"
  compare_outputs "$WORK/glibc.norm" "$WORK/hakmem.norm" "unittest report"
else
  echo "note: libpython3.11-testsuite is not installed; only the workload script ran"
fi
echo PASS
