// Statistics output: the memory census (hk_usage_take), the readable summary that HAKMEM_STATS=1
// and malloc_stats print, and the raw counters of HAKMEM_STATS=all and json:PATH. No malloc, no
// stdio: the output runs at exit, inside the allocator, and from malloc_stats.
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/stats.h"
#include "allocator/hakmem.h"
#include "allocator/hakmem_usage.h"
#include "allocator/midlarge/ace.h"
#include "allocator/os/os.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"
#include "allocator/tiny/tiny.h"

// ---- The census ---------------------------------------------------------------------------------
_Static_assert(TINY_CLASS_COUNT == ACE_KIND_BASE && ACE_KIND_BASE + ACE_CLASS_COUNT <= SE_CLASS_MAX,
               "tiny classes, then ACE's, are engine classes 0 .. 67");

static uint64_t class_block_size(unsigned c) {
  return c < TINY_CLASS_COUNT ? tiny_class_size[c] : ace_class_size(c - ACE_KIND_BASE);
}

// sp_census_take's visitor: adds slab (or span) `head` to its class. The fields are the owner's,
// read as they are (relaxed loads; see sp_census_visit).
static void count_slab(const ss_slab *head, void *arg) {
  hk_usage *usage = arg;
  unsigned kind = __atomic_load_n(&head->kind, __ATOMIC_RELAXED);
  unsigned slots = __atomic_load_n(&head->span_slabs, __ATOMIC_RELAXED);
  uint64_t bytes = ss_slab_usable_size_n(head, slots ? slots : 1);
  unsigned c = kind;
  if (kind == SS_KIND_SPAN) {
    // Spans are ACE's; the class is in ACE's head word, 0 until ACE has set the span up.
    uint64_t word = __atomic_load_n(&head->user_tag, __ATOMIC_RELAXED);
    c = word ? ACE_KIND_BASE + ace_head_class(word) : SE_CLASS_MAX;
  }
  if (c >= SE_CLASS_MAX) {
    usage->mid.reserved += bytes;
    usage->mid.committed += bytes;
    return;
  }
  hk_class_usage *class_usage = &usage->classes[c];
  uint64_t trimmed = (uint64_t)se_slab_trimmed_pages(head) * hk_os_page_size();
  uint32_t used = __atomic_load_n(&head->used, __ATOMIC_RELAXED);
  uint32_t remote = ss_remote_count(__atomic_load_n(&head->remote_free, __ATOMIC_RELAXED));
  class_usage->slabs++;
  class_usage->reserved_bytes += bytes;
  class_usage->committed_bytes += bytes - (trimmed < bytes ? trimmed : bytes);
  class_usage->capacity += __atomic_load_n(&head->capacity, __ATOMIC_RELAXED);
  class_usage->blocks_out += used > remote ? used - remote : 0;  // frees pushed, not collected yet
}

static void add_layer(hk_layer_usage *sum, const hk_layer_usage *part) {
  sum->reserved += part->reserved;
  sum->committed += part->committed;
  sum->in_use += part->in_use;
  sum->cached += part->cached;
}

