#!/usr/bin/env bash
# glibc's introspection calls (mallinfo2, mallinfo, mallopt, malloc_info, malloc_stats) from a C
# program (//tests:introspection_program), run with glibc and under LD_PRELOAD=libhakmem.so: under
# the preload the answers are HAKMEM's (its summary from malloc_stats, its mallopt support, its
# size classes in malloc_info's XML, which keeps the shape glibc's own output has).
source "$(dirname "$0")/preload_lib.sh"
[ ${#EXTRA_ARGS[@]} -eq 1 ] || fail "usage: introspection_test.sh --preload LIB PROGRAM"
PROGRAM=${EXTRA_ARGS[0]}
case "$PROGRAM" in /*) ;; *) PROGRAM=$PWD/$PROGRAM ;; esac
run_program() { "$PROGRAM" info.xml; }
run_variant glibc "$WORK/glibc" run_program
run_variant hakmem "$WORK/hakmem" run_program

# expect VARIANT LINE: the program printed LINE in that run.
expect() {
  grep -qxF "$2" "$WORK/$1.out" || { cat "$WORK/$1.out" >&2; fail "$1: no line '$2'"; }
}
# Figures both allocators must get right.
for variant in glibc hakmem; do
  for line in "uordblks_grew_by_10MiB yes" "hblkhd_grew_by_40MiB yes" "hblks_grew yes" "arena_holds_uordblks yes" \
    "mallinfo_int_uordblks_grew yes" "mallopt_M_TRIM_THRESHOLD 1" "malloc_info 0" \
    "uordblks_fell_by_10MiB yes" "hblks_fell yes"; do
    expect $variant "$line"
  done
done
# HAKMEM's answers, not glibc's.
expect glibc "mallopt_M_MMAP_THRESHOLD 1"
expect hakmem "mallopt_M_MMAP_THRESHOLD 0"
expect glibc "mallopt_M_ARENA_MAX 1"
expect hakmem "mallopt_M_ARENA_MAX 0"
# malloc_info(1, ...): glibc's code returns EINVAL itself (errno untouched); HAKMEM does what the
# manual page says, -1 with errno EINVAL. Either way a caller's "!= 0" check sees the failure.
expect glibc "malloc_info_options_1 22 other"
expect hakmem "malloc_info_options_1 -1 EINVAL"
grep -q '^Arena 0:' "$WORK/glibc.err" || fail "glibc's malloc_stats output not seen: $(head -3 "$WORK/glibc.err")"
grep -q '^hakmem: HAKMEM memory summary' "$WORK/hakmem.err" || fail "no HAKMEM summary from malloc_stats: $(head -3 "$WORK/hakmem.err")"
grep -q 'HAKMEM memory summary' "$WORK/glibc.err" && fail "a HAKMEM summary without the preload"
grep -E '^hakmem:   tiny 112 ' "$WORK/hakmem.err" >/dev/null || fail "no row for the 100-byte blocks' class (112 B)"
echo "ok: malloc_stats (hakmem):"
sed -n '1,12p' "$WORK/hakmem.err"

# malloc_info: both documents parse; HAKMEM's has every element and attribute glibc's has (the
# shape), and its own figures (the 100-byte blocks' class 97..112, the 40 MiB block as an mmap).
python3 - "$WORK/glibc/info.xml" "$WORK/hakmem/info.xml" <<'PY' || fail "malloc_info XML check failed"
import sys
import xml.etree.ElementTree as ET

def shape(root):
    return {(parent.tag, child.tag, child.get("type"), tuple(sorted(child.attrib)))
            for parent in root.iter() for child in parent if child.tag != "size"}

glibc, hakmem = (ET.parse(path).getroot() for path in sys.argv[1:])
missing = shape(glibc) - shape(hakmem)
assert not missing, "elements glibc writes and HAKMEM does not: %s" % sorted(missing)
assert hakmem.tag == "malloc" and hakmem.get("version") == "1"
sizes = [(int(s.get("from")), int(s.get("to"))) for s in hakmem.iter("size")]
assert (97, 112) in sizes, sizes
mmap = [t for t in hakmem.findall("total") if t.get("type") == "mmap"][0]
assert int(mmap.get("count")) >= 1 and int(mmap.get("size")) >= 40 << 20, mmap.attrib
print("ok: malloc_info XML: glibc's shape, %d size classes, mmap %s" % (len(sizes), mmap.attrib))
PY
echo PASS
