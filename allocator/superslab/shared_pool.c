// The shared slab pool: the slot state machine, the per-kind lists and the acquisition stages.
// The state words live in the SuperSlab directory (superslab_internal.h explains why).
#define _GNU_SOURCE
#include "allocator/superslab/shared_pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "allocator/os/os.h"
#include "allocator/superslab/superslab_internal.h"

// The list of slots free for any kind (fresh slots, span slots, slots out of the cache).
#define SP_SHARED_LIST SP_MAX_KINDS
// "Keep the kind the word has" for sp_free_slot.
#define SP_KEEP_KIND UINT32_MAX
// Every this many acquire/release calls a thread reads the clock (a power of two).
#define SP_CLOCK_EVERY 32u

_Static_assert(SP_MAX_KINDS < SS_KIND_SPAN, "kinds fit the 16-bit kind field");

// One line per kind: the hot slot and the free-list head of one kind never share a line with
// another kind's, so threads refilling different classes do not bounce lines.
typedef struct {
  // Versioned stack of slot ids (ss_stack_*; links in the directory's slot_next).
  uint64_t list_head;
  // Slot id + 1 of the slab this kind released last, 0 when none. Exchanged acq_rel: whoever
  // takes the value owns that slot's listing.
  uint32_t hot;
  uint32_t reserved;
} __attribute__((aligned(64))) sp_kind_lists;

static sp_kind_lists sp_lists[SP_MAX_KINDS + 1];

// Only mapping a SuperSlab takes this lock (and fork). sp_map_generation counts finished
// mapping attempts: threads that find the lock held wait for it to change (acquire loads; the
// holder's release increment comes after the new slots are listed), then retry stages 0-3.
// A pthread mutex, taken with trylock: its holder makes an mmap call, so waiters yield their time
// slice (sched_yield) while they wait for the generation, and fork's handler sleeps on it.
static pthread_mutex_t sp_map_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t sp_map_generation;

// The clock as last read (ms; relaxed: a timestamp, orders nothing) and the last aging pass
// (claimed by CAS so one thread runs each pass).
static uint64_t sp_clock_cached_ms;
static uint64_t sp_last_maintenance_ms;
// initial-exec: no __tls_get_addr (which may allocate) when this runs inside malloc.
static __thread uint32_t sp_thread_calls __attribute__((tls_model("initial-exec")));

// Fully free SuperSlabs kept in service (kept_free set), at most HAKMEM_SS_KEEP_FREE. Why keep
// any: retiring a SuperSlab the moment its last slot comes back made programs whose threads come
// and go (thread_churn: 10,000 threads, 4 alive at a time) retire and reactivate SuperSlabs
// 200-1,500 times a run, and an acquisition that found every slot taken while a retirement was
// under way (its slots CACHED, the SuperSlab not yet in the cache) mapped a new one: 4 to 10
// SuperSlabs mapped, peak RSS 5.3-14.5 MiB from run to run. Relaxed RMWs: the count bounds a
// heuristic (an overcount only retires one SuperSlab more, as before), orders nothing.
static uint32_t sp_kept_free;

static uint32_t *slot_link(uint32_t slot) {
  return &ss_directory[slot / SS_SLABS_PER_SUPERSLAB].slot_next[slot % SS_SLABS_PER_SUPERSLAB];
}

static ss_dir_entry *slot_entry(uint32_t slot) { return ss_dir(slot / SS_SLABS_PER_SUPERSLAB); }

static unsigned slot_index(uint32_t slot) { return slot % SS_SLABS_PER_SUPERSLAB; }

// ---- Listing ------------------------------------------------------------------------------

// Puts a slot whose LISTED bit the caller just set (or whose listing it took over) into a list:
// the kind's hot slot when `hot` (the previous hot slab moves to the kind's list), else the
// kind's list; kindless slots go to the shared list.
static void sp_list_slot(uint32_t slot, uint32_t kind, int hot) {
  if (kind >= SP_MAX_KINDS) {
    ss_stack_push(&sp_lists[SP_SHARED_LIST].list_head, slot_link, slot);
    return;
  }
  if (hot) {
    uint32_t previous = __atomic_exchange_n(&sp_lists[kind].hot, slot + 1, __ATOMIC_ACQ_REL);
    if (!previous) return;
    slot = previous - 1;
  }
  ss_stack_push(&sp_lists[kind].list_head, slot_link, slot);
}

