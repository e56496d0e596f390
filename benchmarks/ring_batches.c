// ring_batches: each thread fills a ring of slots (5,000 by default) with blocks whose sizes sweep
// 1 B..1,000 B on a fixed schedule, and whenever the ring is full frees four fifths of it in one burst:
// the older half in allocation order, the newer half in reverse order. Every fifth block (by position
// in the ring) stays alive into the next cycle, where it is one of the oldest; a fifth of those survive
// again, so lifetimes run from one cycle to many.
//
// The size schedule: the sweep goes up one byte at a time and allocates each size several times in a
// row, 250 times below 100 B and 250 * 100 / size times above (25 times at 1,000 B), then starts again
// at 1 B; small sizes come up most often, as in real programs. A ring then holds one or two size
// classes at a time, so each burst of thousands of frees overflows a per-thread cache of one class and
// the next cycle refills it: batches of flushes and refills, walking through every tiny class in turn.
//
// It exists to time the allocator, so its own work per block is small: it writes the first and last
// byte (values derived from the block's sequence number) and checks both before the free. A block handed
// out twice, or overwritten by the allocator's own links, shows up as a mismatch (check=FAILED).
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

typedef struct {
  uint8_t *block;
  uint32_t size;
  uint8_t first_mark;
  uint8_t last_mark;
} ring_entry;

// The size schedule's rule, shared by every thread.
typedef struct {
  uint32_t min_size;
  uint32_t max_size;
  uint32_t dense_below;  // sizes below this are repeated `repeats` times
  uint32_t repeats;
} sweep_rule;

// A position in the sweep: the current size and how many more allocations it gets.
typedef struct {
  uint32_t size;
  uint32_t left;
} sweep_position;

typedef struct {
  uint64_t thread_index;
  uint64_t allocations;  // this thread's share of --ops
  uint64_t ring_slots;
  uint64_t start_offset;  // allocations into the sweep where this thread starts, so threads are out of step
  sweep_rule rule;
  uint64_t seed;
  uint64_t cycles;  // written by the thread: ring-full bursts
} worker;

static uint32_t repeats_for(const sweep_rule *rule, uint32_t size) {
  if (size < rule->dense_below) return rule->repeats;
  uint64_t scaled = (uint64_t)rule->repeats * rule->dense_below / size;
  return scaled > 0 ? (uint32_t)scaled : 1;
}

static void sweep_start(const sweep_rule *rule, sweep_position *position) {
  position->size = rule->min_size;
  position->left = repeats_for(rule, rule->min_size);
}

static uint32_t sweep_next(const sweep_rule *rule, sweep_position *position) {
  if (position->left == 0) {
    position->size = position->size >= rule->max_size ? rule->min_size : position->size + 1;
    position->left = repeats_for(rule, position->size);
  }
  position->left--;
  return position->size;
}

static uint64_t sweep_length(const sweep_rule *rule) {
  uint64_t length = 0;
  for (uint32_t size = rule->min_size; size <= rule->max_size; size++) length += repeats_for(rule, size);
  return length;
}

static void check_and_free(const ring_entry *entry, const char *when) {
  if (entry->block[0] != entry->first_mark || entry->block[entry->size - 1] != entry->last_mark) {
    bench_fail_check("ring_batches %s: block %p of %u bytes lost its end marks (first %02x, want %02x; last %02x, want %02x)",
                     when, (void *)entry->block, entry->size, entry->block[0], entry->first_mark,
                     entry->block[entry->size - 1], entry->last_mark);
  }
  free(entry->block);
}

// Frees four fifths of a full ring, keeps every fifth entry and moves the survivors to the front in
// allocation order. Returns how many entries the ring holds afterwards.
static uint64_t free_burst(ring_entry *ring, uint64_t count) {
  uint64_t half = count / 2;
  for (uint64_t i = 0; i < half; i++) {
    if (i % 5 != 4) check_and_free(&ring[i], "burst free, older half");
  }
  for (uint64_t i = count; i-- > half;) {
    if (i % 5 != 4) check_and_free(&ring[i], "burst free, newer half");
  }
  uint64_t kept = 0;
  for (uint64_t i = 4; i < count; i += 5) ring[kept++] = ring[i];
  return kept;
}

