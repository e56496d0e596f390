// ACE entry points that are not fast paths: calloc, aligned allocation, resize, trim, fork, stats.
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/os/os.h"
#include "allocator/superslab/registry.h"

// The rounded-up reciprocal of each class size.
#define R(c) (UINT64_MAX / ACE_CLASS_SIZE(c) + 1)
#define R8(c) R(c), R(c + 1), R(c + 2), R(c + 3), R(c + 4), R(c + 5), R(c + 6), R(c + 7)
const uint64_t ace_class_reciprocal[ACE_CLASS_COUNT] = {R8(0), R8(8), R8(16), R8(24), R8(32), R8(40)};
_Static_assert(ACE_CLASS_COUNT == 48, "one R8 per eight classes");
#undef R8
#undef R

// A bin pop for a given class (ace_alloc computes the class from the size).
static inline void *alloc_class(unsigned c) {
  void *block = se_bin_pop(ace_bin_of(c));
  if (HK_LIKELY(block != NULL)) {
    ace_bin_hits[c]++;
    return block;
  }
  return ace_alloc_refill(c);
}

void *ace_calloc(size_t size) {
  if (size > ACE_HUGE_THRESHOLD) return ace_huge_alloc_zeroed(size);
  unsigned c = ace_size_to_class(size);
  void *block = ace_take_zeroed(c);
  if (block) return block;
  block = alloc_class(c);
  if (block) memset(block, 0, size);
  return block;
}

// The alignment every block of class c has: slab and span bases are 4 KiB aligned (slot 0
// starts 4 KiB in; other slots 64 KiB aligned), so blocks share the block size's power-of-two
// factor up to 4 KiB.
static inline size_t class_alignment(unsigned c) {
  size_t size = ace_class_size(c);
  size_t factor = size & (~size + 1);
  return factor < 4096 ? factor : 4096;
}

void *ace_alloc_aligned(size_t alignment, size_t size) {
  if (size < ACE_MIN_SIZE) size = ACE_MIN_SIZE;
  if (size <= ACE_HUGE_THRESHOLD && alignment <= 4096) {
    for (unsigned c = ace_size_to_class(size); c < ACE_CLASS_COUNT; c++)
      if (class_alignment(c) >= alignment) return alloc_class(c);
  }
  return ace_huge_alloc(size, alignment);
}

void *ace_alloc_growable(size_t size) {
  if (size > ACE_ARENA_MIN_SIZE) return ace_huge_alloc(size, 0);
  return ace_alloc(size);
}

void *ace_resize(void *block, ss_slab *slab, size_t new_size) {
  if (!slab) return ace_huge_resize(block, new_size);
  size_t size = ss_slab_head(slab)->block_size;
  if (se_resize_in_place(new_size, size)) return block;
  return NULL;
}

size_t ace_trim(int force) {
  size_t bytes = (ace_thread_started() ? ace_adapt_trim(force) : 0) + ace_huge_trim(force);
  // A forced trim (malloc_trim) also gives back the pages inside free blocks of slabs that still
  // hold live ones; the bins are empty by now, so every free block of ours is on a slab's list.
  if (force) bytes += ace_trim_free_blocks();
  return bytes;
}

void ace_prefork(void) { ace_huge_prefork(); }

void ace_postfork_parent(void) { ace_huge_postfork_parent(); }

void ace_postfork_child(void) { ace_huge_postfork_child(); }

void ace_stats_get(ace_stats *out) {
  memset(out, 0, sizeof(*out));
  if (ace_thread_started()) ace_fold_hits();
  se_class_stats engine[ACE_CLASS_COUNT];
  se_stats_get(ACE_KIND_BASE, ACE_CLASS_COUNT, engine);
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    const uint64_t *source = (const uint64_t *)&ace_class_counters[c];
    uint64_t *target = (uint64_t *)&out->classes[c];
    for (size_t i = 0; i < sizeof(ace_class_stats) / sizeof(uint64_t); i++)
      target[i] = __atomic_load_n(&source[i], __ATOMIC_RELAXED);  // relaxed: counters only add up
    // The block and slab movements are the engine's counters.
    ace_class_stats *mine = &out->classes[c];
    mine->blocks_refilled = engine[c].blocks_refilled;
    mine->blocks_flushed = engine[c].blocks_flushed;
    mine->remote_frees = engine[c].remote_frees;
    mine->slabs_acquired = engine[c].slabs_acquired;
    mine->slabs_released = engine[c].slabs_released;
    mine->slabs_abandoned = engine[c].slabs_abandoned;
    mine->slabs_adopted = engine[c].slabs_adopted;
    mine->remote_collected = engine[c].remote_collected;
    mine->abandoned_lock_takes = engine[c].abandoned_lock_takes;
    mine->pages_parked = engine[c].pages_parked;
    mine->pages_unparked = engine[c].pages_unparked;
    mine->refill_splices = engine[c].refill_splices;
    mine->spare_reuses = engine[c].spare_reuses;
  }
  out->budget_used = ace_budget_used();
  out->budget_limit = ace_budget_limit();
  ace_huge_stats(out);
}
