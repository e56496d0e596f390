#!/usr/bin/env bash
# The memory timeline (HAKMEM_TIMELINE): python3 under the preload library allocates ~70 MiB of
# small objects, holds them, drops them and waits. The CSV must have the documented columns, a row
# every ~100 ms with rising timestamps, the held memory in the tiny columns, and the memory given
# back by the background thread after the drop; a program the command starts does not write over
# it (the file is created exclusively); tools/timeline_svg.py draws it as well-formed SVG.
source "$(dirname "$0")/preload_lib.sh"
[ ${#EXTRA_ARGS[@]} -eq 1 ] || fail "usage: timeline_test.sh --preload LIB TIMELINE_SVG_PY"
DRAW=${EXTRA_ARGS[0]}
CSV=$WORK/timeline.csv
rm -f "$CSV"
HAKMEM_TIMELINE=$CSV PYTHONMALLOC=malloc LD_PRELOAD=$PRELOAD python3 -c '
import subprocess, time
held = [bytes(200) for _ in range(300000)]
time.sleep(0.6)
del held
subprocess.run(["true"], check=True)  # inherits HAKMEM_TIMELINE: must leave the file alone
time.sleep(2.2)
' || fail "the program failed"
[ -s "$CSV" ] || fail "no timeline written"
python3 - "$CSV" <<'PY' || fail "timeline checks"
import csv, sys
expected = ("ms,rss_kib,committed_kib,tiny_in_use_kib,tiny_cached_kib,mid_in_use_kib,mid_cached_kib,"
            "huge_in_use_kib,huge_cached_kib,pool_free_kib,metadata_kib,given_back_kib").split(",")
with open(sys.argv[1]) as f:
    lines = f.read().splitlines()
assert lines[0].split(",") == expected, "header: %s" % lines[0]
assert sum(1 for l in lines if l.startswith("ms,")) == 1, "a second header: another process wrote the file"
rows = [dict(zip(expected, map(int, l.split(",")))) for l in lines[1:]]
assert len(rows) >= 20, "%d rows for about 3 s at 100 ms" % len(rows)
times = [r["ms"] for r in rows]
assert all(b > a for a, b in zip(times, times[1:])), "timestamps not rising: %s" % times
gaps = sorted(b - a for a, b in zip(times, times[1:]))
assert 80 <= gaps[len(gaps) // 2] <= 150, "median interval %d ms" % gaps[len(gaps) // 2]
peak_tiny = max(r["tiny_in_use_kib"] for r in rows)
assert peak_tiny >= 40 * 1024, "tiny in use peaked at %d KiB" % peak_tiny
assert all(r["rss_kib"] > 0 and r["committed_kib"] > 0 for r in rows)
last = rows[-1]
assert last["tiny_in_use_kib"] < peak_tiny // 4, "still %d KiB in use at the end" % last["tiny_in_use_kib"]
assert last["given_back_kib"] >= 32 * 1024, "given back %d KiB" % last["given_back_kib"]
print("ok: %d rows, tiny peak %.1f MiB, given back %.1f MiB" % (len(rows), peak_tiny / 1024, last["given_back_kib"] / 1024))
PY
python3 "$DRAW" "$CSV" "$WORK/timeline.svg" --title "timeline test" || fail "timeline_svg.py failed"
python3 -c 'import sys, xml.etree.ElementTree as t; r = t.parse(sys.argv[1]).getroot(); assert r.tag.endswith("svg"); assert len(r.findall(".//{http://www.w3.org/2000/svg}polygon")) == 6' \
  "$WORK/timeline.svg" || fail "the SVG is not what timeline_svg.py should draw"
echo "ok: timeline.svg drawn"

# A program that closes every descriptor (as daemons do) and gets the timeline's number back for a file
# of its own: no row may land in its file.
OWN=$WORK/own.txt
CSV2=$WORK/timeline2.csv
rm -f "$CSV2" "$OWN"
HAKMEM_TIMELINE=$CSV2 PYTHONMALLOC=malloc LD_PRELOAD=$PRELOAD python3 -c '
import os, sys, time
time.sleep(0.3)
os.closerange(3, 4096)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for number in range(100, 140):
    os.dup2(fd, number)
os.write(fd, b"mine\n")
time.sleep(0.5)
' "$OWN" || fail "the descriptor-closing program failed"
[ "$(cat "$OWN")" = mine ] || fail "timeline rows landed in the program's own file: $(head -c 300 "$OWN")"
echo "ok: a reused descriptor number is left alone"
