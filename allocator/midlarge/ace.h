// ACE, the mid/large allocator (1025 B .. 512 KiB) and huge blocks (> 512 KiB).
//
// Mid and large sizes share one scheme: 48 size classes, eight per doubling up to 8 KiB (1152 B ..
// 8 KiB), four per doubling above (10 KiB .. 512 KiB),
// kinds ACE_KIND_BASE + class. A class's blocks are carved from a "slab" that is either one
// 64 KiB pool slab (sp_acquire_slab) or a span of 2..16 contiguous slots (sp_acquire_span), the
// slot count chosen per class so the slab holds >= 8 blocks (>= 2 for the largest classes) with
// under 1/32 tail waste. See docs/midlarge.md for the table, the waste bound and the policy.
//
// The classes are the slab engine's (slab_engine.h) ACE_KIND_BASE + class: the engine keeps each
// thread's bins and moves every block. The inline fast paths below (a bin hit; a free into a slab
// the calling thread owns while its bin has room) take no lock, do no atomic read-modify-write,
// make no syscall and call nothing out of line. ACE's own part is the class table (ace_classes.c) and
// the adaptive cache engine (ace_adaptive.c), which sizes each bin from its misses and overflows,
// shrinks it when the class goes idle, and bounds the sum of all bins by a global byte budget that
// follows the size of the heap.
//
// Huge blocks up to 32 MiB are carved from the huge arena (ace_huge_arena.c): a few 128 MiB
// regions whose freed pages stay committed, within bounds, for the next huge block of any size;
// they resize in place into free space after them, else move (copy). Larger ones are their own
// page-aligned mappings, with a bounded cache of freed mappings, resized by mremap (no copy). A
// lock-guarded hash table knows every live huge block; none is in the SuperSlab registry.
//
// Never calls malloc or stdio. Headers usable from C++ (GCC __atomic builtins, no _Atomic).
#ifndef HAKMEM_ALLOCATOR_MIDLARGE_ACE_H_
#define HAKMEM_ALLOCATOR_MIDLARGE_ACE_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ACE_MIN_SIZE 1025                    // sizes above TINY_MAX_SIZE
#define ACE_HUGE_THRESHOLD (512u << 10)      // larger sizes are huge
#define ACE_CLASS_COUNT 48                   // 8 per doubling to 8 KiB, then 4 per doubling
#define ACE_FINE_CLASSES 24                  // the classes of 8 per doubling: 1 KiB .. 8 KiB
#define ACE_KIND_BASE 20                     // pool kinds 20 .. 67 (tiny uses 0 .. 19)
#define ACE_MAX_SPAN_SLOTS 16                // a class's slab is at most 16 slots (1 MiB)
// The huge arena (ace_huge_arena.c).
#define ACE_ARENA_REGION_SIZE ((size_t)128 << 20)  // a region's size and alignment
#define ACE_ARENA_REGION_MAX 32                     // regions at most (4 GiB of address space)
#define ACE_ARENA_BLOCK_MAX ((size_t)32 << 20)      // larger huge blocks get their own mapping
#define ACE_ARENA_MAX_ALIGNMENT ((size_t)1 << 20)   // larger alignments too
#define ACE_ARENA_MIN_SIZE ((size_t)128 << 10)      // arena blocks are longer (see ace_alloc_growable)

// The calling thread's bin of class `c` (its capacity adapted by ACE).
// (ACE's first bin plus c: the class base folds into the address's displacement.)
static inline se_bin *ace_bin_of(unsigned c) { return &(&se_thread.bins[ACE_KIND_BASE])[c]; }

// Allocations served by the calling thread's bins since the last fold into the counters (the
// fast path's activity mark, read by the adaptive engine). Initial-exec TLS: one fixed offset.
extern __thread uint64_t ace_bin_hits[ACE_CLASS_COUNT] __attribute__((tls_model("initial-exec")));

