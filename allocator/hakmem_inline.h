// The front door's bodies, static inline so that both the prefixed API (hakmem.c) and the malloc
// override (malloc_override.c) get the fast paths inlined: a tiny or mid allocation that hits the
// thread cache, and a free into a slab the calling thread owns, make no out-of-line call.
//
// Private to //allocator: only hakmem.c and malloc_override.c include it.
#ifndef HAKMEM_ALLOCATOR_HAKMEM_INLINE_H_
#define HAKMEM_ALLOCATOR_HAKMEM_INLINE_H_

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/report.h"
#include "allocator/hakmem_profile.h"
#include "allocator/midlarge/ace.h"
#include "allocator/superslab/registry.h"
#include "allocator/tiny/tiny.h"

// Alignment every malloc result has (what glibc gives on x86-64).
#define HK_MIN_ALIGNMENT 16

// The bodies below must inline into malloc/free themselves (gcc would otherwise keep the larger
// ones out of line and reach them with a jump).
#define HK_ALWAYS_INLINE static inline __attribute__((always_inline))

// Out of line (hakmem.c): slow and rare paths.
void *hk_realloc_move(void *block, size_t old_usable, size_t new_size);
__attribute__((noreturn, cold)) void hk_invalid_pointer(const char *call, const void *block);
// realloc or malloc_usable_size of a block that is free: reports the use after free and aborts.
__attribute__((noreturn, cold)) void hk_freed_block(const char *call, const void *block);
// realloc or malloc_usable_size of a pointer in no SuperSlab that is no live huge block: a recently
// freed huge block's start is reported as a use after free, anything else as an invalid pointer;
// aborts. (free's own path is hk_free_outside_superslabs.)
__attribute__((noreturn, cold)) void hk_not_a_huge_block(const char *call, const void *block);
// free of a block in no SuperSlab: a huge block, else an invalid pointer. Out of line and reached
// by a tail call, so that free's fast paths keep nothing in callee-saved registers.
void hk_free_outside_superslabs(void *block, const char *call);
// The out-of-line ends of malloc and calloc: huge sizes, and every size while the heap profiler
// samples (hakmem_profile.h: its gate lowers the thresholds of the inline checks to 0).
void *hk_malloc_outside(size_t size);
void *hk_calloc_outside(size_t size);
// free of a pointer into a SuperSlab slot that no layer holds: reports and aborts. Not declared
// noreturn, so that free reaches it by a tail jump too (see se_invalid_free).
__attribute__((cold)) void hk_free_unheld_slot(void *block, const char *call);

// The two size checks compare with hk_profile_gate's thresholds (TINY_MAX_SIZE and
// ACE_HUGE_THRESHOLD unless the profiler samples): the same instruction count as constants.
HK_ALWAYS_INLINE void *hk_malloc_inline(size_t size) {
  if (HK_LIKELY(size <= hk_profile_gate.tiny_max)) return tiny_alloc(size);
  if (HK_UNLIKELY(size > hk_profile_gate.mid_max)) return hk_malloc_outside(size);
  return ace_alloc_classed(size);
}

// Frees `block` on behalf of API function `call` (named in the message for a bad pointer).
HK_ALWAYS_INLINE void hk_free_inline(void *block, const char *call) {
  if (HK_UNLIKELY(block == NULL)) return;
  ss_superslab *superslab = ss_registry_find(block);
  if (HK_LIKELY(superslab != NULL)) {
    unsigned index = ss_slot_index(block);
    unsigned head_byte = superslab->slab_heads[index];
    // A tiny slab is flagged in the header byte and is never a span, so its metadata is the
    // slot's own: that address comes from the pointer, and its loads need not wait for the byte.
    if (HK_LIKELY(head_byte & SS_HEAD_SMALL_KIND)) {
      tiny_free(block, ss_slab_at(superslab, index), call);
      return;
    }
    // The head, not the slot: for a block in a span's later slot, the slot's own metadata line
    // would be one more cache miss (free's costliest load in mid_large_mt).
    ss_slab *head = ss_head_from_byte(superslab, head_byte);
    if (HK_LIKELY(ace_owns_head(head))) {
      ace_free(block, head, call);
      return;
    }
    hk_free_unheld_slot(block, call);
    return;
  }
  hk_free_outside_superslabs(block, call);
}