static void *worker_thread(void *argument) {
  worker *w = argument;
  ring_entry *ring = bench_check_alloc(calloc(w->ring_slots, sizeof(ring_entry)), w->ring_slots * sizeof(ring_entry));
  sweep_position position;
  sweep_start(&w->rule, &position);
  for (uint64_t i = 0; i < w->start_offset; i++) sweep_next(&w->rule, &position);
  uint64_t salt = bench_block_tag(w->seed, w->thread_index, NULL);
  uint64_t count = 0;
  for (uint64_t sequence = 0; sequence < w->allocations; sequence++) {
    if (count == w->ring_slots) {
      count = free_burst(ring, count);
      w->cycles++;
    }
    uint32_t size = sweep_next(&w->rule, &position);
    uint64_t marks = (sequence + salt) * 0x9E3779B97F4A7C15ULL;
    ring_entry *entry = &ring[count++];
    entry->block = bench_check_alloc(malloc(size), size);
    entry->size = size;
    entry->first_mark = (uint8_t)(marks >> 56);
    // A 1-byte block has one byte for both marks.
    entry->last_mark = size == 1 ? entry->first_mark : (uint8_t)(marks >> 48);
    entry->block[0] = entry->first_mark;
    entry->block[size - 1] = entry->last_mark;
  }
  for (uint64_t i = 0; i < count; i++) check_and_free(&ring[i], "final free");
  free(ring);
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t threads = 1;
  uint64_t ops = quick ? 400000 : 24000000;
  uint64_t ring_slots = 5000;
  uint64_t min_size = 1;
  uint64_t max_size = 1000;
  uint64_t dense_below = 100;
  uint64_t repeats = 250;
  uint64_t seed = 1;
  const char *name = "ring_batches";
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &threads, "worker threads, each with its own ring"},
      {"ops", BENCH_ARG_U64, &ops, "allocations in total (each freed once), split evenly over the threads"},
      {"ring", BENCH_ARG_U64, &ring_slots, "ring slots per thread (a fifth survive each burst)"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"dense_below", BENCH_ARG_U64, &dense_below, "sizes below this get --repeats allocations each"},
      {"repeats", BENCH_ARG_U64, &repeats, "allocations per size below --dense_below (fewer above)"},
      {"seed", BENCH_ARG_U64, &seed, "seed of the end marks"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run (400K allocations)"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0],
                   "rings of swept sizes freed in bursts, older half in order, newer half in reverse");
  bench_set_name(name);
  if (threads == 0 || ring_slots < 5 || min_size == 0 || min_size > max_size || max_size > UINT32_MAX ||
      repeats == 0 || repeats > UINT32_MAX || dense_below > UINT32_MAX) {
    bench_fail_usage("need threads > 0, ring >= 5, 0 < min <= max < 4 GiB, repeats > 0");
  }

  sweep_rule rule = {(uint32_t)min_size, (uint32_t)max_size, (uint32_t)dense_below, (uint32_t)repeats};
  uint64_t one_sweep = sweep_length(&rule);
  worker *workers = bench_check_alloc(calloc(threads, sizeof(worker)), threads * sizeof(worker));
  for (uint64_t t = 0; t < threads; t++) {
    uint64_t share = ops / threads + (t < ops % threads ? 1 : 0);
    workers[t] = (worker){t, share, ring_slots, t * one_sweep / threads, rule, seed, 0};
  }
  double seconds = bench_run_threads(threads, worker_thread, workers, sizeof(worker));
  uint64_t cycles = 0;
  for (uint64_t t = 0; t < threads; t++) cycles += workers[t].cycles;
  free(workers);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", threads);
  bench_result_u64(&result, "ring", ring_slots);
  bench_result_u64(&result, "sweep_allocations", one_sweep);
  bench_result_u64(&result, "bursts", cycles);
  // ops counts allocations; each block is freed once.
  bench_result_finish(&result, ops, seconds);
  return 0;
}
