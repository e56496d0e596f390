// Free-list links and the free-block mark, shared by the layers that keep free lists (the slab
// engine; ACE's huge blocks keep none).
//
// A free block's first word links it to the next free block (thread bins, slab free lists,
// remote-free lists). In every build:
//   - the link is stored XORed with a per-process secret (from the kernel's AT_RANDOM), so an
//     overflow or a use-after-free write into a free block cannot plant a pointer the allocator
//     follows: a forged word decodes to a random value, which the layer's check before following it
//     (alignment and the user address range; the hardened build also asks the registry) rejects;
//   - the second word of every free block holds a mark (secret ^ address): freeing a block whose
//     mark is present is a double free, reported and aborted; allocation clears it.
// Every block is at least 16 bytes, so both words always exist. HK_HARDENED (the
// //:hakmem_*_hardened targets) adds what costs measurably more: see the layers' checks.
#ifndef HAKMEM_ALLOCATOR_BASE_FREELIST_H_
#define HAKMEM_ALLOCATOR_BASE_FREELIST_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef HK_HARDENED
#define HK_HARDENED 0
#endif

// The per-process secret. 0 until hk_freelist_init; set once, before the first link is written
// (the slab engine calls hk_freelist_init when it sets a thread up). Plain loads: it is written
// once, and every thread that writes or reads a link has called hk_freelist_init first, whose
// acquire load (or compare-exchange) made the value visible.
extern uintptr_t hk_freelist_secret;

// Sets the secret from the kernel's AT_RANDOM bytes (no syscall, no allocation). Idempotent.
void hk_freelist_init(void);

// Stores `next` as the link of free block `block` (encoded).
static inline void hk_link_set(void *block, void *next) { *(uintptr_t *)block = (uintptr_t)next ^ hk_freelist_secret; }

// The link of free block `block`, decoded (not checked: the caller checks it before following it).
static inline void *hk_link_get(const void *block) {
  return (void *)(*(const uintptr_t *)block ^ hk_freelist_secret);
}

// Bits no valid link has: any of the low four (blocks are 16-byte aligned) and any above the 47
// bits of a user address. A decoded link with one of them set was not written by the allocator.
#define HK_LINK_INVALID_BITS (~(((uintptr_t)1 << 47) - 1) | (uintptr_t)15)

// True when `next`, a decoded link, cannot be a block (NULL, the end of a list, is valid).
static inline int hk_link_is_invalid(const void *next) { return ((uintptr_t)next & HK_LINK_INVALID_BITS) != 0; }

// The free mark of `block`: the value its second word holds while it is free.
static inline uintptr_t hk_block_free_mark(const void *block) { return hk_freelist_secret ^ (uintptr_t)block; }

// True when `block` carries the free mark (it is free already).
static inline int hk_block_is_marked_free(const void *block) {
  return ((const uintptr_t *)block)[1] == hk_block_free_mark(block);
}

// The same, for a reader that does not own the block (a census of running threads' slabs): one
// relaxed load, as the owner may be writing the word.
static inline int hk_block_is_marked_free_relaxed(const void *block) {
  return __atomic_load_n(&((const uintptr_t *)block)[1], __ATOMIC_RELAXED) == hk_block_free_mark(block);
}

// Marks `block` free (sets the mark).
static inline void hk_block_mark_free(void *block) { ((uintptr_t *)block)[1] = hk_block_free_mark(block); }

// Marks `block` allocated (clears the mark).
static inline void hk_block_mark_used(void *block) { ((uintptr_t *)block)[1] = 0; }

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_BASE_FREELIST_H_
