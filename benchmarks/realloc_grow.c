// realloc_grow: buffers grown by realloc from 16 B to several MiB and shrunk again, several at once and
// in turn so none can always grow in place. Models string builders, vectors and read buffers; it
// exercises in-place growth, copying between size ranges (tiny -> mid -> huge) and mremap of huge blocks.
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

// Every 256th byte offset carries a pattern word: verification then costs little next to the copy.
#define PATTERN_STRIDE 256

typedef struct {
  char *data;
  size_t size;
  uint64_t tag;
  bool growing;
} buffer;

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t buffer_count = 8;
  uint64_t cycles = quick ? 4 : 200;
  uint64_t min_size = 16;
  uint64_t max_size = 4u << 20;
  uint64_t seed = 1;
  const bench_arg args[] = {
      {"buffers", BENCH_ARG_U64, &buffer_count, "buffers resized in turn"},
      {"cycles", BENCH_ARG_U64, &cycles, "grow-then-shrink cycles per buffer"},
      {"min", BENCH_ARG_U64, &min_size, "smallest size in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest size in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name("realloc_grow");
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "realloc growth and shrinking");
  if (buffer_count == 0 || min_size == 0 || min_size * 2 > max_size) bench_fail_usage("need buffers > 0 and 2*min <= max");

  buffer *buffers = bench_check_alloc(calloc(buffer_count, sizeof(buffer)), buffer_count * sizeof(buffer));
  bench_rng rng;
  bench_rng_seed(&rng, seed, 0);
  uint64_t ops = 0;
  uint64_t live_bytes_peak = 0;
  uint64_t live_bytes = 0;
  double start = bench_now_seconds();
  for (uint64_t i = 0; i < buffer_count; i++) {
    buffers[i] = (buffer){bench_check_alloc(malloc(min_size), min_size), min_size, bench_block_tag(seed, i, NULL), true};
    bench_fill_range(buffers[i].data, 0, min_size, buffers[i].tag, PATTERN_STRIDE);
    live_bytes += min_size;
  }
  uint64_t cycles_done = 0;
  // Each pass resizes every buffer once; a buffer's cycle ends when it shrinks back to min.
  while (cycles_done < cycles * buffer_count) {
    for (uint64_t i = 0; i < buffer_count; i++) {
      buffer *b = &buffers[i];
      // Growth factor 1.25-1.75 (shrink by its inverse): uneven sizes, like real growth policies.
      double factor = 1.25 + (double)(bench_rng_next(&rng) % 512) / 1024.0;
      size_t new_size = b->growing ? (size_t)((double)b->size * factor) : (size_t)((double)b->size / factor);
      if (new_size >= max_size) {
        new_size = max_size;
        b->growing = false;
      } else if (new_size <= min_size) {
        new_size = min_size;
        b->growing = true;
        cycles_done++;
      }
      char *moved = bench_check_alloc(realloc(b->data, new_size), new_size);
      ops++;
      size_t kept = new_size < b->size ? new_size : b->size;
      if (!bench_verify_range(moved, 0, kept, b->tag, PATTERN_STRIDE)) {
        bench_fail_check("realloc of buffer %llu from %zu to %zu bytes lost its contents", (unsigned long long)i,
                         b->size, new_size);
      }
      // Restart at the last pattern word of the old size: it may have been cut short by the old end.
      if (new_size > b->size) bench_fill_range(moved, b->size / PATTERN_STRIDE * PATTERN_STRIDE, new_size, b->tag, PATTERN_STRIDE);
      live_bytes = live_bytes - b->size + new_size;
      if (live_bytes > live_bytes_peak) live_bytes_peak = live_bytes;
      b->data = moved;
      b->size = new_size;
    }
  }
  for (uint64_t i = 0; i < buffer_count; i++) {
    if (!bench_verify_range(buffers[i].data, 0, buffers[i].size, buffers[i].tag, PATTERN_STRIDE)) {
      bench_fail_check("buffer %llu lost its contents before the final free", (unsigned long long)i);
    }
    free(buffers[i].data);
  }
  double seconds = bench_now_seconds() - start;
  free(buffers);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "buffers", buffer_count);
  bench_result_u64(&result, "max", max_size);
  bench_result_u64(&result, "live_bytes_peak", live_bytes_peak);
  bench_result_finish(&result, ops, seconds);
  return 0;
}