// Per-class counters summed over threads (relaxed atomics, slow paths only; collected when
// HAKMEM_STATS is on, except hits, which threads fold in at refills and exit).
typedef struct {
  uint64_t hits;              // allocations served by a bin (folded in lazily)
  uint64_t misses;            // allocations that found the bin empty (refills)
  uint64_t blocks_refilled;   // blocks moved into bins
  uint64_t overflows;         // frees that found the bin full (flushes)
  uint64_t blocks_flushed;    // blocks moved from bins back to slabs
  uint64_t remote_frees;      // blocks pushed onto another thread's slab
  uint64_t capacity_grows;    // bin capacity doublings
  uint64_t capacity_shrinks;  // bin capacity halvings (idle class)
  uint64_t budget_denied;     // growths refused by the global byte budget
  uint64_t idle_flushes;      // bins emptied because their class went idle
  uint64_t slabs_acquired;    // slabs/spans taken from the shared pool
  uint64_t slabs_released;    // slabs/spans given back
  uint64_t slabs_abandoned;   // left with live blocks by an exiting thread
  uint64_t slabs_adopted;     // taken over from an exited thread
  uint64_t remote_collected;  // remotely freed blocks collected by owners
  uint64_t abandoned_lock_takes;  // acquisitions of the class's abandoned-list lock
  uint64_t pages_parked;      // pages of slabs in use decommitted by malloc_trim
  uint64_t pages_unparked;    // of those, committed again (blocks reused, or the slab released)
  uint64_t refill_splices;    // refills that took a slab's whole free list at once
  uint64_t spare_reuses;      // refills that took the class's kept empty slab
} ace_class_stats;

typedef struct {
  ace_class_stats classes[ACE_CLASS_COUNT];
  uint64_t budget_used;        // bytes of bin capacity granted now, all threads
  uint64_t budget_limit;       // HAKMEM_ACE_CACHE_BUDGET, or HAKMEM_ACE_CACHE_SHARE % of committed bytes if more
  uint64_t huge_live;          // live huge blocks
  uint64_t huge_live_bytes;    // their mapped bytes
  uint64_t huge_peak_count;    // most live huge blocks at once
  uint64_t huge_peak_bytes;    // most bytes of live huge blocks at once
  uint64_t huge_mapped;        // new huge mappings
  uint64_t huge_unmapped;      // huge mappings unmapped (freed uncached, evicted, trimmed)
  uint64_t huge_cached;        // freed huge mappings kept in the cache
  uint64_t huge_reused;        // huge allocations served from the cache
  uint64_t huge_evicted;       // cached mappings unmapped by the count/byte bounds
  uint64_t huge_expired;       // cached mappings unmapped past the TTL (or forced)
  uint64_t huge_remaps;        // mremap calls (realloc, cache fits)
  uint64_t huge_cache_count;   // mappings in the cache now
  uint64_t huge_cache_bytes;   // their bytes
  uint64_t arena_regions;               // huge arena regions mapped now
  uint64_t arena_free_spans;            // free spans in them
  uint64_t arena_free_bytes;            // free bytes in them
  uint64_t arena_free_committed_bytes;  // of those, committed (may be resident)
  uint64_t arena_committed_reuses;      // arena blocks placed over free committed pages
  uint64_t arena_uncommitted_allocs;    // arena blocks placed over decommitted or fresh pages only
  uint64_t arena_grows_in_place;        // huge reallocs grown into the free space after them
  uint64_t arena_moves;                 // huge reallocs that moved (copy) to a new block
  uint64_t arena_decommits;             // free spans decommitted (budget, TTL, trim)
  uint64_t arena_regions_mapped;        // regions mapped
  uint64_t arena_regions_unmapped;      // regions unmapped (free as a whole past the TTL, trim)
} ace_stats;

// ---- Size classes -------------------------------------------------------------------------------
// Class of a size in [1, ACE_HUGE_THRESHOLD] (sizes <= 1152 map to class 0). Eight classes per
// doubling up to 8 KiB (a block under 1.125x the request), four above (under 1.25x). Four per
// doubling throughout cost sqlite 17 % more than it asked for at its peak (4,368-byte page-cache
// entries in 5,120-byte blocks) and redis 22 %; eight throughout cost programs with sizes spread
// over 8-32 KiB 9-28 % more RSS, since each class holds its own spans and bins per thread and those
// grow with the block size while the rounding saved does not (docs/compaction.md).
static inline unsigned ace_size_to_class(size_t size) {
  if (size <= 1152) return 0;
  size_t s = size - 1;
  unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)s);  // 2^k <= s < 2^(k+1)
  if (k < 13) return (k - 10) * 8 + (unsigned)((s >> (k - 3)) & 7);
  return ACE_FINE_CLASSES + (k - 13) * 4 + (unsigned)((s >> (k - 2)) & 3);
}