static uint64_t difference(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

void hk_usage_take(hk_usage *usage) {
  memset(usage, 0, sizeof *usage);
  usage->counting = hk_config_string(HK_OPT_STATS)[0] != '0';
  sp_census_take(&usage->census, count_slab, usage);
  for (unsigned c = 0; c < ACE_KIND_BASE + ACE_CLASS_COUNT; c++) {
    hk_class_usage *class_usage = &usage->classes[c];
    class_usage->block_size = class_block_size(c);
    class_usage->own_bin_blocks = se_thread.bins[c].count;
    usage->own_bin_blocks += class_usage->own_bin_blocks;
    usage->own_bin_bytes += class_usage->own_bin_blocks * class_usage->block_size;
    hk_layer_usage *layer = c < TINY_CLASS_COUNT ? &usage->tiny : &usage->mid;
    layer->reserved += class_usage->reserved_bytes;
    layer->committed += class_usage->committed_bytes;
    layer->in_use += hk_class_live(class_usage) * class_usage->block_size;
  }
  usage->tiny.cached = difference(usage->tiny.committed, usage->tiny.in_use);
  usage->mid.cached = difference(usage->mid.committed, usage->mid.in_use);

  ace_stats_get(&usage->ace);
  const ace_stats *ace = &usage->ace;
  uint64_t arena_bytes = ace->arena_regions * ACE_ARENA_REGION_SIZE;
  uint64_t arena_live = difference(arena_bytes, ace->arena_free_bytes);
  usage->huge.reserved = difference(ace->huge_live_bytes, arena_live) + ace->huge_cache_bytes + arena_bytes;
  usage->huge.in_use = ace->huge_live_bytes;
  usage->huge.cached = ace->huge_cache_bytes + ace->arena_free_committed_bytes;
  usage->huge.committed = usage->huge.in_use + usage->huge.cached;

  const sp_census *census = &usage->census;
  usage->free.reserved = census->free_bytes + census->cached_bytes;
  usage->free.committed = usage->free.cached = census->free_committed_bytes + census->cached_committed_bytes;

  hk_layer_usage parts = {0, 0, 0, 0};
  add_layer(&parts, &usage->tiny);
  add_layer(&parts, &usage->mid);
  add_layer(&parts, &usage->huge);
  add_layer(&parts, &usage->free);
  usage->total = parts;
  usage->total.reserved = hk_stat_get(HK_STAT_OS_BYTES_RESERVED);
  usage->total.committed = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  usage->metadata.reserved = difference(usage->total.reserved, parts.reserved);
  usage->metadata.committed = difference(usage->total.committed, parts.committed);
}

// ---- Writing without malloc or stdio (hk_writer) ------------------------------------------------
// `text` right-aligned in a field of `width` characters.
static void writer_cell(hk_writer *writer, const char *text, size_t width) {
  for (size_t length = strlen(text); length < width; length++) hk_writer_text(writer, " ");
  hk_writer_text(writer, text);
}

uint64_t hk_status_kib(const char *field) {
  int status = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (status < 0) return 0;
  char text[4096];
  ssize_t got = read(status, text, sizeof text - 1);
  close(status);
  if (got <= 0) return 0;
  text[got] = '\0';
  const char *at = strstr(text, field);
  if (!at) return 0;
  uint64_t kib = 0;
  for (at += strlen(field); *at == ' ' || *at == '\t'; at++) {}
  for (; *at >= '0' && *at <= '9'; at++) kib = kib * 10 + (uint64_t)(*at - '0');
  return kib;
}

// ---- Formatting for the summary (into a caller's buffer of at least 32 bytes) --------------------
// 1234567 -> "1,234,567".
static char *format_count(char *out, uint64_t value) {
  char digits[24];
  size_t count = hk_report_format_decimal(digits, value), length = 0;
  for (size_t i = 0; i < count; i++) {
    if (i && (count - i) % 3 == 0) out[length++] = ',';
    out[length++] = digits[i];
  }
  out[length] = '\0';
  return out;
}

// `tenths` / 10 with one decimal and a unit: "12.3 MiB".
static char *format_tenths(char *out, uint64_t tenths, const char *unit) {
  size_t length = hk_report_format_decimal(out, tenths / 10);
  out[length++] = '.';
  out[length++] = (char)('0' + tenths % 10);
  out[length++] = ' ';
  strcpy(out + length, unit);
  return out;
}

// Bytes in the largest binary unit that keeps the number >= 1: "512 B", "60.0 KiB", "1.5 GiB".
static char *format_bytes(char *out, uint64_t bytes) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    size_t length = hk_report_format_decimal(out, bytes);
    strcpy(out + length, " B");
    return out;
  }
  unsigned unit = 0;
  uint64_t scale = 1024;
  while (unit < 3 && bytes >= scale * 1024) scale *= 1024, unit++;
  return format_tenths(out, (bytes * 10 + scale / 2) / scale, units[unit]);
}

// part / whole as a percentage with one decimal, "-" when whole is 0.
static char *format_percent(char *out, uint64_t part, uint64_t whole) {
  if (whole == 0) return strcpy(out, "-");
  return format_tenths(out, (part * 1000 + whole / 2) / whole, "%");
}

// ---- The summary --------------------------------------------------------------------------------
// The memory table: a layer's name, then its reserved, committed, in-use and cached bytes.
#define LAYER_NAME_WIDTH 18
static void summary_layer(hk_writer *writer, const char *name, const hk_layer_usage *layer) {
  char cell[32];
  hk_writer_text(writer, "hakmem:   ");
  hk_writer_text(writer, name);
  writer_cell(writer, format_bytes(cell, layer->reserved), LAYER_NAME_WIDTH + 12 - strlen(name));
  writer_cell(writer, format_bytes(cell, layer->committed), 12);
  writer_cell(writer, format_bytes(cell, layer->in_use), 12);
  writer_cell(writer, format_bytes(cell, layer->cached), 12);
  hk_writer_text(writer, "\n");
}

