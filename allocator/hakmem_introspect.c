// glibc's introspection calls with HAKMEM's figures: mallinfo2 (and, in malloc_override.c,
// mallinfo), malloc_stats, malloc_info and mallopt. The figures come from one census
// (hk_usage_take, hakmem_stats.c); README.md ("glibc introspection calls") maps the fields.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>

#include "allocator/base/config.h"
#include "allocator/base/stats.h"
#include "allocator/hakmem.h"
#include "allocator/hakmem_usage.h"

// Free blocks of a class: what its slabs hold minus what is out, plus the calling thread's bin.
static uint64_t class_free_blocks(const hk_class_usage *usage) {
  uint64_t out = usage->blocks_out < usage->capacity ? usage->blocks_out : usage->capacity;
  return usage->capacity - out + usage->own_bin_blocks;
}

// Free units HAKMEM keeps besides blocks: free slabs, cached SuperSlabs, the pool's "top".
static uint64_t free_slab_units(const hk_usage *usage) {
  return usage->census.slots_free + usage->census.cached_superslabs;
}

static hakmem_mallinfo mallinfo_of(const hk_usage *usage) {
  hakmem_mallinfo info = {0};
  info.uordblks = usage->tiny.in_use + usage->mid.in_use;
  info.fordblks = usage->tiny.cached + usage->mid.cached + usage->free.cached + usage->huge.cached;
  info.arena = info.uordblks + info.fordblks;
  info.ordblks = free_slab_units(usage) + usage->ace.huge_cache_count + usage->ace.arena_free_spans;
  info.smblks = usage->own_bin_blocks;
  info.fsmblks = usage->own_bin_bytes;
  info.hblks = usage->ace.huge_live;
  info.hblkhd = usage->ace.huge_live_bytes;
  info.usmblks = 0;
  info.keepcost = usage->free.cached + usage->huge.cached;
  return info;
}

hakmem_mallinfo hakmem_mallinfo2(void) {
  hk_usage usage;
  hk_usage_take(&usage);
  return mallinfo_of(&usage);
}

void hakmem_malloc_stats(void) {
  fflush(stderr);  // what the program buffered goes first
  hakmem_stats_summary_write(2);
}

// ---- malloc_info --------------------------------------------------------------------------------
// glibc's <total type="..."/> and <system>/<aspace> lines.
static void xml_total(FILE *stream, const char *type, uint64_t count, uint64_t size) {
  fprintf(stream, "<total type=\"%s\" count=\"%llu\" size=\"%llu\"/>\n", type, (unsigned long long)count,
          (unsigned long long)size);
}

static void xml_size(FILE *stream, const char *element, const char *type, uint64_t size) {
  fprintf(stream, "<%s type=\"%s\" size=\"%llu\"/>\n", element, type, (unsigned long long)size);
}

int hakmem_malloc_info(int options, FILE *stream) {
  if (options != 0 || !stream) {
    errno = EINVAL;
    return -1;
  }
  // The figures first: the census holds a lock of HAKMEM's, fprintf may call malloc.
  hk_usage usage;
  hk_usage_take(&usage);
  uint64_t committed_peak = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED_PEAK);
  hakmem_mallinfo info = mallinfo_of(&usage);

  // One heap: every thread's tiny and mid slabs and the pool's free slabs. Its sizes are the size
  // classes in use, with their free blocks.
  fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", stream);
  uint64_t rest_count = 0, rest_size = 0, previous = 0;
  for (unsigned c = 0; c < ACE_KIND_BASE + ACE_CLASS_COUNT; c++) {
    const hk_class_usage *class_usage = &usage.classes[c];
    uint64_t from = previous + 1;
    previous = class_usage->block_size;
    if (!class_usage->slabs) continue;
    uint64_t free_blocks = class_free_blocks(class_usage);
    fprintf(stream, "  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"/>\n", (unsigned long long)from,
            (unsigned long long)class_usage->block_size, (unsigned long long)(free_blocks * class_usage->block_size),
            (unsigned long long)free_blocks);
    uint64_t others = free_blocks - class_usage->own_bin_blocks;
    rest_count += others;
    rest_size += others * class_usage->block_size;
  }
  fputs("</sizes>\n", stream);
  // "fast": the calling thread's caches (glibc's fast bins and tcache); "rest": the other free
  // blocks and, like glibc's top chunk, the free slabs.
  rest_count += free_slab_units(&usage);
  rest_size += usage.free.committed;
  uint64_t heap_committed = usage.tiny.committed + usage.mid.committed + usage.free.committed;
  uint64_t heap_reserved = usage.tiny.reserved + usage.mid.reserved + usage.free.reserved;
  xml_total(stream, "fast", info.smblks, info.fsmblks);
  xml_total(stream, "rest", rest_count, rest_size);
  xml_size(stream, "system", "current", heap_committed);
  xml_size(stream, "system", "max", heap_committed);  // no peak is kept per heap
  xml_size(stream, "aspace", "total", heap_reserved);
  xml_size(stream, "aspace", "mprotect", heap_committed);
  fputs("</heap>\n", stream);
  // The whole process's figures: cached huge memory is free too, live huge blocks are glibc's mmaps.
  xml_total(stream, "fast", info.smblks, info.fsmblks);
  xml_total(stream, "rest", rest_count + usage.ace.huge_cache_count + usage.ace.arena_free_spans,
            rest_size + usage.huge.cached);
  xml_total(stream, "mmap", info.hblks, info.hblkhd);
  xml_size(stream, "system", "current", usage.total.committed);
  xml_size(stream, "system", "max", committed_peak > usage.total.committed ? committed_peak : usage.total.committed);
  xml_size(stream, "aspace", "total", usage.total.reserved);
  xml_size(stream, "aspace", "mprotect", usage.total.committed);
  fputs("</malloc>\n", stream);
  return 0;
}

// ---- mallopt ------------------------------------------------------------------------------------
int hakmem_mallopt(int param, int value) {
  switch (param) {
    case M_TRIM_THRESHOLD:
      // glibc: free memory past this many bytes goes back to the OS (-1: never). HAKMEM's
      // counterpart: the free memory kept for huge blocks (cached mappings, the arena's committed
      // free pages). Slabs give theirs back by age, whatever this says.
      hk_config_set_int(HK_OPT_HUGE_CACHE_MAX_BYTES, value < 0 ? INT64_MAX : (int64_t)value);
      return 1;
    default:
      // M_MMAP_THRESHOLD (the 512 KiB boundary of huge blocks is the size classes' own),
      // M_MXFAST, M_TOP_PAD, M_MMAP_MAX, M_CHECK_ACTION (bad frees always abort),
      // M_PERTURB, M_ARENA_TEST, M_ARENA_MAX (no arenas): nothing of HAKMEM's to set.
      return 0;
  }
}