// Moves a slot the caller holds in state `expect` to FREE (kind `kind`, or the word's own with
// SP_KEEP_KIND) and makes sure it is listed. 0 when the slot was not in state `expect`.
static int sp_free_slot(uint32_t slot, uint32_t expect, uint32_t kind, int hot) {
  uint32_t *word = ss_slot_word(slot);
  uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  uint32_t desired;
  do {
    if (ss_slot_state(old) != expect) return 0;
    desired = ss_slot_with_state(old, SS_SLOT_FREE) | SS_SLOT_LISTED;
    if (kind != SP_KEEP_KIND) desired = ss_slot_with_kind(desired, kind);
    // Release: the next owner (acquire CAS in a claim) sees everything done with the slab.
  } while (!__atomic_compare_exchange_n(word, &old, desired, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  // Still LISTED: it sits in some list already (a stale entry about to find it FREE again).
  if (!(old & SS_SLOT_LISTED)) sp_list_slot(slot, ss_slot_kind(desired), hot);
  return 1;
}

// ---- Claiming -----------------------------------------------------------------------------

// The caller popped `slot` from a list or a hot slot and so owns its listing. Claims it when
// FREE (-> ACTIVE for `kind`, unlisted) and returns 1; otherwise clears LISTED (the entry was
// stale: someone else took the slot, or its SuperSlab is cached) and returns 0.
static int sp_claim_popped(uint32_t slot, uint32_t kind) {
  uint32_t *word = ss_slot_word(slot);
  uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  for (;;) {
    if (ss_slot_state(old) == SS_SLOT_FREE) {
      uint32_t desired = ss_slot_with_kind(ss_slot_with_state(old, SS_SLOT_ACTIVE), kind) & ~SS_SLOT_LISTED;
      // Acquire: pairs with the release that freed it; we see the last owner's writes and the
      // directory entry of a live SuperSlab.
      if (__atomic_compare_exchange_n(word, &old, desired, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) return 1;
    } else {
      if (__atomic_compare_exchange_n(word, &old, old & ~SS_SLOT_LISTED, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        hk_stat_add(HK_STAT_SP_STALE_ENTRIES, 1);
        return 0;
      }
    }
  }
}

// After a claim: marks the slot's pages committed and not zero; returns 1 when they were zero.
static int sp_settle(uint32_t slot) {
  uint32_t *word = ss_slot_word(slot);
  uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(word, &old, (old | SS_SLOT_COMMITTED) & ~SS_SLOT_ZERO, 1, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
  if (!(old & SS_SLOT_COMMITTED)) {
    // Decommitted earlier: back in os.bytes_committed before the user touches it.
    ss_superslab *superslab = __atomic_load_n(&slot_entry(slot)->superslab, __ATOMIC_ACQUIRE);
    char *start;
    size_t size;
    ss_slot_range(superslab, slot_index(slot), &start, &size);
    hk_os_commit(start, size);
    hk_stat_add(HK_STAT_SS_BYTES_RECOMMITTED, size);
  }
  return (old & SS_SLOT_ZERO) != 0;
}

// The SuperSlab of `entry` leaves the kept ones (a slot was claimed, or it is being retired).
static inline void sp_unkeep(ss_dir_entry *entry) {
  if (__atomic_load_n(&entry->kept_free, __ATOMIC_RELAXED) && __atomic_exchange_n(&entry->kept_free, 0, __ATOMIC_RELAXED))
    __atomic_sub_fetch(&sp_kept_free, 1, __ATOMIC_RELAXED);
}

// Resets the metadata of claimed slots [first, first + count) and counts them active.
static ss_slab *sp_finish(uint32_t dir_id, unsigned first, unsigned count, uint32_t kind, int zeroed) {
  ss_dir_entry *entry = ss_dir(dir_id);
  ss_superslab *superslab = __atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE);
  for (unsigned i = first; i < first + count; i++) {
    ss_slab *slab = &superslab->slabs[i];
    slab->free_list = NULL;
    __atomic_store_n(&slab->remote_free, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slab->owner, 0, __ATOMIC_RELAXED);
    slab->used = 0;
    slab->capacity = 0;
    slab->carve = 0;
    slab->block_size = 0;
    slab->user = 0;
    slab->user_tag = 0;
    slab->trimmed_pages = 0;
    slab->kind = (uint16_t)kind;
    slab->span_slabs = (uint8_t)(i == first ? count : 0);
    slab->span_head = (uint8_t)first;
    superslab->slab_heads[i] = (uint8_t)(first | (kind < SS_SMALL_KINDS ? SS_HEAD_SMALL_KIND : 0));
    slab->zeroed = (uint8_t)zeroed;
  }
  __atomic_add_fetch(&entry->active, count, __ATOMIC_ACQ_REL);
  sp_unkeep(entry);
  return &superslab->slabs[first];
}

static ss_slab *sp_finish_popped(uint32_t slot, uint32_t kind) {
  int zeroed = sp_settle(slot);
  return sp_finish(slot / SS_SLABS_PER_SUPERSLAB, slot_index(slot), 1, kind, zeroed);
}

// Pops list `list` until a slot is claimed for `kind`; UINT32_MAX when the list runs dry.
static uint32_t sp_pop_claim(uint32_t list, uint32_t kind) {
  uint64_t *head = &sp_lists[list].list_head;
  while (!ss_stack_empty(head)) {
    uint32_t slot = ss_stack_pop(head, slot_link);
    if (slot == UINT32_MAX) break;
    if (sp_claim_popped(slot, kind)) return slot;
  }
  return UINT32_MAX;
}

static uint32_t sp_take_hot(uint32_t list, uint32_t kind) {
  if (!__atomic_load_n(&sp_lists[list].hot, __ATOMIC_RELAXED)) return UINT32_MAX;
  uint32_t hot = __atomic_exchange_n(&sp_lists[list].hot, 0, __ATOMIC_ACQ_REL);
  if (hot && sp_claim_popped(hot - 1, kind)) return hot - 1;
  return UINT32_MAX;
}

// Stages 0-2, lock-free.
static ss_slab *sp_acquire_listed(uint32_t kind) {
  uint32_t slot = sp_take_hot(kind, kind);
  if (slot != UINT32_MAX) {
    hk_stat_add(HK_STAT_SP_STAGE0_HOT, 1);
    return sp_finish_popped(slot, kind);
  }
  slot = sp_pop_claim(kind, kind);
  if (slot != UINT32_MAX) {
    hk_stat_add(HK_STAT_SP_STAGE1_KIND_LIST, 1);
    return sp_finish_popped(slot, kind);
  }
  // Stage 2: free slots of any kind: the shared list, then the other kinds' lists, then their
  // hot slots (starting after our own kind so that kinds do not all raid kind 0 first).
  slot = sp_pop_claim(SP_SHARED_LIST, kind);
  for (uint32_t step = 1; slot == UINT32_MAX && step < SP_MAX_KINDS; step++)
    slot = sp_pop_claim((kind + step) % SP_MAX_KINDS, kind);
  for (uint32_t step = 1; slot == UINT32_MAX && step < SP_MAX_KINDS; step++)
    slot = sp_take_hot((kind + step) % SP_MAX_KINDS, kind);
  if (slot == UINT32_MAX) return NULL;
  hk_stat_add(HK_STAT_SP_STAGE2_SHARED, 1);
  return sp_finish_popped(slot, kind);
}

// ---- Whole SuperSlabs: activation and retirement ------------------------------------------

// Puts a SuperSlab whose slots the caller holds (CACHED: new or out of the cache) in service:
// slots [first, first + count) go to the caller for `kind`, the others become FREE on the
// shared list.
static ss_slab *sp_activate(ss_superslab *superslab, unsigned first, unsigned count, uint32_t kind, uint64_t now) {
  uint32_t id = superslab->id;
  ss_dir_entry *entry = ss_dir(id);
  int zeroed = 1;
  for (unsigned i = first; i < first + count; i++) {
    uint32_t *word = &entry->slot_word[i];
    uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(word, &old, ss_slot_with_kind(ss_slot_with_state(old, SS_SLOT_ACTIVE), kind),
                                        1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    }
    zeroed &= sp_settle(ss_slot_id(id, i));
  }
  ss_slab *result = sp_finish(id, first, count, kind, zeroed);
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    if (i >= first && i < first + count) continue;
    __atomic_store_n(&entry->empty_since_ms[i], now, __ATOMIC_RELAXED);
    sp_free_slot(ss_slot_id(id, i), SS_SLOT_CACHED, SS_KIND_SPAN, 0);
  }
  return result;
}

// Moves a SuperSlab whose slots are all FREE to the LRU cache: CAS every slot FREE -> CACHED;
// a slot claimed meanwhile makes it undo the ones it took and give up (the SuperSlab is in use).
// Returns the bytes the cache's trim gave back when the push went past its bound.
static size_t sp_try_retire(uint32_t id, uint64_t now) {
  ss_dir_entry *entry = ss_dir(id);
  if (__atomic_exchange_n(&entry->retiring, 1, __ATOMIC_ACQUIRE)) return 0;
  ss_superslab *superslab = __atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE);
  unsigned taken = 0;
  if (superslab && __atomic_load_n(&entry->active, __ATOMIC_ACQUIRE) == 0) {
    for (; taken < SS_SLABS_PER_SUPERSLAB; taken++) {
      uint32_t *word = &entry->slot_word[taken];
      uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
      int ok = 1;
      do {
        if (ss_slot_state(old) != SS_SLOT_FREE) {
          ok = 0;
          break;
        }
      } while (!__atomic_compare_exchange_n(word, &old, ss_slot_with_state(old, SS_SLOT_CACHED), 1,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
      if (!ok) break;
    }
    if (taken < SS_SLABS_PER_SUPERSLAB) {
      for (unsigned i = 0; i < taken; i++) sp_free_slot(ss_slot_id(id, i), SS_SLOT_CACHED, SP_KEEP_KIND, 0);
    }
  }
  __atomic_store_n(&entry->retiring, 0, __ATOMIC_RELEASE);
  if (taken != SS_SLABS_PER_SUPERSLAB) return 0;
  sp_unkeep(entry);
  return ss_cache_push(superslab, now);
}

// A SuperSlab whose last slot came back stays in service (its slots listed for any kind, as
// they are) while fewer than HAKMEM_SS_KEEP_FREE others do; 0 when it is to be retired. The aging
// pass retires it once its slots have all been free for the decommit delay (sp_age).
static int sp_keep_in_service(uint32_t id) {
  int64_t limit = hk_config_int(HK_OPT_SS_KEEP_FREE);
  ss_dir_entry *entry = ss_dir(id);
  if (limit <= 0) return 0;
  if (__atomic_load_n(&entry->kept_free, __ATOMIC_RELAXED)) return 1;
  if ((int64_t)__atomic_add_fetch(&sp_kept_free, 1, __ATOMIC_RELAXED) > limit) {
    __atomic_sub_fetch(&sp_kept_free, 1, __ATOMIC_RELAXED);
    return 0;
  }
  // Another releaser of the same SuperSlab (a claim and a release in between) got there first.
  if (__atomic_exchange_n(&entry->kept_free, 1, __ATOMIC_RELAXED)) __atomic_sub_fetch(&sp_kept_free, 1, __ATOMIC_RELAXED);
  hk_stat_add(HK_STAT_SP_SUPERSLABS_KEPT, 1);
  return 1;
}

// The most recent time a slot of the SuperSlab of `entry` became free.
static uint64_t sp_last_emptied(const ss_dir_entry *entry) {
  uint64_t latest = 0;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    uint64_t since = __atomic_load_n(&entry->empty_since_ms[i], __ATOMIC_RELAXED);
    if (since > latest) latest = since;
  }
  return latest;
}

// ---- Clock and aging ----------------------------------------------------------------------

static size_t sp_age(uint64_t now, int force);

// The clock as of at most SP_CLOCK_EVERY calls of this thread ago; runs the aging pass when due.
static uint64_t sp_tick(void) {
  uint64_t now = __atomic_load_n(&sp_clock_cached_ms, __ATOMIC_RELAXED);
  if (HK_LIKELY((++sp_thread_calls & (SP_CLOCK_EVERY - 1)) != 0 && now != 0)) return now;
  now = ss_clock_ms();
  __atomic_store_n(&sp_clock_cached_ms, now, __ATOMIC_RELAXED);
  uint64_t delay = (uint64_t)hk_config_int(HK_OPT_SS_DECOMMIT_DELAY_MS);
  uint64_t ttl = (uint64_t)hk_config_int(HK_OPT_SS_CACHE_TTL_MS);
  uint64_t interval = (delay < ttl ? delay : ttl) / 4;
  uint64_t last = __atomic_load_n(&sp_last_maintenance_ms, __ATOMIC_RELAXED);
  // now > last: another thread may have stored a later clock reading than ours.
  if (now > last && now - last >= interval &&
      __atomic_compare_exchange_n(&sp_last_maintenance_ms, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    hk_stat_add(HK_STAT_SP_MAINTENANCE_RUNS, 1);
    sp_age(now, 0);
  }
  return now;
}

// Decommits FREE slots of live SuperSlabs idle past the delay (all of them with `force`),
// retires fully free SuperSlabs, then trims the cache.
static size_t sp_age(uint64_t now, int force) {
  uint64_t delay = (uint64_t)hk_config_int(HK_OPT_SS_DECOMMIT_DELAY_MS);
  size_t bytes = 0;
  uint32_t high = __atomic_load_n(&ss_directory_high_water, __ATOMIC_ACQUIRE);
  for (uint32_t id = 0; id < high; id++) {
    ss_dir_entry *entry = ss_dir(id);
    if (!__atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE)) continue;
    uint32_t busy = 0;
    for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
      uint32_t *word = &entry->slot_word[i];
      uint32_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);
      if (ss_slot_state(old) != SS_SLOT_FREE || !(old & SS_SLOT_COMMITTED) || (old & SS_SLOT_ZERO)) continue;
      uint64_t since = __atomic_load_n(&entry->empty_since_ms[i], __ATOMIC_RELAXED);
      if (!force && (now < since || now - since < delay)) continue;
      // BUSY pins the SuperSlab: it cannot be retired (let alone unmapped) while we madvise.
      if (__atomic_compare_exchange_n(word, &old, ss_slot_with_state(old, SS_SLOT_BUSY), 0, __ATOMIC_ACQ_REL,
                                      __ATOMIC_RELAXED))
        busy |= 1u << i;
    }
    if (busy) {
      ss_superslab *superslab = __atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE);
      bytes += ss_decommit_slots(superslab, busy);
      hk_stat_add(HK_STAT_SP_SLABS_DECOMMITTED, (uint64_t)__builtin_popcount(busy));
      for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++)
        if (busy & (1u << i)) sp_free_slot(ss_slot_id(id, i), SS_SLOT_BUSY, SP_KEEP_KIND, 0);
    }
    // A SuperSlab left fully free: kept in service until its slots have all been free for the
    // delay (or a retire that lost a race with a decommit or a claim).
    if (__atomic_load_n(&entry->active, __ATOMIC_ACQUIRE) == 0) {
      uint64_t emptied = sp_last_emptied(entry);
      int recent = __atomic_load_n(&entry->kept_free, __ATOMIC_RELAXED) && now >= emptied && now - emptied < delay;
      if (force || !recent) bytes += sp_try_retire(id, now);
    }
  }
  return bytes + ss_cache_trim(now, force);
}

