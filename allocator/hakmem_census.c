// The compaction census (see hakmem_census.h): a walk of the slabs in use that records each
// resident page's live granules, then the page-release and meshing figures from those records.
#define _GNU_SOURCE
#include "allocator/hakmem_census.h"

#include <errno.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/freelist.h"
#include "allocator/base/report.h"
#include "allocator/base/stats.h"
#include "allocator/hakmem_usage.h"
#include "allocator/os/os.h"
#include "allocator/superslab/registry.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/shared_pool.h"

_Static_assert(HK_CENSUS_SIZES >= SE_CLASS_MAX, "a place for every engine class's block size");

#define CENSUS_PAGE 4096u
#define CENSUS_GRANULE 16u
#define CENSUS_WORDS (CENSUS_PAGE / CENSUS_GRANULE / 64u)  // bitmap words per page
// Pages of the largest span (16 slots of 64 KiB).
#define CENSUS_SPAN_PAGES (16u * (1u << SS_SLAB_SIZE_LOG2) / CENSUS_PAGE)

// One resident page: its grid (block size and the offset of the page's start from the first block
// that begins on or before it, modulo the size) and its live granules.
typedef struct {
  uint64_t grid;  // block_size << 32 | phase
  uint64_t live[CENSUS_WORDS];
  uint32_t live_granules;
  uint32_t unused;
} census_page;

typedef struct {
  census_page *pages;
  uint32_t count;
  uint32_t capacity;
  uint64_t skipped;
} census_walk;

static void census_set_granules(census_page *page, uint32_t from, uint32_t to) {
  for (uint32_t granule = from; granule < to; granule++) page->live[granule / 64] |= (uint64_t)1 << (granule % 64);
}

// Records the resident pages of the carved part of a slab or span (sp_census_take's visitor: it
// makes no pool call and allocates nothing).
static void census_visit(const ss_slab *head, void *argument) {
  census_walk *walk = argument;
  uint32_t size = __atomic_load_n(&head->block_size, __ATOMIC_RELAXED);
  uint32_t carve = __atomic_load_n(&head->carve, __ATOMIC_RELAXED);
  uint32_t slots = __atomic_load_n(&head->span_slabs, __ATOMIC_RELAXED);
  if (size == 0 || size % CENSUS_GRANULE != 0 || carve == 0 || slots == 0) return;
  char *base = ss_slab_base(head);  // page-aligned: a slot's start, or just past slot 0's header
  size_t limit = ((size_t)slots << SS_SLAB_SIZE_LOG2) - (head->index == 0 ? SS_HEADER_SIZE : 0);
  if (carve > limit) return;  // a torn read of a slab being reset
  uint32_t pages = (uint32_t)(hk_align_up(carve, CENSUS_PAGE) / CENSUS_PAGE);
  unsigned char resident[CENSUS_SPAN_PAGES];
  if (pages > CENSUS_SPAN_PAGES || hk_os_resident_map(base, (size_t)pages * CENSUS_PAGE, resident) != 0) return;
  for (uint32_t p = 0; p < pages; p++) {
    if (!resident[p]) continue;
    if (walk->count == walk->capacity) {
      walk->skipped++;
      continue;
    }
    census_page *page = &walk->pages[walk->count++];
    memset(page, 0, sizeof *page);
    uint32_t page_start = p * CENSUS_PAGE, page_end = page_start + CENSUS_PAGE;
    if (page_end > carve) page_end = carve;  // past the carve nothing was handed out
    uint32_t first = page_start / size;      // the block that covers the page's first byte
    page->grid = (uint64_t)size << 32 | (page_start - first * size);
    for (uint32_t start = first * size; start < page_end; start += size) {
      // A block that begins on an earlier page that is no longer resident was given back: free.
      uint32_t start_page = start / CENSUS_PAGE;
      if (!resident[start_page] || hk_block_is_marked_free_relaxed(base + start)) continue;
      uint32_t from = start > page_start ? start : page_start;
      uint32_t to = start + size < page_end ? start + size : page_end;
      census_set_granules(page, (from - page_start) / CENSUS_GRANULE, (to - page_start + CENSUS_GRANULE - 1) / CENSUS_GRANULE);
    }
    for (unsigned w = 0; w < CENSUS_WORDS; w++) page->live_granules += (uint32_t)__builtin_popcountll(page->live[w]);
  }
}

