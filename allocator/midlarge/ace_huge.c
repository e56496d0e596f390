// Huge blocks: sizes above ACE_HUGE_THRESHOLD, and over-aligned requests. Those up to
// ACE_ARENA_BLOCK_MAX with alignments up to ACE_ARENA_MAX_ALIGNMENT come from the huge arena
// (ace_huge_arena.c: freed pages stay committed for any later size); the rest get their own
// page-aligned mapping from hk_os, described below.
//
// Live huge blocks are found by their start address in an open-addressing hash table (linear
// probing, tombstones), itself mapped through hk_os and grown by rehashing. A recently freed
// mapping goes to a small cache instead of munmap: BACKGROUND.md measured allocators that
// unmap and refault repeated 5-25 MiB blocks at 8x glibc's cost. The cache is bounded by
// HAKMEM_HUGE_CACHE_MAX_COUNT / _MAX_BYTES (oldest evicted first) and HAKMEM_HUGE_CACHE_TTL_MS
// (checked at every huge alloc/free and by ace_trim). A cached mapping of another size still
// serves: a bigger one is cut with mremap (no fault), a smaller one grown with mremap (its
// pages keep their frames, only the rest faults).
//
// One spin lock guards the table and the cache; syscalls happen outside it except when the
// table itself grows. Huge operations cost a syscall or a page fault anyway, so a lock is fine.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/os/os.h"
#include "allocator/superslab/registry.h"

typedef struct {
  uintptr_t start;   // block start = mapping start; HUGE_EMPTY or HUGE_TOMBSTONE when unused
  size_t length;     // mapped bytes (page multiple): the usable size
  size_t alignment;  // the alignment promised (page size when none was asked)
  int in_arena;      // carved from the huge arena, not its own mapping
} huge_entry;

#define HUGE_EMPTY ((uintptr_t)0)
#define HUGE_TOMBSTONE ((uintptr_t)1)
#define HUGE_TABLE_INITIAL 1024u
#define HUGE_CACHE_HARD_MAX 64u  // HAKMEM_HUGE_CACHE_MAX_COUNT is clamped to this

typedef struct {
  uintptr_t start;
  size_t length;
  uint64_t freed_ms;
} huge_cached;

static uint32_t huge_lock_word;  // 0 free, 1 held: acquire exchange / release store
static huge_entry *table;        // guarded by the lock (as are all the statics below)
static size_t table_capacity;    // a power of two
static size_t table_used;        // live entries + tombstones
static size_t live_count, live_bytes;
static size_t peak_count, peak_bytes;  // the most live_count and live_bytes have been
static huge_cached cache[HUGE_CACHE_HARD_MAX];  // oldest first
static size_t cache_count, cache_bytes;

// hk_spin_lock: spins briefly, then yields. The holder never blocks; its longest section grows the
// table (one mmap and a rehash), the rest are table and cache updates.
static void huge_lock(void) { hk_spin_lock(&huge_lock_word); }
static void huge_unlock(void) { hk_spin_unlock(&huge_lock_word); }

void ace_huge_prefork(void) { huge_lock(); }
void ace_huge_postfork_parent(void) { huge_unlock(); }
void ace_huge_postfork_child(void) { huge_unlock(); }

