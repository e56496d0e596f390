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
  X(OS_BYTES_DECOMMITTED_TOTAL, "os.bytes_decommitted_total", "bytes ever decommitted")

#endif  // HAKMEM_ALLOCATOR_BASE_STATS_TABLE_H_