// Orders by grid, then by falling occupancy (first fit decreasing within a grid).
static int census_before(const census_page *a, const census_page *b) {
  if (a->grid != b->grid) return a->grid < b->grid;
  return a->live_granules > b->live_granules;
}

// Heapsort of the page indexes (no allocation, no recursion).
static void census_sift(const census_page *pages, uint32_t *order, uint32_t root, uint32_t count) {
  for (;;) {
    uint32_t child = 2 * root + 1;
    if (child >= count) return;
    if (child + 1 < count && census_before(&pages[order[child]], &pages[order[child + 1]])) child++;
    if (!census_before(&pages[order[root]], &pages[order[child]])) return;
    uint32_t swap = order[root];
    order[root] = order[child];
    order[child] = swap;
    root = child;
  }
}

static void census_sort(const census_page *pages, uint32_t *order, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) order[i] = i;
  for (uint32_t i = count / 2; i-- > 0;) census_sift(pages, order, i, count);
  for (uint32_t end = count; end > 1; end--) {
    uint32_t swap = order[0];
    order[0] = order[end - 1];
    order[end - 1] = swap;
    census_sift(pages, order, 0, end - 1);
  }
}

static int census_disjoint(const census_page *a, const census_page *b) {
  uint64_t overlap = 0;
  for (unsigned w = 0; w < CENSUS_WORDS; w++) overlap |= a->live[w] & b->live[w];
  return overlap == 0;
}

// Meshes the occupied pages order[0 .. count) of one grid: in pairs when `pairs`, else without a
// bound (a candidate then carries the union of the pages meshed onto it, in place). Returns the
// physical pages left. `open` is scratch for `count` indexes.
static uint64_t census_mesh(census_page *pages, const uint32_t *order, uint32_t count, uint32_t *open, int pairs) {
  uint32_t open_count = 0;
  uint64_t physical = 0;
  for (uint32_t i = 0; i < count; i++) {
    census_page *page = &pages[order[i]];
    uint32_t probes = open_count < HK_CENSUS_PROBES ? open_count : HK_CENSUS_PROBES;
    uint32_t found = UINT32_MAX;
    for (uint32_t k = 0; k < probes && found == UINT32_MAX; k++)
      if (census_disjoint(&pages[open[open_count - 1 - k]], page)) found = open_count - 1 - k;
    if (found == UINT32_MAX) {
      open[open_count++] = order[i];  // a physical page of its own, open to others
      physical++;
    } else if (pairs) {
      open[found] = open[--open_count];  // the pair is complete
    } else {
      census_page *target = &pages[open[found]];
      for (unsigned w = 0; w < CENSUS_WORDS; w++) target->live[w] |= page->live[w];
    }
  }
  return physical;
}

static hk_census_figures *census_size_entry(hk_census *out, uint32_t block_size) {
  for (uint32_t i = 0; i < out->sizes; i++)
    if (out->by_size[i].block_size == block_size) return &out->by_size[i].figures;
  if (out->sizes == HK_CENSUS_SIZES) return NULL;
  hk_census_size *entry = &out->by_size[out->sizes++];
  entry->block_size = block_size;
  return &entry->figures;
}

static void census_add(hk_census_figures *to, const hk_census_figures *from) {
  to->pages += from->pages;
  to->pages_free += from->pages_free;
  to->pages_after_pairs += from->pages_after_pairs;
  to->pages_after_mesh += from->pages_after_mesh;
  to->live_bytes += from->live_bytes;
}

