// thread_churn: thousands of short-lived threads, a few alive at a time, each allocating and freeing a
// little and leaving one block behind for the main thread to free after it has exited. It measures
// what per-thread state costs to set up and tear down (thread caches, their flush at exit) and whether
// blocks of dead threads are freed and reused correctly.
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

#define MAX_BLOCKS_PER_THREAD 1024

typedef struct {
  uint64_t index;
  uint64_t allocations;
  uint64_t min_size;
  uint64_t max_size;
  uint64_t seed;
  // Left behind for the main thread to free once this thread is gone.
  void *leftover;
  size_t leftover_size;
} short_life;

// Live blocks have distinct addresses, so an address-derived tag stays valid through the shuffle.
static uint64_t tag_for(const short_life *life, const void *block) {
  return bench_block_tag(life->seed, life->index, block);
}

static void *short_thread(void *argument) {
  short_life *life = argument;
  bench_rng rng;
  bench_rng_seed(&rng, life->seed, life->index + 1);
  void *blocks[MAX_BLOCKS_PER_THREAD];
  size_t sizes[MAX_BLOCKS_PER_THREAD];
  uint64_t count = life->allocations;
  for (uint64_t i = 0; i < count; i++) {
    sizes[i] = (size_t)bench_rng_log_range(&rng, life->min_size, life->max_size);
    blocks[i] = bench_check_alloc(malloc(sizes[i]), sizes[i]);
    bench_fill(blocks[i], sizes[i], tag_for(life, blocks[i]));
  }
  // Free all but one, in a scattered order.
  for (uint64_t left = count; left > 1; left--) {
    uint64_t pick = bench_rng_next(&rng) % left;
    bench_verify_or_die(blocks[pick], sizes[pick], tag_for(life, blocks[pick]), "thread_churn free");
    free(blocks[pick]);
    blocks[pick] = blocks[left - 1];
    sizes[pick] = sizes[left - 1];
  }
  life->leftover = blocks[0];
  life->leftover_size = sizes[0];
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t total_threads = quick ? 500 : 40000;
  uint64_t concurrent = 4;
  uint64_t allocations = 100;
  uint64_t min_size = 16;
  uint64_t max_size = 4096;
  uint64_t seed = 1;
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &total_threads, "short-lived threads in total"},
      {"concurrent", BENCH_ARG_U64, &concurrent, "threads alive at a time"},
      {"allocations", BENCH_ARG_U64, &allocations, "blocks per thread (max 1024)"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name("thread_churn");
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "many short-lived threads");
  if (concurrent == 0 || allocations == 0 || allocations > MAX_BLOCKS_PER_THREAD || min_size == 0 ||
      min_size > max_size) {
    bench_fail_usage("need concurrent > 0, 0 < allocations <= %d and 0 < min <= max", MAX_BLOCKS_PER_THREAD);
  }

  short_life *wave = bench_check_alloc(calloc(concurrent, sizeof(short_life)), concurrent * sizeof(short_life));
  pthread_t *handles = bench_check_alloc(calloc(concurrent, sizeof(pthread_t)), concurrent * sizeof(pthread_t));
  double start = bench_now_seconds();
  for (uint64_t started = 0; started < total_threads;) {
    uint64_t in_wave = total_threads - started < concurrent ? total_threads - started : concurrent;
    for (uint64_t t = 0; t < in_wave; t++) {
      wave[t] = (short_life){started + t, allocations, min_size, max_size, seed, NULL, 0};
      bench_thread_start(&handles[t], short_thread, &wave[t]);
    }
    for (uint64_t t = 0; t < in_wave; t++) {
      pthread_join(handles[t], NULL);
      bench_verify_or_die(wave[t].leftover, wave[t].leftover_size, tag_for(&wave[t], wave[t].leftover),
                          "thread_churn leftover of an exited thread");
      free(wave[t].leftover);
    }
    started += in_wave;
  }
  double seconds = bench_now_seconds() - start;
  free(handles);
  free(wave);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", total_threads);
  bench_result_u64(&result, "allocations_per_thread", allocations);
  // ops counts malloc+free pairs.
  bench_result_finish(&result, total_threads * allocations, seconds);
  return 0;
}
