// random_mixed: the earlier reports' headline workload. A working set of `ws` slots; each step picks a
// random slot and frees its block if it holds one, else allocates a random size into it. With the
// default 16-1040 B this exercises every tiny size class at once; --min=16 --max=128 is the small variant.
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
  uint64_t ops = quick ? 200000 : 20000000;
  uint64_t working_set = 4096;
  uint64_t min_size = 16;
  uint64_t max_size = 1040;
  uint64_t seed = 1;
  const char *name = "random_mixed";
  const bench_arg args[] = {
      {"ops", BENCH_ARG_U64, &ops, "steps (each one malloc or free)"},
      {"ws", BENCH_ARG_U64, &working_set, "live slots"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run (200K steps)"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0],
                   "random frees and allocations over a fixed set of slots");
  bench_set_name(name);
  if (working_set == 0 || min_size == 0 || min_size > max_size) bench_fail_usage("need ws > 0 and 0 < min <= max");

  slot *slots = bench_check_alloc(calloc(working_set, sizeof(slot)), working_set * sizeof(slot));
  bench_rng rng;
  bench_rng_seed(&rng, seed, 0);
  uint64_t live_bytes = 0;
  uint64_t live_bytes_peak = 0;

  double start = bench_now_seconds();
  for (uint64_t step = 0; step < ops; step++) {
    slot *s = &slots[bench_rng_next(&rng) % working_set];
    if (s->block) {
      bench_verify_or_die(s->block, s->size, s->tag, "random_mixed free");
      free(s->block);
      live_bytes -= s->size;
      s->block = NULL;
    } else {
      size_t size = (size_t)bench_rng_range(&rng, min_size, max_size);
      s->block = bench_check_alloc(malloc(size), size);
      s->size = size;
      s->tag = bench_block_tag(seed, (uint64_t)(s - slots), s->block);
      bench_fill(s->block, size, s->tag);
      live_bytes += size;
      if (live_bytes > live_bytes_peak) live_bytes_peak = live_bytes;
    }
  }
  for (uint64_t i = 0; i < working_set; i++) {
    if (slots[i].block) {
      bench_verify_or_die(slots[i].block, slots[i].size, slots[i].tag, "random_mixed final free");
      free(slots[i].block);
    }
  }
  double seconds = bench_now_seconds() - start;
  free(slots);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "ws", working_set);
  bench_result_u64(&result, "min", min_size);
  bench_result_u64(&result, "max", max_size);
  bench_result_u64(&result, "live_bytes_peak", live_bytes_peak);
  bench_result_finish(&result, ops, seconds);
  return 0;
}
