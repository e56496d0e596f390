// cache_scratch: allocator-induced false sharing, after the idea of Hoard's cache-scratch test. The main
// thread allocates one small object per worker, so they may sit in one cache line. Each worker frees
// the object it was handed, then repeatedly allocates a small object, writes it many times and frees
// it. An allocator that hands the freed neighbour back to a thread other than the one that allocated
// it keeps the workers writing into one cache line, and throughput collapses as threads are added.
#include <stdio.h>
#include <stdlib.h>

#include "benchmarks/bench_common.h"

typedef struct {
  uint64_t index;
  void *handed_object;
  uint64_t iterations;
  uint64_t writes;
  uint64_t object_size;
  uint64_t seed;
} worker;

static void *worker_thread(void *argument) {
  worker *w = argument;
  bench_verify_or_die(w->handed_object, w->object_size, bench_block_tag(w->seed, w->index, w->handed_object),
                      "cache_scratch handed object");
  free(w->handed_object);
  for (uint64_t i = 0; i < w->iterations; i++) {
    volatile uint8_t *object = bench_check_alloc(malloc(w->object_size), w->object_size);
    // Volatile byte stores: the compiler must not merge them, so each one hits the cache line.
    for (uint64_t round = 0; round < w->writes; round++) {
      for (uint64_t b = 0; b < w->object_size; b++) object[b] = (uint8_t)(round + b);
    }
    uint64_t tag = bench_block_tag(w->seed, w->index, (const void *)object);
    bench_fill((void *)object, w->object_size, tag);
    bench_verify_or_die((const void *)object, w->object_size, tag, "cache_scratch free");
    free((void *)object);
  }
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t threads = 2;
  uint64_t iterations = quick ? 20000 : 5000000;
  uint64_t writes = 20;
  uint64_t object_size = 8;
  uint64_t seed = 1;
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &threads, "worker threads"},
      {"iterations", BENCH_ARG_U64, &iterations, "allocate/write/free cycles per thread"},
      {"writes", BENCH_ARG_U64, &writes, "passes of writes over each object"},
      {"size", BENCH_ARG_U64, &object_size, "object size in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name("cache_scratch");
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "allocator-induced false sharing");
  if (threads == 0 || object_size == 0) bench_fail_usage("need threads > 0 and size > 0");

  worker *workers = bench_check_alloc(calloc(threads, sizeof(worker)), threads * sizeof(worker));
  // Allocated back to back by one thread: the likeliest way to share a cache line.
  for (uint64_t t = 0; t < threads; t++) {
    void *object = bench_check_alloc(malloc(object_size), object_size);
    bench_fill(object, object_size, bench_block_tag(seed, t, object));
    workers[t] = (worker){t, object, iterations, writes, object_size, seed};
  }
  double seconds = bench_run_threads(threads, worker_thread, workers, sizeof(worker));
  free(workers);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", threads);
  bench_result_u64(&result, "size", object_size);
  bench_result_u64(&result, "writes", writes);
  bench_result_finish(&result, threads * iterations, seconds);
  return 0;
}
