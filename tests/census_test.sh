#!/usr/bin/env bash
# The compaction census (HAKMEM_CENSUS): python3 under the preload library builds 300,000 small
# objects, drops 90 % of them at random, then grows past that peak with larger ones. The census kept
# (the one with the most committed bytes) must see the sparse pages the drop left: pages with no live
# block, and pages that meshing would fold together; the figures must be consistent; "%p" gives every
# process of the command its own file.
source "$(dirname "$0")/preload_lib.sh"
DIR=$WORK/census
rm -rf "$DIR"
mkdir -p "$DIR"
HAKMEM_CENSUS=$DIR/census.%p PYTHONMALLOC=malloc LD_PRELOAD=$PRELOAD sh -c 'python3 -c "
import random, time
random.seed(7)
small = [bytes(200) for _ in range(300000)]
kept = [o for o in small if random.random() < 0.1]
del small
time.sleep(0.3)
large = [bytes(3000) for _ in range(30000)]
time.sleep(0.5)
"' || fail "the program failed"
COUNT=$(ls "$DIR" | wc -l)
[ "$COUNT" -ge 2 ] || fail "expected a census per process (sh and python3), found $COUNT: $(ls "$DIR")"
python3 - "$DIR" <<'PY' || fail "census checks"
import os, sys
def parse(line):
    return {k: int(v) for k, v in (field.split("=") for field in line.split()[1:])}
best = None
for name in os.listdir(sys.argv[1]):
    lines = open(os.path.join(sys.argv[1], name)).read().splitlines()
    assert lines and lines[0].startswith("census at_ms="), "%s: %r" % (name, lines[:1])
    head, total = parse(lines[0]), parse(lines[1])
    assert lines[1].startswith("total "), lines[1]
    for key in ("taken", "committed_kib", "rss_kib", "pool_free_committed_kib", "pool_free_resident_kib"):
        assert key in head, "%s lacks %s" % (name, key)
    assert total["pages_free"] <= total["pages"]
    assert total["pages_after_mesh"] <= total["pages_after_pairs"] <= total["pages"] - total["pages_free"]
    sizes = [parse(l) for l in lines[2:]]
    assert all(l.startswith("size=") for l in lines[2:]), lines[2:]
    assert sum(s["pages"] for s in sizes) == total["pages"], "the sizes do not add up to the total"
    if best is None or total["pages"] > best[1]["pages"]:
        best = (head, total, name)
head, total, name = best
assert head["taken"] >= 2, "python3's census was taken %d times" % head["taken"]
assert total["pages"] * 4 >= 40 * 1024, "only %d pages seen" % total["pages"]
occupied = total["pages"] - total["pages_free"]
assert total["pages_free"] > 0, "no free page after dropping 90 %"
assert total["pages_after_mesh"] < occupied, "nothing to mesh after a random 90 % drop"
print("ok: %s: %d pages, %d free, %d after pairs, %d after meshing, taken %d times" %
      (name, total["pages"], total["pages_free"], total["pages_after_pairs"], total["pages_after_mesh"], head["taken"]))
PY
