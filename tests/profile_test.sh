#!/usr/bin/env bash
# The heap profiler (HAKMEM_PROFILE) on //tests:profile_program, built without frame pointers, under
# LD_PRELOAD of libhakmem.so; every profile is read by google-pprof (tools/setup.sh installs it):
#   - known sites: site_a keeps 64 MiB of 1 KiB blocks, site_b allocates and frees 16 MiB of them.
#     The in-use bytes of site_a and the allocated bytes of site_b must be within bounds whose
#     chance of a false failure is computed below from the sampling law (printed), site_b's in-use
#     bytes 0; the functions must be named (no frame pointers); --svg must draw;
#   - malloc and free from a signal handler while every allocation is sampled: the program ends;
#   - fork: the child writes PATH.<pid>, and the parent's PATH is not written over;
#   - SIGUSR2 writes the profile; HAKMEM_PROFILE_INTERVAL_MS writes it while the program runs;
#   - four threads; tools/hakmem flame draws the flame graph.
source "$(dirname "$0")/preload_lib.sh"
[ ${#EXTRA_ARGS[@]} -eq 2 ] || fail "usage: profile_test.sh --preload LIB PROGRAM TOOLS_HAKMEM"
PROGRAM=${EXTRA_ARGS[0]}
HAKMEM_TOOL=${EXTRA_ARGS[1]}
case "$PROGRAM" in /*) ;; *) PROGRAM=$PWD/$PROGRAM ;; esac
case "$HAKMEM_TOOL" in /*) ;; *) HAKMEM_TOOL=$PWD/$HAKMEM_TOOL ;; esac
command -v google-pprof >/dev/null || fail "google-pprof not found: tools/setup.sh installs google-perftools"
OUT=$WORK/profiles
rm -rf "$OUT"
mkdir -p "$OUT"

# profiled NAME [VAR=VALUE...] -- ARGS...: runs the program with HAKMEM_PROFILE=$OUT/NAME.
profiled() {
  local name=$1
  shift
  local env=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done
  shift
  env HAKMEM_PROFILE="$OUT/$name" "${env[@]}" LD_PRELOAD="$PRELOAD" "$PROGRAM" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" ||
    { cat "$OUT/$name.err" >&2; fail "$name: the program failed"; }
  [ -s "$OUT/$name" ] || fail "$name: no profile written to $OUT/$name"
}

# pprof_mib PROFILE FUNCTION [--alloc_space]: the cumulative MiB google-pprof gives FUNCTION (0 when
# it does not list it). Call it as v=$(pprof_mib ...): set -e then stops the test on its failure.
pprof_mib() {
  google-pprof --text ${3:-} "$PROGRAM" "$1" 2>/dev/null >"$1.text" || fail "google-pprof failed on $1"
  grep -q '^Total: ' "$1.text" || { cat "$1.text" >&2; fail "google-pprof: no total for $1"; }
  awk -v f="$2" '$6 == f { print $4; found = 1 } END { if (!found) print 0 }' "$1.text" | head -1
}

expect_line() {
  grep -qxF "$2" "$OUT/$1.out" || { cat "$OUT/$1.out" "$OUT/$1.err" >&2; fail "$1: no line '$2'"; }
}

# ---- Known sites, at two rates ----------------------------------------------------------------
# check_sites RATE BOUND_A BOUND_B_LOW BOUND_B_HIGH: site_a's in-use MiB within 64 * (1 +- BOUND_A),
# site_b's allocated MiB within 16 * [LOW, HIGH], site_b's in use 0. Prints the chance of a false
# failure: the number of sampled blocks of a site is binomial (n blocks, each sampled with
# p = 1 - exp(-1024/RATE)), and the estimate is that number over n p times the true bytes.
check_sites() {
  local rate=$1 bound_a=$2 low_b=$3 high_b=$4 name=sites_$1
  profiled "$name" HAKMEM_PROFILE_RATE="$rate" -- sites
  expect_line "$name" "api ok"
  local a b_inuse b_alloc
  a=$(pprof_mib "$OUT/$name" site_a)
  b_inuse=$(pprof_mib "$OUT/$name" site_b)
  b_alloc=$(pprof_mib "$OUT/$name" site_b --alloc_space)
  python3 - "$rate" "$bound_a" "$low_b" "$high_b" "$a" "$b_inuse" "$b_alloc" <<'PY' || fail "rate $rate: figures out of bounds"
import math, sys
rate, bound_a, low_b, high_b = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
a, b_inuse, b_alloc = (float(x) for x in sys.argv[5:8])

def tail(n, p, low, high):
    """P(X < low or X > high) for X ~ Binomial(n, p), summed in log space."""
    log = lambda k: math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
    return sum(math.exp(log(k)) for k in range(0, n + 1) if k < low or k > high)

p = 1 - math.exp(-1024 / rate)
na, nb = 65536, 16384
risk_a = tail(na, p, (1 - bound_a) * na * p, (1 + bound_a) * na * p)
risk_b = tail(nb, p, low_b * nb * p, high_b * nb * p)
print("rate %d: site_a in use %.1f MiB (64 +- %d %%: %.1f expected samples, false-failure chance %.1e); "
      "site_b allocated %.1f MiB (16 x [%.2f, %.2f]: %.1f expected samples, chance %.1e), in use %.1f MiB"
      % (rate, a, bound_a * 100, na * p, risk_a, b_alloc, low_b, high_b, nb * p, risk_b, b_inuse))
# pprof prints MiB to 0.1: allow that rounding on the bounds.
ok = abs(a - 64) <= 64 * bound_a + 0.05 and 16 * low_b - 0.05 <= b_alloc <= 16 * high_b + 0.05 and b_inuse == 0
sys.exit(0 if ok else 1)
PY
  grep -q 'site_a' "$OUT/$name.text" || fail "site_a not named (no frame pointers: the unwinder must read .eh_frame)"
}
# 64 KiB: ~1,016 samples of site_a (sd 3.1 %), +-20 % is 6.4 sd; site_b ~254 samples, +-30 %.
check_sites 65536 0.20 0.70 1.30
# The default 512 KiB: ~128 samples of site_a (sd 8.8 %), so +-20 % would fail one run in 40:
# +-45 % (5.1 sd); site_b ~32 samples: within 0.3x .. 2.2x.
check_sites 524288 0.45 0.30 2.20

google-pprof --svg "$PROGRAM" "$OUT/sites_65536" >"$OUT/sites.svg" 2>/dev/null || fail "google-pprof --svg failed"
grep -q '<svg' "$OUT/sites.svg" || fail "google-pprof --svg drew no SVG"
grep -q 'site_a' "$OUT/sites.svg" || fail "google-pprof --svg: no site_a"
echo "ok: google-pprof --text and --svg read the profiles"

# ---- A signal handler that allocates -------------------------------------------------------------
profiled signal HAKMEM_PROFILE_RATE=1 -- signal
expect_line signal "signal done"
expect_line signal "signal handler calls many"
echo "ok: malloc and free from a signal handler while every allocation is sampled"

# ---- fork --------------------------------------------------------------------------------------
# At 16 KiB: the parent's 1 MiB at site_a and the child's 8 MiB at site_c are ~64 and ~512
# samples (at the default rate the parent's would be none one run in seven).
profiled fork HAKMEM_PROFILE_RATE=16384 -- fork "$OUT/fork"
expect_line fork "parent_file_untouched yes"
child=$(awk '$1 == "child_pid" { print $2 }' "$OUT/fork.out")
[ -s "$OUT/fork.$child" ] || fail "fork: the child wrote no $OUT/fork.$child"
mib=$(pprof_mib "$OUT/fork.$child" site_c)
[ "$mib" != 0 ] || fail "fork: site_c not in the child's profile"
mib=$(pprof_mib "$OUT/fork" site_c)
[ "$mib" = 0 ] || fail "fork: the child's site_c is in the parent's profile"
grep -q site_a "$OUT/fork.text" || fail "fork: site_a not in the parent's profile"
echo "ok: fork: the child wrote fork.$child, the parent's profile is its own"

# ---- SIGUSR2, the interval, threads -------------------------------------------------------------
profiled usr2 HAKMEM_PROFILE_RATE=65536 -- usr2 "$OUT/usr2"
expect_line usr2 "usr2_written yes"
mib=$(pprof_mib "$OUT/usr2" site_a)
[ "$mib" != 0 ] || fail "usr2: no site_a in the profile SIGUSR2 wrote"
profiled interval HAKMEM_PROFILE_INTERVAL_MS=50 -- interval "$OUT/interval"
expect_line interval "interval_written yes"
profiled threads -- threads
mib=$(pprof_mib "$OUT/threads" thread_site)
[ "$mib" != 0 ] || fail "threads: no thread_site"
echo "ok: SIGUSR2, HAKMEM_PROFILE_INTERVAL_MS, four threads"

# ---- The flame graph -------------------------------------------------------------------------
"$HAKMEM_TOOL" flame "$OUT/sites_65536" "$PROGRAM" -o "$OUT/flame.svg" --alloc 2>"$OUT/flame.err" ||
  { cat "$OUT/flame.err" >&2; fail "tools/hakmem flame failed"; }
python3 - "$OUT/flame.svg" <<'PY' || fail "the flame graph lacks site_a or site_b"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
assert any(t.startswith("site_a (") for t in titles) and any(t.startswith("site_b (") for t in titles), titles
print("ok: tools/hakmem flame: %d frames" % len(titles))
PY
echo PASS