// One row of the class table after `lead` ("hakmem:   "): a name, then live blocks, their bytes,
// allocations, hit rate, refills, slabs. NULL cells print "-".
static void summary_row(hk_writer *writer, const char *lead, const char *name, const char *const cells[6]) {
  static const size_t widths[6] = {12, 12, 13, 10, 10, 7};
  hk_writer_text(writer, lead);
  hk_writer_text(writer, name);
  for (size_t length = strlen(lead) + strlen(name); length < 24; length++) hk_writer_text(writer, " ");
  for (int i = 0; i < 6; i++) writer_cell(writer, cells[i] ? cells[i] : "-", widths[i]);
}

// The class's name ("tiny 16", "mid 1280") into `out`.
static char *class_name(char *out, unsigned c, uint64_t block_size) {
  strcpy(out, c < TINY_CLASS_COUNT ? "tiny " : "mid ");
  hk_report_format_decimal(out + strlen(out), block_size);
  return out;
}

// The figures of one row of the class table.
typedef struct {
  uint64_t live, bytes, allocations, hits, refills, slabs, committed;
  int counted;  // allocations and hits are counted (mid classes, HAKMEM_STATS on)
} class_row;

static class_row class_row_of(const hk_usage *usage, const tiny_class_stats *tiny, unsigned c) {
  const hk_class_usage *class_usage = &usage->classes[c];
  class_row row = {0};
  row.live = hk_class_live(class_usage);
  row.bytes = row.live * class_usage->block_size;
  row.slabs = class_usage->slabs;
  row.committed = class_usage->committed_bytes;
  if (c < TINY_CLASS_COUNT) {
    row.refills = tiny[c].refills;
  } else {
    const ace_class_stats *ace = &usage->ace.classes[c - ACE_KIND_BASE];
    row.refills = ace->misses;
    row.hits = ace->hits;
    row.allocations = ace->hits + ace->misses;
    row.counted = usage->counting;
  }
  return row;
}

// Tiny allocations have no counter (their fast path carries none): "n/c", not counted; with
// HAKMEM_STATS=0 no per-class counter is kept: "-".
static void print_class_row(hk_writer *writer, const char *name, const class_row *row, int counting) {
  char live[32], bytes[32], count[32], rate[32], refills[32], slabs[32];
  const char *cells[6] = {
      format_count(live, row->live),
      format_bytes(bytes, row->bytes),
      !counting ? NULL : row->counted ? format_count(count, row->allocations) : "n/c",
      !counting ? NULL : row->counted ? format_percent(rate, row->hits, row->allocations) : "n/c",
      counting ? format_count(refills, row->refills) : NULL,
      format_count(slabs, row->slabs),
  };
  summary_row(writer, "hakmem:   ", name, cells);
  hk_writer_text(writer, "\n");
}

// Per layer, the classes holding the most memory and then the busiest get a row each, in size
// order; the others of the layer share one ("other tiny 7").
#define SUMMARY_ROWS_BY_MEMORY 4
#define SUMMARY_ROWS_BY_ACTIVITY 2

// A class's activity: its allocations where counted (mid), else its refills (tiny).
static uint64_t class_activity(const class_row *row) { return row->counted ? row->allocations : row->refills; }

// Moves the `take` best of active[from .. count) to active[from .. from + take): by committed slab
// bytes (`by_memory`), else by activity; ties by the other key.
static void pick_rows(unsigned *active, unsigned from, unsigned take, unsigned count, const class_row *rows,
                      int by_memory) {
  for (unsigned i = from; i < from + take && i < count; i++) {
    for (unsigned j = i + 1; j < count; j++) {
      const class_row *a = &rows[active[i]], *b = &rows[active[j]];
      uint64_t a1 = by_memory ? a->committed : class_activity(a), b1 = by_memory ? b->committed : class_activity(b);
      uint64_t a2 = by_memory ? class_activity(a) : a->committed, b2 = by_memory ? class_activity(b) : b->committed;
      if (b1 > a1 || (b1 == a1 && b2 > a2)) {
        unsigned swap = active[i];
        active[i] = active[j];
        active[j] = swap;
      }
    }
  }
}

