// SuperSlab mapping, the address registry, the directory and the LRU cache of free SuperSlabs.
#define _GNU_SOURCE
#include "allocator/superslab/registry.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "allocator/os/os.h"
#include "allocator/superslab/superslab_internal.h"

_Static_assert(sizeof(ss_slab) == HK_CACHE_LINE, "one cache line per slab");
_Static_assert(sizeof(ss_superslab) <= SS_HEADER_SIZE, "the header fits in its page");
_Static_assert(SS_SLABS_PER_SUPERSLAB == 32, "slot masks are 32-bit");

uint64_t ss_registry_bits[SS_REGISTRY_WORDS];
ss_dir_entry *ss_directory;
uint32_t ss_directory_high_water;

// Ids of unmapped SuperSlabs, reusable (versioned stack; links in stack_next).
static uint64_t free_ids_head;
// The LRU cache: a versioned stack of ids, most recently cached on top (links in stack_next).
static uint64_t cache_head;
static uint64_t cache_count;  // atomic relaxed: a bound check, not an ordering
// 1 while one thread trims the cache, or walks the directory (sp_census_take): an hk_spin_lock word,
// see cache_trim_lock. Only trims unmap SuperSlabs, so its holder reads every mapped header safely.
static uint32_t cache_trim_busy;

static uint32_t *stack_link(uint32_t id) { return &ss_directory[id].stack_next; }

uint64_t ss_clock_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

int ss_decommit_zeroes(void) { return strcmp(hk_config_string(HK_OPT_OS_DECOMMIT), "free") != 0; }

// ---- Registry -----------------------------------------------------------------------------

// Marks the registry array MADV_NOHUGEPAGE, once, before its first write: where transparent huge
// pages are on for every mapping ("always"), setting one bit could otherwise fault in 2 MiB of it.
static void registry_refuse_huge_pages(void) {
  static int done;
  if (__atomic_load_n(&done, __ATOMIC_ACQUIRE) || __atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL)) return;
  size_t page = hk_os_page_size();
  uintptr_t start = ((uintptr_t)ss_registry_bits + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t end = ((uintptr_t)ss_registry_bits + sizeof ss_registry_bits) & ~(uintptr_t)(page - 1);
  hk_os_hugepage_withdraw((void *)start, end - start);
}

// Sets (`present`) or clears the SuperSlab's registry bit. Release: a lookup that sees the bit set
// (acquire) sees the initialised header. An RMW, since neighbours' bits share the word.
static void registry_set(ss_superslab *superslab, int present) {
  uintptr_t index = (uintptr_t)superslab >> SS_SIZE_LOG2;
  uint64_t bit = (uint64_t)1 << (index & 63);
  if (present) {
    registry_refuse_huge_pages();
    __atomic_fetch_or(&ss_registry_bits[index >> 6], bit, __ATOMIC_RELEASE);
  } else {
    __atomic_fetch_and(&ss_registry_bits[index >> 6], ~bit, __ATOMIC_RELEASE);
  }
}

// ---- Directory ----------------------------------------------------------------------------

