// ACE's class table (geometry and cache bounds, defined to the slab engine), its counters and its
// per-thread state. The bottom of the layer's files: it calls none of the others.
#define _GNU_SOURCE
#include <pthread.h>

#include "allocator/base/config.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"

_Static_assert(ACE_KIND_BASE + ACE_CLASS_COUNT <= SE_CLASS_MAX, "ACE classes are engine classes");

__thread ace_thread_state ace_slow __attribute__((tls_model("initial-exec")));

__thread uint64_t ace_bin_hits[ACE_CLASS_COUNT] __attribute__((tls_model("initial-exec")));

ace_class_info ace_classes[ACE_CLASS_COUNT];
ace_class_stats ace_class_counters[ACE_CLASS_COUNT];
int ace_stats_enabled;

// ---- Class geometry ---------------------------------------------------------------------------
// Blocks a class's slab should hold: 8 up to 128 KiB blocks (so a slab amortises its pool call
// and its metadata over a useful batch), fewer above so a slab stays <= 1 MiB, never below 2.
static uint32_t target_blocks(size_t size) {
  size_t target = ((size_t)1 << 20) / size;
  if (target > 8) target = 8;
  if (target < 2) target = 2;
  return (uint32_t)target;
}

static void compute_classes(void) {
  int64_t class_max_bytes = hk_config_int(HK_OPT_ACE_CLASS_MAX_BYTES);
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    size_t size = ace_class_size(c);
    uint32_t target = target_blocks(size);
    // The fewest slots giving `target` blocks with tail waste <= 1/32 of the slab; failing that
    // (never, for these classes: tested), the least tail waste (as a share of the slab) with `target`
    // blocks.
    uint32_t best = 0;
    size_t best_waste = 0, best_usable = 1;
    for (uint32_t n = 1; n <= ACE_MAX_SPAN_SLOTS; n++) {
      size_t usable = (size_t)n << SS_SLAB_SIZE_LOG2;
      size_t blocks = usable / size;
      if (blocks < target) continue;
      size_t waste = usable - blocks * size;
      if (waste <= usable / 32) {
        best = n;
        break;
      }
      if (best == 0 || waste * best_usable < best_waste * usable) best = n, best_waste = waste, best_usable = usable;
    }
    if (best == 0) best = ACE_MAX_SPAN_SLOTS;  // unreachable: 16 slots hold 1 MiB / size >= target
    ace_class_info *info = &ace_classes[c];
    info->block_size = (uint32_t)size;
    info->slots = best;
    info->blocks = (uint32_t)(((size_t)best << SS_SLAB_SIZE_LOG2) / size);
    // Floor: 16 KiB worth (at least 1, at most 8 blocks). Ceiling: HAKMEM_ACE_CLASS_MAX_BYTES
    // worth, at least 2 blocks (so a large class can hold a freed block and a spare), at most 256.
    uint32_t floor = (uint32_t)(16384 / size);
    if (floor < 1) floor = 1;
    if (floor > 8) floor = 8;
    int64_t ceiling = class_max_bytes / (int64_t)size;
    if (ceiling < 2) ceiling = 2;
    if (ceiling > 256) ceiling = 256;
    if (ceiling < floor) ceiling = floor;
    info->cap_min = floor;
    info->cap_max = (uint32_t)ceiling;
  }
}

static pthread_once_t classes_once = PTHREAD_ONCE_INIT;
void ace_classes_init(void) { pthread_once(&classes_once, compute_classes); }

// ---- Counters ---------------------------------------------------------------------------------
void ace_fold_hits(void) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    uint64_t hits = ace_bin_hits[c], *folded = &ace_slow.classes[c].hits_folded;
    if (hits != *folded) {
      ACE_COUNT(c, hits, hits - *folded);
      *folded = hits;
    }
  }
}

