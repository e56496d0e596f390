// The one table of HAKMEM's environment options. Every HAKMEM_* option is declared here, once,
// with its default and its meaning; README.md lists the same table (a test checks they agree).
//
// X(id, name, kind, default, meaning)
//   kind is INT (a decimal number, optional K/M/G suffix for sizes) or STRING.
// Defaults are the fast configuration: options exist for experiments and diagnosis.
#ifndef HAKMEM_ALLOCATOR_BASE_CONFIG_TABLE_H_
#define HAKMEM_ALLOCATOR_BASE_CONFIG_TABLE_H_

#define HK_CONFIG_TABLE(X)                                                                        \
  X(TINY_IDLE_MS, "HAKMEM_TINY_IDLE_MS", INT, "1000",                                             \
    "a thread's tiny cache of a class unused this long (ms) goes back to the slabs")               \
  X(STATS, "HAKMEM_STATS", STRING, "0",                                                           \
    "1 prints a summary at exit (memory by layer and class, health); all adds every counter; "    \
    "json:PATH writes the counters as JSON; 0 is off")                                             \
  X(OS_DECOMMIT, "HAKMEM_OS_DECOMMIT", STRING, "dontneed",                                        \
    "how unused pages go back to the OS: dontneed (RSS drops at once) or free (MADV_FREE, lazy)") \
  X(OS_HUGEPAGES, "HAKMEM_OS_HUGEPAGES", INT, "0",                                                \
    "SuperSlabs mapped once this many are live ask for transparent huge pages; 0 never, 1 all")  \
  X(SS_CACHE_MAX_COUNT, "HAKMEM_SS_CACHE_MAX_COUNT", INT, "64",                                   \
    "most fully free SuperSlabs kept mapped in the LRU cache; the oldest beyond it are unmapped") \
  X(SS_CACHE_MAX_BYTES, "HAKMEM_SS_CACHE_MAX_BYTES", INT, "128M",                                 \
    "most address space the LRU cache of free SuperSlabs keeps mapped")                         \
  X(SS_CACHE_TTL_MS, "HAKMEM_SS_CACHE_TTL_MS", INT, "30000",                                      \
    "a SuperSlab idle in the LRU cache this long (ms) is unmapped")                             \
  X(SS_KEEP_FREE, "HAKMEM_SS_KEEP_FREE", INT, "2",                                               \
    "fully free SuperSlabs kept in service (their slots listed for any slab) before the next go to the LRU cache") \
  X(SS_DECOMMIT_DELAY_MS, "HAKMEM_SS_DECOMMIT_DELAY_MS", INT, "1000",                             \
    "an empty slab or cached SuperSlab idle this long (ms) has its pages decommitted")            \
  X(ACE_CACHE_BUDGET, "HAKMEM_ACE_CACHE_BUDGET", INT, "64M",                                      \
    "bytes of mid/large per-thread cache capacity, all threads together, granted in any case")  \
  X(ACE_CACHE_SHARE, "HAKMEM_ACE_CACHE_SHARE", INT, "50",                                         \
    "the same limit as a percent of the bytes committed, when that is more (0: the fixed budget only)") \
  X(ACE_CLASS_MAX_BYTES, "HAKMEM_ACE_CLASS_MAX_BYTES", INT, "1M",                                 \
    "most bytes one thread caches for one mid/large class (2 to 256 blocks)")                   \
  X(ACE_EPOCH_MS, "HAKMEM_ACE_EPOCH_MS", INT, "100",                                              \
    "a mid/large class unused for a whole epoch (ms) halves its per-thread cache")              \
  X(ACE_IDLE_MS, "HAKMEM_ACE_IDLE_MS", INT, "1000",                                               \
    "a mid/large class unused this long (ms) empties its per-thread cache into the pool")       \
  X(HUGE_CACHE_MAX_COUNT, "HAKMEM_HUGE_CACHE_MAX_COUNT", INT, "16",                               \
    "most freed huge mappings (blocks > 32 MiB) kept for reuse (at most 64; 0 unmaps at once)")       \
  X(HUGE_CACHE_MAX_BYTES, "HAKMEM_HUGE_CACHE_MAX_BYTES", INT, "256M",                             \
    "most bytes of freed huge mappings kept for reuse; also the huge arena's free committed bytes")                                         \
  X(HUGE_CACHE_TTL_MS, "HAKMEM_HUGE_CACHE_TTL_MS", INT, "2000",                                   \
    "a freed huge mapping unused this long (ms) is unmapped; a free huge arena span decommitted")                                    \
  X(HUGEPAGE_COLLAPSE_MS, "HAKMEM_HUGEPAGE_COLLAPSE_MS", INT, "0",                              \
    "the background thread turns a SuperSlab with every slab in use this long (ms) into a "        \
    "transparent huge page (MADV_COLLAPSE); it starts at 64 MiB committed for that; 0: never")     \
  X(BACKGROUND_MS, "HAKMEM_BACKGROUND_MS", INT, "250",                                            \
    "period (ms) of the background thread that gives back memory idle past the delays while the " \
    "program makes no allocator call; started at an allocation once 64 MiB are committed; 0: none") \
  X(TIMELINE, "HAKMEM_TIMELINE", STRING, "0",                                                     \
    "PATH: the background thread writes a CSV row of RSS and memory by layer to PATH every "       \
    "HAKMEM_TIMELINE_MS (tools/hakmem run --timeline); 0 is off")                                  \
  X(TIMELINE_MS, "HAKMEM_TIMELINE_MS", INT, "100",                                                \
    "interval (ms) between two rows of the memory timeline (and between two looks of the census)")  \
  X(CENSUS, "HAKMEM_CENSUS", STRING, "0",                                                         \
    "PATH: the background thread takes a compaction census (free pages in slabs, what meshing "    \
    "would give back) whenever RSS has grown by 1/16, and keeps the largest in PATH (%p: the pid)") \
  X(CRASH_REPORT, "HAKMEM_CRASH_REPORT", INT, "0",                                                \
    "1 writes a report naming the HAKMEM slab and block of the address on SIGSEGV/SIGBUS/SIGABRT") \
  X(PROFILE, "HAKMEM_PROFILE", STRING, "0",                                                       \
    "PATH: the sampling heap profiler writes a google-pprof heap profile to PATH at exit, on "     \
    "SIGUSR2 and every HAKMEM_PROFILE_INTERVAL_MS (other processes: PATH.PID); 0 is off")          \
  X(PROFILE_RATE, "HAKMEM_PROFILE_RATE", INT, "512K",                                             \
    "mean bytes allocated between two samples of the heap profiler (exponential gaps)")            \
  X(PROFILE_INTERVAL_MS, "HAKMEM_PROFILE_INTERVAL_MS", INT, "0",                                  \
    "the heap profiler also writes its profile every this many ms (checked when it samples); 0 never")

#endif  // HAKMEM_ALLOCATOR_BASE_CONFIG_TABLE_H_
