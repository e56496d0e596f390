// mid_large_mt: T threads, each with its own slots of 8-32 KiB blocks, randomly freeing and allocating.
// It exists because the earlier mid/large path silently returned NULL for months: every size range
// needs a benchmark of its own, and this one is the mid range under thread contention.
//
// By default every block gets the full pattern (a word per 4 KiB page), so a run is mostly page
// touches. --touch=ends (the mid_large_touch rows) writes and checks only each block's first and last
// byte: the same allocation pattern, timed with the allocator's own work in front.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchmarks/bench_common.h"

typedef struct {
  void *block;
  size_t size;
  uint64_t tag;
} slot;

typedef enum { TOUCH_PATTERN, TOUCH_ENDS } touch_mode;

typedef struct {
  uint64_t thread_index;
  uint64_t ops;
  uint64_t slot_count;
  uint64_t min_size;
  uint64_t max_size;
  uint64_t seed;
  touch_mode touch;
  uint64_t live_bytes_peak;  // written by the thread, read after join
} worker;

static void fill_block(const slot *s, touch_mode touch) {
  if (touch == TOUCH_PATTERN) {
    bench_fill(s->block, s->size, s->tag);
    return;
  }
  uint8_t *bytes = s->block;
  bytes[0] = (uint8_t)s->tag;
  bytes[s->size - 1] = (uint8_t)(s->tag >> 8);
}

static void verify_block(const slot *s, touch_mode touch, const char *what) {
  if (touch == TOUCH_PATTERN) {
    bench_verify_or_die(s->block, s->size, s->tag, what);
    return;
  }
  const uint8_t *bytes = s->block;
  if (bytes[0] != (uint8_t)s->tag || bytes[s->size - 1] != (uint8_t)(s->tag >> 8)) {
    bench_fail_check("%s: block %p of %zu bytes lost its first or last byte", what, s->block, s->size);
  }
}

static void *worker_thread(void *argument) {
  worker *w = argument;
  slot *slots = bench_check_alloc(calloc(w->slot_count, sizeof(slot)), w->slot_count * sizeof(slot));
  bench_rng rng;
  bench_rng_seed(&rng, w->seed, w->thread_index + 1);
  uint64_t live_bytes = 0;
  for (uint64_t step = 0; step < w->ops; step++) {
    uint64_t index = bench_rng_next(&rng) % w->slot_count;
    slot *s = &slots[index];
    if (s->block) {
      verify_block(s, w->touch, "mid_large_mt free");
      free(s->block);
      live_bytes -= s->size;
      s->block = NULL;
    } else {
      size_t size = (size_t)bench_rng_range(&rng, w->min_size, w->max_size);
      s->block = bench_check_alloc(malloc(size), size);
      s->size = size;
      s->tag = bench_block_tag(w->seed, w->thread_index * w->slot_count + index, s->block);
      fill_block(s, w->touch);
      live_bytes += size;
      if (live_bytes > w->live_bytes_peak) w->live_bytes_peak = live_bytes;
    }
  }
  for (uint64_t i = 0; i < w->slot_count; i++) {
    if (slots[i].block) {
      verify_block(&slots[i], w->touch, "mid_large_mt final free");
      free(slots[i].block);
    }
  }
  free(slots);
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t threads = 1;
  uint64_t ops = quick ? 50000 : 8000000;
  uint64_t slot_count = 2048;
  uint64_t min_size = 8192;
  uint64_t max_size = 32768;
  uint64_t seed = 1;
  const char *touch_name = "pattern";
  const char *name = "mid_large_mt";
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &threads, "worker threads"},
      {"ops", BENCH_ARG_U64, &ops, "steps per thread (each one malloc or free)"},
      {"slots", BENCH_ARG_U64, &slot_count, "slots per thread"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"touch", BENCH_ARG_STRING, &touch_name, "pattern: a word per page of every block; ends: its first and last byte"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "multi-threaded 8-32 KiB random malloc/free");
  bench_set_name(name);
  touch_mode touch = TOUCH_PATTERN;
  if (strcmp(touch_name, "ends") == 0) {
    touch = TOUCH_ENDS;
  } else if (strcmp(touch_name, "pattern") != 0) {
    bench_fail_usage("--touch must be pattern or ends, not '%s'", touch_name);
  }
  if (threads == 0 || slot_count == 0 || min_size == 0 || min_size > max_size) {
    bench_fail_usage("need threads, slots > 0 and 0 < min <= max");
  }

  worker *workers = bench_check_alloc(calloc(threads, sizeof(worker)), threads * sizeof(worker));
  for (uint64_t t = 0; t < threads; t++) workers[t] = (worker){t, ops, slot_count, min_size, max_size, seed, touch, 0};
  double seconds = bench_run_threads(threads, worker_thread, workers, sizeof(worker));
  uint64_t live_bytes_peak = 0;
  // An upper bound: threads peak at different moments.
  for (uint64_t t = 0; t < threads; t++) live_bytes_peak += workers[t].live_bytes_peak;
  free(workers);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", threads);
  bench_result_string(&result, "touch", touch_name);
  bench_result_u64(&result, "live_bytes_peak", live_bytes_peak);
  bench_result_finish(&result, threads * ops, seconds);
  return 0;
}