size_t sp_trim(int force) {
  uint64_t now = ss_clock_ms();
  __atomic_store_n(&sp_clock_cached_ms, now, __ATOMIC_RELAXED);
  return sp_age(now, force);
}

// ---- Stage 4: mapping ---------------------------------------------------------------------

// Maps a SuperSlab under the lock and activates [first, first + count) for `kind`. Returns 1
// with *out set (NULL with errno on failure) when this thread mapped; 0 when another thread was
// mapping: the caller retries stages 0-3, which that mapping has just refilled.
static int sp_map_stage(unsigned first, unsigned count, uint32_t kind, uint64_t now, ss_slab **out) {
  uint64_t generation = __atomic_load_n(&sp_map_generation, __ATOMIC_ACQUIRE);
  if (pthread_mutex_trylock(&sp_map_lock) != 0) {
    hk_stat_add(HK_STAT_SP_LOCK_WAITS, 1);
    while (__atomic_load_n(&sp_map_generation, __ATOMIC_ACQUIRE) == generation) sched_yield();
    return 0;
  }
  hk_locks_held++;  // fork's handlers must know (spinlock.h)
  hk_stat_add(HK_STAT_SP_LOCK_ACQUISITIONS, 1);
  ss_superslab *superslab = ss_superslab_map();
  *out = superslab ? sp_activate(superslab, first, count, kind, now) : NULL;
  int saved_errno = errno;
  pthread_mutex_unlock(&sp_map_lock);
  hk_locks_held--;
  // After the unlock: a waiter that read the old generation before our unlock sees it change;
  // one that reads the new value finds the lock free (or another mapper, who bumps it again).
  __atomic_add_fetch(&sp_map_generation, 1, __ATOMIC_RELEASE);
  errno = saved_errno;
  return 1;
}