// ---- The table ----------------------------------------------------------------------------------
static inline size_t slot_of(uintptr_t start, size_t capacity) {
  return (size_t)(((start >> 12) * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (capacity - 1);
}

static huge_entry *table_find(uintptr_t start) {
  if (!table || start <= HUGE_TOMBSTONE) return NULL;
  for (size_t i = slot_of(start, table_capacity), n = 0; n < table_capacity; i = (i + 1) & (table_capacity - 1), n++) {
    if (table[i].start == start) return &table[i];
    if (table[i].start == HUGE_EMPTY) return NULL;
  }
  return NULL;
}

static void table_put(huge_entry *entries, size_t capacity, const huge_entry *entry) {
  size_t i = slot_of(entry->start, capacity);
  while (entries[i].start > HUGE_TOMBSTONE) i = (i + 1) & (capacity - 1);
  entries[i] = *entry;
}

// Makes room for one more entry: rehashes into a table twice as big (or as big, to drop
// tombstones) when the load would pass 1/2. 0 on failure (no memory).
static int table_reserve(void) {
  if (table && (table_used + 1) * 2 <= table_capacity) return 1;
  size_t capacity = table ? table_capacity : HUGE_TABLE_INITIAL;
  if (table && (live_count + 1) * 4 > table_capacity) capacity *= 2;
  huge_entry *entries = hk_os_reserve_aligned(capacity * sizeof(huge_entry), 0, HK_OS_RESERVE_DEFAULT);
  if (!entries) return 0;
  if (table) {
    for (size_t i = 0; i < table_capacity; i++)
      if (table[i].start > HUGE_TOMBSTONE) table_put(entries, capacity, &table[i]);
    hk_os_release(table, table_capacity * sizeof(huge_entry));
  }
  table = entries;
  table_capacity = capacity;
  table_used = live_count;
  return 1;
}

// After live_count or live_bytes grew: the peaks follow.
static void note_peaks(void) {
  if (live_count > peak_count) peak_count = live_count;
  if (live_bytes > peak_bytes) peak_bytes = live_bytes;
}

static void table_remove(huge_entry *entry) {
  live_count--;
  live_bytes -= entry->length;
  entry->start = HUGE_TOMBSTONE;
}

// ---- Recently freed starts ------------------------------------------------------------------------
// The starts of the last HUGE_FREED_RING huge blocks freed, so that freeing one again is reported
// as a double free, not as a pointer that was never ours. A start leaves the ring when a new huge
// block begins there (table_insert). Guarded by the lock; huge frees cost a syscall or a page fault
// anyway, so the scan of 64 words is noise.
#define HUGE_FREED_RING 64u
static uintptr_t freed_ring[HUGE_FREED_RING];
static unsigned freed_next;

static void freed_ring_forget(uintptr_t start) {
  for (unsigned i = 0; i < HUGE_FREED_RING; i++)
    if (freed_ring[i] == start) freed_ring[i] = 0;
}

static void freed_ring_add(uintptr_t start) {
  freed_ring[freed_next] = start;
  freed_next = (freed_next + 1) % HUGE_FREED_RING;
}

int ace_huge_was_freed(const void *block) {
  if (!block) return 0;
  huge_lock();
  int found = 0;
  for (unsigned i = 0; i < HUGE_FREED_RING; i++) found |= freed_ring[i] == (uintptr_t)block;
  huge_unlock();
  return found;
}

static int table_insert(uintptr_t start, size_t length, size_t alignment, int in_arena) {
  if (!table_reserve()) return 0;
  freed_ring_forget(start);
  huge_entry entry = {start, length, alignment, in_arena};
  size_t i = slot_of(start, table_capacity);
  while (table[i].start > HUGE_TOMBSTONE) i = (i + 1) & (table_capacity - 1);
  if (table[i].start == HUGE_EMPTY) table_used++;
  table[i] = entry;
  live_count++;
  live_bytes += length;
  note_peaks();
  return 1;
}

// ---- The cache ----------------------------------------------------------------------------------
static void cache_remove_at(size_t i) {
  cache_bytes -= cache[i].length;
  memmove(&cache[i], &cache[i + 1], (cache_count - i - 1) * sizeof(huge_cached));
  cache_count--;
}

// Moves cache entries past the bounds (all of them with `force`) to `victims`; returns how many.
static size_t cache_collect(uint64_t now, int force, huge_cached *victims) {
  size_t max_count = (size_t)hk_config_int(HK_OPT_HUGE_CACHE_MAX_COUNT);
  if (max_count > HUGE_CACHE_HARD_MAX) max_count = HUGE_CACHE_HARD_MAX;
  size_t max_bytes = (size_t)hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES);
  uint64_t ttl = (uint64_t)hk_config_int(HK_OPT_HUGE_CACHE_TTL_MS);
  size_t n = 0;
  while (cache_count) {
    int over = cache_count > max_count || cache_bytes > max_bytes;
    int expired = force || now - cache[0].freed_ms >= ttl;
    if (!over && !expired) break;
    hk_stat_add(over && !force ? HK_STAT_ACE_HUGE_EVICTED : HK_STAT_ACE_HUGE_EXPIRED, 1);
    victims[n++] = cache[0];
    cache_remove_at(0);
  }
  return n;
}

static size_t release_victims(const huge_cached *victims, size_t n) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    hk_os_release((void *)victims[i].start, victims[i].length);
    hk_stat_add(HK_STAT_ACE_HUGE_UNMAPPED, 1);
    bytes += victims[i].length;
  }
  return bytes;
}

