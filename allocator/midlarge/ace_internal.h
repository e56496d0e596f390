// Private to //allocator/midlarge:ace: what its files share. Not a public header (listed in srcs
// only). The files call each other in one direction only: ace.c (the API) -> ace_mid.c (thread
// start, refill, free) -> ace_adaptive.c (capacities) -> ace_classes.c (class table, counters,
// per-thread state); ace.c -> ace_huge.c -> ace_huge_arena.c.
#ifndef HAKMEM_ALLOCATOR_MIDLARGE_ACE_INTERNAL_H_
#define HAKMEM_ALLOCATOR_MIDLARGE_ACE_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/midlarge/ace.h"
#include "allocator/superslab/registry.h"

// Geometry and cache bounds of one class, computed once (ace_classes_init).
typedef struct {
  uint32_t block_size;
  uint32_t slots;    // 1: a pool slab (kind ACE_KIND_BASE + class); > 1: a span of that many slots
  uint32_t blocks;   // blocks per slab of `slots` x 64 KiB (a slot-0 slab holds fewer)
  uint32_t cap_min;  // bin capacity floor (a new or idle-shrunk bin)
  uint32_t cap_max;  // bin capacity ceiling (HAKMEM_ACE_CLASS_MAX_BYTES / size, clamped)
} ace_class_info;

extern ace_class_info ace_classes[ACE_CLASS_COUNT];

// Computes ace_classes once (thread-safe, lock-free after the first call).
void ace_classes_init(void);

// Per-thread, per-class adaptive state (the engine keeps the slabs).
typedef struct {
  uint32_t events;         // misses + overflows in the current epoch; bit 31: growth refused (ace_adaptive.c)
  uint32_t quiet_epochs;   // consecutive epochs without a miss or an overflow
  uint64_t last_active_ms; // last time an epoch tick (or trim) saw the class used
  uint64_t hits_seen;      // ace_bin_hits at that time (hits are the fast path's activity mark)
  uint64_t hits_folded;    // ace_bin_hits already added to the counters
} ace_class_state;

typedef struct {
  ace_class_state classes[ACE_CLASS_COUNT];
  uint64_t epoch_start_ms;  // start of the current adaptation epoch
  uint32_t slow_calls;      // slow-path calls since the clock was last read
  uint32_t denied_mib;      // the budget's limit (MiB) when it last refused this thread a growth
  uint64_t clock_ms;        // the last clock reading of a slow path (a bound on recent use)
  uint64_t budget_held;     // bytes of bin capacity this thread holds in the global budget
} ace_thread_state;

extern __thread ace_thread_state ace_slow __attribute__((tls_model("initial-exec")));

// ---- Counters -------------------------------------------------------------------------------
extern ace_class_stats ace_class_counters[ACE_CLASS_COUNT];
extern int ace_stats_enabled;  // HAKMEM_STATS != 0, stored at each thread's set-up (relaxed atomic)

#define ACE_COUNT(class_index, field, amount)                                                    \
  do {                                                                                           \
    if (__builtin_expect(__atomic_load_n(&ace_stats_enabled, __ATOMIC_RELAXED), 0))                                                \
      __atomic_fetch_add(&ace_class_counters[class_index].field, (uint64_t)(amount), __ATOMIC_RELAXED); \
  } while (0)

// Folds the calling thread's bin hit counts into the counters.
void ace_fold_hits(void);

// ---- Mid/large classes (ace_mid.c) -------------------------------------------------------------
// True when ACE started on the calling thread (bins given capacities, budget charged) since its
// last flush.
int ace_thread_started(void);
// A fresh block of class `c` from never-used pages of a known-zero slab, or NULL.
void *ace_take_zeroed(unsigned c);
// malloc_trim: gives back the free pages of the calling thread's and abandoned slabs of ACE's
// classes (se_trim; other live threads' slabs are left alone). Returns the bytes decommitted.
size_t ace_trim_free_blocks(void);

// ---- Adaptive cache engine (ace_adaptive.c) -----------------------------------------------------
// Gives the thread's bins their floor capacities (charged to the budget).
void ace_adapt_thread_start(void);
// A miss or an overflow in class `c`: grow the bin when the budget allows.
void ace_adapt_event(unsigned c);
// Called on slow paths: every so often reads the clock and, at each epoch's end, shrinks quiet
// bins and flushes classes idle past HAKMEM_ACE_IDLE_MS.
void ace_adapt_tick(void);
// Releases idle (all, with force) classes of the calling thread now; ACE has started on the
// thread (ace_thread_started). Returns bytes released.
size_t ace_adapt_trim(int force);
// Gives the thread's whole capacity back to the budget (thread flush).
void ace_adapt_thread_stop(void);
// Bytes granted now, and the limit.
uint64_t ace_budget_used(void);
uint64_t ace_budget_limit(void);

// ---- Huge arena (ace_huge_arena.c): every call with ace_huge.c's lock held -------------------

// Carves `length` bytes (a page multiple > ACE_HUGE_THRESHOLD) at `alignment` (a power of two
// >= the page size), preferring free committed pages; sets *zeroed when they all read as zero.
// NULL when no region has room and no new one can be mapped.
void *ace_arena_alloc(size_t length, size_t alignment, uint64_t now_ms, int *zeroed);
// Gives an arena block (or the tail of one) back; its pages stay committed within the bounds.
void ace_arena_free(void *block, size_t length, uint64_t now_ms);
// Gives back an arena block whose pages were moved away (hk_os_move_pages): free, decommitted, zero.
void ace_arena_free_emptied(void *block, size_t length, uint64_t now_ms);
// Extends the arena block [block, block + length) into the free space right after it: to
// `wanted` bytes when there is room, else to at least `needed`. The new length, or 0.
size_t ace_arena_grow_in_place(void *block, size_t length, size_t needed, size_t wanted);
// Decommits free committed spans idle past HAKMEM_HUGE_CACHE_TTL_MS and unmaps regions free
// that long (all of them with `force`); unforced calls do work at most every 50 ms. Returns the
// committed bytes given back.
size_t ace_arena_age(uint64_t now_ms, int force);
void ace_arena_stats(ace_stats *out);

// ---- Huge blocks (ace_huge.c) -----------------------------------------------------------------
void *ace_huge_resize(void *block, size_t new_size);
size_t ace_huge_trim(int force);
void *ace_huge_alloc_zeroed(size_t size);
void ace_huge_prefork(void);
void ace_huge_postfork_parent(void);
void ace_huge_postfork_child(void);
void ace_huge_stats(ace_stats *out);

#endif  // HAKMEM_ALLOCATOR_MIDLARGE_ACE_INTERNAL_H_