int hk_census_take(hk_census *out) {
  memset(out, 0, sizeof *out);
  if (hk_os_page_size() != CENSUS_PAGE) {
    errno = ENOTSUP;
    return -1;
  }
  out->at_ms = ss_clock_ms();
  out->committed_bytes = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  out->rss_kib = hk_status_kib("VmRSS:");
  sp_census pool;
  sp_census_take(&pool, NULL, NULL);
  out->pool_free_committed_bytes = pool.free_committed_bytes;
  out->pool_free_resident_bytes = sp_free_resident_bytes();
  // Room for every page of the slots in use now, a quarter more for slabs taken during the walk.
  uint64_t capacity = (pool.slots_in_use * ((1u << SS_SLAB_SIZE_LOG2) / CENSUS_PAGE)) * 5 / 4 + 64;
  if (capacity > UINT32_MAX / 2) capacity = UINT32_MAX / 2;
  size_t bytes = hk_align_up(capacity * (sizeof(census_page) + 2 * sizeof(uint32_t)), CENSUS_PAGE);
  census_page *pages = hk_os_reserve_aligned(bytes, 0, HK_OS_RESERVE_DEFAULT);
  if (!pages) return -1;
  uint32_t *order = (uint32_t *)(pages + capacity);
  uint32_t *open = order + capacity;
  census_walk walk = {pages, 0, (uint32_t)capacity, 0};
  sp_census_take(&pool, census_visit, &walk);
  out->pages_skipped = walk.skipped;
  census_sort(pages, order, walk.count);
  for (uint32_t begin = 0, end; begin < walk.count; begin = end) {
    uint64_t grid = pages[order[begin]].grid;
    hk_census_figures figures = {0, 0, 0, 0, 0};
    uint32_t occupied = 0;
    for (end = begin; end < walk.count && pages[order[end]].grid == grid; end++) {
      uint32_t live = pages[order[end]].live_granules;
      figures.pages++;
      figures.live_bytes += (uint64_t)live * CENSUS_GRANULE;
      if (live == 0) figures.pages_free++;
      else occupied++;  // sorted by falling occupancy: the free pages come last
    }
    figures.pages_after_pairs = census_mesh(pages, order + begin, occupied, open, 1);
    figures.pages_after_mesh = census_mesh(pages, order + begin, occupied, open, 0);
    // Greedy unions can block pairings that the pairs pass found: the better of the two (a bound on
    // pages per page includes pairs).
    if (figures.pages_after_mesh > figures.pages_after_pairs) figures.pages_after_mesh = figures.pages_after_pairs;
    census_add(&out->total, &figures);
    hk_census_figures *entry = census_size_entry(out, (uint32_t)(grid >> 32));
    if (entry) census_add(entry, &figures);
  }
  hk_os_release(pages, bytes);
  // Most pages first (insertion sort: at most HK_CENSUS_SIZES entries).
  for (uint32_t i = 1; i < out->sizes; i++) {
    hk_census_size entry = out->by_size[i];
    uint32_t j = i;
    for (; j > 0 && out->by_size[j - 1].figures.pages < entry.figures.pages; j--) out->by_size[j] = out->by_size[j - 1];
    out->by_size[j] = entry;
  }
  return 0;
}

static void census_write_figures(hk_writer *writer, const hk_census_figures *figures) {
  static const char *const names[] = {" pages=", " pages_free=", " pages_after_pairs=", " pages_after_mesh=",
                                      " live_kib="};
  const uint64_t values[] = {figures->pages, figures->pages_free, figures->pages_after_pairs,
                             figures->pages_after_mesh, figures->live_bytes >> 10};
  for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++) {
    hk_writer_text(writer, names[i]);
    hk_writer_decimal(writer, values[i]);
  }
  hk_writer_text(writer, "\n");
}

void hk_census_write(int fd, const hk_census *census, uint64_t taken) {
  char buffer[1024];
  hk_writer writer = hk_writer_to(fd, buffer, sizeof buffer);
  hk_writer_text(&writer, "census at_ms=");
  hk_writer_decimal(&writer, census->at_ms);
  hk_writer_text(&writer, " taken=");
  hk_writer_decimal(&writer, taken);
  hk_writer_text(&writer, " committed_kib=");
  hk_writer_decimal(&writer, census->committed_bytes >> 10);
  hk_writer_text(&writer, " rss_kib=");
  hk_writer_decimal(&writer, census->rss_kib);
  hk_writer_text(&writer, " pool_free_committed_kib=");
  hk_writer_decimal(&writer, census->pool_free_committed_bytes >> 10);
  hk_writer_text(&writer, " pool_free_resident_kib=");
  hk_writer_decimal(&writer, census->pool_free_resident_bytes >> 10);
  hk_writer_text(&writer, " pages_skipped=");
  hk_writer_decimal(&writer, census->pages_skipped);
  hk_writer_text(&writer, "\ntotal");
  census_write_figures(&writer, &census->total);
  for (uint32_t i = 0; i < census->sizes; i++) {
    hk_writer_text(&writer, "size=");
    hk_writer_decimal(&writer, census->by_size[i].block_size);
    census_write_figures(&writer, &census->by_size[i].figures);
  }
  hk_writer_flush(&writer);
}
