// Internals shared by registry.c and shared_pool.c only (listed in both targets' srcs, in no
// target's hdrs): the SuperSlab directory with the slot state words, and a versioned lock-free
// stack of 32-bit ids.
//
// Why a directory: lock-free readers (a thread popping a free list, a scanner) can hold a slot id
// after the SuperSlab behind it was unmapped. Everything they read or CAS therefore lives here, in
// a reservation that is never unmapped, not in the SuperSlab: a stale id then costs a failed CAS,
// never a fault. The SuperSlab header keeps what the slab's user needs (ss_slab).
#ifndef HAKMEM_ALLOCATOR_SUPERSLAB_SUPERSLAB_INTERNAL_H_
#define HAKMEM_ALLOCATOR_SUPERSLAB_SUPERSLAB_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/superslab/registry.h"

// Most SuperSlabs mapped at once: 65,536 x 2 MiB = 128 GiB of slab memory (blocks above
// 512 KiB are mapped on their own by the huge path). The directory reserves 36 MiB of address
// space (MAP_NORESERVE); only the entries in use are ever touched.
#define SS_DIRECTORY_MAX ((uint32_t)1 << 16)

// ---- Slot state words ---------------------------------------------------------------------
// One 32-bit word per slot. Every transition is a CAS on the whole word, so the state, the
// LISTED bit and the page facts change together (no store/load races between them).
//   state FREE   : nobody owns it; with ZERO it is the spec's UNUSED (pages known zero: never
//                  touched or decommitted with DONTNEED), without ZERO the spec's EMPTY
//   state ACTIVE : handed to a user by sp_acquire_slab / sp_acquire_span
//   state BUSY   : held for a moment by a thread decommitting it (or rolling back a claim)
//   state CACHED : its SuperSlab is held whole: in the LRU cache, being mapped, or unmapped
//   LISTED       : the slot id sits in exactly one list or hot slot (whoever sets LISTED
//                  pushes it; whoever pops it clears LISTED, claiming it when FREE)
//   COMMITTED    : its pages are counted in os.bytes_committed (clear after a decommit)
//   ZERO         : its pages are known to read as zero
//   kind         : bits 16..31, the last kind it served (SS_KIND_SPAN for span slots)
#define SS_SLOT_FREE 0u
#define SS_SLOT_ACTIVE 1u
#define SS_SLOT_BUSY 2u
#define SS_SLOT_CACHED 3u
#define SS_SLOT_STATE_MASK 7u
#define SS_SLOT_LISTED 8u
#define SS_SLOT_COMMITTED 16u
#define SS_SLOT_ZERO 32u
#define SS_SLOT_KIND_SHIFT 16

static inline uint32_t ss_slot_state(uint32_t word) { return word & SS_SLOT_STATE_MASK; }
static inline uint32_t ss_slot_kind(uint32_t word) { return word >> SS_SLOT_KIND_SHIFT; }
static inline uint32_t ss_slot_with_state(uint32_t word, uint32_t state) {
  return (word & ~SS_SLOT_STATE_MASK) | state;
}
static inline uint32_t ss_slot_with_kind(uint32_t word, uint32_t kind) {
  return (word & ((1u << SS_SLOT_KIND_SHIFT) - 1)) | (kind << SS_SLOT_KIND_SHIFT);
}

// ---- Directory ----------------------------------------------------------------------------
typedef struct {
  // The SuperSlab with this id, NULL when none. Release store after the header and the slot
  // words are initialised; acquire loads. Cleared (release) before the SuperSlab is unmapped.
  ss_superslab *superslab;
  // ACTIVE slots. acq_rel RMWs: the thread that brings it to 0 tries to retire the SuperSlab.
  uint32_t active;
  // 1 while one thread tries to retire the SuperSlab to the cache (acquire exchange, release
  // store): two retirers would only undo each other's CASes.
  uint32_t retiring;
  // 1 while the SuperSlab, fully free, is one of the HAKMEM_SS_KEEP_FREE kept in service instead
  // of retired (counted in sp_kept_free). Set by the releaser that brought `active` to 0; cleared
  // by exchange (relaxed: a heuristic count, see shared_pool.c) by the next claim or retirement.
  uint32_t kept_free;
  // Link (id + 1, 0 = end) in the LRU cache stack or the free-id stack (never both). Relaxed:
  // the stacks' release push / acquire pop order it; a stale read fails the versioned CAS.
  uint32_t stack_next;
  // 1 while the SuperSlab's mapping asks for transparent huge pages. The first decommit in it
  // exchanges it to 0 (relaxed: only one caller must withdraw the request) and withdraws it.
  uint32_t hugepage;
  // Since when (ms) the background thread has seen every slot in use (0: not seen so); only that
  // thread reads and writes it (sp_collapse_dense), and the mapping resets it.
  uint64_t dense_since_ms;
  // When it entered the LRU cache (ms). Written by the pusher before its release push, read by
  // the thread that took it with an acquire pop.
  uint64_t cached_since_ms;
  uint32_t slot_word[SS_SLABS_PER_SUPERSLAB];  // atomic; see above; CAS acq_rel
  uint32_t slot_next[SS_SLABS_PER_SUPERSLAB];  // free-list links, like stack_next
  // When each slot last became FREE (ms). Relaxed: stored before the release CAS that frees the
  // slot, read after an acquire load of the word; a stale value only shifts a decommit.
  uint64_t empty_since_ms[SS_SLABS_PER_SUPERSLAB];
} __attribute__((aligned(64))) ss_dir_entry;