// ---- Slabs --------------------------------------------------------------------------------

ss_slab *sp_acquire_slab(unsigned kind) {
  if (kind >= SP_MAX_KINDS) {
    errno = EINVAL;
    return NULL;
  }
  uint64_t now = sp_tick();
  hk_stat_add(HK_STAT_SP_ACQUIRE_CALLS, 1);
  for (;;) {
    ss_slab *slab = sp_acquire_listed(kind);
    if (slab) return slab;
    ss_superslab *superslab = ss_cache_pop();
    if (superslab) {
      hk_stat_add(HK_STAT_SP_STAGE3_CACHE, 1);
      return sp_activate(superslab, 0, 1, kind, now);
    }
    if (sp_map_stage(0, 1, kind, now, &slab)) {
      hk_stat_add(slab ? HK_STAT_SP_STAGE4_MAP : HK_STAT_SP_ACQUIRE_FAILURES, 1);
      return slab;
    }
  }
}

// The SuperSlab of a slab metadata pointer, or a report and abort when it is not one.
static ss_superslab *sp_check_slab(const ss_slab *slab, const char *call) {
  ss_superslab *superslab = ss_registry_find(slab);
  if (superslab) {
    uintptr_t offset = (uintptr_t)slab - (uintptr_t)superslab->slabs;
    if ((uintptr_t)slab >= (uintptr_t)superslab->slabs && offset < sizeof superslab->slabs &&
        offset % sizeof(ss_slab) == 0)
      return superslab;
  }
  hk_report_invalid_pointer(call, "not a slab", slab);
}

