// realloc_churn: small blocks that grow by realloc a few bytes at a time and die young, a few alive at
// once per thread. Models what programs do between their big allocations: string builders appending
// a few characters per call, and packed lists (like redis's listpacks) that realloc to the exact new
// size on every insert and delete, growing to a few KiB. Most reallocs stay within the block's size
// class (in place, if the allocator allows), some cross into the next class or range and move.
//
// Each thread keeps --builders slots (4). Each step picks a slot at random:
//   empty slot: starts a builder with malloc; 60 % are strings (start 1-16 B, append 1-8 B, die at a
//               length drawn log-uniform from 16-512 B), 40 % lists (start at a 7-byte header, append
//               entries of 2-12 B, one step in eight deletes an entry instead, die at 256 B-4 KiB);
//   live builder: one realloc to the new exact length, then the appended bytes are written;
//   finished builder: freed, and the slot is empty again.
// Every step is one allocator call (malloc, realloc or free): that is the ops count.
//
// It exists to time the allocator, so its own work per step is small: the bytes it appends (a few),
// and after every realloc a check of the first byte and of the last byte that was there before; before
// the free, every 64th byte and the last. Byte i of a builder holds a value derived from its tag and i,
// so the check holds wherever realloc moved the block. A mismatch reports check=FAILED.
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

#define LIST_HEADER_BYTES 7
#define SAMPLE_STRIDE 64

typedef struct {
  uint8_t *data;  // NULL: the slot is empty
  uint32_t length;
  uint32_t final_length;
  uint64_t tag;
  bool is_list;
} builder;

typedef struct {
  uint64_t index;
  uint64_t steps;
  uint64_t builder_count;
  uint64_t seed;
  uint64_t reallocs;  // written by the thread, read after join
} worker;

static inline uint8_t content_byte(uint64_t tag, uint32_t offset) {
  return (uint8_t)((tag >> ((offset & 7) * 8)) ^ (offset * 0x9DU));
}

static void write_content(builder *b, uint32_t from, uint32_t to) {
  for (uint32_t i = from; i < to; i++) b->data[i] = content_byte(b->tag, i);
}

static void check_byte(const builder *b, uint32_t offset, const char *when) {
  if (b->data[offset] != content_byte(b->tag, offset)) {
    bench_fail_check("realloc_churn %s: %s of %u bytes at %p lost byte %u", when, b->is_list ? "list" : "string",
                     b->length, (void *)b->data, offset);
  }
}

static void start_builder(builder *b, bench_rng *rng, uint64_t tag) {
  b->is_list = bench_rng_next(rng) % 100 < 40;
  if (b->is_list) {
    b->length = LIST_HEADER_BYTES;
    b->final_length = (uint32_t)bench_rng_log_range(rng, 256, 4096);
  } else {
    b->length = (uint32_t)bench_rng_range(rng, 1, 16);
    b->final_length = (uint32_t)bench_rng_log_range(rng, 16, 512);
  }
  b->tag = tag;
  b->data = bench_check_alloc(malloc(b->length), b->length);
  write_content(b, 0, b->length);
}

static void finish_builder(builder *b) {
  for (uint32_t i = 0; i < b->length; i += SAMPLE_STRIDE) check_byte(b, i, "free");
  check_byte(b, b->length - 1, "free");
  free(b->data);
  b->data = NULL;
}

static void resize_builder(builder *b, bench_rng *rng) {
  uint32_t old_length = b->length;
  uint32_t new_length;
  if (!b->is_list) {
    new_length = old_length + (uint32_t)bench_rng_range(rng, 1, 8);
  } else if (bench_rng_next(rng) % 8 == 0 && old_length > LIST_HEADER_BYTES + 12) {
    new_length = old_length - (uint32_t)bench_rng_range(rng, 2, 12);
  } else {
    new_length = old_length + (uint32_t)bench_rng_range(rng, 2, 12);
  }
  b->data = bench_check_alloc(realloc(b->data, new_length), new_length);
  b->length = new_length;
  check_byte(b, 0, "realloc");
  uint32_t kept = old_length < new_length ? old_length : new_length;
  check_byte(b, kept - 1, "realloc");
  if (new_length > old_length) write_content(b, old_length, new_length);
}

static void *worker_thread(void *argument) {
  worker *w = argument;
  builder *builders = bench_check_alloc(calloc(w->builder_count, sizeof(builder)), w->builder_count * sizeof(builder));
  bench_rng rng;
  bench_rng_seed(&rng, w->seed, w->index + 1);
  uint64_t tag_base = bench_block_tag(w->seed, w->index, NULL);
  for (uint64_t step = 0; step < w->steps; step++) {
    builder *b = &builders[bench_rng_next(&rng) % w->builder_count];
    if (b->data == NULL) {
      start_builder(b, &rng, bench_splitmix64(&tag_base));
    } else if (b->length >= b->final_length) {
      finish_builder(b);
    } else {
      resize_builder(b, &rng);
      w->reallocs++;
    }
  }
  for (uint64_t i = 0; i < w->builder_count; i++) {
    if (builders[i].data) finish_builder(&builders[i]);
  }
  free(builders);
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t threads = 1;
  uint64_t ops = quick ? 300000 : 24000000;
  uint64_t builder_count = 4;
  uint64_t seed = 1;
  const char *name = "realloc_churn";
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &threads, "worker threads"},
      {"ops", BENCH_ARG_U64, &ops, "steps in total (each one malloc, realloc or free), split evenly over the threads"},
      {"builders", BENCH_ARG_U64, &builder_count, "growing blocks alive at once per thread"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run (300K steps)"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0],
                   "small blocks grown by realloc a few bytes at a time, dying young");
  bench_set_name(name);
  if (threads == 0 || builder_count == 0) bench_fail_usage("need threads > 0 and builders > 0");

  worker *workers = bench_check_alloc(calloc(threads, sizeof(worker)), threads * sizeof(worker));
  for (uint64_t t = 0; t < threads; t++) {
    uint64_t share = ops / threads + (t < ops % threads ? 1 : 0);
    workers[t] = (worker){t, share, builder_count, seed, 0};
  }
  double seconds = bench_run_threads(threads, worker_thread, workers, sizeof(worker));
  uint64_t reallocs = 0;
  for (uint64_t t = 0; t < threads; t++) reallocs += workers[t].reallocs;
  free(workers);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", threads);
  bench_result_u64(&result, "builders", builder_count);
  bench_result_u64(&result, "reallocs", reallocs);
  bench_result_finish(&result, ops, seconds);
  return 0;
}
