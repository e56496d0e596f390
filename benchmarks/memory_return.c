// memory_return: does freed memory go back to the OS with time, without malloc_trim? A program
// allocates a large heap of small blocks (16-512 B, log-uniform), frees all of it (the first half in
// allocation order, the second half at random, as a program dropping one structure in order and
// another by hash does), then either keeps making a trickle of small calls (--after=trickle: one
// malloc/free pair of 16-512 B every millisecond, as an idle server's housekeeping does) or makes no
// allocator call at all (--after=sleep) for --seconds. The RSS is sampled every 100 ms meanwhile.
//
// Reported: the RSS above the starting RSS right after the frees and at the end of the wait, and the
// seconds after the frees until it was within --slack_mib of the start (-1: never). ops/s is the
// allocate-and-free phase's speed. The pointer array is mapped (not malloc'd) and touched before the
// start is read, so the start is the program plus its own array.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "benchmarks/bench_common.h"

static void sleep_ms(unsigned ms) {
  struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0) {
  }
}

static void *map_array(size_t bytes) {
  void *array = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (array == MAP_FAILED) bench_fail_usage("cannot map a pointer array of %zu bytes", bytes);
  memset(array, 0, bytes);  // resident before the start is read
  return array;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t heap_mib = quick ? 64 : 1024;
  double seconds = quick ? 2.0 : 10.0;
  uint64_t slack_mib = 64;
  uint64_t seed = 1;
  const char *after = "sleep";
  const char *name = "memory_return";
  const bench_arg args[] = {
      {"heap_mib", BENCH_ARG_U64, &heap_mib, "bytes requested before the frees, MiB"},
      {"seconds", BENCH_ARG_DOUBLE, &seconds, "how long to wait after the frees"},
      {"after", BENCH_ARG_STRING, &after, "sleep (no allocator call) or trickle (a malloc/free pair per ms)"},
      {"slack_mib", BENCH_ARG_U64, &slack_mib, "RSS counted as returned when within this of the start"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "small run"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "RSS after freeing a large heap, over time");
  bench_set_name(name);
  bool trickle = strcmp(after, "trickle") == 0;
  if (!trickle && strcmp(after, "sleep") != 0) bench_fail_usage("--after is sleep or trickle, not %s", after);
  if (heap_mib == 0 || seconds <= 0) bench_fail_usage("need heap_mib > 0 and seconds > 0");

  uint64_t target = heap_mib << 20;
  // Mean of the log-uniform 16..512 sizes is about 143 B: room for the blocks with margin.
  uint64_t capacity = target / 96 + 1024;
  void **blocks = map_array(capacity * sizeof(void *));
  uint64_t *order = map_array(capacity / 2 * sizeof(uint64_t) + sizeof(uint64_t));
  bench_rng rng;
  bench_rng_seed(&rng, seed, 0);
  uint64_t start_kib = bench_current_rss_kib();

  double begin = bench_now_seconds();
  uint64_t count = 0, requested = 0;
  while (requested < target && count < capacity) {
    size_t size = (size_t)bench_rng_log_range(&rng, 16, 512);
    uint64_t *block = bench_check_alloc(malloc(size), size);
    block[0] = (uint64_t)count ^ 0x6d656d72657475ULL;  // checked at the free: the block kept its data
    block[(size / 8) - 1] = (uint64_t)count;
    blocks[count++] = block;
    requested += size;
  }
  uint64_t peak_kib = bench_current_rss_kib();
  // First half in allocation order, the second half in a random order (Fisher-Yates over indices).
  uint64_t half = count / 2;
  for (uint64_t i = 0; i < half; i++) {
    uint64_t *block = blocks[i];
    if (block[0] != (i ^ 0x6d656d72657475ULL)) bench_fail_check("block %llu lost its data", (unsigned long long)i);
    free(block);
  }
  uint64_t rest = count - half;
  for (uint64_t i = 0; i < rest; i++) order[i] = half + i;
  for (uint64_t i = rest; i > 1; i--) {
    uint64_t j = bench_rng_next(&rng) % i;
    uint64_t swap = order[i - 1];
    order[i - 1] = order[j];
    order[j] = swap;
  }
  for (uint64_t i = 0; i < rest; i++) {
    uint64_t index = order[i];
    uint64_t *block = blocks[index];
    if (block[0] != (index ^ 0x6d656d72657475ULL))
      bench_fail_check("block %llu lost its data", (unsigned long long)index);
    free(block);
  }
  double work_seconds = bench_now_seconds() - begin;
  uint64_t freed_kib = bench_current_rss_kib();

  // The wait: RSS every 100 ms; in trickle mode a malloc/free pair every millisecond.
  double wait_begin = bench_now_seconds();
  double settled = freed_kib <= start_kib + (slack_mib << 10) ? 0.0 : -1.0;
  uint64_t trickle_calls = 0;
  for (unsigned tick = 1; tick <= (unsigned)(seconds * 10.0 + 0.5); tick++) {
    if (trickle) {
      for (unsigned ms = 0; ms < 100; ms++) {
        char *block = bench_check_alloc(malloc((size_t)bench_rng_log_range(&rng, 16, 512)), 16);
        block[0] = (char)ms;
        free(block);
        trickle_calls++;
        sleep_ms(1);
      }
    } else {
      sleep_ms(100);
    }
    if (settled < 0 && bench_current_rss_kib() <= start_kib + (slack_mib << 10))
      settled = bench_now_seconds() - wait_begin;
  }
  uint64_t end_kib = bench_current_rss_kib();

  bench_result result;
  bench_result_init(&result);
  bench_result_string(&result, "after", trickle ? "trickle" : "sleep");
  bench_result_u64(&result, "blocks", count);
  bench_result_u64(&result, "start_rss_kib", start_kib);
  bench_result_u64(&result, "heap_rss_kib", peak_kib > start_kib ? peak_kib - start_kib : 0);
  bench_result_u64(&result, "freed_rss_kib", freed_kib > start_kib ? freed_kib - start_kib : 0);
  bench_result_u64(&result, "end_rss_kib", end_kib > start_kib ? end_kib - start_kib : 0);
  bench_result_double(&result, "settle_seconds", settled);
  bench_result_u64(&result, "trickle_calls", trickle_calls);
  bench_result_finish(&result, 2 * count, work_seconds);
  return 0;
}