// Takes the cached mapping that best serves `length` bytes at `alignment`: the smallest one
// that fits and is aligned, else (no alignment beyond a page) the biggest smaller one.
static int cache_take(size_t length, size_t alignment, huge_cached *out) {
  size_t fit = SIZE_MAX, smaller = SIZE_MAX;
  for (size_t i = 0; i < cache_count; i++) {
    if (cache[i].length >= length) {
      if ((cache[i].start & (alignment - 1)) == 0 && (fit == SIZE_MAX || cache[i].length < cache[fit].length)) fit = i;
    } else if (smaller == SIZE_MAX || cache[i].length > cache[smaller].length) {
      smaller = i;
    }
  }
  size_t pick = fit != SIZE_MAX ? fit : (alignment <= hk_os_page_size() ? smaller : SIZE_MAX);
  if (pick == SIZE_MAX) return 0;
  *out = cache[pick];
  cache_remove_at(pick);
  return 1;
}

// ---- Allocation ---------------------------------------------------------------------------------
static void *huge_alloc(size_t size, size_t alignment, int *fresh) {
  size_t page = hk_os_page_size();
  if (alignment < page) alignment = page;
  if (size == 0) size = 1;
  // No mapping of a 47-bit user address space can be that big or that aligned.
  if (size > ((size_t)1 << 47) || alignment > ((size_t)1 << 47) || hk_align_up_overflows(size, page)) {
    errno = ENOMEM;
    return NULL;
  }
  size_t length = hk_align_up(size, page);
  if (size > ACE_ARENA_MIN_SIZE && length <= ACE_ARENA_BLOCK_MAX && alignment <= ACE_ARENA_MAX_ALIGNMENT) {
    void *block = NULL;
    int zeroed = 0;
    huge_lock();
    // Reserve the table slot first: a block must never be handed out unregistered.
    if (table_reserve()) {
      block = ace_arena_alloc(length, alignment, ss_clock_ms(), &zeroed);
      if (block) table_insert((uintptr_t)block, length, alignment, 1);
    }
    huge_unlock();
    if (block) {
      *fresh = zeroed;
      return block;
    }
    // The arena is full (or its region could not be mapped): an own mapping may still fit.
  }
  huge_cached taken, victims[HUGE_CACHE_HARD_MAX + 1];
  huge_lock();
  int have = cache_take(length, alignment, &taken);
  size_t nvictims = cache_collect(ss_clock_ms(), 0, victims);
  huge_unlock();
  release_victims(victims, nvictims);

  void *block = NULL;
  size_t mapped = length;
  *fresh = 0;
  if (have) {
    if (taken.length >= length) {
      // Up to four times the request, the whole mapping serves as it is: no syscall, no fault
      // (cutting it would free pages a later, bigger request faults back in), and the slack is
      // realloc room. Beyond that, cut it to twice the request without moving, so a small block
      // does not pin a big mapping's resident pages.
      size_t keep = 2 * length;
      if (taken.length > 4 * length && hk_os_remap((void *)taken.start, taken.length, keep, 0)) {
        hk_stat_add(HK_STAT_ACE_HUGE_REMAPS, 1);
        taken.length = keep;
      }
      block = (void *)taken.start;
      mapped = taken.length;
    } else {
      block = hk_os_remap((void *)taken.start, taken.length, length, 1);
      hk_stat_add(HK_STAT_ACE_HUGE_REMAPS, 1);
      if (!block) {
        hk_os_release((void *)taken.start, taken.length);
        hk_stat_add(HK_STAT_ACE_HUGE_UNMAPPED, 1);
      }
    }
    if (block) hk_stat_add(HK_STAT_ACE_HUGE_REUSED, 1);
  }
  if (!block) {
    block = hk_os_reserve_aligned(length, alignment, HK_OS_RESERVE_DEFAULT);
    if (!block) {
      errno = ENOMEM;
      return NULL;
    }
    mapped = length;
    *fresh = 1;
    hk_stat_add(HK_STAT_ACE_HUGE_MAPPED, 1);
  }
  huge_lock();
  int ok = table_insert((uintptr_t)block, mapped, alignment, 0);
  huge_unlock();
  if (!ok) {
    hk_os_release(block, mapped);
    hk_stat_add(HK_STAT_ACE_HUGE_UNMAPPED, 1);
    errno = ENOMEM;
    return NULL;
  }
  return block;
}

