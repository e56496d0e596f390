// Process-wide counters (the table is stats_table.h): relaxed atomics, one cache line each so
// that threads bumping different counters never share a line. Exact, cheap, never printed here.
#ifndef HAKMEM_ALLOCATOR_BASE_STATS_H_
#define HAKMEM_ALLOCATOR_BASE_STATS_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/base/stats_table.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
#define HK_STATS_ENUM(id, name, meaning) HK_STAT_##id,
  HK_STATS_TABLE(HK_STATS_ENUM)
#undef HK_STATS_ENUM
  HK_STAT_COUNT
} hk_stat_id;

// One counter on its own cache line. Use the functions below, not the field.
// `value` is touched only through __atomic builtins (usable from C and C++ alike).
typedef struct {
  uint64_t value;
  char padding[64 - sizeof(uint64_t)];
} hk_stat_cell;

extern hk_stat_cell hk_stat_cells[HK_STAT_COUNT];

// Adds `delta` to a counter. Relaxed: counters order nothing, they only have to add up.
static inline void hk_stat_add(hk_stat_id id, uint64_t delta) {
  __atomic_fetch_add(&hk_stat_cells[id].value, delta, __ATOMIC_RELAXED);
}

// Subtracts `delta` from a gauge (a counter that goes down, such as bytes mapped now).
static inline void hk_stat_sub(hk_stat_id id, uint64_t delta) {
  __atomic_fetch_sub(&hk_stat_cells[id].value, delta, __ATOMIC_RELAXED);
}

// Raises a peak gauge to `value` when it is below (relaxed CAS: a peak orders nothing).
static inline void hk_stat_raise(hk_stat_id id, uint64_t value) {
  uint64_t seen = __atomic_load_n(&hk_stat_cells[id].value, __ATOMIC_RELAXED);
  while (seen < value &&
         !__atomic_compare_exchange_n(&hk_stat_cells[id].value, &seen, value, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

// The current value of one counter.
static inline uint64_t hk_stat_get(hk_stat_id id) {
  return __atomic_load_n(&hk_stat_cells[id].value, __ATOMIC_RELAXED);
}

// Every counter at once: out[i] is counter i (each read is atomic; the set is not a single instant).
typedef struct {
  uint64_t values[HK_STAT_COUNT];
} hk_stats_snapshot;

void hk_stats_take_snapshot(hk_stats_snapshot *out);

// The name ("os.mmap_calls") and meaning of counter `id`.
const char *hk_stat_name(hk_stat_id id);
const char *hk_stat_meaning(hk_stat_id id);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_BASE_STATS_H_