static void summary_layer_classes(hk_writer *writer, const hk_usage *usage, const class_row *rows, unsigned first,
                                  unsigned end, const char *layer) {
  unsigned active[SE_CLASS_MAX], count = 0;
  for (unsigned c = first; c < end; c++)
    if (rows[c].slabs || rows[c].refills || rows[c].allocations) active[count++] = c;
  pick_rows(active, 0, SUMMARY_ROWS_BY_MEMORY, count, rows, 1);
  pick_rows(active, SUMMARY_ROWS_BY_MEMORY, SUMMARY_ROWS_BY_ACTIVITY, count, rows, 0);
  unsigned shown = SUMMARY_ROWS_BY_MEMORY + SUMMARY_ROWS_BY_ACTIVITY;
  if (shown > count) shown = count;
  char name[32];
  for (unsigned c = first; c < end; c++) {
    for (unsigned i = 0; i < shown; i++)
      if (active[i] == c) print_class_row(writer, class_name(name, c, usage->classes[c].block_size), &rows[c], usage->counting);
  }
  if (count == shown) return;
  class_row others = {.counted = usage->counting};
  for (unsigned i = shown; i < count; i++) {
    const class_row *row = &rows[active[i]];
    others.counted &= row->counted;  // tiny classes: their allocations are not counted
    others.allocations += row->allocations;
    others.hits += row->hits;
    others.live += row->live;
    others.bytes += row->bytes;
    others.refills += row->refills;
    others.slabs += row->slabs;
  }
  strcpy(name, "other ");
  strcat(name, layer);
  strcat(name, " ");
  hk_report_format_decimal(name + strlen(name), count - shown);
  print_class_row(writer, name, &others, usage->counting);
}

static void summary_classes(hk_writer *writer, const hk_usage *usage, const tiny_class_stats *tiny) {
  static const char *const header[6] = {"live blocks", "in use", "allocations", "hit rate", "refills", "slabs"};
  summary_row(writer, "hakmem: ", "class", header);
  hk_writer_text(writer, "\n");
  class_row rows[ACE_KIND_BASE + ACE_CLASS_COUNT];
  for (unsigned c = 0; c < ACE_KIND_BASE + ACE_CLASS_COUNT; c++) rows[c] = class_row_of(usage, tiny, c);
  summary_layer_classes(writer, usage, rows, 0, TINY_CLASS_COUNT, "tiny");
  summary_layer_classes(writer, usage, rows, ACE_KIND_BASE, ACE_KIND_BASE + ACE_CLASS_COUNT, "mid");
  const ace_stats *ace = &usage->ace;
  uint64_t allocations = ace->huge_mapped + ace->huge_reused + ace->arena_committed_reuses + ace->arena_uncommitted_allocs;
  if (!ace->huge_live && !allocations) return;
  char live[32], bytes[32], total[32], rate[32], peak[32];
  // A huge allocation "hits" when cached memory serves it: a cached mapping or committed arena pages.
  const char *cells[6] = {format_count(live, ace->huge_live), format_bytes(bytes, ace->huge_live_bytes),
                          format_count(total, allocations),
                          format_percent(rate, ace->huge_reused + ace->arena_committed_reuses, allocations), NULL,
                          NULL};
  summary_row(writer, "hakmem:   ", "huge", cells);
  hk_writer_text(writer, "   peak ");
  hk_writer_decimal(writer, ace->huge_peak_count);
  hk_writer_text(writer, ace->huge_peak_count == 1 ? " block, " : " blocks, ");
  hk_writer_text(writer, format_bytes(peak, ace->huge_peak_bytes));
  hk_writer_text(writer, "\n");
}

// One figure of a line: its label, then its value (a count, or bytes); UINT64_MAX prints "-".
typedef struct {
  const char *label;
  uint64_t value;
  int bytes;
} figure;

#define NO_FIGURE UINT64_MAX

static void write_figures(hk_writer *writer, const figure *figures, size_t count, const char *end) {
  char cell[32];
  for (size_t i = 0; i < count; i++) {
    hk_writer_text(writer, figures[i].label);
    hk_writer_text(writer, figures[i].value == NO_FIGURE ? "-"
                           : figures[i].bytes        ? format_bytes(cell, figures[i].value)
                                                     : format_count(cell, figures[i].value));
  }
  hk_writer_text(writer, end);
}

