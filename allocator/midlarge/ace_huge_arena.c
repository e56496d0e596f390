// The huge arena: huge blocks up to ACE_ARENA_BLOCK_MAX carved from a few big regions, whose
// freed pages stay resident for the next huge allocation of any size.
//
// Why: a page fault costs far more than a copy or a scan of a few dozen spans. On the 2-core VMs
// these benchmarks run on, one fault of a page the guest handed back costs about 12 us (a
// 4 MiB memcpy costs about 0.4 ms, the 1,024 faults to populate 4 MiB about 12 ms). One mapping
// per block can only reuse a freed block whole or fault the difference in; an arena reuses any
// freed pages for any later size, the way a page heap does.
//
// Layout: regions of ACE_ARENA_REGION_SIZE, aligned to their size (so a region boundary is an
// address test), reserved uncommitted. Free space is a sorted array of free spans. Each span is
// either *committed* (may hold resident pages; counted in os.bytes_committed and in the
// resident budget) or *decommitted* (given back with hk_os_decommit; counted in neither), and
// separately *zeroed* when every page of it is known to read as zero (fresh, or decommitted with
// MADV_DONTNEED). Neighbours in the same state coalesce (never across a region boundary); a
// committed and a decommitted neighbour stay two spans, so both figures stay exact, and a block
// may be carved across such a *run* of adjacent spans.
//
// Bounds: free committed bytes stay under HAKMEM_HUGE_CACHE_MAX_BYTES (the oldest committed
// spans are decommitted first); a free committed span idle HAKMEM_HUGE_CACHE_TTL_MS is
// decommitted, and a region free as a whole for that long is unmapped.
//
// Capacity: every arena block is longer than ACE_ARENA_MIN_SIZE (ace_huge.c routes only such
// sizes here and shrinks them no further), and every run is followed by a live block or by its
// region's end, so runs <= live blocks + regions <= ARENA_SPAN_CAPACITY / 2. Spans of mixed
// states could outnumber runs; when the table fills, runs are merged into single committed
// spans (commit_runs), which brings the count back under that bound.
//
// Locking: every function here runs with ace_huge.c's lock held. madvise, mmap and munmap then
// happen under the lock too: huge operations are rare and cost a syscall or faults anyway, and
// a span being decommitted must not be handed out meanwhile.
#define _GNU_SOURCE
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/stats.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/os/os.h"

typedef struct {
  uintptr_t start;
  size_t length;
  uint64_t freed_ms;  // last time a free added to this span (its age for the TTL)
  uint8_t committed;  // 1: counted committed, may hold resident pages; 0: decommitted
  uint8_t zeroed;     // 1: every page reads as zero
} arena_span;

#define ARENA_SPAN_CAPACITY \
  (2 * ACE_ARENA_REGION_MAX * (ACE_ARENA_REGION_SIZE / (ACE_ARENA_MIN_SIZE + 4096) + 1))
#define ARENA_AGE_INTERVAL_MS 50  // TTL checks on alloc/free run at most this often

static arena_span spans[ARENA_SPAN_CAPACITY];  // sorted by start; .bss, touched as used
static size_t span_count;
static size_t region_count;  // regions mapped now
static size_t free_bytes, free_committed_bytes;  // over all spans; committed ones only
static uint64_t last_age_ms;

static inline int is_region_boundary(uintptr_t address) { return (address & (ACE_ARENA_REGION_SIZE - 1)) == 0; }
static inline uintptr_t span_end(const arena_span *s) { return s->start + s->length; }

// ---- The span array -----------------------------------------------------------------------------
static void account_add(const arena_span *s) {
  free_bytes += s->length;
  if (s->committed) free_committed_bytes += s->length;
}

static void account_remove(const arena_span *s) {
  free_bytes -= s->length;
  if (s->committed) free_committed_bytes -= s->length;
}

static void remove_at(size_t i) {
  account_remove(&spans[i]);
  memmove(&spans[i], &spans[i + 1], (span_count - i - 1) * sizeof(arena_span));
  span_count--;
}

static void insert_at(size_t i, const arena_span *s) {
  memmove(&spans[i + 1], &spans[i], (span_count - i) * sizeof(arena_span));
  spans[i] = *s;
  span_count++;
  account_add(s);
}

