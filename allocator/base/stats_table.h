// The one table of HAKMEM's process-wide counters. Each layer adds its rows here; the counters
// are relaxed atomics (exact totals, no ordering), updated only off the fast paths.
//
// X(id, name, meaning)
#ifndef HAKMEM_ALLOCATOR_BASE_STATS_TABLE_H_
#define HAKMEM_ALLOCATOR_BASE_STATS_TABLE_H_

#define HK_STATS_TABLE(X)                                                                   \
  /* OS layer: syscalls by kind and the bytes they cover. */                               \
  X(OS_MMAP_CALLS, "os.mmap_calls", "mmap calls (successful or not)")                       \
  X(OS_MUNMAP_CALLS, "os.munmap_calls", "munmap calls, trims included")                     \
  X(OS_MADVISE_CALLS, "os.madvise_calls", "madvise calls (decommit and huge-page hints)")   \
  X(OS_MREMAP_CALLS, "os.mremap_calls", "mremap calls")                                     \
  X(OS_BYTES_RESERVED, "os.bytes_reserved", "bytes of address space mapped now")            \
  X(OS_BYTES_COMMITTED, "os.bytes_committed", "bytes mapped and not decommitted now")       \
  X(OS_BYTES_DECOMMITTED_TOTAL, "os.bytes_decommitted_total", "bytes ever decommitted")    \
  X(OS_BYTES_UNMAPPED_TOTAL, "os.bytes_unmapped_total",                                     \
    "bytes ever unmapped (munmap, mremap shrinks; not the trims of an aligned reservation)") \
  X(OS_BYTES_COMMITTED_PEAK, "os.bytes_committed_peak", "most bytes os.bytes_committed ever counted (gauge)") \
  X(OS_HUGEPAGE_COLLAPSES, "os.hugepage_collapses", "2 MiB ranges turned into transparent huge pages (MADV_COLLAPSE)") \
  X(OS_HUGEPAGE_COLLAPSE_FAILURES, "os.hugepage_collapse_failures", "MADV_COLLAPSE calls that failed (no huge page free, old kernel)") \
  /* Locks: waits of hk_spin_lock (abandoned slabs, huge blocks, SuperSlab cache trims). */ \
  X(LOCK_SPIN_WAITS, "lock.spin_waits", "hk_spin_lock calls that found the lock held and waited") \
  /* SuperSlab registry and LRU cache of free SuperSlabs. */                               \
  X(SS_MAPPED, "ss.mapped", "SuperSlabs mapped (new mappings)")                             \
  X(SS_UNMAPPED, "ss.unmapped", "SuperSlabs unmapped")                                      \
  X(SS_LIVE, "ss.live", "SuperSlabs mapped now, cached ones included (gauge)")              \
  X(SS_CACHE_PUSHES, "ss.cache_pushes", "fully free SuperSlabs put in the LRU cache")       \
  X(SS_CACHE_HITS, "ss.cache_hits", "SuperSlabs taken back from the LRU cache")             \
  X(SS_CACHE_COUNT, "ss.cache_count", "SuperSlabs in the LRU cache now (gauge)")            \
  X(SS_CACHE_UNMAPPED_BOUNDS, "ss.cache_unmapped_bounds",                                   \
    "cached SuperSlabs unmapped because the count or byte bound was exceeded")              \
  X(SS_CACHE_UNMAPPED_AGE, "ss.cache_unmapped_age", "cached SuperSlabs unmapped past the TTL") \
  X(SS_CACHE_UNMAPPED_FORCED, "ss.cache_unmapped_forced", "cached SuperSlabs unmapped by a forced trim") \
  X(SS_BYTES_DECOMMITTED, "ss.bytes_decommitted", "slab bytes decommitted (total)")         \
  X(SS_BYTES_RECOMMITTED, "ss.bytes_recommitted", "decommitted slab bytes reused or unmapped (total)") \
  /* Shared slab pool: acquisitions by stage (slabs and spans), releases, the mapping lock. */ \
  X(SP_ACQUIRE_CALLS, "sp.acquire_calls", "sp_acquire_slab calls")                          \
  X(SP_SPAN_ACQUIRE_CALLS, "sp.span_acquire_calls", "sp_acquire_span calls")                \
  X(SP_STAGE0_HOT, "sp.stage0_hot", "acquisitions served by the per-kind hot slot")         \
  X(SP_STAGE1_KIND_LIST, "sp.stage1_kind_list", "acquisitions served by the kind's free list") \
  X(SP_STAGE2_SHARED, "sp.stage2_shared",                                                   \
    "acquisitions served by a free slot of any kind in a live SuperSlab")                   \
  X(SP_STAGE3_CACHE, "sp.stage3_cache", "acquisitions served by a SuperSlab from the LRU cache") \
  X(SP_STAGE4_MAP, "sp.stage4_map", "acquisitions served by a newly mapped SuperSlab")     \
  X(SP_ACQUIRE_FAILURES, "sp.acquire_failures", "acquisitions that returned NULL (ENOMEM)") \
  X(SP_RELEASE_CALLS, "sp.release_calls", "sp_release_slab calls")                          \
  X(SP_SPAN_RELEASE_CALLS, "sp.span_release_calls", "sp_release_span calls")                \
  X(SP_BYTES_RELEASED, "sp.bytes_released", "bytes of slabs and spans given back to the pool (total)") \
  X(SP_STALE_ENTRIES, "sp.stale_entries", "free-list entries dropped because the slot was taken") \
  X(SP_LOCK_ACQUISITIONS, "sp.lock_acquisitions", "mapping-lock acquisitions (one per new mapping)") \
  X(SP_LOCK_WAITS, "sp.lock_waits", "acquisitions that waited for another thread's mapping") \
  X(SP_SLABS_DECOMMITTED, "sp.slabs_decommitted", "idle empty slabs of live SuperSlabs decommitted") \
  X(SP_MAINTENANCE_RUNS, "sp.maintenance_runs", "opportunistic aging passes (decommit, cache trim)") \
  X(SP_SUPERSLABS_KEPT, "sp.superslabs_kept", "fully free SuperSlabs kept in service instead of going to the LRU cache") \
  /* Slab engine (tiny and mid classes). */                                               \
  X(SE_SPANS_ACQUIRED, "se.spans_acquired", "multi-slot spans taken by classes of large blocks") \
  X(SE_SPANS_RELEASED, "se.spans_released", "multi-slot spans given back to the pool")      \
  X(SE_PAGES_TRIMMED, "se.pages_trimmed", "pages of slabs in use decommitted by malloc_trim (parked or inside free blocks)") \
  /* Mid/large (ACE) and huge blocks. */                                                   \
  X(ACE_CAPACITY_GROWS, "ace.capacity_grows", "per-thread cache capacity doublings")         \
  X(ACE_CAPACITY_SHRINKS, "ace.capacity_shrinks", "per-thread cache capacity halvings")      \
  X(ACE_BUDGET_DENIED, "ace.budget_denied", "cache growths refused by the budget (HAKMEM_ACE_CACHE_BUDGET / _SHARE)") \
  X(ACE_IDLE_FLUSHES, "ace.idle_flushes", "per-thread class caches emptied because idle")    \
  X(ACE_HUGE_MAPPED, "ace.huge_mapped", "new huge mappings")                                 \
  X(ACE_HUGE_UNMAPPED, "ace.huge_unmapped", "huge mappings unmapped")                        \
  X(ACE_HUGE_CACHED, "ace.huge_cached", "freed huge mappings kept in the cache")             \
  X(ACE_HUGE_REUSED, "ace.huge_reused", "huge allocations served by a cached mapping")       \
  X(ACE_HUGE_EVICTED, "ace.huge_evicted", "cached huge mappings unmapped by the count/byte bounds") \
  X(ACE_HUGE_EXPIRED, "ace.huge_expired", "cached huge mappings unmapped past the TTL or by a forced trim") \
  X(ACE_HUGE_REMAPS, "ace.huge_remaps", "mremap calls on huge blocks (resize, cache fits)") \
  X(ACE_ARENA_COMMITTED_REUSES, "ace.arena_committed_reuses", "huge arena blocks placed over free committed pages") \
  X(ACE_ARENA_UNCOMMITTED_ALLOCS, "ace.arena_uncommitted_allocs", "huge arena blocks placed over decommitted or fresh pages only") \
  X(ACE_ARENA_GROWS_IN_PLACE, "ace.arena_grows_in_place", "huge reallocs grown into the free arena space after them") \
  X(ACE_ARENA_MOVES, "ace.arena_moves", "huge arena reallocs that moved (copied) to a new block") \
  X(ACE_ARENA_DECOMMITS, "ace.arena_decommits", "free huge arena spans decommitted (budget, TTL, trim)") \
  X(ACE_ARENA_REGIONS_MAPPED, "ace.arena_regions_mapped", "huge arena regions (128 MiB) mapped") \
  X(ACE_ARENA_REGIONS_UNMAPPED, "ace.arena_regions_unmapped", "huge arena regions unmapped") \
  /* The background thread (allocator/hakmem_background.c). */                            \
  X(BG_STARTS, "bg.starts", "background threads started (at most one at a time per process)") \
  X(BG_PASSES, "bg.passes", "aging passes run by the background thread")                   \
  X(BG_BYTES_RETURNED, "bg.bytes_returned", "bytes its passes decommitted or unmapped")     \
  X(BG_TIMELINE_ROWS, "bg.timeline_rows", "rows written to the memory timeline (HAKMEM_TIMELINE)") \
  /* fork() (allocator/hakmem.c's fork handlers). */                                        \
  X(FORK_LOCKED, "fork.locked", "forks whose handlers took every allocator lock (a process that has had threads)") \
  X(FORK_UNLOCKED, "fork.unlocked", "forks that took none: one thread, a fork inside a fork or inside a locked section") \
  /* The heap profiler (allocator/hakmem_profile.c, HAKMEM_PROFILE). */                       \
  X(PROFILE_SAMPLES, "profile.samples", "allocations the heap profiler sampled")             \
  X(PROFILE_LIVE_BYTES, "profile.live_bytes", "requested bytes of the sampled blocks live now (gauge)") \
  X(PROFILE_WRITES, "profile.writes", "heap profiles written (exit, SIGUSR2, interval)")

#endif  // HAKMEM_ALLOCATOR_BASE_STATS_TABLE_H_