// The directory reservation (published once with a release store) and the ids ever handed out
// (ids below it may be in use; acquire loads).
extern ss_dir_entry *ss_directory;
extern uint32_t ss_directory_high_water;

static inline ss_dir_entry *ss_dir(uint32_t id) { return &ss_directory[id]; }

// Global slot ids: directory id * 32 + slab index.
static inline uint32_t ss_slot_id(uint32_t dir_id, unsigned index) {
  return dir_id * SS_SLABS_PER_SUPERSLAB + index;
}
static inline uint32_t *ss_slot_word(uint32_t slot) {
  return &ss_directory[slot / SS_SLABS_PER_SUPERSLAB].slot_word[slot % SS_SLABS_PER_SUPERSLAB];
}

// Decommits the slots of `superslab` in `mask` that are COMMITTED, never-touched (ZERO) ones too
// so the os.bytes_committed gauge stays exact (the caller holds them: BUSY or CACHED), one
// madvise per contiguous run; updates their words. Returns the
// bytes decommitted.
size_t ss_decommit_slots(ss_superslab *superslab, uint32_t mask);

// The slot's byte range [*start, *start + *size) (slot 0 without the header page).
static inline void ss_slot_range(ss_superslab *superslab, unsigned index, char **start, size_t *size) {
  *start = (char *)superslab + ((size_t)index << SS_SLAB_SIZE_LOG2) + (index == 0 ? SS_HEADER_SIZE : 0);
  *size = SS_SLAB_SIZE - (index == 0 ? SS_HEADER_SIZE : 0);
}

// True when decommitting with the configured advice leaves pages reading as zero.
int ss_decommit_zeroes(void);

// Hold / release the cache-trim lock: no SuperSlab is unmapped while it is held (only cache
// trims unmap). Fork holds it across fork(); sp_census_take across its walk.
void ss_cache_hold_trims(void);
void ss_cache_release_trims(void);

// ---- Versioned lock-free stack of ids ------------------------------------------------------
// head = (version << 32) | (id + 1); low half 0 = empty. Every push and pop bumps the version,
// so a pop that read a stale link (the head was popped and pushed again meanwhile: ABA) fails
// its CAS. Links live in the never-unmapped directory, so reading a stale one is harmless.
typedef uint32_t *(*ss_link_of)(uint32_t id);

static inline void ss_stack_push(uint64_t *head, ss_link_of link, uint32_t id) {
  uint64_t old = __atomic_load_n(head, __ATOMIC_RELAXED);
  uint64_t desired;
  do {
    __atomic_store_n(link(id), (uint32_t)old, __ATOMIC_RELAXED);
    desired = (((old >> 32) + 1) << 32) | (uint64_t)(id + 1);
    // Release: the link and everything the pusher wrote before are visible to the popper.
  } while (!__atomic_compare_exchange_n(head, &old, desired, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

// Pops an id, or returns UINT32_MAX when empty.
static inline uint32_t ss_stack_pop(uint64_t *head, ss_link_of link) {
  // Acquire: pairs with the pusher's release, so the link read below is the one it wrote.
  uint64_t old = __atomic_load_n(head, __ATOMIC_ACQUIRE);
  while ((uint32_t)old != 0) {
    uint32_t id = (uint32_t)old - 1;
    uint32_t next = __atomic_load_n(link(id), __ATOMIC_RELAXED);
    uint64_t desired = (((old >> 32) + 1) << 32) | next;
    if (__atomic_compare_exchange_n(head, &old, desired, 1, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) return id;
  }
  return UINT32_MAX;
}

// True when the stack looks empty (a relaxed hint).
static inline int ss_stack_empty(const uint64_t *head) {
  return (uint32_t)__atomic_load_n(head, __ATOMIC_RELAXED) == 0;
}

#endif  // HAKMEM_ALLOCATOR_SUPERSLAB_SUPERSLAB_INTERNAL_H_