void *ace_huge_alloc(size_t size, size_t alignment) {
  int fresh;
  return huge_alloc(size, alignment, &fresh);
}

void *ace_huge_alloc_zeroed(size_t size) {
  int fresh;
  void *block = huge_alloc(size, 0, &fresh);
  if (block && !fresh) memset(block, 0, size);  // a reused mapping holds old data
  return block;
}

int ace_huge_free(void *block) {
  huge_cached victims[HUGE_CACHE_HARD_MAX + 1];
  huge_lock();
  huge_entry *entry = table_find((uintptr_t)block);
  if (!entry) {
    huge_unlock();
    return 0;
  }
  huge_cached freed = {entry->start, entry->length, ss_clock_ms()};
  int in_arena = entry->in_arena;
  table_remove(entry);
  freed_ring_add(freed.start);
  if (in_arena) {
    ace_arena_free((void *)freed.start, freed.length, freed.freed_ms);
    huge_unlock();
    return 1;
  }
  size_t nvictims = 0;
  if (hk_config_int(HK_OPT_HUGE_CACHE_MAX_COUNT) > 0 &&
      freed.length <= (size_t)hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES)) {
    if (cache_count == HUGE_CACHE_HARD_MAX) {  // make room: the oldest goes
      victims[nvictims++] = cache[0];
      cache_remove_at(0);
      hk_stat_add(HK_STAT_ACE_HUGE_EVICTED, 1);
    }
    cache[cache_count++] = freed;
    cache_bytes += freed.length;
    hk_stat_add(HK_STAT_ACE_HUGE_CACHED, 1);
  } else {
    victims[nvictims++] = freed;
  }
  nvictims += cache_collect(freed.freed_ms, 0, victims + nvictims);
  huge_unlock();
  release_victims(victims, nvictims);
  return 1;
}

size_t ace_huge_usable_size(const void *block) {
  huge_lock();
  huge_entry *entry = table_find((uintptr_t)block);
  size_t length = entry ? entry->length : 0;
  huge_unlock();
  return length;
}

// ---- Resize ------------------------------------------------------------------------------------
// Both kinds of huge block share the decision (ace_huge_resize): a new size that still fits and is
// a quarter of the block or more (or still huge) stays in place, for an arena block only while it
// stays above ACE_ARENA_MIN_SIZE; a much smaller one returns NULL so the front door copies into a
// mid block; a bigger one grows. Each kind trims and grows its own way below; the growers are
// called with the lock held and release it.

// The length an own mapping gets when resized to `new_size`: half the size again as room, so that
// a buffer that shrinks and grows again, or grows in steps, costs few mremaps (the room is address
// space only until it is written).
static size_t own_mapping_length(size_t new_size) { return hk_align_up(new_size + new_size / 2, hk_os_page_size()); }

// Arena blocks: below half the block, the tail goes back to the arena (no syscall), keeping
// 1/8 of the new size as room. Own mappings: below a quarter, the tail is unmapped with mremap,
// keeping half the new size as room (a buffer that shrinks and grows again pays nothing).
static void trim_tail(huge_entry *entry, void *block, size_t new_size) {
  size_t page = hk_os_page_size(), length = entry->length;
  if (entry->in_arena) {
    size_t keep = hk_align_up(new_size + new_size / 8, page);
    if (new_size < length / 2 && keep < length) {
      ace_arena_free((char *)block + keep, length - keep, ss_clock_ms());
      live_bytes -= length - keep;
      entry->length = keep;
    }
    return;
  }
  size_t keep = own_mapping_length(new_size);
  if (new_size < length / 4 && keep < length && hk_os_remap(block, length, keep, 0)) {
    hk_stat_add(HK_STAT_ACE_HUGE_REMAPS, 1);
    live_bytes -= length - keep;
    entry->length = keep;
  }
}