static void summary_health(hk_writer *writer, const hk_usage *usage, const tiny_class_stats *tiny) {
  uint64_t refills = 0, flushes = 0, remote = 0, misses = 0, overflows = 0, hits = 0, abandoned = 0, adopted = 0;
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
    refills += tiny[c].refills;
    flushes += tiny[c].flushes;
    remote += tiny[c].remote_frees;
    abandoned += tiny[c].slabs_abandoned;
    adopted += tiny[c].slabs_adopted;
  }
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    const ace_class_stats *ace = &usage->ace.classes[c];
    misses += ace->misses;
    overflows += ace->overflows;
    hits += ace->hits;
    remote += ace->remote_frees;
    abandoned += ace->slabs_abandoned;
    adopted += ace->slabs_adopted;
  }
  if (usage->counting) {
    uint64_t per_million = hits + misses ? (misses + overflows) * 1000000 / (hits + misses) : NO_FIGURE;
    const figure slow[] = {{"hakmem: slow paths: tiny ", refills, 0}, {" refills, ", flushes, 0},
                           {" flushes; mid ", misses, 0},           {" misses, ", overflows, 0},
                           {" full-bin frees = ", per_million, 0}};
    write_figures(writer, slow, sizeof slow / sizeof slow[0], " per million mid allocations\n");
    const figure threads[] = {{"hakmem: threads: ", remote, 0},
                              {" frees to other threads' slabs; slabs left by exiting threads ", abandoned, 0},
                              {", adopted ", adopted, 0}};
    write_figures(writer, threads, sizeof threads / sizeof threads[0], "\n");
  }
  const figure syscalls[] = {{"hakmem: memory syscalls: mmap ", hk_stat_get(HK_STAT_OS_MMAP_CALLS), 0},
                             {", munmap ", hk_stat_get(HK_STAT_OS_MUNMAP_CALLS), 0},
                             {", madvise ", hk_stat_get(HK_STAT_OS_MADVISE_CALLS), 0},
                             {", mremap ", hk_stat_get(HK_STAT_OS_MREMAP_CALLS), 0}};
  write_figures(writer, syscalls, sizeof syscalls / sizeof syscalls[0], "\n");
  uint64_t spin = hk_stat_get(HK_STAT_LOCK_SPIN_WAITS), mapping = hk_stat_get(HK_STAT_SP_LOCK_WAITS);
  const figure waits[] = {{"hakmem: lock waits: ", spin + mapping, 0},
                          {" (spin locks ", spin, 0},
                          {", SuperSlab mapping ", mapping, 0}};
  write_figures(writer, waits, sizeof waits / sizeof waits[0], ")\n");
  const figure given[] = {{"hakmem: given back to the OS: ", hk_stat_get(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL), 1},
                          {" decommitted, ", hk_stat_get(HK_STAT_OS_BYTES_UNMAPPED_TOTAL), 1}};
  write_figures(writer, given, sizeof given / sizeof given[0], " unmapped\n");
}

void hakmem_stats_summary_write(int fd) {
  hk_usage usage;
  hk_usage_take(&usage);
  tiny_class_stats tiny[TINY_CLASS_COUNT];
  tiny_stats_get(tiny);
  char buffer[4096];
  hk_writer writer = hk_writer_to(fd, buffer, sizeof buffer);
  hk_writer_text(&writer, "hakmem: " HAKMEM_SUMMARY_TITLE ", pid ");
  hk_writer_decimal(&writer, (uint64_t)getpid());
  const figure head[] = {{" (HAKMEM_STATS=all adds every counter)\nhakmem: RSS ", hk_status_kib("VmRSS:") * 1024, 1},
                         {" now, ", hk_status_kib("VmHWM:") * 1024, 1}};
  write_figures(&writer, head, sizeof head / sizeof head[0], " at the peak (the whole process)\n");
  hk_writer_text(&writer, "hakmem: memory");
  static const char *const columns[4] = {"reserved", "committed", "in use", "cached"};
  for (int i = 0; i < 4; i++) writer_cell(&writer, columns[i], i == 0 ? LAYER_NAME_WIDTH + 12 + 2 - 6 : 12);
  hk_writer_text(&writer, "\n");
  summary_layer(&writer, "tiny (<= 1 KiB)", &usage.tiny);
  summary_layer(&writer, "mid (<= 512 KiB)", &usage.mid);
  summary_layer(&writer, "huge (> 512 KiB)", &usage.huge);
  summary_layer(&writer, "free slabs", &usage.free);
  summary_layer(&writer, "metadata", &usage.metadata);
  summary_layer(&writer, "total", &usage.total);
  summary_classes(&writer, &usage, tiny);
  summary_health(&writer, &usage, tiny);
  hk_writer_text(&writer,
                 "hakmem: live = blocks out of slabs but not in this thread's cache (other running threads' caches\n"
                 "hakmem: count as live); committed = mapped and not given back, resident or not;");
  hk_writer_text(&writer, usage.counting
                              ? " n/c = not counted\nhakmem: (tiny allocations have no counter: their fast path carries none)\n"
                              : "\nhakmem: per-class counters are off (HAKMEM_STATS=0): \"-\"\n");
  hk_writer_flush(&writer);
}