// The directory is reserved whole (room for SS_DIRECTORY_MAX entries) and counted committed page
// by page as the high water reaches it (directory_take_id): its untouched pages cost no memory,
// and the os.bytes_committed gauge (the statistics' "metadata") says so.
static ss_dir_entry *directory_get(void) {
  ss_dir_entry *directory = __atomic_load_n(&ss_directory, __ATOMIC_ACQUIRE);
  if (directory) return directory;
  size_t bytes = (size_t)SS_DIRECTORY_MAX * sizeof(ss_dir_entry);
  ss_dir_entry *fresh = hk_os_reserve_aligned(bytes, 0, HK_OS_RESERVE_UNCOMMITTED);
  if (!fresh) return NULL;
  if (__atomic_compare_exchange_n(&ss_directory, &directory, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return fresh;
  hk_os_commit(fresh, bytes);  // hk_os_release counts a committed range out
  hk_os_release(fresh, bytes);
  return directory;
}

// Counts the directory pages entry `id` reaches beyond entry id - 1 as committed: each page once,
// by the thread whose high-water CAS took the entry that first reaches it.
static void directory_commit_entry(uint32_t id) {
  size_t page = hk_os_page_size();
  uintptr_t start = (uintptr_t)&ss_directory[id], end = (uintptr_t)&ss_directory[id + 1];
  uintptr_t first = id == 0 ? start & ~(page - 1) : hk_align_up(start, page);
  uintptr_t last = hk_align_up(end, page);
  if (last > first) hk_os_commit((void *)first, last - first);
}

// A directory id: a reused one, else a new one. UINT32_MAX when all are taken.
static uint32_t directory_take_id(void) {
  uint32_t id = ss_stack_pop(&free_ids_head, stack_link);
  if (id != UINT32_MAX) return id;
  uint32_t next = __atomic_load_n(&ss_directory_high_water, __ATOMIC_RELAXED);
  do {
    if (next >= SS_DIRECTORY_MAX) return UINT32_MAX;
    // Release: scanners that see the new high water (acquire) find superslab NULL or published.
  } while (!__atomic_compare_exchange_n(&ss_directory_high_water, &next, next + 1, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
  directory_commit_entry(next);
  return next;
}

// ---- Mapping ------------------------------------------------------------------------------

ss_superslab *ss_superslab_map(void) {
  if (!directory_get()) return NULL;
  uint32_t id = directory_take_id();
  if (id == UINT32_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  // Huge pages only once the heap is large: there they save most page faults and TLB misses
  // (fragmentation: 151 K faults -> 14 K), while a small heap would pay up to 2 MiB of RSS per
  // partly used SuperSlab (random_mixed: 5 -> 7 MiB).
  int64_t hugepage_after = hk_config_int(HK_OPT_OS_HUGEPAGES);
  int hugepage = hugepage_after > 0 && hk_stat_get(HK_STAT_SS_LIVE) + 1 >= (uint64_t)hugepage_after;
  ss_superslab *superslab =
      hk_os_reserve_aligned(SS_SIZE, SS_SIZE, hugepage ? HK_OS_RESERVE_HUGEPAGE : HK_OS_RESERVE_DEFAULT);
  if (superslab && ((uintptr_t)superslab >> SS_REGISTRY_ADDRESS_BITS) != 0) {
    // Above the 47-bit space the registry covers (5-level paging hands such addresses only to
    // callers that ask for them, so this is a safety net).
    hk_os_release(superslab, SS_SIZE);
    superslab = NULL;
    errno = ENOMEM;
  }
  if (!superslab) {
    ss_stack_push(&free_ids_head, stack_link, id);
    return NULL;
  }
  // Fresh pages are zero: only the non-zero fields are written.
  superslab->magic = SS_MAGIC;
  superslab->id = id;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    superslab->slabs[i].index = (uint8_t)i;
    superslab->slabs[i].span_head = (uint8_t)i;
    superslab->slab_heads[i] = (uint8_t)i;
  }
  ss_dir_entry *entry = ss_dir(id);
  __atomic_store_n(&entry->active, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&entry->retiring, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&entry->hugepage, (uint32_t)hugepage, __ATOMIC_RELAXED);
  __atomic_store_n(&entry->dense_since_ms, 0, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    // Keep LISTED: a stale list entry of this id's previous SuperSlab may still hold the slot.
    uint32_t *word = &entry->slot_word[i];
    uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
    uint32_t desired;
    do {
      desired = (old & SS_SLOT_LISTED) | SS_SLOT_CACHED | SS_SLOT_COMMITTED | SS_SLOT_ZERO |
                (SS_KIND_SPAN << SS_SLOT_KIND_SHIFT);
    } while (!__atomic_compare_exchange_n(word, &old, desired, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  }
  registry_set(superslab, 1);
  // Release: whoever loads the directory entry sees the header and the words above.
  __atomic_store_n(&entry->superslab, superslab, __ATOMIC_RELEASE);
  hk_stat_add(HK_STAT_SS_MAPPED, 1);
  hk_stat_add(HK_STAT_SS_LIVE, 1);
  return superslab;
}

void ss_superslab_unmap(ss_superslab *superslab) {
  uint32_t id = superslab->id;
  ss_dir_entry *entry = ss_dir(id);
  // Decommitted slots are counted back in first, so os.bytes_committed stays exact after release.
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    uint32_t old = __atomic_fetch_or(&entry->slot_word[i], SS_SLOT_COMMITTED, __ATOMIC_RELAXED);
    if (!(old & SS_SLOT_COMMITTED)) {
      char *start;
      size_t size;
      ss_slot_range(superslab, i, &start, &size);
      hk_os_commit(start, size);
      hk_stat_add(HK_STAT_SS_BYTES_RECOMMITTED, size);
    }
  }
  // Deregister before unmapping: a lookup after this point misses instead of reading unmapped
  // memory. (Valid pointers into this SuperSlab cannot exist: every slot is held by the caller.)
  registry_set(superslab, 0);
  __atomic_store_n(&entry->superslab, NULL, __ATOMIC_RELEASE);
  superslab->magic = 0;
  hk_os_release(superslab, SS_SIZE);
  ss_stack_push(&free_ids_head, stack_link, id);
  hk_stat_add(HK_STAT_SS_UNMAPPED, 1);
  hk_stat_sub(HK_STAT_SS_LIVE, 1);
}

// ---- Decommit -----------------------------------------------------------------------------

void ss_withdraw_hugepage(ss_superslab *superslab) {
  // A decommit splits the huge page; without a withdrawal khugepaged may later collapse the
  // range back into one, making the whole 2 MiB resident again. Relaxed exchange: one caller
  // withdraws, and a second madvise would only repeat it.
  if (__atomic_exchange_n(&ss_dir(superslab->id)->hugepage, 0, __ATOMIC_RELAXED)) hk_os_hugepage_withdraw(superslab, SS_SIZE);
}

size_t ss_decommit_slots(ss_superslab *superslab, uint32_t mask) {
  ss_dir_entry *entry = ss_dir(superslab->id);
  uint32_t eligible = 0;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    if (!(mask & (1u << i))) continue;
    uint32_t word = __atomic_load_n(&entry->slot_word[i], __ATOMIC_RELAXED);
    // Never-touched (ZERO) slots are included: they hold no resident page, but they are
    // counted in os.bytes_committed since the mapping, and only a decommit clears that.
    if (word & SS_SLOT_COMMITTED) eligible |= 1u << i;
  }
  if (eligible) ss_withdraw_hugepage(superslab);
  int zeroes = ss_decommit_zeroes();
  size_t total = 0;
  unsigned i = 0;
  while (i < SS_SLABS_PER_SUPERSLAB) {
    if (!(eligible & (1u << i))) {
      i++;
      continue;
    }
    unsigned end = i;
    while (end < SS_SLABS_PER_SUPERSLAB && (eligible & (1u << end))) end++;
    char *start;
    size_t size;
    ss_slot_range(superslab, i, &start, &size);
    size_t bytes = ((size_t)end << SS_SLAB_SIZE_LOG2) - (size_t)(start - (char *)superslab);
    if (hk_os_decommit(start, bytes, HK_OS_DECOMMIT_CONFIGURED) == 0) {
      total += bytes;
      for (unsigned j = i; j < end; j++) {
        // RMWs, not stores: a popper may clear LISTED on the word meanwhile.
        __atomic_fetch_and(&entry->slot_word[j], ~SS_SLOT_COMMITTED, __ATOMIC_RELAXED);
        if (zeroes) __atomic_fetch_or(&entry->slot_word[j], SS_SLOT_ZERO, __ATOMIC_RELAXED);
      }
    }
    i = end;
  }
  if (total) hk_stat_add(HK_STAT_SS_BYTES_DECOMMITTED, total);
  return total;
}

// ---- LRU cache ----------------------------------------------------------------------------

size_t ss_cache_count(void) { return (size_t)__atomic_load_n(&cache_count, __ATOMIC_RELAXED); }

static uint64_t cache_bound_count(void) {
  int64_t count = hk_config_int(HK_OPT_SS_CACHE_MAX_COUNT);
  int64_t by_bytes = hk_config_int(HK_OPT_SS_CACHE_MAX_BYTES) / (int64_t)SS_SIZE;
  if (by_bytes < count) count = by_bytes;
  return count < 0 ? 0 : (uint64_t)count;
}

size_t ss_cache_push(ss_superslab *superslab, uint64_t now_ms) {
  ss_dir_entry *entry = ss_dir(superslab->id);
  __atomic_store_n(&entry->cached_since_ms, now_ms, __ATOMIC_RELAXED);
  ss_stack_push(&cache_head, stack_link, superslab->id);
  uint64_t count = __atomic_add_fetch(&cache_count, 1, __ATOMIC_RELAXED);
  hk_stat_add(HK_STAT_SS_CACHE_PUSHES, 1);
  hk_stat_add(HK_STAT_SS_CACHE_COUNT, 1);
  return count > cache_bound_count() ? ss_cache_trim(now_ms, 0) : 0;
}

ss_superslab *ss_cache_pop(void) {
  if (ss_stack_empty(&cache_head)) return NULL;
  uint32_t id = ss_stack_pop(&cache_head, stack_link);
  if (id == UINT32_MAX) return NULL;
  __atomic_sub_fetch(&cache_count, 1, __ATOMIC_RELAXED);
  hk_stat_sub(HK_STAT_SS_CACHE_COUNT, 1);
  hk_stat_add(HK_STAT_SS_CACHE_HITS, 1);
  return __atomic_load_n(&ss_dir(id)->superslab, __ATOMIC_ACQUIRE);
}

// hk_spin_lock: spins briefly, then yields (the holder unmaps and decommits SuperSlabs: syscalls; or
// walks the directory for statistics: no syscall).
static void cache_trim_lock(void) { hk_spin_lock(&cache_trim_busy); }

static void cache_trim_unlock(void) { hk_spin_unlock(&cache_trim_busy); }

size_t ss_cache_trim(uint64_t now_ms, int force) {
  if (force) {
    cache_trim_lock();
  } else if (!hk_spin_trylock(&cache_trim_busy)) {
    return 0;  // someone else is trimming; opportunistic callers just go on
  }
  // Take the whole stack at once (a versioned swap to empty): the trimmer then owns every entry
  // and can walk, decommit and unmap them without racing poppers. Poppers meanwhile see an
  // empty cache, which only costs them a mapping in a rare window.
  uint64_t old = __atomic_load_n(&cache_head, __ATOMIC_ACQUIRE);
  while ((uint32_t)old != 0 &&
         !__atomic_compare_exchange_n(&cache_head, &old, ((old >> 32) + 1) << 32, 1, __ATOMIC_ACQUIRE,
                                      __ATOMIC_ACQUIRE)) {
  }
  uint32_t id = (uint32_t)old;  // id + 1 of the newest entry, 0 when empty
  uint64_t keep_limit = cache_bound_count();
  uint64_t ttl = (uint64_t)hk_config_int(HK_OPT_SS_CACHE_TTL_MS);
  uint64_t delay = (uint64_t)hk_config_int(HK_OPT_SS_DECOMMIT_DELAY_MS);
  uint32_t kept_first = 0, kept_last = 0;  // id + 1
  uint64_t kept = 0;
  size_t released = 0;
  while (id != 0) {
    uint32_t current = id - 1;
    ss_dir_entry *entry = ss_dir(current);
    id = __atomic_load_n(&entry->stack_next, __ATOMIC_RELAXED);
    ss_superslab *superslab = __atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE);
    uint64_t since = __atomic_load_n(&entry->cached_since_ms, __ATOMIC_RELAXED);
    uint64_t age = now_ms > since ? now_ms - since : 0;
    hk_stat_id reason = HK_STAT_COUNT;
    if (force) reason = HK_STAT_SS_CACHE_UNMAPPED_FORCED;
    else if (kept >= keep_limit) reason = HK_STAT_SS_CACHE_UNMAPPED_BOUNDS;
    else if (age >= ttl) reason = HK_STAT_SS_CACHE_UNMAPPED_AGE;
    if (reason != HK_STAT_COUNT) {
      hk_stat_add(reason, 1);
      ss_superslab_unmap(superslab);
      released += SS_SIZE;
      __atomic_sub_fetch(&cache_count, 1, __ATOMIC_RELAXED);
      hk_stat_sub(HK_STAT_SS_CACHE_COUNT, 1);
      continue;
    }
    if (age >= delay) released += ss_decommit_slots(superslab, UINT32_MAX);
    // Relink the kept entries privately in their order (newest first).
    __atomic_store_n(&entry->stack_next, 0, __ATOMIC_RELAXED);
    if (kept_last) __atomic_store_n(&ss_dir(kept_last - 1)->stack_next, current + 1, __ATOMIC_RELAXED);
    else kept_first = current + 1;
    kept_last = current + 1;
    kept++;
  }
  if (kept_first) {
    // Splice the kept chain back on top. Entries pushed during the trim end up below it, so
    // the order is LRU only up to that window.
    uint32_t *tail_link = &ss_dir(kept_last - 1)->stack_next;
    uint64_t head = __atomic_load_n(&cache_head, __ATOMIC_RELAXED);
    uint64_t desired;
    do {
      __atomic_store_n(tail_link, (uint32_t)head, __ATOMIC_RELAXED);
      desired = (((head >> 32) + 1) << 32) | kept_first;
    } while (!__atomic_compare_exchange_n(&cache_head, &head, desired, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  }
  cache_trim_unlock();
  return released;
}

void ss_cache_hold_trims(void) { cache_trim_lock(); }

// The flag is a plain word: unlocking is right in a fork's parent and child alike.
void ss_cache_release_trims(void) { cache_trim_unlock(); }
