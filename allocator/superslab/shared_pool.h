// The shared slab pool: hands slabs (64 KiB slots of SuperSlabs) and spans of contiguous slots to
// the block layers, and takes them back. Slabs are shared by all size classes: a released slab is
// reusable by any kind at once.
//
// Acquisition stages (each counted in sp.stage*):
//   0 the kind's hot slot (the slab it released last)    1 the kind's lock-free free list
//   2 a free slot of any kind (the shared list, other kinds' lists and hot slots)
//   3 a SuperSlab from the LRU cache                       4 a new mapping
// Stages 0-3 are lock-free (CAS on the slot's state word, versioned list heads). Only stage 4
// takes the mapping lock, once per mapping; threads arriving meanwhile wait for that mapping
// and retry stages 0-3 instead of mapping too.
//
// Aging is opportunistic: every 32 calls per thread the clock is read; at most every
// HAKMEM_SS_DECOMMIT_DELAY_MS / 4 a pass decommits slabs idle past the delay and trims the LRU
// cache. sp_trim does the same on demand.
//
// The pool knows nothing about blocks. Never calls malloc or stdio.
#ifndef HAKMEM_ALLOCATOR_SUPERSLAB_SHARED_POOL_H_
#define HAKMEM_ALLOCATOR_SUPERSLAB_SHARED_POOL_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/superslab/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

// Kinds are small integers chosen by the block layers: 0 .. SP_MAX_KINDS - 1.
#define SP_MAX_KINDS 72u
// Most slots in one span. Spans never use slot 0 (60 KiB after the header), so a span of n
// slots always has n x 64 KiB usable: 31 x 64 KiB = 1984 KiB at most.
#define SP_MAX_SPAN_SLABS (SS_SLABS_PER_SUPERSLAB - 1)

// A slab for `kind`, its metadata reset: kind set, span_slabs 1, owner/used/capacity/carve/
// block_size/user 0, free lists NULL, `zeroed` telling whether its pages are known zero.
// NULL with errno ENOMEM when no memory, EINVAL for a kind >= SP_MAX_KINDS.
ss_slab *sp_acquire_slab(unsigned kind);

// Gives a slab back (its last block was freed). Reusable by any kind at once. Releasing a slab
// twice, a span, or a pointer that is not a slab's metadata reports and aborts.
void sp_release_slab(ss_slab *slab);

// `slabs` contiguous slots of one SuperSlab (1 .. SP_MAX_SPAN_SLABS), as the metadata of the
// first: kind SS_KIND_SPAN, span_slabs = slabs; the others have span_slabs 0 and span_head set.
// Usable bytes: ss_slab_usable_size(head) = slabs x 64 KiB. NULL with errno ENOMEM, or EINVAL for a bad count.
ss_slab *sp_acquire_span(unsigned slabs);

// Gives a span back, given its head. Anything else reports and aborts.
void sp_release_span(ss_slab *head);

// The first usable byte of a slab or span.
static inline void *sp_slab_base(const ss_slab *slab) { return ss_slab_base(slab); }

// Usable bytes of a slab (60 KiB for slab 0 of a SuperSlab, else 64 KiB) or of a span.
static inline size_t sp_slab_usable_size(const ss_slab *slab) { return ss_slab_usable_size(slab); }

// True when the slab's (span's) pages were known to read as zero when it was acquired (never
// used, or decommitted with MADV_DONTNEED since): calloc may skip zeroing.
static inline int sp_slab_is_zeroed(const ss_slab *slab) { return slab->zeroed; }

// Runs the aging pass now: decommits free slabs idle past HAKMEM_SS_DECOMMIT_DELAY_MS, retires
// fully free SuperSlabs to the cache and trims the cache (ss_cache_trim). With `force`,
// decommits every free slab and unmaps every cached SuperSlab regardless of age (malloc_trim).
// Returns the bytes decommitted plus unmapped.
size_t sp_trim(int force);

// Turns SuperSlabs that have had every slot in use for `delay_ms` (seen by earlier calls; the
// caller calls every few hundred ms) and whose pages are nearly all resident (15/16) into
// transparent huge pages (hk_os_hugepage_collapse), each once until a decommit inside it withdraws
// the request. For the background thread only: each collapse copies 2 MiB. Returns how many.
size_t sp_collapse_dense(uint64_t delay_ms);

// What the pool holds, for statistics (sp_census_take). Bytes are slots' usable bytes (a
// SuperSlab's header page is not in them); "committed" ones are counted in os.bytes_committed.
typedef struct {
  uint64_t superslabs;              // SuperSlabs mapped, cached ones included
  uint64_t cached_superslabs;       // of those, held whole (in the LRU cache, or being mapped)
  uint64_t slots_in_use;            // slots handed out (slabs, and every slot of a span)
  uint64_t slots_free;              // free slots of SuperSlabs in service
  uint64_t free_bytes;              // their bytes
  uint64_t free_committed_bytes;    // of those, not decommitted
  uint64_t cached_bytes;            // slots of the SuperSlabs held whole
  uint64_t cached_committed_bytes;  // of those, not decommitted
} sp_census;

// Called with each slab or span head in use. Its fields are the owner's: the walk reads them
// without stopping the owner, so the figures of slabs that running threads are changing are
// approximate (exact for slabs of exited threads, or of threads the caller synchronised with).
typedef void (*sp_census_visit)(const ss_slab *head, void *arg);

// Fills `out` from the directory's slot states and calls visit(head, arg) (when not NULL) for
// every slab or span head in use. Holds the SuperSlab cache's trim lock throughout, so that no
// SuperSlab is unmapped under the walk: `visit` must not call into the pool or allocate.
void sp_census_take(sp_census *out, sp_census_visit visit, void *arg);

// Resident bytes of the slots not in use (free slots of SuperSlabs in service and slots of cached
// SuperSlabs) that are not decommitted: one mincore per slot, for a census, not a hot path.
uint64_t sp_free_resident_bytes(void);

// fork(): take the mapping lock (and the cache-trim flag) before, release them after, in the
// parent; reset them in the child. The front door registers these with pthread_atfork.
void sp_prefork(void);
void sp_postfork_parent(void);
void sp_postfork_child(void);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_SUPERSLAB_SHARED_POOL_H_