// After releasing `count` slots: a SuperSlab with no active slot stays in service when it may be
// kept (sp_keep_in_service), else goes to the cache.
static void sp_after_release(uint32_t id, unsigned count, uint64_t now) {
  if (__atomic_sub_fetch(&ss_dir(id)->active, count, __ATOMIC_ACQ_REL) == 0 && !sp_keep_in_service(id))
    sp_try_retire(id, now);
}

void sp_release_slab(ss_slab *slab) {
  ss_superslab *superslab = sp_check_slab(slab, "sp_release_slab");
  uint64_t now = sp_tick();
  hk_stat_add(HK_STAT_SP_RELEASE_CALLS, 1);
  hk_stat_add(HK_STAT_SP_BYTES_RELEASED, SS_SLAB_SIZE);
  if (slab->span_slabs != 1 || slab->kind == SS_KIND_SPAN)
    hk_report_invalid_pointer("sp_release_slab", "a span or part of one, not a slab", slab);
  uint32_t id = superslab->id;
  __atomic_store_n(&ss_dir(id)->empty_since_ms[slab->index], now, __ATOMIC_RELAXED);
  if (!sp_free_slot(ss_slot_id(id, slab->index), SS_SLOT_ACTIVE, slab->kind, 1))
    hk_report_invalid_pointer("sp_release_slab", "slab released twice", slab);
  sp_after_release(id, 1, now);
}

