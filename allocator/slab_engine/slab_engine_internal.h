// Private to //allocator/slab_engine: what slab_engine.c and slab_engine_trim.c share. Not a
// public header (listed in srcs only).
#ifndef HAKMEM_ALLOCATOR_SLAB_ENGINE_SLAB_ENGINE_INTERNAL_H_
#define HAKMEM_ALLOCATOR_SLAB_ENGINE_SLAB_ENGINE_INTERNAL_H_

#include <stdint.h>

#include "allocator/base/bits.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"

// ---- Counters -----------------------------------------------------------------------------------
extern se_class_stats se_counters[SE_CLASS_MAX];
extern int se_stats_enabled;  // HAKMEM_STATS != 0; stored (relaxed) at each thread's set-up

// True while counting (one relaxed load: the flag orders nothing).
#define SE_COUNTING() HK_UNLIKELY(__atomic_load_n(&se_stats_enabled, __ATOMIC_RELAXED))
// Adds to a counter unconditionally: for a caller that tested SE_COUNTING() once for several.
#define SE_ADD(class_index, field, amount) \
  __atomic_fetch_add(&se_counters[class_index].field, (uint64_t)(amount), __ATOMIC_RELAXED)
// `amount` is evaluated only while counting: never pass an expression with an effect.
#define SE_COUNT(class_index, field, amount) \
  do {                                       \
    if (SE_COUNTING()) SE_ADD(class_index, field, amount); \
  } while (0)

// ---- Trimmed pages (slab_engine_trim.c) ---------------------------------------------------------
// A slab's free pages go back in one of two ways (se_trim):
//   parked   blocks below SE_TRIM_INSIDE_MIN in a single-slot slab: the pages that only blocks of
//            the local free list overlap are decommitted and those blocks leave the list;
//            head->trimmed_pages is then a mask (bit p = 4 KiB page p of the 64 KiB slot);
//   inside   larger blocks, or any span: the whole pages inside each free block past its first
//            32 bytes are decommitted and the block stays on the list (words 2 and 3 mark
//            it); head->trimmed_pages then counts those pages, so the commit gauge stays exact.
#define SE_TRIM_INSIDE_MIN 8192

// True when `head`'s free pages are parked rather than trimmed inside its blocks.
static inline int se_parks_pages(const ss_slab *head) {
  return head->block_size < SE_TRIM_INSIDE_MIN && head->span_slabs <= 1;
}

// Gives back the free pages of `head` (owned by the caller, or abandoned with the class's lock
// held). Returns the pages decommitted.
uint32_t se_trim_slab(ss_slab *head);

// A parking slab with nothing else free: puts every block of its parked pages back on its free
// list (all of them are free) and counts the pages committed again. Returns the pages.
uint32_t se_unpark_pages(ss_slab *head);

// `block` leaves the free list of `head` (a slab trimmed inside its blocks): if pages inside it
// were decommitted, they count as committed again (the caller hands the block out). Returns them.
uint32_t se_untrim_block(ss_slab *head, void *block);

// Before `head` goes back to the pool (which counts a released slab as committed): counts its
// trimmed pages as committed again and clears the marks. Returns the pages.
uint32_t se_settle_trimmed(ss_slab *head);

#endif  // HAKMEM_ALLOCATOR_SLAB_ENGINE_SLAB_ENGINE_INTERNAL_H_