// ---- The raw counters ---------------------------------------------------------------------------
// One "name value" line, or one JSON member.
static void writer_counter(hk_writer *writer, int json, int *first, const char *name, uint64_t value) {
  if (json) {
    hk_writer_text(writer, *first ? "\n  \"" : ",\n  \"");
    hk_writer_text(writer, name);
    hk_writer_text(writer, "\": ");
  } else {
    hk_writer_text(writer, "hakmem: ");
    hk_writer_text(writer, name);
    hk_writer_text(writer, " ");
  }
  hk_writer_decimal(writer, value);
  if (!json) hk_writer_text(writer, "\n");
  *first = 0;
}

static const char *const tiny_stat_names[] = {
    "refills", "blocks_refilled", "flushes", "blocks_flushed", "remote_frees", "remote_collected",
    "slabs_acquired", "slabs_released", "slabs_abandoned", "slabs_adopted", "abandoned_lock_takes",
    "pages_parked", "pages_unparked", "refill_splices", "spare_reuses", "burst_flushes",
};

static const char *const ace_stat_names[] = {
    "hits",          "misses",          "blocks_refilled", "overflows",      "blocks_flushed",
    "remote_frees",  "capacity_grows",  "capacity_shrinks", "budget_denied", "idle_flushes",
    "slabs_acquired", "slabs_released", "slabs_abandoned", "slabs_adopted", "remote_collected",
    "abandoned_lock_takes", "pages_parked", "pages_unparked", "refill_splices", "spare_reuses",
};

// One "<prefix><class size>.<field>" counter per field of a class whose counters are not all 0.
static void writer_class_counters(hk_writer *writer, int json, int *first, const char *prefix, uint64_t class_size,
                                  const uint64_t *values, const char *const *names, size_t count) {
  int any = 0;
  for (size_t i = 0; i < count; i++) any |= values[i] != 0;
  if (!any) return;
  for (size_t i = 0; i < count; i++) {
    char name[64];
    size_t length = 0;
    for (const char *p = prefix; *p; p++) name[length++] = *p;
    length += hk_report_format_decimal(name + length, class_size);
    name[length++] = '.';
    const char *field = names[i];
    while (*field && length < sizeof name - 1) name[length++] = *field++;
    name[length] = '\0';
    writer_counter(writer, json, first, name, values[i]);
  }
}

void hakmem_stats_write(int fd, int json) {
  char buffer[4096];
  hk_writer writer = hk_writer_to(fd, buffer, sizeof buffer);
  int first = 1;
  if (json) hk_writer_text(&writer, "{");
  for (int i = 0; i < HK_STAT_COUNT; i++)
    writer_counter(&writer, json, &first, hk_stat_name((hk_stat_id)i), hk_stat_get((hk_stat_id)i));
  tiny_class_stats classes[TINY_CLASS_COUNT];
  tiny_stats_get(classes);
  _Static_assert(sizeof(tiny_stat_names) / sizeof(tiny_stat_names[0]) == sizeof(tiny_class_stats) / sizeof(uint64_t),
                 "one name per tiny counter");
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++)
    writer_class_counters(&writer, json, &first, "tiny.class", tiny_class_size[c], (const uint64_t *)&classes[c],
                          tiny_stat_names, sizeof(tiny_class_stats) / sizeof(uint64_t));
  ace_stats ace;
  ace_stats_get(&ace);
  _Static_assert(sizeof(ace_stat_names) / sizeof(ace_stat_names[0]) == sizeof(ace_class_stats) / sizeof(uint64_t),
                 "one name per ACE counter");
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++)
    writer_class_counters(&writer, json, &first, "ace.class", ace_class_size(c), (const uint64_t *)&ace.classes[c],
                          ace_stat_names, sizeof(ace_class_stats) / sizeof(uint64_t));
  // Peak RSS, from the kernel's own accounting (VmHWM in /proc/self/status), in KiB.
  uint64_t peak_kib = hk_status_kib("VmHWM:");
  if (peak_kib) writer_counter(&writer, json, &first, "process.peak_rss_kib", peak_kib);
  if (json) hk_writer_text(&writer, "\n}\n");
  hk_writer_flush(&writer);
}