// Block size of class c: 2^k + (sub + 1) * 2^(k-3) with k = 10 + c/8 for the fine classes, then
// 2^k + (sub + 1) * 2^(k-2) with k = 13 + (c - 24)/4.
// A constant expression too (ace.c builds its reciprocal table from it).
#define ACE_CLASS_SIZE(c)                                                                                  \
  ((c) < ACE_FINE_CLASSES                                                                                  \
       ? ((uint64_t)1 << (10 + (c) / 8)) + (uint64_t)((c) % 8 + 1) * ((uint64_t)1 << (7 + (c) / 8))       \
       : ((uint64_t)1 << (13 + ((c) - ACE_FINE_CLASSES) / 4)) +                                            \
             (uint64_t)(((c) - ACE_FINE_CLASSES) % 4 + 1) * ((uint64_t)1 << (11 + ((c) - ACE_FINE_CLASSES) / 4)))
static inline size_t ace_class_size(unsigned c) { return (size_t)ACE_CLASS_SIZE(c); }

// ---- Internals the fast paths use ---------------------------------------------------------------
void *ace_alloc_refill(unsigned class_index);
// se_free_slow with the head's class: out of line, so that free's fast path keeps nothing for it.
void ace_free_slow(void *block, ss_slab *head);
void *ace_huge_alloc(size_t size, size_t alignment);

// ACE's word in the `user_tag` field of a slab or span head it holds: the address of the first block
// (bits 0..47) and the class + 1 (bits 56..63). 0 while ACE does not hold it (the pool resets the
// field on every acquisition; ACE clears it on release), so the free path finds the class and the
// block area with one load, and a stale pointer into a released slab is no block start.
#define ACE_HEAD_CLASS_SHIFT 56
#define ACE_HEAD_BASE_MASK ((UINT64_C(1) << 48) - 1)
static inline uint64_t ace_head_word(const void *base, unsigned c) {
  return ((uint64_t)(uintptr_t)base & ACE_HEAD_BASE_MASK) | ((uint64_t)(c + 1) << ACE_HEAD_CLASS_SHIFT);
}
static inline unsigned ace_head_class(uint64_t word) { return (unsigned)(word >> ACE_HEAD_CLASS_SHIFT) - 1; }

// Rounded-up reciprocals of the class sizes (UINT64_MAX / size + 1), so the block-start check
// multiplies instead of dividing (a 64-bit division is ~40 cycles on the free path).
extern const uint64_t ace_class_reciprocal[ACE_CLASS_COUNT];

// True when `block` starts a block of `head`, a slab of class `c` whose head word is `word`: in
// range and on a block boundary (offsets < 2^32). A released slab has capacity 0, so every
// pointer into it fails.
static inline int ace_is_block_start(const void *block, const ss_slab *head, uint64_t word, unsigned c) {
  uint64_t offset = (uint64_t)((uintptr_t)block - (uintptr_t)(word & ACE_HEAD_BASE_MASK));
  if (offset >= (uint64_t)head->capacity * head->block_size) return 0;
  uint64_t reciprocal = ace_class_reciprocal[c];
  return offset * reciprocal <= reciprocal - 1;
}

// ---- API ---------------------------------------------------------------------------------------
// ace_alloc for a size known to be at most ACE_HUGE_THRESHOLD (the front door makes its own huge
// check, against a threshold the heap profiler can lower: hakmem_profile.h).
static inline void *ace_alloc_classed(size_t size) {
  unsigned c = ace_size_to_class(size);
  void *block = se_bin_pop(ace_bin_of(c));
  if (__builtin_expect(block != NULL, 1)) {
    ace_bin_hits[c]++;
    return block;
  }
  return ace_alloc_refill(c);
}