// An arena block growing past ACE_ARENA_BLOCK_MAX leaves for an own mapping, and its pages go with
// it (hk_os_move_pages: no copy, no fault), so its old range returns to the arena empty. A copy
// would leave the old pages resident in the arena until the TTL: 27 MiB at the peak of
// `fragmentation`, whose entry array grows from 24 to 48 MiB. Every failure is undone before the
// block is touched, or by moving the pages back: NULL means the block is where it was. Lock held.
static void *arena_move_out(void *block, size_t new_size) {
  // Reserved first, so that the insert below cannot fail; the reserve may move the table.
  if (!table_reserve()) return NULL;
  huge_entry *entry = table_find((uintptr_t)block);
  size_t page = hk_os_page_size(), length = entry->length, alignment = entry->alignment;
  if (alignment > page) return NULL;  // the kernel places the new mapping
  int saved_errno = errno;
  void *moved = hk_os_move_pages(block, length, NULL);
  if (!moved) {
    errno = saved_errno;
    return NULL;
  }
  size_t grown = own_mapping_length(new_size);
  void *resized = hk_os_remap(moved, length, grown, 1);
  if (!resized) resized = hk_os_remap(moved, length, grown = hk_align_up(new_size, page), 1);
  if (!resized) {
    if (hk_os_move_pages(moved, length, block) != block) hk_report_fatal("ace: a huge block's pages could not move back");
    hk_os_commit(moved, length);  // hk_os_release's contract
    hk_os_release(moved, length);
    errno = saved_errno;
    return NULL;
  }
  hk_stat_add(HK_STAT_ACE_HUGE_REMAPS, 1);
  hk_stat_add(HK_STAT_ACE_ARENA_MOVES, 1);
  table_remove(entry);
  ace_arena_free_emptied(block, length, ss_clock_ms());
  table_insert((uintptr_t)resized, grown, alignment, 0);  // cannot fail: the slot was reserved
  return resized;
}

// Grows an arena block into the free space after it, else moves it to a new block (a copy:
// cheaper than faulting fresh pages in, and the old pages go back to the arena for the next
// block). Slack is 1/8: measured on realloc_grow, 1/2 and 1/4 cost 9 and 3 MiB more peak RSS for
// no speed (copies of resident memory are cheap; the arena's footprint is what grows).
static void *arena_grow(huge_entry *entry, void *block, size_t new_size) {
  size_t page = hk_os_page_size();
  size_t length = entry->length, alignment = entry->alignment;
  size_t needed = hk_align_up(new_size, page);
  size_t wanted = hk_align_up(new_size + new_size / 8, page);
  if (needed <= ACE_ARENA_BLOCK_MAX) {
    size_t grown = ace_arena_grow_in_place(block, length, needed, wanted < ACE_ARENA_BLOCK_MAX ? wanted : needed);
    if (grown) {
      live_bytes += grown - length;
      note_peaks();
      entry->length = grown;
      huge_unlock();
      return block;
    }
  } else {
    void *moved = arena_move_out(block, new_size);
    if (moved) {
      huge_unlock();
      return moved;
    }
  }
  huge_unlock();
  int saved_errno = errno, fresh;
  void *moved = huge_alloc(new_size + new_size / 8, alignment, &fresh);
  if (!moved) {
    errno = saved_errno;  // the caller tries the exact size
    return NULL;
  }
  memcpy(moved, block, length);
  ace_huge_free(block);
  hk_stat_add(HK_STAT_ACE_ARENA_MOVES, 1);
  return moved;
}

