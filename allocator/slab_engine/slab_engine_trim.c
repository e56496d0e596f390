// The free pages of sparse slabs given back while the slabs stay in use (malloc_trim): parked
// pages and pages inside free blocks (slab_engine_internal.h says which slab gets which).
#include <string.h>

#include "allocator/os/os.h"
#include "allocator/slab_engine/slab_engine_internal.h"

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

static uint32_t release_parked(ss_slab *slab);

// ---- Parked pages ---------------------------------------------------------------------------------
// Scattered frees can leave a slab a tenth full: it cannot go back to the pool, and other sizes
// cannot use its holes, so its free pages stay resident (the fragmentation benchmark: 256 MiB of
// small blocks, 90 % freed, a third of it on pages holding no live block). Only an explicit trim
// parks: a trigger on the free path cost larson 4-8 % and the python workload a third more page
// faults, and splits huge pages under live blocks (docs/tiny.md, "Tried and reverted").
//
// Parks the pages of `slab` (one slot) that only blocks of its local free list overlap. Blocks
// handed out, or freed by other threads and not collected yet, count as live. Returns the pages
// parked (0 when the page size is not 4 KiB).
static uint32_t park_free_pages(ss_slab *slab) {
  uint32_t size = slab->block_size;
  if (!slab->free_list || slab->span_slabs > 1 || size < 16 || hk_os_page_size() != TRIM_PAGE_SIZE) return 0;
  uintptr_t slot = slot_start(slab), base = (uintptr_t)ss_slab_base(slab);
  uint32_t carved = slab->carve / size;
  uint64_t free_bits[TRIM_MAX_BLOCKS / 64];
  memset(free_bits, 0, (carved + 63) / 64 * sizeof(uint64_t));
  for (void *block = slab->free_list; block; block = se_next(block)) {
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
    next = se_next(block);
    uintptr_t start = (uintptr_t)block;
    if (start >= base && start < base + slab->carve && (block_pages(slot, start, size) & candidates)) continue;
    if (kept_tail) {
      hk_link_set(kept_tail, block);
    } else {
      kept_head = block;
    }
    kept_tail = block;
  }
  if (kept_tail) hk_link_set(kept_tail, NULL);
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
      hk_link_set((void *)block, slab->free_list);
      slab->free_list = (void *)block;
    }
  }
  slab->trimmed_pages = (uint16_t)(slab->trimmed_pages | parked);
  return (uint32_t)__builtin_popcount(parked);
}

uint32_t se_unpark_pages(ss_slab *slab) {
  uint32_t parked = slab->trimmed_pages, size = slab->block_size;
  if (!parked) return 0;
  uintptr_t slot = slot_start(slab), base = (uintptr_t)ss_slab_base(slab);
  uint32_t pages = release_parked(slab);
  for (uint32_t index = slab->carve / size; index-- > 0;) {
    uintptr_t block = base + (uintptr_t)index * size;
    if (!(block_pages(slot, block, size) & parked)) continue;
    hk_block_mark_free((void *)block);
    hk_link_set((void *)block, slab->free_list);
    slab->free_list = (void *)block;
  }
  return pages;
}

static uint32_t release_parked(ss_slab *slab) {
  uint32_t pages = (uint32_t)__builtin_popcount(slab->trimmed_pages);
  if (!pages) return 0;
  hk_os_commit((void *)slot_start(slab), (size_t)pages << TRIM_PAGE_LOG2);
  slab->trimmed_pages = 0;
  return pages;
}

// ---- Pages inside free blocks -------------------------------------------------------------------
// Word 0 of a free block is its link and word 1 the hardened build's canary; words 2 and 3 record a
// trim: a marker derived from the address, and the page count. So the list stays intact and
// nothing has to be taken off it; the pages fault back in, zeroed, when the block is used again.
#define TRIM_MARKER UINT64_C(0x41434554524d4431)  // "ACETRMD1", XORed with the block address
#define TRIM_KEPT_BYTES (4 * sizeof(uintptr_t))

static inline uintptr_t trim_marker(const void *block) { return (uintptr_t)TRIM_MARKER ^ (uintptr_t)block; }

// Decommits the pages inside free block `block` (unless done already). Returns how many.
static uint32_t trim_block(void *block, uint32_t size) {
  uintptr_t *words = block;
  if (words[2] == trim_marker(block)) return 0;
  size_t page = hk_os_page_size();
  uintptr_t start = ((uintptr_t)block + TRIM_KEPT_BYTES + page - 1) & ~(page - 1);
  uintptr_t end = ((uintptr_t)block + size) & ~(page - 1);
  if (end <= start) return 0;
  ss_withdraw_hugepage(ss_from_pointer_unchecked(block));
  if (hk_os_decommit((void *)start, end - start, HK_OS_DECOMMIT_CONFIGURED) != 0) return 0;
  uint32_t pages = (uint32_t)((end - start) / page);
  words[2] = trim_marker(block);
  words[3] = pages;
  return pages;
}

uint32_t se_untrim_block(ss_slab *head, void *block) {
  uintptr_t *words = block;
  if (words[2] != trim_marker(block)) return 0;
  uint32_t pages = (uint32_t)words[3];
  if (pages > head->trimmed_pages) pages = head->trimmed_pages;  // a forged marker: stay bounded
  words[2] = 0;
  head->trimmed_pages = (uint16_t)(head->trimmed_pages - pages);
  hk_os_commit(block, (size_t)pages * hk_os_page_size());
  return pages;
}

// ---- Either way -----------------------------------------------------------------------------------
uint32_t se_trim_slab(ss_slab *head) {
  if (!head->free_list) return 0;
  if (se_parks_pages(head)) return park_free_pages(head);
  uint32_t pages = 0, size = head->block_size;
  for (void *block = head->free_list; block; block = se_next(block)) pages += trim_block(block, size);
  head->trimmed_pages = (uint16_t)(head->trimmed_pages + pages);
  return pages;
}

uint32_t se_settle_trimmed(ss_slab *head) {
  if (se_parks_pages(head)) return release_parked(head);
  uint32_t pages = head->trimmed_pages;
  // Clears the markers too, so that no block of the slab's next life looks trimmed.
  for (void *block = head->free_list; block; block = se_next(block)) se_untrim_block(head, block);
  return pages;
}

uint32_t se_slab_trimmed_pages(const ss_slab *head) {
  uint32_t word = __atomic_load_n(&head->trimmed_pages, __ATOMIC_RELAXED);
  uint32_t block_size = __atomic_load_n(&head->block_size, __ATOMIC_RELAXED);
  unsigned slots = __atomic_load_n(&head->span_slabs, __ATOMIC_RELAXED);
  // Parking slabs keep a mask of the slot's pages, the others a count (slab_engine_internal.h).
  int parks = block_size < SE_TRIM_INSIDE_MIN && slots <= 1;
  return parks ? (uint32_t)__builtin_popcount(word) : word;
}
