// larson: a server simulation after Larson and Krishnan's benchmark. Each of T chains owns an array of
// blocks (8-1000 B). A thread of the chain replaces random blocks for `rounds` steps, then starts a new
// thread, hands it the array and exits. So most blocks are freed by a thread that did not allocate
// them, often after their allocating thread has exited: remote frees and orphaned thread caches.
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

typedef struct {
  void *block;
  size_t size;
  uint64_t tag;
} chunk;

typedef struct {
  uint64_t chain_index;
  uint64_t generation;
  chunk *chunks;
  // Read-only parameters.
  uint64_t chunk_count;
  uint64_t rounds;
  uint64_t generations;
  uint64_t min_size;
  uint64_t max_size;
  uint64_t seed;
} chain_state;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_signal = PTHREAD_COND_INITIALIZER;
static uint64_t chains_done;

static void replace_chunk(chunk *c, bench_rng *rng, const chain_state *state, uint64_t index) {
  if (c->block) {
    bench_verify_or_die(c->block, c->size, c->tag, "larson free");
    free(c->block);
  }
  size_t size = (size_t)bench_rng_range(rng, state->min_size, state->max_size);
  c->block = bench_check_alloc(malloc(size), size);
  c->size = size;
  c->tag = bench_block_tag(state->seed, index, c->block);
  bench_fill(c->block, size, c->tag);
}

static void *chain_thread(void *argument) {
  chain_state *state = argument;
  bench_rng rng;
  bench_rng_seed(&rng, state->seed, state->chain_index * 100003 + state->generation + 1);
  for (uint64_t round = 0; round < state->rounds; round++) {
    uint64_t index = bench_rng_next(&rng) % state->chunk_count;
    replace_chunk(&state->chunks[index], &rng, state, state->chain_index * state->chunk_count + index);
  }
  state->generation++;
  if (state->generation < state->generations) {
    // Hand the array to a fresh thread; this one exits with its blocks still live in the array.
    bench_thread_start_detached(chain_thread, state);
  } else {
    pthread_mutex_lock(&done_lock);
    chains_done++;
    pthread_cond_signal(&done_signal);
    pthread_mutex_unlock(&done_lock);
  }
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t threads = 1;
  uint64_t chunk_count = 1000;
  uint64_t rounds = quick ? 20000 : 500000;
  uint64_t generations = quick ? 5 : 20;
  uint64_t min_size = 8;
  uint64_t max_size = 1000;
  uint64_t seed = 1;
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &threads, "concurrent chains (threads alive at once)"},
      {"chunks", BENCH_ARG_U64, &chunk_count, "blocks per chain"},
      {"rounds", BENCH_ARG_U64, &rounds, "replacements per thread before handing over"},
      {"generations", BENCH_ARG_U64, &generations, "threads per chain, one after another"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name("larson");
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "Larson server simulation with thread hand-over");
  if (threads == 0 || chunk_count == 0 || generations == 0 || min_size == 0 || min_size > max_size) {
    bench_fail_usage("need threads, chunks, generations > 0 and 0 < min <= max");
  }

  chain_state *chains = bench_check_alloc(calloc(threads, sizeof(chain_state)), threads * sizeof(chain_state));
  uint64_t live_bytes = 0;
  // The main thread fills every array first, so even the first generation frees remote blocks.
  for (uint64_t t = 0; t < threads; t++) {
    chain_state *state = &chains[t];
    *state = (chain_state){t, 0, NULL, chunk_count, rounds, generations, min_size, max_size, seed};
    state->chunks = bench_check_alloc(calloc(chunk_count, sizeof(chunk)), chunk_count * sizeof(chunk));
    bench_rng rng;
    bench_rng_seed(&rng, seed, 0xC0FFEE + t);
    for (uint64_t i = 0; i < chunk_count; i++) {
      replace_chunk(&state->chunks[i], &rng, state, t * chunk_count + i);
      live_bytes += state->chunks[i].size;
    }
  }

  double start = bench_now_seconds();
  for (uint64_t t = 0; t < threads; t++) bench_thread_start_detached(chain_thread, &chains[t]);
  pthread_mutex_lock(&done_lock);
  while (chains_done < threads) pthread_cond_wait(&done_signal, &done_lock);
  pthread_mutex_unlock(&done_lock);
  double seconds = bench_now_seconds() - start;

  for (uint64_t t = 0; t < threads; t++) {
    for (uint64_t i = 0; i < chunk_count; i++) {
      chunk *c = &chains[t].chunks[i];
      bench_verify_or_die(c->block, c->size, c->tag, "larson final free");
      free(c->block);
    }
    free(chains[t].chunks);
  }
  free(chains);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", threads);
  bench_result_u64(&result, "live_bytes_initial", live_bytes);
  bench_result_finish(&result, threads * rounds * generations, seconds);
  return 0;
}