// Grows an own mapping with mremap and 1/2 slack, so a run of growths costs few mremaps: the
// slack is address space only until it is written. The entry is removed first: once the old
// range is unmapped another thread may map and register the same address.
static void *mapping_grow(huge_entry *entry, void *block, size_t new_size) {
  size_t page = hk_os_page_size();
  size_t length = entry->length, alignment = entry->alignment;
  size_t grown = own_mapping_length(new_size);
  table_remove(entry);
  huge_unlock();
  void *moved = hk_os_remap(block, length, grown, alignment <= page);
  hk_stat_add(HK_STAT_ACE_HUGE_REMAPS, 1);
  huge_lock();
  int ok = moved ? table_insert((uintptr_t)moved, grown, alignment, 0) : table_insert((uintptr_t)block, length, alignment, 0);
  huge_unlock();
  if (!ok) hk_report_fatal("ace: the huge block table could not grow");
  return moved;
}

void *ace_huge_resize(void *block, size_t new_size) {
  huge_lock();
  huge_entry *entry = table_find((uintptr_t)block);
  if (!entry) {
    huge_unlock();
    return NULL;
  }
  size_t length = entry->length;
  // Arena blocks stay longer than ACE_ARENA_MIN_SIZE (the bound on the arena's span table).
  int may_trim = !entry->in_arena || new_size > ACE_ARENA_MIN_SIZE;
  if (new_size <= length && may_trim && (new_size >= length / 4 || new_size > ACE_HUGE_THRESHOLD)) {
    trim_tail(entry, block, new_size);
    huge_unlock();
    return block;
  }
  if (new_size <= length || new_size > ((size_t)1 << 46)) {
    huge_unlock();  // much smaller: a mid block serves it better (the caller copies)
    return NULL;
  }
  return entry->in_arena ? arena_grow(entry, block, new_size) : mapping_grow(entry, block, new_size);
}

size_t ace_huge_trim(int force) {
  huge_cached victims[HUGE_CACHE_HARD_MAX + 1];
  uint64_t now = ss_clock_ms();
  huge_lock();
  size_t n = cache_collect(now, force, victims);
  size_t released = ace_arena_age(now, force);
  huge_unlock();
  return released + release_victims(victims, n);
}

void ace_huge_stats(ace_stats *out) {
  huge_lock();
  out->huge_live = live_count;
  out->huge_live_bytes = live_bytes;
  out->huge_peak_count = peak_count;
  out->huge_peak_bytes = peak_bytes;
  out->huge_cache_count = cache_count;
  out->huge_cache_bytes = cache_bytes;
  ace_arena_stats(out);
  huge_unlock();
  out->huge_mapped = hk_stat_get(HK_STAT_ACE_HUGE_MAPPED);
  out->huge_unmapped = hk_stat_get(HK_STAT_ACE_HUGE_UNMAPPED);
  out->huge_cached = hk_stat_get(HK_STAT_ACE_HUGE_CACHED);
  out->huge_reused = hk_stat_get(HK_STAT_ACE_HUGE_REUSED);
  out->huge_evicted = hk_stat_get(HK_STAT_ACE_HUGE_EVICTED);
  out->huge_expired = hk_stat_get(HK_STAT_ACE_HUGE_EXPIRED);
  out->huge_remaps = hk_stat_get(HK_STAT_ACE_HUGE_REMAPS);
  out->arena_committed_reuses = hk_stat_get(HK_STAT_ACE_ARENA_COMMITTED_REUSES);
  out->arena_uncommitted_allocs = hk_stat_get(HK_STAT_ACE_ARENA_UNCOMMITTED_ALLOCS);
  out->arena_grows_in_place = hk_stat_get(HK_STAT_ACE_ARENA_GROWS_IN_PLACE);
  out->arena_moves = hk_stat_get(HK_STAT_ACE_ARENA_MOVES);
  out->arena_decommits = hk_stat_get(HK_STAT_ACE_ARENA_DECOMMITS);
  out->arena_regions_mapped = hk_stat_get(HK_STAT_ACE_ARENA_REGIONS_MAPPED);
  out->arena_regions_unmapped = hk_stat_get(HK_STAT_ACE_ARENA_REGIONS_UNMAPPED);
}
