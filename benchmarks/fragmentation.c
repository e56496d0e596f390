// fragmentation: how much memory an allocator holds beyond what the program has live. Phase 1 fills a
// large live set with small mixed sizes, phase 2 frees most of it in a scattered pattern (so few pages
// become entirely free), phase 3 grows the live set back to the same size with a different, larger size
// mix that cannot reuse the small holes directly. The result is peak RSS (VmHWM) against the bytes live
// at the peak, and the RSS left after everything is freed (does memory go back to the OS?).
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

typedef struct {
  void *block;
  size_t size;
  uint64_t tag;
} entry;

typedef struct {
  entry *entries;
  uint64_t count;
  uint64_t capacity;
  uint64_t live_bytes;
  uint64_t live_bytes_peak;
  uint64_t ops;
  uint64_t seed;
} live_set;

static void add_block(live_set *set, size_t size) {
  if (set->count == set->capacity) {
    set->capacity = set->capacity ? set->capacity * 2 : 4096;
    set->entries = bench_check_alloc(realloc(set->entries, set->capacity * sizeof(entry)), set->capacity * sizeof(entry));
  }
  entry *e = &set->entries[set->count++];
  e->block = bench_check_alloc(malloc(size), size);
  e->size = size;
  e->tag = bench_block_tag(set->seed, 0, e->block);
  bench_fill(e->block, size, e->tag);
  set->live_bytes += size;
  if (set->live_bytes > set->live_bytes_peak) set->live_bytes_peak = set->live_bytes;
  set->ops++;
}

static void remove_block(live_set *set, uint64_t index) {
  entry *e = &set->entries[index];
  bench_verify_or_die(e->block, e->size, e->tag, "fragmentation free");
  free(e->block);
  set->live_bytes -= e->size;
  set->entries[index] = set->entries[--set->count];
  set->ops++;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t live_mib = quick ? 16 : 256;
  uint64_t keep_percent = 10;
  uint64_t seed = 1;
  bool trim = false;
  const char *name = "fragmentation";
  const bench_arg args[] = {
      {"live_mib", BENCH_ARG_U64, &live_mib, "live set size in MiB at each peak"},
      {"keep_percent", BENCH_ARG_U64, &keep_percent, "share of phase-1 blocks kept in phase 2"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"trim", BENCH_ARG_FLAG, &trim, "call malloc_trim(0) between phase 2 and phase 3"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "peak RSS against live bytes after scattered frees");
  bench_set_name(name);
  if (live_mib == 0 || keep_percent > 100) bench_fail_usage("need live_mib > 0 and keep_percent <= 100");

  uint64_t target = live_mib << 20;
  live_set set = {NULL, 0, 0, 0, 0, 0, seed};
  bench_rng rng;
  bench_rng_seed(&rng, seed, 0);
  uint64_t baseline_kib = bench_current_rss_kib();
  double start = bench_now_seconds();

  // Phase 1: small mixed sizes, 16 B-1 KiB.
  while (set.live_bytes < target) add_block(&set, (size_t)bench_rng_log_range(&rng, 16, 1024));
  // Phase 2: scattered frees; keep about keep_percent of the blocks.
  for (uint64_t i = 0; i < set.count;) {
    if (bench_rng_next(&rng) % 100 >= keep_percent) {
      remove_block(&set, i);  // moves the last entry here: look at index i again
    } else {
      i++;
    }
  }
  uint64_t kept_bytes = set.live_bytes;
  // What a program that knows it just freed most of its heap can do (glibc's malloc_trim also
  // returns free pages in the middle of the heap; peers without their own call glibc's, a no-op).
  if (trim) malloc_trim(0);
  // Phase 3: a larger size mix, 1-8 KiB, back up to the same live total.
  while (set.live_bytes < target) add_block(&set, (size_t)bench_rng_log_range(&rng, 1024, 8192));
  uint64_t peak_rss_kib = bench_peak_rss_kib();
  while (set.count) remove_block(&set, set.count - 1);
  double seconds = bench_now_seconds() - start;
  uint64_t rss_after_free_kib = bench_current_rss_kib();
  free(set.entries);

  // The baseline (program, libraries, the entries array) is not the allocator's fault.
  double allocator_rss = (double)(peak_rss_kib > baseline_kib ? peak_rss_kib - baseline_kib : 0) * 1024.0;
  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "live_bytes_peak", set.live_bytes_peak);
  bench_result_u64(&result, "kept_bytes", kept_bytes);
  bench_result_u64(&result, "baseline_rss_kib", baseline_kib);
  bench_result_u64(&result, "peak_rss_kib", peak_rss_kib);
  bench_result_double(&result, "rss_ratio", allocator_rss / (double)set.live_bytes_peak);
  bench_result_u64(&result, "rss_after_free_kib", rss_after_free_kib);
  bench_result_finish(&result, set.ops, seconds);
  return 0;
}
