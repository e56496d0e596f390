// big_blocks: 64 KiB-16 MiB blocks allocated, touched on every page and freed, a few live at a time.
// Models image and I/O buffers. Above the mid/large threshold allocators map memory per block: this shows
// whether freed big blocks are cached or unmapped and mapped again (syscalls and page faults per op).
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

typedef struct {
  void *block;
  size_t size;
  uint64_t tag;
} slot;

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t ops = quick ? 400 : 20000;
  uint64_t slot_count = 8;
  uint64_t min_size = 64u << 10;
  uint64_t max_size = 16u << 20;
  uint64_t seed = 1;
  const bench_arg args[] = {
      {"ops", BENCH_ARG_U64, &ops, "steps (each one malloc or free)"},
      {"slots", BENCH_ARG_U64, &slot_count, "live slots"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name("big_blocks");
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "big blocks allocated, touched, freed");
  if (slot_count == 0 || min_size == 0 || min_size > max_size) bench_fail_usage("need slots > 0 and 0 < min <= max");

  slot *slots = bench_check_alloc(calloc(slot_count, sizeof(slot)), slot_count * sizeof(slot));
  bench_rng rng;
  bench_rng_seed(&rng, seed, 0);
  uint64_t live_bytes = 0;
  uint64_t live_bytes_peak = 0;
  double start = bench_now_seconds();
  for (uint64_t step = 0; step < ops; step++) {
    uint64_t index = bench_rng_next(&rng) % slot_count;
    slot *s = &slots[index];
    if (s->block) {
      bench_verify_or_die(s->block, s->size, s->tag, "big_blocks free");
      free(s->block);
      live_bytes -= s->size;
      s->block = NULL;
    } else {
      // Log-uniform: as many 64-128 KiB blocks as 8-16 MiB ones.
      size_t size = (size_t)bench_rng_log_range(&rng, min_size, max_size);
      s->block = bench_check_alloc(malloc(size), size);
      s->size = size;
      s->tag = bench_block_tag(seed, index, s->block);
      bench_fill(s->block, size, s->tag);  // one word per page: every page is touched
      live_bytes += size;
      if (live_bytes > live_bytes_peak) live_bytes_peak = live_bytes;
    }
  }
  for (uint64_t i = 0; i < slot_count; i++) {
    if (slots[i].block) {
      bench_verify_or_die(slots[i].block, slots[i].size, slots[i].tag, "big_blocks final free");
      free(slots[i].block);
    }
  }
  double seconds = bench_now_seconds() - start;
  free(slots);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "slots", slot_count);
  bench_result_u64(&result, "live_bytes_peak", live_bytes_peak);
  bench_result_finish(&result, ops, seconds);
  return 0;
}