// Index of the first span starting at or after `address`.
static size_t lower_bound(uintptr_t address) {
  size_t low = 0, high = span_count;
  while (low < high) {
    size_t mid = (low + high) / 2;
    if (spans[mid].start < address) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}

// True when span i + 1 continues span i in the same region (the two form one run).
static inline int continues(size_t i) {
  return i + 1 < span_count && spans[i + 1].start == span_end(&spans[i]) && !is_region_boundary(spans[i + 1].start);
}

static void decommit_span(arena_span *s) {
  if (!s->committed) return;
  if (hk_os_decommit((void *)s->start, s->length, HK_OS_DECOMMIT_CONFIGURED) != 0) return;  // stays committed
  free_committed_bytes -= s->length;
  s->committed = 0;
  s->zeroed = (uint8_t)hk_os_decommit_zeroes(HK_OS_DECOMMIT_CONFIGURED);
  hk_stat_add(HK_STAT_ACE_ARENA_DECOMMITS, 1);
}

// Merges span i with its same-state neighbours (totals do not change).
static void coalesce_at(size_t i) {
  if (continues(i) && spans[i + 1].committed == spans[i].committed) {
    arena_span next = spans[i + 1];
    remove_at(i + 1);
    account_add(&next);
    spans[i].length += next.length;
    spans[i].zeroed &= next.zeroed;
    if (next.freed_ms > spans[i].freed_ms) spans[i].freed_ms = next.freed_ms;
  }
  if (i > 0 && continues(i - 1) && spans[i - 1].committed == spans[i].committed) coalesce_at(i - 1);
}

// The table is full: every run becomes one committed span (its decommitted parts are committed
// in the bookkeeping only; the budget decommits them again later, as a whole).
static void commit_runs(void) {
  size_t out = 0;
  for (size_t i = 0; i < span_count; i++) {
    arena_span s = spans[i];
    if (!s.committed) {
      hk_os_commit((void *)s.start, s.length);
      free_committed_bytes += s.length;
      s.committed = 1;
    }
    if (out > 0 && span_end(&spans[out - 1]) == s.start && !is_region_boundary(s.start)) {
      spans[out - 1].length += s.length;
      spans[out - 1].zeroed &= s.zeroed;
      if (s.freed_ms > spans[out - 1].freed_ms) spans[out - 1].freed_ms = s.freed_ms;
    } else {
      spans[out++] = s;
    }
  }
  span_count = out;
}

// Adds [start, start + length) as free and coalesces it with its same-state neighbours.
static void add_free(uintptr_t start, size_t length, uint64_t now, int committed, int zeroed) {
  if (span_count + 2 >= ARENA_SPAN_CAPACITY) commit_runs();
  if (span_count + 2 >= ARENA_SPAN_CAPACITY) hk_report_fatal("ace: the huge arena's span table overflowed");
  arena_span s = {start, length, now, (uint8_t)committed, (uint8_t)zeroed};
  size_t i = lower_bound(start);
  insert_at(i, &s);
  coalesce_at(i);
}

// Takes [start, start + length) out of the run that holds it, leaving the rest free (head and
// tail pieces keep their states). Decommitted parts are committed again in the bookkeeping.
// Returns whether the whole range reads as zero.
static int take_range(uintptr_t start, size_t length) {
  uintptr_t end = start + length;
  size_t i = lower_bound(start);
  if (i == span_count || spans[i].start > start) i--;  // the span holding `start`
  int zeroed = 1;
  arena_span head = spans[i];
  head.length = start - head.start;
  while (i < span_count && spans[i].start < end) {
    arena_span s = spans[i];
    remove_at(i);
    uintptr_t from = s.start > start ? s.start : start;
    uintptr_t to = span_end(&s) < end ? span_end(&s) : end;
    if (!s.committed) hk_os_commit((void *)from, to - from);
    zeroed &= s.zeroed;
    if (span_end(&s) > end) {
      arena_span tail = s;
      tail.start = end;
      tail.length = span_end(&s) - end;
      insert_at(i, &tail);
    }
  }
  if (head.length) insert_at(lower_bound(head.start), &head);
  return zeroed;
}

// ---- Bounds -------------------------------------------------------------------------------------
static void coalesce_all(void) {
  for (size_t i = 0; i < span_count; i++) coalesce_at(i);
}

// Decommits the least recently freed committed spans until free committed bytes fit `limit`.
static void enforce_budget(size_t limit) {
  int changed = 0;
  while (free_committed_bytes > limit) {
    size_t oldest = SIZE_MAX;
    for (size_t i = 0; i < span_count; i++)
      if (spans[i].committed && (oldest == SIZE_MAX || spans[i].freed_ms < spans[oldest].freed_ms)) oldest = i;
    if (oldest == SIZE_MAX) break;
    size_t before = free_committed_bytes;
    decommit_span(&spans[oldest]);
    if (free_committed_bytes == before) break;  // madvise failed: try again later
    changed = 1;
  }
  if (changed) coalesce_all();
}

static void release_region_at(size_t span_index) {
  arena_span s = spans[span_index];
  remove_at(span_index);
  if (!s.committed) hk_os_commit((void *)s.start, s.length);  // hk_os_release's contract
  hk_os_release((void *)s.start, s.length);
  region_count--;
  hk_stat_add(HK_STAT_ACE_ARENA_REGIONS_UNMAPPED, 1);
}

size_t ace_arena_age(uint64_t now, int force) {
  if (!force && now >= last_age_ms && now - last_age_ms < ARENA_AGE_INTERVAL_MS) return 0;
  last_age_ms = now;
  uint64_t ttl = (uint64_t)hk_config_int(HK_OPT_HUGE_CACHE_TTL_MS);
  size_t released = 0;
  // Expired committed spans are decommitted; then same-state neighbours merge, so a region free
  // as a whole becomes one span, which is unmapped once it too has expired.
  for (size_t i = 0; i < span_count; i++) {
    arena_span *s = &spans[i];
    if (s->committed && (force || (now >= s->freed_ms && now - s->freed_ms >= ttl))) {
      released += s->length;
      decommit_span(s);
    }
  }
  coalesce_all();
  for (size_t i = 0; i < span_count;) {
    arena_span *s = &spans[i];
    int expired = force || (now >= s->freed_ms && now - s->freed_ms >= ttl);
    if (expired && !s->committed && s->length == ACE_ARENA_REGION_SIZE && is_region_boundary(s->start)) {
      release_region_at(i);
      continue;
    }
    i++;
  }
  return released;
}

// ---- Allocation ---------------------------------------------------------------------------------
// Committed bytes of spans i.. within [start, end) (the spans form a run covering the range).
static size_t committed_overlap(size_t i, uintptr_t start, uintptr_t end) {
  size_t bytes = 0;
  for (; i < span_count && spans[i].start < end; i++) {
    if (!spans[i].committed || span_end(&spans[i]) <= start) continue;
    uintptr_t from = spans[i].start > start ? spans[i].start : start;
    uintptr_t to = span_end(&spans[i]) < end ? span_end(&spans[i]) : end;
    bytes += to - from;
  }
  return bytes;
}

// Where `length` bytes at `alignment` go: the placement with the most committed bytes under it
// (likely resident pages: no faults), ties to the smallest run (best fit). Candidates are each
// run's start and each committed span's start within a run. 0 when nothing fits; else the start,
// with the committed bytes under the block in *overlap_out.
static uintptr_t find_fit(size_t length, size_t alignment, size_t *overlap_out) {
  uintptr_t best = 0;
  size_t best_overlap = 0, best_run = SIZE_MAX;
  for (size_t first = 0; first < span_count;) {
    size_t last = first;
    while (continues(last)) last++;
    uintptr_t run_end = span_end(&spans[last]);
    size_t run_length = run_end - spans[first].start;
    for (size_t i = first; i <= last; i++) {
      if (i != first && !spans[i].committed) continue;
      uintptr_t start = hk_align_up(spans[i].start, alignment);
      if (start + length > run_end) break;  // later candidates start later still
      size_t overlap = committed_overlap(i, start, start + length);
      if (!best || overlap > best_overlap || (overlap == best_overlap && run_length < best_run)) {
        best = start;
        best_overlap = overlap;
        best_run = run_length;
      }
    }
    first = last + 1;
  }
  *overlap_out = best_overlap;
  return best;
}

static int map_region(uint64_t now) {
  if (region_count == ACE_ARENA_REGION_MAX) return 0;
  void *region = hk_os_reserve_aligned(ACE_ARENA_REGION_SIZE, ACE_ARENA_REGION_SIZE, HK_OS_RESERVE_UNCOMMITTED);
  if (!region) return 0;
  region_count++;
  add_free((uintptr_t)region, ACE_ARENA_REGION_SIZE, now, 0, 1);
  hk_stat_add(HK_STAT_ACE_ARENA_REGIONS_MAPPED, 1);
  return 1;
}

void *ace_arena_alloc(size_t length, size_t alignment, uint64_t now, int *zeroed) {
  size_t overlap;
  uintptr_t start = find_fit(length, alignment, &overlap);
  if (!start) {
    if (!map_region(now)) return NULL;
    start = find_fit(length, alignment, &overlap);
    if (!start) return NULL;
  }
  hk_stat_add(overlap ? HK_STAT_ACE_ARENA_COMMITTED_REUSES : HK_STAT_ACE_ARENA_UNCOMMITTED_ALLOCS, 1);
  *zeroed = take_range(start, length);
  ace_arena_age(now, 0);
  return (void *)start;
}

void ace_arena_free(void *block, size_t length, uint64_t now) {
  add_free((uintptr_t)block, length, now, 1, 0);
  enforce_budget((size_t)hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES));
  ace_arena_age(now, 0);
}

void ace_arena_free_emptied(void *block, size_t length, uint64_t now) {
  add_free((uintptr_t)block, length, now, 0, 1);
  ace_arena_age(now, 0);
}

size_t ace_arena_grow_in_place(void *block, size_t length, size_t needed, size_t wanted) {
  uintptr_t end = (uintptr_t)block + length;
  if (is_region_boundary(end)) return 0;
  size_t i = lower_bound(end);
  if (i == span_count || spans[i].start != end) return 0;
  size_t last = i;
  while (continues(last)) last++;
  size_t room = span_end(&spans[last]) - (uintptr_t)block;
  if (room < needed) return 0;
  size_t grown = wanted < room ? wanted : room;
  take_range(end, grown - length);
  hk_stat_add(HK_STAT_ACE_ARENA_GROWS_IN_PLACE, 1);
  return grown;
}

void ace_arena_stats(ace_stats *out) {
  out->arena_regions = region_count;
  out->arena_free_spans = span_count;
  out->arena_free_bytes = free_bytes;
  out->arena_free_committed_bytes = free_committed_bytes;
}
