// Parked pages of sparse slabs (slab_trim.h).
#include "allocator/superslab/slab_trim.h"

#include <string.h>

#include "allocator/os/os.h"

#define TRIM_PAGE_LOG2 12
#define TRIM_PAGE_SIZE ((size_t)1 << TRIM_PAGE_LOG2)
#define TRIM_SLOT_PAGES (1u << (SS_SLAB_SIZE_LOG2 - TRIM_PAGE_LOG2))  // 16: the mask's bits
#define TRIM_MAX_BLOCKS (SS_SLAB_SIZE / 16)                            // blocks are >= 16 bytes
_Static_assert(TRIM_SLOT_PAGES <= 16, "trimmed_pages has a bit per page of a slot");

static inline uintptr_t slot_start(const ss_slab *slab) {
  return (uintptr_t)ss_slab_superslab(slab) + ((uintptr_t)slab->index << SS_SLAB_SIZE_LOG2);
}

// The pages of the slot that the block [start, start + size) overlaps, as a mask.
static inline uint32_t block_pages(uintptr_t slot, uintptr_t start, uint32_t size) {
  unsigned first = (unsigned)((start - slot) >> TRIM_PAGE_LOG2);
  unsigned last = (unsigned)((start + size - 1 - slot) >> TRIM_PAGE_LOG2);
  return ((2u << last) - 1) & ~((1u << first) - 1);
}

uint32_t ss_slab_park_free_pages(ss_slab *slab, const ss_free_list_ops *ops) {
  uint32_t size = slab->block_size;
  if (!slab->free_list || slab->span_slabs > 1 || size < 16 || hk_os_page_size() != TRIM_PAGE_SIZE) return 0;
  uintptr_t slot = slot_start(slab), base = (uintptr_t)ss_slab_base(slab);
  uint32_t carved = slab->carve / size;
  uint64_t free_bits[TRIM_MAX_BLOCKS / 64];
  memset(free_bits, 0, (carved + 63) / 64 * sizeof(uint64_t));
  for (void *block = slab->free_list; block; block = ops->next(block)) {
    uint32_t index = (uint32_t)(((uintptr_t)block - base) / size);
    if (index < carved) free_bits[index / 64] |= (uint64_t)1 << (index % 64);  // else not this slab's: left out
  }
  // Candidates: whole pages below the carve position, not parked yet, that no live block
  // overlaps (a parked page's blocks are off the list, so they count as busy here and the page
  // stays as it is; pages past the carve position were never touched and hold no memory).
  uint32_t busy = slab->trimmed_pages;
  for (uint32_t index = 0; index < carved; index++) {
    if (!(free_bits[index / 64] >> (index % 64) & 1)) busy |= block_pages(slot, base + (uintptr_t)index * size, size);
  }
  uint32_t candidates = 0;
  for (unsigned page = 0; page < TRIM_SLOT_PAGES; page++) {
    uintptr_t page_start = slot + ((uintptr_t)page << TRIM_PAGE_LOG2);
    if (page_start >= base && page_start + TRIM_PAGE_SIZE <= base + slab->carve && !(busy >> page & 1))
      candidates |= 1u << page;
  }
  if (!candidates) return 0;
  // Unlink the free blocks that touch a candidate page first: once decommitted, their link
  // words read as zero.
  void *kept_head = NULL, *kept_tail = NULL;
  for (void *block = slab->free_list, *next; block; block = next) {
    next = ops->next(block);
    uintptr_t start = (uintptr_t)block;
    if (start >= base && start < base + slab->carve && (block_pages(slot, start, size) & candidates)) continue;
    if (kept_tail) {
      ops->set_next(kept_tail, block);
    } else {
      kept_head = block;
    }
    kept_tail = block;
  }
  if (kept_tail) ops->set_next(kept_tail, NULL);
  slab->free_list = kept_head;
  ss_withdraw_hugepage(ss_slab_superslab(slab));
  uint32_t parked = 0;
  for (unsigned page = 0; page < TRIM_SLOT_PAGES;) {  // one decommit per run of pages
    if (!(candidates >> page & 1)) {
      page++;
      continue;
    }
    unsigned end = page;
    while (end < TRIM_SLOT_PAGES && (candidates >> end & 1)) end++;
    void *start = (void *)(slot + ((uintptr_t)page << TRIM_PAGE_LOG2));
    if (hk_os_decommit(start, (size_t)(end - page) << TRIM_PAGE_LOG2, HK_OS_DECOMMIT_CONFIGURED) == 0)
      parked |= ((2u << (end - 1)) - 1) & ~((1u << page) - 1);
    page = end;
  }
  if (parked != candidates) {
    // A decommit failed: the blocks that touch only its pages go back on the list (all free).
    for (uint32_t index = carved; index-- > 0;) {
      uintptr_t block = base + (uintptr_t)index * size;
      uint32_t pages = block_pages(slot, block, size);
      if (!(pages & candidates) || (pages & parked)) continue;
      ops->set_next((void *)block, slab->free_list);
      slab->free_list = (void *)block;
    }
  }
  slab->trimmed_pages = (uint16_t)(slab->trimmed_pages | parked);
  return (uint32_t)__builtin_popcount(parked);
}

uint32_t ss_slab_unpark_pages(ss_slab *slab, const ss_free_list_ops *ops) {
  uint32_t parked = slab->trimmed_pages, size = slab->block_size;
  if (!parked) return 0;
  uintptr_t slot = slot_start(slab), base = (uintptr_t)ss_slab_base(slab);
  uint32_t pages = ss_slab_release_parked(slab);
  for (uint32_t index = slab->carve / size; index-- > 0;) {
    uintptr_t block = base + (uintptr_t)index * size;
    if (!(block_pages(slot, block, size) & parked)) continue;
    ops->mark_free((void *)block);
    ops->set_next((void *)block, slab->free_list);
    slab->free_list = (void *)block;
  }
  return pages;
}

uint32_t ss_slab_release_parked(ss_slab *slab) {
  uint32_t pages = (uint32_t)__builtin_popcount(slab->trimmed_pages);
  if (!pages) return 0;
  hk_os_commit((void *)slot_start(slab), (size_t)pages << TRIM_PAGE_LOG2);
  slab->trimmed_pages = 0;
  return pages;
}