// ---- Spans --------------------------------------------------------------------------------

// Claims FREE slots [first, first + count) of directory entry `id` straight from their words
// (LISTED stays: stale entries drop them later). All or nothing.
static int sp_claim_run(uint32_t id, unsigned first, unsigned count) {
  ss_dir_entry *entry = ss_dir(id);
  unsigned taken = 0;
  for (; taken < count; taken++) {
    uint32_t *word = &entry->slot_word[first + taken];
    uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
    int ok = 1;
    do {
      if (ss_slot_state(old) != SS_SLOT_FREE) {
        ok = 0;
        break;
      }
    } while (!__atomic_compare_exchange_n(word, &old,
                                          ss_slot_with_kind(ss_slot_with_state(old, SS_SLOT_ACTIVE), SS_KIND_SPAN), 1,
                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    if (!ok) break;
  }
  if (taken == count) return 1;
  for (unsigned i = 0; i < taken; i++) sp_free_slot(ss_slot_id(id, first + i), SS_SLOT_ACTIVE, SP_KEEP_KIND, 0);
  return 0;
}

// Stage 2 for spans: a run of `count` FREE slots (never slot 0) in a live SuperSlab.
static ss_slab *sp_span_scan(unsigned count) {
  uint32_t high = __atomic_load_n(&ss_directory_high_water, __ATOMIC_ACQUIRE);
  for (uint32_t id = 0; id < high; id++) {
    ss_dir_entry *entry = ss_dir(id);
    if (!__atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE)) continue;
    if (SS_SLABS_PER_SUPERSLAB - __atomic_load_n(&entry->active, __ATOMIC_RELAXED) < count) continue;
    unsigned run = 0;
    for (unsigned i = 1; i < SS_SLABS_PER_SUPERSLAB; i++) {
      uint32_t word = __atomic_load_n(&entry->slot_word[i], __ATOMIC_RELAXED);
      run = ss_slot_state(word) == SS_SLOT_FREE ? run + 1 : 0;
      if (run < count) continue;
      unsigned first = i + 1 - count;
      if (sp_claim_run(id, first, count)) {
        int zeroed = 1;
        for (unsigned j = first; j < first + count; j++) zeroed &= sp_settle(ss_slot_id(id, j));
        return sp_finish(id, first, count, SS_KIND_SPAN, zeroed);
      }
      run = 0;
    }
  }
  return NULL;
}

ss_slab *sp_acquire_span(unsigned slabs) {
  if (slabs == 0 || slabs > SP_MAX_SPAN_SLABS) {
    errno = EINVAL;
    return NULL;
  }
  uint64_t now = sp_tick();
  hk_stat_add(HK_STAT_SP_SPAN_ACQUIRE_CALLS, 1);
  for (;;) {
    ss_slab *head = sp_span_scan(slabs);
    if (head) {
      hk_stat_add(HK_STAT_SP_STAGE2_SHARED, 1);
      return head;
    }
    ss_superslab *superslab = ss_cache_pop();
    if (superslab) {
      hk_stat_add(HK_STAT_SP_STAGE3_CACHE, 1);
      return sp_activate(superslab, 1, slabs, SS_KIND_SPAN, now);
    }
    if (sp_map_stage(1, slabs, SS_KIND_SPAN, now, &head)) {
      hk_stat_add(head ? HK_STAT_SP_STAGE4_MAP : HK_STAT_SP_ACQUIRE_FAILURES, 1);
      return head;
    }
  }
}

void sp_release_span(ss_slab *head) {
  ss_superslab *superslab = sp_check_slab(head, "sp_release_span");
  uint64_t now = sp_tick();
  hk_stat_add(HK_STAT_SP_SPAN_RELEASE_CALLS, 1);
  unsigned count = head->span_slabs;
  hk_stat_add(HK_STAT_SP_BYTES_RELEASED, (uint64_t)count * SS_SLAB_SIZE);
  if (head->kind != SS_KIND_SPAN || count == 0 || head->span_head != head->index ||
      head->index + count > SS_SLABS_PER_SUPERSLAB)
    hk_report_invalid_pointer("sp_release_span", "not the head of a span", head);
  uint32_t id = superslab->id;
  ss_dir_entry *entry = ss_dir(id);
  if (ss_slot_state(__atomic_load_n(&entry->slot_word[head->index], __ATOMIC_RELAXED)) != SS_SLOT_ACTIVE)
    hk_report_invalid_pointer("sp_release_span", "span released twice", head);
  for (unsigned i = head->index; i < head->index + count; i++) {
    __atomic_store_n(&entry->empty_since_ms[i], now, __ATOMIC_RELAXED);
    if (!sp_free_slot(ss_slot_id(id, i), SS_SLOT_ACTIVE, SS_KIND_SPAN, 0))
      hk_report_invalid_pointer("sp_release_span", "span released twice", head);
  }
  sp_after_release(id, count, now);
}

// ---- Huge pages for dense SuperSlabs -----------------------------------------------------

static int every_slot_active(const ss_dir_entry *entry) {
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++)
    if (ss_slot_state(__atomic_load_n(&entry->slot_word[i], __ATOMIC_ACQUIRE)) != SS_SLOT_ACTIVE) return 0;
  return 1;
}

