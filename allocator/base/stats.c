#include "allocator/base/stats.h"

_Alignas(64) hk_stat_cell hk_stat_cells[HK_STAT_COUNT];

static const char *const stat_names[HK_STAT_COUNT] = {
#define HK_STATS_NAME(id, name, meaning) name,
    HK_STATS_TABLE(HK_STATS_NAME)
#undef HK_STATS_NAME
};

static const char *const stat_meanings[HK_STAT_COUNT] = {
#define HK_STATS_MEANING(id, name, meaning) meaning,
    HK_STATS_TABLE(HK_STATS_MEANING)
#undef HK_STATS_MEANING
};

void hk_stats_take_snapshot(hk_stats_snapshot *out) {
  for (int i = 0; i < HK_STAT_COUNT; i++) out->values[i] = hk_stat_get((hk_stat_id)i);
}

const char *hk_stat_name(hk_stat_id id) { return stat_names[id]; }

const char *hk_stat_meaning(hk_stat_id id) { return stat_meanings[id]; }
