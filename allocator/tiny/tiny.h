// The tiny front: blocks of 1 B .. 1 KiB (the classes are in tiny_size_classes.h).
//
// Each thread keeps, per class, a cache ("bin") of free blocks as a singly linked list threaded
// through the blocks' first word. Allocation that hits the bin and a free of a block from a slab
// the calling thread owns are the inline fast paths below: no lock, no atomic read-modify-write,
// no syscall, no out-of-line call. Everything else is in tiny.c:
//   refill   a batch from the thread's current slab: its local free list, then the blocks other
//            threads freed to it (one atomic exchange), then fresh blocks carved from it, then
//            another owned slab with free blocks, an abandoned slab (adoption), a pool slab;
//   flush    when a bin is full, half of it goes back to its slabs; a slab whose last block
//            comes back is released to the shared pool at once;
//   remote   a block of another thread's slab is pushed on that slab's atomic remote list;
//   exit     a pthread key destructor flushes the bins and abandons the thread's slabs; slabs
//            still holding live blocks wait on a per-class list for another thread to adopt.
#ifndef HAKMEM_ALLOCATOR_TINY_TINY_H_
#define HAKMEM_ALLOCATOR_TINY_TINY_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "allocator/base/freelist.h"
#include "allocator/superslab/registry.h"
#include "allocator/tiny/tiny_size_classes.h"

#ifdef __cplusplus
extern "C" {
#endif

// A per-thread cache of free blocks of one class.
typedef struct {
  void *head;         // first free block; each block's first word points to the next
  uint32_t count;     // blocks in the list
  uint32_t capacity;  // a free beyond this flushes half the bin back to the slabs
} tiny_bin;

// The calling thread's tiny state. Initial-exec TLS: one fixed offset from the thread pointer,
// no __tls_get_addr call (the preload library is loaded at start-up, so static TLS is available).
typedef struct {
  tiny_bin bins[TINY_CLASS_COUNT];
  uint64_t owner_id;  // this thread's id in slab owner fields; 0 until the thread's first refill
} tiny_thread_cache;

extern __thread tiny_thread_cache tiny_thread __attribute__((tls_model("initial-exec")));

// Per-class counters, summed over every thread (relaxed atomics, bumped on slow paths only).
typedef struct {
  uint64_t refills;              // bin refills
  uint64_t blocks_refilled;      // blocks moved into bins by refills
  uint64_t flushes;              // bin flushes (bin full, or thread exit)
  uint64_t blocks_flushed;       // blocks moved from bins back to slabs
  uint64_t remote_frees;         // blocks pushed onto another thread's (or an abandoned) slab
  uint64_t remote_collected;     // remotely freed blocks collected by owners
  uint64_t slabs_acquired;       // slabs taken from the shared pool
  uint64_t slabs_released;       // slabs given back to the pool (their last block came back)
  uint64_t slabs_abandoned;      // slabs left with live blocks by an exiting thread
  uint64_t slabs_adopted;        // abandoned slabs taken over by another thread
  uint64_t abandoned_lock_takes; // acquisitions of the per-class abandoned-list lock
  uint64_t pages_parked;         // 4 KiB pages of sparse slabs decommitted by tiny_trim
  uint64_t pages_unparked;       // parked pages taken back (blocks reused, or the slab released)
} tiny_class_stats;

// Out-of-line paths (tiny.c).
void *tiny_alloc_refill(unsigned class_index);
void tiny_free_slow(void *block, ss_slab *slab);
// Report the bad pointer and abort. Not declared noreturn: free reaches them by a tail jump, so its
// fast path needs no stack frame (gcc makes a noreturn call a real call, with the stack aligned).
__attribute__((cold)) void tiny_invalid_free(void *block, const char *call);
__attribute__((cold)) void tiny_double_free(void *block, const char *call);
__attribute__((noreturn, cold)) void tiny_corrupted_list(const void *block);

// The next free block after `block` (hardened build: decoded, and checked to be one of ours).
static inline void *tiny_next(const void *block) {
  void *next = hk_link_get(block);
#if HK_HARDENED
  if (next && (((uintptr_t)next & 15) != 0 || !ss_registry_find(next))) tiny_corrupted_list(block);
#endif
  return next;
}

// Allocates a block of class `class_index`: a bin pop, or the refill path.
static inline void *tiny_alloc_class(unsigned class_index) {
  tiny_bin *bin = &tiny_thread.bins[class_index];
  void *block = bin->head;
  if (__builtin_expect(block != NULL, 1)) {
    bin->head = tiny_next(block);
    bin->count--;
    hk_block_mark_used(block);
    return block;
  }
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
// API function for the message when the pointer is not a block start.
static inline void tiny_free(void *block, ss_slab *slab, const char *call) {
  if (__builtin_expect(!tiny_is_block_start(block, slab), 0)) {
    tiny_invalid_free(block, call);
    return;
  }
  if (HK_HARDENED && __builtin_expect(hk_block_is_marked_free(block), 0)) {
    tiny_double_free(block, call);
    return;
  }
  hk_block_mark_free(block);
  tiny_bin *bin = &tiny_thread.bins[slab->kind];
  // Relaxed load: only the owner itself stores its own id, so reading our id is stable; any
  // other value just routes the block to the slow path.
  uint64_t owner = __atomic_load_n(&slab->owner, __ATOMIC_RELAXED);
  if (__builtin_expect(owner == tiny_thread.owner_id && bin->count < bin->capacity, 1)) {
    hk_link_set(block, bin->head);
    bin->head = block;
    bin->count++;
    return;
  }
  tiny_free_slow(block, slab);
}

// The usable size of a tiny block: its class size.
static inline size_t tiny_usable_size(const ss_slab *slab) { return slab->block_size; }

// True when `slab` (from ss_registry_lookup) belongs to the tiny front.
static inline int tiny_owns_slab(const ss_slab *slab) { return slab->kind < TINY_CLASS_COUNT; }

// Allocates a zero-filled block of at least `size` bytes. A block carved from never-touched
// pages of the thread's current slab is handed out without a memset; others are cleared.
void *tiny_calloc(size_t size);

// Memory return without a background thread: every 16th slow-path call of a thread reads the
// clock, and at most every TINY_MAINTENANCE_PERIOD_MS the thread flushes its bins of classes idle
// for HAKMEM_TINY_IDLE_MS, then calls the hook registered here (the front door ages the other
// layers' caches with it). A program that keeps allocating therefore keeps returning memory.
#define TINY_MAINTENANCE_PERIOD_MS 100
void tiny_set_maintenance_hook(void (*hook)(void));

// Flushes the calling thread's bins and abandons its slabs (what thread exit does); the thread
// may allocate again afterwards. For tests and fork handling.
void tiny_thread_flush(void);

// malloc_trim's part: flushes and abandons the calling thread's slabs (tiny_thread_flush), releases
// abandoned slabs left with no live block, and decommits the pages of the others that hold only
// free blocks; those blocks are used again once the rest of their slab's are. Slabs of other live
// threads are not touched. Returns the bytes decommitted.
size_t tiny_trim(void);

// Sums the per-class counters into `out` (TINY_CLASS_COUNT entries).
void tiny_stats_get(tiny_class_stats *out);

// Slabs waiting for adoption in class `class_index` now.
size_t tiny_abandoned_count(unsigned class_index);

// Pre-fork / post-fork hooks: hold and release the abandoned-list locks across fork().
void tiny_prefork(void);
void tiny_postfork_parent(void);
void tiny_postfork_child(void);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_TINY_TINY_H_