size_t sp_collapse_dense(uint64_t delay_ms) {
  uint64_t now = ss_clock_ms();
  size_t collapsed = 0;
  long dense_pages = (long)(SS_SIZE / hk_os_page_size()) / 16 * 15;
  uint32_t high = __atomic_load_n(&ss_directory_high_water, __ATOMIC_ACQUIRE);
  for (uint32_t id = 0; id < high; id++) {
    ss_dir_entry *entry = ss_dir(id);
    ss_superslab *superslab = __atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE);
    // Relaxed: the flag is only a hint of work done; the exchange below decides.
    if (!superslab || __atomic_load_n(&entry->hugepage, __ATOMIC_RELAXED)) continue;
    if (!every_slot_active(entry)) {
      __atomic_store_n(&entry->dense_since_ms, 0, __ATOMIC_RELAXED);
      continue;
    }
    uint64_t since = __atomic_load_n(&entry->dense_since_ms, __ATOMIC_RELAXED);
    if (since == 0 || now < since) {
      __atomic_store_n(&entry->dense_since_ms, now ? now : 1, __ATOMIC_RELAXED);
      continue;
    }
    if (now - since < delay_ms) continue;
    // No SuperSlab is unmapped while the trim lock is held: the range stays this SuperSlab's.
    ss_cache_hold_trims();
    if (__atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE) == superslab && every_slot_active(entry)) {
      if (hk_os_resident_pages(superslab, SS_SIZE) < dense_pages) {
        // Slots in use with pages never touched (slabs not carved yet): a collapse would make
        // them resident. Look again after another delay.
        __atomic_store_n(&entry->dense_since_ms, now, __ATOMIC_RELAXED);
      } else {
        uint32_t none = 0;
        // A decommit from now on finds the flag set and withdraws the request (ss_withdraw_hugepage).
        if (__atomic_compare_exchange_n(&entry->hugepage, &none, 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
          if (hk_os_hugepage_collapse(superslab, SS_SIZE) == 0) {
            collapsed++;
          } else {
            __atomic_store_n(&entry->hugepage, 0, __ATOMIC_RELAXED);  // the hint is withdrawn
          }
        }
      }
    }
    ss_cache_release_trims();
  }
  return collapsed;
}

