// The tiny front: blocks of 1 B .. 1 KiB (the classes are in tiny_size_classes.h).
//
// A thin user of the slab engine (slab_engine.h), whose classes 0 .. TINY_CLASS_COUNT - 1 are
// tiny's. What is tiny's own: the size-to-class table, the inline fast paths below (a bin hit; a
// free into a slab the calling thread owns while its bin has room: no lock, no atomic
// read-modify-write, no syscall, no out-of-line call), the block-start check's geometry word, and
// the policy in tiny.c: fixed bin capacities (~32 KiB of blocks), refills that start small and
// double, and the maintenance tick that flushes idle classes.
#ifndef HAKMEM_ALLOCATOR_TINY_TINY_H_
#define HAKMEM_ALLOCATOR_TINY_TINY_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"
#include "allocator/tiny/tiny_size_classes.h"

#ifdef __cplusplus
extern "C" {
#endif

// Per-class counters: the engine's (se_class_stats).
typedef se_class_stats tiny_class_stats;

// The calling thread's bin of class `class_index`.
static inline se_bin *tiny_bin_of(unsigned class_index) { return &se_thread.bins[class_index]; }

// Out-of-line paths (tiny.c).
void *tiny_alloc_refill(unsigned class_index);
// se_free_slow with the slab's class: out of line, so that free's fast path keeps nothing for it.
void tiny_free_slow(void *block, ss_slab *slab);
// Allocates a block of class `class_index`: a bin pop, or the refill path.
static inline void *tiny_alloc_class(unsigned class_index) {
  void *block = se_bin_pop(tiny_bin_of(class_index));
  if (__builtin_expect(block != NULL, 1)) return block;
  return tiny_alloc_refill(class_index);
}

// Allocates a block of at least `size` bytes (size <= TINY_MAX_SIZE), or NULL with ENOMEM.
static inline void *tiny_alloc(size_t size) { return tiny_alloc_class(tiny_size_to_class(size)); }

// The block-start check's key for a block `offset` bytes past the slab's first block: the low
// 32 bits of offset * reciprocal (tiny_class_reciprocal). For an offset below 2^16 that is a
// multiple of the size it is the block's index times (size * reciprocal - 2^32), which lies in
// 1 .. size, so the keys of the slab's block starts rise with the index and the last block's is
// below 2^16; every other offset's key is at least the reciprocal (>= 2^22). An offset before the
// first block (slot 0's header page) wraps to 2^32 - 4096 or more and also gets a large key. So
// a pointer is a block start exactly when its key is below the last block's + 1 (tested for
// every class and every offset of slot 0 and of a later slot; the largest such end is 65,521).
static inline uint32_t tiny_block_start_key(uint32_t offset, uint32_t reciprocal) { return offset * reciprocal; }

// A tiny slab's geometry, in its `user_tag` word (set when the slab is given a class; 0, which no
// pointer passes, until then): the class's reciprocal (bits 0-31), the offset of the first block
// within the 64 KiB slot (bits 32-47: 4096 in slot 0, after the header page, else 0) and the end
// of the keys, the last block's key + 1 (bits 48-63). One load gives free's block-start check all
// it needs.
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tiny_is_block_start reads the geometry word's fields at little-endian byte offsets"
#endif
static inline uint64_t tiny_slab_geometry(uint32_t reciprocal, uint32_t first_offset, uint32_t last_distance) {
  uint64_t key_end = (uint64_t)tiny_block_start_key(last_distance, reciprocal) + 1;
  return (uint64_t)reciprocal | (uint64_t)first_offset << 32 | key_end << 48;
}

// True when `block` is the start of a block of `slab` (a tiny slab): in range and on a block
// boundary, with one multiply and one compare (tiny_block_start_key).
static inline int tiny_is_block_start(const void *block, const ss_slab *slab) {
  // A tiny slab is one slot, so the block's offset in it is the address's low 16 bits.
  // The three fields are read as three narrow loads (memcpy: no aliasing question; the byte
  // offsets are the word's little-endian layout), not as one word and shifts: fewer instructions.
  const char *geometry = (const char *)&slab->user_tag;
  uint32_t reciprocal;
  uint16_t first_offset, key_end;
  memcpy(&reciprocal, geometry, 4);
  memcpy(&first_offset, geometry + 4, 2);
  memcpy(&key_end, geometry + 6, 2);
  uint32_t offset = (uint32_t)(uint16_t)(uintptr_t)block - first_offset;
  return tiny_block_start_key(offset, reciprocal) < key_end;
}

// Frees `block`, which lies in tiny slab `slab` (as ss_registry_lookup found it). `call` names the
// API function for the message when the pointer is not a block start. A free that finds the bin
// exactly full goes to the slow path, where a burst of frees gives the bin back to its slabs
// (tiny.c, bin_full).
static inline void tiny_free(void *block, ss_slab *slab, const char *call) {
  if (__builtin_expect(se_free_fast(block, slab, slab->kind, tiny_is_block_start(block, slab), call, 1), 1)) return;
  tiny_free_slow(block, slab);
}

// The usable size of a tiny block: its class size.
static inline size_t tiny_usable_size(const ss_slab *slab) { return slab->block_size; }

// True when `slab` (from ss_registry_lookup) belongs to the tiny front.
static inline int tiny_owns_slab(const ss_slab *slab) { return slab->kind < TINY_CLASS_COUNT; }

// Allocates a zero-filled block of at least `size` bytes. A block carved from never-touched
// pages of the thread's current slab is handed out without a memset; others are cleared.
void *tiny_calloc(size_t size);

// Memory return on the program's own calls: every 16th slow-path call of a thread reads the
// clock, and at most every TINY_MAINTENANCE_PERIOD_MS the thread flushes its classes idle for
// HAKMEM_TINY_IDLE_MS (bin, spare slab, empty current slab: se_flush_class), then, at the end of
// that slow path (a refill or a free, done), calls the hook registered here with `due` set: the
// front door ages the other layers' caches with it. The hook also runs at the end of every refill
// (`allocating` 1, `due` 0 unless the tick ran), where it may allocate (the front door may start its
// background thread there); never at the end of a free unless due, and then it must not allocate:
// glibc frees memory while it holds locks that pthread_create takes.
// A program that keeps allocating therefore keeps returning memory.
#define TINY_MAINTENANCE_PERIOD_MS 100
void tiny_set_maintenance_hook(void (*hook)(int allocating, int due));

// malloc_trim's part: flushes the calling thread's bins and abandons its slabs (se_thread_flush,
// every class), then gives back the free pages of sparse tiny slabs (se_trim): abandoned slabs
// left with no live block go to the pool, the others' pages that hold only free blocks are
// parked; those blocks are used again once the rest of their slab's are. Slabs of other live
// threads are not touched. Returns the bytes decommitted.
size_t tiny_trim(void);

// Sums the per-class counters into `out` (TINY_CLASS_COUNT entries).
void tiny_stats_get(tiny_class_stats *out);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_TINY_TINY_H_
