// The size-class slab engine: the one mechanism behind every class of blocks carved from slabs,
// shared by the tiny front (1 B .. 1 KiB) and ACE's mid classes (1 KiB .. 512 KiB).
//
// A class is an index 0 .. SE_CLASS_MAX - 1 (tiny's classes are 0 .. 19, ACE's 20 .. 67; a
// single-slot class's slabs carry it as their pool kind). A front defines each of its classes
// once (se_class_define: block size, slots per slab, the front's word for the slab's user_tag)
// and keeps its own policy: size-to-class tables, how many blocks a refill asks for, how big a
// thread's bin may be, when to flush. Everything that moves blocks lives here:
//   bins      each thread keeps per class a cache ("bin") of free blocks, a singly linked list
//             through the blocks' first word; the fronts pop and push it inline (se_bin_pop,
//             se_free_fast) with no lock, no atomic read-modify-write and no call;
//   refill    se_refill takes a batch from the thread's current slab of the class: its local
//             free list (all of it in one splice once the front asks for big batches), then the
//             blocks other threads freed to it (one atomic exchange), then its parked pages
//             (malloc_trim), then fresh blocks carved in address order; then another owned slab
//             with free blocks, an abandoned slab (adoption), a pool slab;
//   free      a block of the thread's own slab goes to the bin while it has room, else straight
//             onto its slab's local free list, inline (a program that frees thousands of blocks
//             in a row and then allocates thousands moves each block once); a front may instead
//             hear of the bin filling up and give the bin back to its slabs (se_flush_burst), so
//             that a burst of frees empties whole slabs, which then restart in address order;
//   flush     se_flush_bin returns blocks to their slabs (idle classes, trim, thread exit); a
//             slab whose last block comes back is kept as the class's one spare (one-slot
//             classes) or goes to the shared pool at once;
//   remote    a block of another thread's slab is pushed on that slab's atomic remote list,
//             chained per slab and pushed a batch at a time (se_free_slow);
//   exit      a pthread key destructor flushes every bin and abandons the thread's slabs; slabs
//             still holding live blocks wait on a per-class list for another thread to adopt;
//   trim      se_trim gives back the free pages of sparse slabs (malloc_trim).
// The block format is base/freelist.h's (plain links, or the hardened build's encoded ones).
//
// Never calls malloc or stdio. Usable from C++ (GCC __atomic builtins, no _Atomic).
#ifndef HAKMEM_ALLOCATOR_SLAB_ENGINE_SLAB_ENGINE_H_
#define HAKMEM_ALLOCATOR_SLAB_ENGINE_SLAB_ENGINE_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/base/freelist.h"
#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"

