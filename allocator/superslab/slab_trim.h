// Parked pages: malloc_trim's way to give back the free pages of a sparse single-slot slab whose
// blocks are too small to hold a whole page each (tiny's classes, ACE's classes below 8 KiB).
//
// The pages of the slot that only blocks of the slab's local free list overlap are decommitted.
// Their blocks leave the free list first (once decommitted, their link words would read as
// zero): they are "parked", and bit p of slab->trimmed_pages marks page p of the 64 KiB slot.
// ss_slab_unpark_pages puts them all back when the owning layer finds the slab with nothing else
// free; ss_slab_release_parked corrects the commit gauge when the slab goes back to the pool.
//
// The free-list format belongs to the layer (plain or hardened links), so it passes its own link
// operations. Owner-only state like the free list: the caller owns the slab, or holds the lock
// that guards it (an abandoned slab).
#ifndef HAKMEM_ALLOCATOR_SUPERSLAB_SLAB_TRIM_H_
#define HAKMEM_ALLOCATOR_SUPERSLAB_SLAB_TRIM_H_

#include <stdint.h>

#include "allocator/superslab/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

// A layer's free-list operations.
typedef struct {
  void *(*next)(const void *block);        // the link of a free block (checked by the layer)
  void (*set_next)(void *block, void *next);
  void (*mark_free)(void *block);          // sets the hardened build's free canary (or nothing)
} ss_free_list_ops;

// Parks the pages of `slab` (one slot, blocks of slab->block_size carved up to slab->carve from
// ss_slab_base) that only blocks of its local free list overlap. Blocks handed out, or freed by
// other threads and not collected yet, count as live. Returns the pages parked (0 for a span, or
// when the page size is not 4 KiB).
uint32_t ss_slab_park_free_pages(ss_slab *slab, const ss_free_list_ops *ops);

// Puts every block that touches a parked page back on the slab's free list (all of them are
// free) and counts the pages as committed again. Returns the pages.
uint32_t ss_slab_unpark_pages(ss_slab *slab, const ss_free_list_ops *ops);

// Before a slab with parked pages goes back to the pool (which counts it as committed): counts
// the parked pages as committed and clears the mask. Returns the pages.
uint32_t ss_slab_release_parked(ss_slab *slab);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_SUPERSLAB_SLAB_TRIM_H_