// ---- Census -------------------------------------------------------------------------------

// Usable bytes of slot `index` (slot 0 holds the header page).
static uint64_t slot_bytes(unsigned index) { return SS_SLAB_SIZE - (index == 0 ? SS_HEADER_SIZE : 0); }

// Calls fn(entry, superslab, arg) for every SuperSlab mapped. No SuperSlab is unmapped while the
// trim lock is held, so every header the directory names stays readable during the walk.
static void sp_for_each_superslab(void (*fn)(ss_dir_entry *entry, ss_superslab *superslab, void *arg), void *arg) {
  ss_cache_hold_trims();
  uint32_t high = __atomic_load_n(&ss_directory_high_water, __ATOMIC_ACQUIRE);
  for (uint32_t id = 0; id < high; id++) {
    ss_dir_entry *entry = ss_dir(id);
    ss_superslab *superslab = __atomic_load_n(&entry->superslab, __ATOMIC_ACQUIRE);
    if (superslab) fn(entry, superslab, arg);
  }
  ss_cache_release_trims();
}

typedef struct {
  sp_census *out;
  sp_census_visit visit;
  void *arg;
} census_walk;

static void census_superslab(ss_dir_entry *entry, ss_superslab *superslab, void *argument) {
  census_walk *walk = argument;
  sp_census *out = walk->out;
  out->superslabs++;
  int cached = 1;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    uint32_t word = __atomic_load_n(&entry->slot_word[i], __ATOMIC_ACQUIRE);
    uint64_t bytes = slot_bytes(i), committed = (word & SS_SLOT_COMMITTED) ? bytes : 0;
    switch (ss_slot_state(word)) {
      case SS_SLOT_ACTIVE: {
        cached = 0;
        out->slots_in_use++;
        // A span's later slots are the head's: the head is visited once for the whole span.
        ss_slab *slab = &superslab->slabs[i];
        // Only with a visitor: a census of the slot states alone (the background thread's start
        // check) then reads no field a concurrent acquisition is writing.
        if (walk->visit && __atomic_load_n(&slab->span_head, __ATOMIC_RELAXED) == i) walk->visit(slab, walk->arg);
        break;
      }
      case SS_SLOT_CACHED:
        out->cached_bytes += bytes;
        out->cached_committed_bytes += committed;
        break;
      default:  // FREE, or BUSY for the moment a decommit takes
        cached = 0;
        out->slots_free++;
        out->free_bytes += bytes;
        out->free_committed_bytes += committed;
        break;
    }
  }
  out->cached_superslabs += (uint64_t)cached;
}

void sp_census_take(sp_census *out, sp_census_visit visit, void *arg) {
  *out = (sp_census){0};
  census_walk walk = {out, visit, arg};
  sp_for_each_superslab(census_superslab, &walk);
}

static void resident_free_slots(ss_dir_entry *entry, ss_superslab *superslab, void *argument) {
  uint64_t *bytes = argument;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    uint32_t word = __atomic_load_n(&entry->slot_word[i], __ATOMIC_ACQUIRE);
    if (ss_slot_state(word) == SS_SLOT_ACTIVE || !(word & SS_SLOT_COMMITTED)) continue;
    char *start;
    size_t size;
    ss_slot_range(superslab, i, &start, &size);
    long resident = hk_os_resident_pages(start, size);
    if (resident > 0) *bytes += (uint64_t)resident * hk_os_page_size();
  }
}

uint64_t sp_free_resident_bytes(void) {
  uint64_t bytes = 0;
  sp_for_each_superslab(resident_free_slots, &bytes);
  return bytes;
}

// ---- fork ---------------------------------------------------------------------------------

void sp_prefork(void) {
  pthread_mutex_lock(&sp_map_lock);
  ss_cache_hold_trims();
}

void sp_postfork_parent(void) {
  ss_cache_release_trims();
  pthread_mutex_unlock(&sp_map_lock);
  __atomic_add_fetch(&sp_map_generation, 1, __ATOMIC_RELEASE);
}

void sp_postfork_child(void) {
  // The child has one thread: re-initialising the lock is simpler than unlocking a mutex whose
  // owner bookkeeping came from the parent.
  ss_cache_release_trims();
  pthread_mutex_init(&sp_map_lock, NULL);
  __atomic_add_fetch(&sp_map_generation, 1, __ATOMIC_RELEASE);
}
