// HAKMEM's memory at one moment, by layer and by size class: what the exit summary
// (HAKMEM_STATS=1, malloc_stats) prints and what mallinfo2 and malloc_info report. Taken by
// hk_usage_take (hakmem_stats.c) from the pool's census of slabs in use (sp_census_take), the
// calling thread's bins, ACE's huge-block figures and the OS layer's gauges: no counter on a fast
// path is involved, so it works with HAKMEM_STATS=0 too.
//
// Private to //allocator: hakmem_stats.c and hakmem_introspect.c include it.
#ifndef HAKMEM_ALLOCATOR_HAKMEM_USAGE_H_
#define HAKMEM_ALLOCATOR_HAKMEM_USAGE_H_

#include <stdint.h>

#include "allocator/midlarge/ace.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/shared_pool.h"

// One engine class (tiny 0 .. 19, ACE's 20 .. 67): its slabs in use.
typedef struct {
  uint64_t block_size;       // 0 when the class holds no slab
  uint64_t slabs;            // slabs (or spans) held
  uint64_t reserved_bytes;   // their usable bytes
  uint64_t committed_bytes;  // minus the pages malloc_trim decommitted inside them
  uint64_t capacity;         // blocks they hold
  // Blocks out of the slabs: held by the program, in a live thread's bin, or freed by another
  // thread and still in its batch (se_free_slow); frees already pushed to a slab are not counted.
  uint64_t blocks_out;
  uint64_t own_bin_blocks;   // of those, in the calling thread's bin (free)
} hk_class_usage;

// Live blocks of a class: out of the slabs and not in the calling thread's bin.
static inline uint64_t hk_class_live(const hk_class_usage *usage) {
  return usage->blocks_out > usage->own_bin_blocks ? usage->blocks_out - usage->own_bin_blocks : 0;
}

// One row of the memory table. Committed = mapped and not given back (the OS layer's gauge: a
// page counts once mapped, resident or not); cached = committed and not in use.
typedef struct {
  uint64_t reserved;
  uint64_t committed;
  uint64_t in_use;
  uint64_t cached;
} hk_layer_usage;

typedef struct {
  hk_class_usage classes[SE_CLASS_MAX];
  hk_layer_usage tiny;      // tiny classes' slabs
  hk_layer_usage mid;       // ACE classes' slabs and spans
  hk_layer_usage huge;      // huge blocks: own mappings, their cache, the huge arena
  hk_layer_usage free;      // free slabs and SuperSlabs of the pool (reserved = committed = cached)
  hk_layer_usage metadata;  // the rest of the OS gauges: headers, the SuperSlab directory, tables
  hk_layer_usage total;     // the OS gauges (os.bytes_reserved, os.bytes_committed)
  uint64_t own_bin_blocks;  // blocks in the calling thread's bins, all classes
  uint64_t own_bin_bytes;
  sp_census census;
  ace_stats ace;            // per-class counters (HAKMEM_STATS), huge and arena figures
  int counting;             // HAKMEM_STATS is not 0: per-class counters are kept
} hk_usage;

// Fills `usage` (about 10 KiB: callers keep it on their stack).
void hk_usage_take(hk_usage *usage);

// A value of /proc/self/status in KiB ("VmHWM:", "VmRSS:"), or 0 when it cannot be read. No malloc.
uint64_t hk_status_kib(const char *field);

#endif  // HAKMEM_ALLOCATOR_HAKMEM_USAGE_H_