#ifdef __cplusplus
extern "C" {
#endif

// Classes 0 .. SE_CLASS_MAX - 1: a single-slot class's slabs are acquired with its index as the
// pool kind, so the two ranges are one.
#define SE_CLASS_MAX SP_MAX_KINDS

// Owner ids in ss_slab.owner: 0 = none (the pool's), 1 = abandoned by an exited thread, 2.. =
// live threads (one id per thread for every class; a thread flush gives it up).
#define SE_OWNER_ABANDONED 1u

// A per-thread cache of free blocks of one class.
typedef struct {
  void *head;         // first free block; each block's first word points to the next
  uint32_t count;     // blocks in the list
  uint32_t capacity;  // the front's bound: a free past it goes to the front's slow path (0 until
                      // the front starts on the thread, and again after a thread flush)
} se_bin;

// The calling thread's engine state that the fast paths read. Initial-exec TLS: one fixed offset
// from the thread pointer, no __tls_get_addr call (the preload library is loaded at start-up).
typedef struct {
  se_bin bins[SE_CLASS_MAX];
  uint64_t owner_id;  // this thread's id in slab owner fields; 0 until a front starts on it
} se_thread_cache;

extern __thread se_thread_cache se_thread __attribute__((tls_model("initial-exec")));

// Per-class counters summed over every thread (relaxed atomics, bumped on slow paths only, while
// HAKMEM_STATS is on).
typedef struct {
  uint64_t refills;              // bin refills
  uint64_t blocks_refilled;      // blocks moved into bins by refills
  uint64_t flushes;              // bin flushes (bin full, idle, trim or thread exit)
  uint64_t blocks_flushed;       // blocks moved from bins back to slabs
  uint64_t remote_frees;         // blocks pushed onto another thread's (or an abandoned) slab
  uint64_t remote_collected;     // remotely freed blocks collected by owners
  uint64_t slabs_acquired;       // slabs (spans) taken from the shared pool
  uint64_t slabs_released;       // slabs given back to the pool (their last block came back)
  uint64_t slabs_abandoned;      // slabs left with live blocks by an exiting thread
  uint64_t slabs_adopted;        // abandoned slabs taken over (or released) by another thread
  uint64_t abandoned_lock_takes; // acquisitions of the class's abandoned-list lock
  uint64_t pages_parked;         // pages decommitted by se_trim in slabs that stay in use
  uint64_t pages_unparked;       // of those, taken back (blocks reused, or the slab released)
  uint64_t refill_splices;       // refills that took a slab's whole free list at once (no walk)
  uint64_t spare_reuses;         // refills that took the class's kept empty slab, not the pool's
  uint64_t burst_flushes;        // bins given back to their slabs at a burst of frees (se_flush_burst)
} se_class_stats;

// ---- Classes and fronts -------------------------------------------------------------------------
// What a front tells the engine about itself: its per-thread start and stop, and its policy where
// the engine needs one.
typedef struct {
  // Gives the calling thread's bins of the front's classes their capacities.
  void (*start)(void);
  // The thread flushes or exits: the front gives up its per-thread state (the engine then zeroes
  // every bin's capacity itself).
  void (*stop)(void);
  // The front's word for a slab's user_tag (what its free path reads), given the slab or span head
  // with block_size and capacity set.
  uint64_t (*slab_tag)(const ss_slab *head, unsigned class_index);
  // A free of a block of the thread's own slab found the bin of `class_index` full: the front hears
  // of it (it may grow the bin's capacity). A bin still full then leaves the block to its slab.
  void (*bin_full)(unsigned class_index);
} se_front;

// Defines class `class_index` of `front`: blocks of `block_size` bytes (a multiple of 16) in slabs of `slots`
// pool slots (1: sp_acquire_slab with the class as kind; more: sp_acquire_span). Call once (under
// pthread_once: the class table is plain memory) before the class's first refill.
void se_class_define(unsigned class_index, uint32_t block_size, uint32_t slots, const se_front *front);

// Sets the calling thread up for the engine (owner id, exit destructor) if needed, then runs
// front->start, unless it ran since the thread's last flush. Up to SE_MAX_FRONTS fronts. A front
// keeps its own flag (set by its start, cleared by its stop) to call this only when needed.
#define SE_MAX_FRONTS 4
void se_front_start(const se_front *front);

// ---- Fast paths ---------------------------------------------------------------------------------
__attribute__((noreturn, cold)) void se_corrupted_list(const void *block);
// Report the bad pointer naming `call`, and abort. Not declared noreturn: free reaches them by a
// tail jump, so its fast path needs no stack frame (gcc makes a noreturn call a real call).
__attribute__((cold)) void se_invalid_free(void *block, const char *call);
__attribute__((cold)) void se_double_free(void *block, const char *call);

// True when `next`, a decoded link, cannot have been written by the allocator: not 16-byte aligned
// or not a user address (the hardened build also asks the registry that it is in a SuperSlab of
// ours). NULL, the end of a list, is good.
static inline int se_link_is_bad(const void *next) {
#if HK_HARDENED
  if (next && !ss_registry_find(next)) return 1;
#endif
  return hk_link_is_invalid(next);
}

// The next free block after `block`: its decoded link, checked before anyone follows it. A link
// that fails was overwritten: the report names the block and aborts.
static inline void *se_next(const void *block) {
  void *next = hk_link_get(block);
  if (__builtin_expect(se_link_is_bad(next), 0)) se_corrupted_list(block);
  return next;
}

// Pops a block off `bin` (marked used), or NULL when the bin is empty or its head block's link
// fails the check (se_next's). The front then calls its refill, which reports a bin that is not
// empty (se_refill): the check costs the fast path no call and so no stack frame.
static inline void *se_bin_pop(se_bin *bin) {
  void *block = bin->head;
  if (__builtin_expect(block == NULL, 0)) return NULL;
  void *next = hk_link_get(block);
  if (__builtin_expect(se_link_is_bad(next), 0)) return NULL;
  bin->head = next;
  bin->count--;
  hk_block_mark_used(block);
  return block;
}

// Pushes free `block` onto `bin` (no capacity check).
static inline void se_bin_push(se_bin *bin, void *block) {
  hk_link_set(block, bin->head);
  bin->head = block;
  bin->count++;
}

// Free's fast path for `block` in slab (span head) `head` of class `class_index`, given the front's
// block-start check: reports a pointer that is no block start, or a block that carries the free
// mark (a double free, from any thread), else marks it free and, when the thread owns the slab,
// pushes it onto the thread's bin while the bin has room, else onto the slab's own free list when
// that list is not empty and the block is not the slab's last one out (so the slab's place in the
// thread's lists and its release need no change). With `full_bin_to_front` (a constant per front),
// a free that finds the bin exactly full (filled by frees, not by a refill's splice, which may
// overshoot) goes to the front's slow path instead, where the front's bin_full hears of it first.
// 1 when done, 0 when the front's slow path must take the block.
static inline int se_free_fast(void *block, ss_slab *head, unsigned class_index, int is_block_start,
                               const char *call, int full_bin_to_front) {
  if (__builtin_expect(!is_block_start, 0)) {
    se_invalid_free(block, call);
    return 1;
  }
  if (__builtin_expect(hk_block_is_marked_free(block), 0)) {
    se_double_free(block, call);
    return 1;
  }
  hk_block_mark_free(block);
  se_bin *bin = &se_thread.bins[class_index];
  // Relaxed: only the owner itself stores its own id, so reading our id is stable; any other value
  // just means "not ours" (and a thread with no id, 0, has capacity 0 everywhere).
  uint64_t owner = __atomic_load_n(&head->owner, __ATOMIC_RELAXED);
  if (__builtin_expect(owner == se_thread.owner_id, 1)) {
    if (__builtin_expect(bin->count < bin->capacity, 1)) {
      se_bin_push(bin, block);
      return 1;
    }
    // Exactly full (frees filled it): the front's slow path hears of it (full_bin_to_front).
    if (full_bin_to_front && bin->count == bin->capacity && bin->capacity != 0) return 0;
    // A full bin: the block joins its slab's local list (owner-only fields; the slab's line is in
    // cache, its owner was just read). Flushing part of the bin instead walked those blocks, and
    // the next refill walked them back; the refill takes this list in one splice (se_refill).
    void *list = head->free_list;
    if (list && head->used > 1 && owner != 0) {
      hk_link_set(block, list);
      head->free_list = block;
      head->used--;
      return 1;
    }
  }
  return 0;
}

// realloc's rule for a block of a size class: it stays where it is while `new_size` fits in its
// `block_size` and uses more than half of it (glibc shrinks in place too; mimalloc keeps a block
// down to half). Below half, a smaller class holds the data with less waste and the copy is short.
// A block that crosses a class boundary back and forth (a buffer that grows and shrinks by a few
// bytes) then moves once, not at every step.
static inline int se_resize_in_place(size_t new_size, size_t block_size) {
  return new_size <= block_size && new_size > block_size / 2;
}

// ---- Slow paths ---------------------------------------------------------------------------------
// Moves up to `want` (>= 1) free blocks of class `class_index` into the thread's bin (see the
// overview for the order) and pops one. NULL with errno = ENOMEM when the pool has no slab.
// The front must have started on the thread (se_front_start), and calls this only when se_bin_pop
// gave NULL: a bin that is not empty then has a broken link, reported here.
void *se_refill(unsigned class_index, uint32_t want);

// Returns `count` blocks from the head of the thread's bin of `class_index` to their slabs (all
// owned by the thread); a slab other than the current one whose last block comes back becomes the
// class's spare or goes to the pool. Returns the bytes of slabs released.
size_t se_flush_bin(unsigned class_index, uint32_t count);

// A burst of frees filled the bin of `class_index` (the front's bin_full heard of it): returns the
// bin's blocks to their slabs and closes the bin to frees (capacity 0), so that the rest of the
// burst goes to the slabs too. The blocks a bin holds count as out of their slabs, so a slab
// whose other blocks all came back could not empty and restart its carve in address order; every
// burst permuted its free list further (ring_batches: the next block was adjacent for 65 % of the
// allocations, mimalloc's 96 %). The front reopens the bin (gives it its capacity back) at its
// next refill. Returns the bytes of slabs released.
size_t se_flush_burst(unsigned class_index);

// Empties the bin of `class_index`, releases the class's spare slab, and the current slab if it
// has no live block left.
// Returns the bytes of slabs released.
size_t se_flush_class(unsigned class_index);

// True when the calling thread holds a current slab of `class_index`.
int se_has_current_slab(unsigned class_index);

// Free's slow path, for a block se_free_fast did not take (marked free already): the thread's own
// slab with a full bin (the front's bin_full hears of it; a bin still full leaves the block on its
// slab's local free list; a slab other than the current one whose last block that was becomes the
// class's spare or goes to the pool), another thread's
// slab (onto its remote list, batched per slab), or an abandoned slab (straight to it, releasing
// the slab when that was its last live block).
void se_free_slow(void *block, ss_slab *head, unsigned class_index);

// A fresh block of class `class_index` from never-used pages of the thread's current slab when
// that slab was known zero at acquisition (calloc skips the memset), or NULL.
void *se_take_zeroed(unsigned class_index);

// Pushes the thread's batched remote frees, flushes all its bins, abandons (or releases) all its
// slabs, runs every started front's stop hook and gives up the owner id. The thread may allocate
// again afterwards. Thread exit does this.
void se_thread_flush(void);

// malloc_trim's part for classes [first, first + count): gives back the free pages of sparse slabs
// held by the calling thread or abandoned (other live threads' slabs are not touched), and
// releases abandoned slabs with no live block. Pages of blocks below 8 KiB in single-slot slabs are
// parked: the free blocks that overlap only free pages leave the free list, their pages are
// decommitted, and they come back when a refill finds the slab with nothing else free. Larger
// blocks (and spans) keep their place on the list and the whole pages inside each are decommitted
// (words 2-3 mark the block). Returns the bytes decommitted.
size_t se_trim(unsigned first, unsigned count);

// Pages that malloc_trim decommitted inside slab (span head) `head` while it stays in use, for a
// reader that may not own it (relaxed loads: a census, not a decision).
uint32_t se_slab_trimmed_pages(const ss_slab *head);

// Slabs waiting for adoption in `class_index` now.
size_t se_abandoned_count(unsigned class_index);

// Copies the counters of classes [first, first + count) into `out`.
void se_stats_get(unsigned first, unsigned count, se_class_stats *out);

// fork(): hold every abandoned-list lock across it; release them after (parent and child).
void se_prefork(void);
void se_postfork_parent(void);
void se_postfork_child(void);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_SLAB_ENGINE_SLAB_ENGINE_H_
