// Free-list links and the hardened build's checks, shared by the tiny and mid/large layers.
//
// A free block's first word links it to the next free block (thread bins, slab free lists,
// remote-free lists). In the default build the word is the plain pointer. In the hardened build
// (HK_HARDENED, the //:hakmem_*_hardened targets):
//   - the link is stored XORed with a per-process secret, so an overflow or a use-after-free
//     write into a free block cannot plant a pointer the allocator follows (the layers also check
//     every decoded link points into their own memory before using it);
//   - the second word of every free block holds a canary (secret ^ address): freeing a block whose
//     canary is present is a double free, reported and aborted; allocation clears it.
// Every block is at least 16 bytes, so both words always exist.
#ifndef HAKMEM_ALLOCATOR_BASE_FREELIST_H_
#define HAKMEM_ALLOCATOR_BASE_FREELIST_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef HK_HARDENED
#define HK_HARDENED 0
#endif

// The per-process secret (hardened build). 0 until hk_freelist_init; set once, before the first
// link is written (the layers call hk_freelist_init when a thread first refills).
extern uintptr_t hk_freelist_secret;

// Sets the secret from the kernel's AT_RANDOM bytes (no syscall, no allocation). Idempotent.
void hk_freelist_init(void);

// Stores `next` as the link of free block `block`.
static inline void hk_link_set(void *block, void *next) {
#if HK_HARDENED
  *(uintptr_t *)block = (uintptr_t)next ^ hk_freelist_secret;
#else
  *(void **)block = next;
#endif
}

// The link of free block `block`.
static inline void *hk_link_get(const void *block) {
#if HK_HARDENED
  return (void *)(*(const uintptr_t *)block ^ hk_freelist_secret);
#else
  return *(void *const *)block;
#endif
}

// The link value to store for `next` when the store itself is done elsewhere (a CAS of a list
// head keeps a plain pointer; only links inside blocks are encoded, so this is for those).
static inline uintptr_t hk_link_encode(void *next) {
#if HK_HARDENED
  return (uintptr_t)next ^ hk_freelist_secret;
#else
  return (uintptr_t)next;
#endif
}

// Hardened build: true when `block` carries the free canary (it is free already).
static inline int hk_block_is_marked_free(const void *block) {
#if HK_HARDENED
  return ((const uintptr_t *)block)[1] == (hk_freelist_secret ^ (uintptr_t)block);
#else
  (void)block;
  return 0;
#endif
}

// Hardened build: marks `block` free (sets the canary). No-op otherwise.
static inline void hk_block_mark_free(void *block) {
#if HK_HARDENED
  ((uintptr_t *)block)[1] = hk_freelist_secret ^ (uintptr_t)block;
#else
  (void)block;
#endif
}

// Hardened build: marks `block` allocated (clears the canary). No-op otherwise.
static inline void hk_block_mark_used(void *block) {
#if HK_HARDENED
  ((uintptr_t *)block)[1] = 0;
#else
  (void)block;
#endif
}

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_BASE_FREELIST_H_