// Allocates at least `size` bytes (size > 1024, any size): a bin hit inline, else the refill
// path; huge sizes get a mapping. NULL with errno = ENOMEM.
static inline void *ace_alloc(size_t size) {
  if (__builtin_expect(size > ACE_HUGE_THRESHOLD, 0)) return ace_huge_alloc(size, 0);
  return ace_alloc_classed(size);
}

// For a block that realloc grows (the front door's copy path): sizes above ACE_ARENA_MIN_SIZE
// come from the huge arena, where the block's next growths (into the free space after it) and
// shrinks (its tail back to the arena) need no copy and reuse resident pages; smaller sizes as
// ace_alloc. Measured on realloc_grow: through the size classes every buffer left a resident block
// in each large class it passed (peak RSS 58.4 MiB; 20.5 MiB with --max=512K, mimalloc 13.4).
void *ace_alloc_growable(size_t size);

// Zero-filled allocation; skips the memset for never-used blocks of known-zero slabs and for
// fresh huge mappings.
void *ace_calloc(size_t size);

// `alignment` a power of two >= 16 (up to at least 64 MiB), any size >= 1. Classes whose
// blocks are naturally aligned serve alignments up to 4 KiB; larger ones get a huge mapping.
void *ace_alloc_aligned(size_t alignment, size_t size);

// True for a slab or span head (ss_registry_lookup_head) that ACE holds: its head word is set.
static inline int ace_owns_head(const ss_slab *head) { return head->user_tag != 0; }

// True when `block`, a pointer into slot `slab` (ss_registry_lookup) of a slab ACE holds, starts
// one of its blocks.
static inline int ace_is_block_start_in_slot(const void *block, const ss_slab *slab) {
  const ss_slab *head = ss_slab_head((ss_slab *)slab);
  uint64_t word = head->user_tag;
  return ace_is_block_start(block, head, word, ace_head_class(word));
}

// True for a slab or span slot whose head ACE holds.
static inline int ace_owns_slab(const ss_slab *slab) { return ace_owns_head(ss_slab_head((ss_slab *)slab)); }

// Frees `block` (head = ss_registry_lookup_head(block), one ACE owns). An interior or stale
// pointer reports "<call>(): invalid pointer ..." and aborts.
static inline void ace_free(void *block, ss_slab *head, const char *call) {
  uint64_t word = head->user_tag;
  unsigned c = ace_head_class(word);
  if (__builtin_expect(se_free_fast(block, head, ACE_KIND_BASE + c, ace_is_block_start(block, head, word, c), call, 0), 1))
    return;
  ace_free_slow(block, head);
}

// Frees `block` when it is a live huge block's start: returns 1; else 0 (the caller reports).
int ace_huge_free(void *block);

// Exact usable bytes of a block of a slab/span of ACE's (its class size).
static inline size_t ace_usable_size(const void *block, const ss_slab *slab) {
  (void)block;
  return ss_slab_head((ss_slab *)slab)->block_size;
}

// True when `block` is the start of one of the last 64 huge blocks freed, and no huge block has
// begun there since: a second free of it is a double free.
int ace_huge_was_freed(const void *block);

// Usable bytes of a live huge block (from its start to its mapping's end), 0 when not one.
size_t ace_huge_usable_size(const void *block);

// Resizes in place when possible: returns `block`, or for huge blocks possibly a moved pointer
// (mremap, contents kept); NULL (errno untouched) when a copy is needed. slab NULL for huge.
void *ace_resize(void *block, ss_slab *slab, size_t new_size);

// Releases idle cached memory now: the calling thread's bins of idle classes (all of them with
// `force`) and their empty slabs to the pool, and expired (all, with `force`) huge mappings.
// With `force` (malloc_trim) it also decommits the whole pages inside the free blocks of slabs
// that still hold live ones (the calling thread's and abandoned slabs); they fault back in when
// the block is used again. Returns the bytes released.
size_t ace_trim(int force);

// fork(): hold ACE's locks across it; the child resets them.
void ace_prefork(void);
void ace_postfork_parent(void);
void ace_postfork_child(void);

// Counters (per-class arrays need HAKMEM_STATS; huge and budget figures are always kept).
void ace_stats_get(ace_stats *out);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_MIDLARGE_ACE_H_