HK_ALWAYS_INLINE void *hk_calloc_inline(size_t count, size_t size) {
  size_t total;
  if (HK_UNLIKELY(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  if (HK_LIKELY(total <= hk_profile_gate.tiny_max)) return tiny_calloc(total);
  return hk_calloc_outside(total);
}

// Usable size of a block of ours, or aborts naming `call` for a pointer that is not one.
HK_ALWAYS_INLINE size_t hk_usable_size_inline(const void *block, const char *call) {
  if (block == NULL) return 0;
  ss_slab *slab = ss_registry_lookup(block);
  if (HK_LIKELY(slab != NULL)) {
    size_t usable;
    if (tiny_owns_slab(slab)) {
      if (!tiny_is_block_start(block, slab)) hk_invalid_pointer(call, block);
      usable = tiny_usable_size(slab);
    } else if (ace_owns_slab(slab)) {
      if (!ace_is_block_start_in_slot(block, slab)) hk_invalid_pointer(call, block);
      usable = ace_usable_size(block, slab);
    } else {
      hk_invalid_pointer(call, block);
    }
    if (HK_UNLIKELY(hk_block_is_marked_free(block))) hk_freed_block(call, block);
    return usable;
  }
  // A block the heap profiler sampled (asked first, as free does: hk_free_outside_superslabs).
  if (HK_UNLIKELY(hk_profile_started)) {
    size_t sampled = hk_profile_block_size(block);
    if (sampled) return sampled;
  }
  size_t huge = ace_huge_usable_size(block);
  if (huge == 0) hk_not_a_huge_block(call, block);
  return huge;
}

HK_ALWAYS_INLINE void *hk_realloc_inline(void *block, size_t new_size) {
  if (block == NULL) return hk_malloc_inline(new_size);
  if (new_size == 0) {
    // glibc: realloc(p, 0) frees p and returns NULL.
    hk_free_inline(block, "realloc");
    return NULL;
  }
  ss_slab *slab = ss_registry_lookup(block);
  size_t old_usable;
  if (HK_LIKELY(slab != NULL)) {
    if (tiny_owns_slab(slab)) {
      if (!tiny_is_block_start(block, slab)) hk_invalid_pointer("realloc", block);
      if (HK_UNLIKELY(hk_block_is_marked_free(block))) hk_freed_block("realloc", block);
      old_usable = tiny_usable_size(slab);
      // In place while it uses more than half the block (or when the smallest class would hold it
      // anyway); a deeper shrink moves to a smaller class to give the space back.
      if (se_resize_in_place(new_size, old_usable) || (new_size <= old_usable && slab->kind == 0)) return block;
    } else if (ace_owns_slab(slab)) {
      if (!ace_is_block_start_in_slot(block, slab)) hk_invalid_pointer("realloc", block);
      if (HK_UNLIKELY(hk_block_is_marked_free(block))) hk_freed_block("realloc", block);
      old_usable = ace_usable_size(block, slab);
      // ace_resize's rule for a slab's block, inline: the head's line is in the cache from the
      // block-start check, and the call was a tenth of realloc_churn's realloc samples.
      if (se_resize_in_place(new_size, old_usable)) return block;
    } else {
      hk_invalid_pointer("realloc", block);
    }
  } else {
    // A sampled block in a mapping of the profiler's always moves (to a block of the new size,
    // sampled or not); one of the huge layer's leaves the profile and is resized as a huge block.
    if (HK_UNLIKELY(hk_profile_started)) {
      size_t sampled = hk_profile_resizing(block);
      if (sampled) return hk_realloc_move(block, sampled, new_size);
    }
    old_usable = ace_huge_usable_size(block);
    if (old_usable == 0) hk_not_a_huge_block("realloc", block);
    void *resized = ace_resize(block, NULL, new_size);
    if (resized) return resized;
  }
  return hk_realloc_move(block, old_usable, new_size);
}

// Aligned allocation; `alignment` is a power of two (callers check).
HK_ALWAYS_INLINE void *hk_aligned_inline(size_t alignment, size_t size) {
  if (alignment <= HK_MIN_ALIGNMENT) return hk_malloc_inline(size);
  // Power-of-two tiny classes are naturally aligned to their size (slab data starts 4 KiB- or
  // 64 KiB-aligned and blocks are packed from there), so a power of two >= both fits.
  size_t needed = size > alignment ? size : alignment;
  if (needed <= TINY_MAX_SIZE) return tiny_alloc((size_t)1 << hk_log2_ceil(needed));
  return ace_alloc_aligned(alignment, size);
}

#endif  // HAKMEM_ALLOCATOR_HAKMEM_INLINE_H_
