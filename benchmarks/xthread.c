// xthread: pure remote free. Producer threads allocate 16-512 B blocks, write them and pass them in
// batches through a bounded queue; consumer threads verify and free them. Every free is by a thread
// that never allocates, so an allocator's remote-free path (atomic lists, draining, owner hand-back)
// carries the whole load.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchmarks/bench_common.h"

#define BATCH_BLOCKS 64
#define QUEUE_BATCHES 64

typedef struct {
  uint32_t count;
  void *blocks[BATCH_BLOCKS];
  uint32_t sizes[BATCH_BLOCKS];
} batch;

// A mutex-protected ring: the allocator, not the queue, should be what this measures, and a batch of
// 64 blocks per lock keeps the queue's cost small.
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  batch ring[QUEUE_BATCHES];
  uint64_t head;  // next to take
  uint64_t tail;  // next to put
  uint64_t producers_left;
} batch_queue;

static batch_queue queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
                            {{0, {0}, {0}}}, 0, 0, 0};

typedef struct {
  uint64_t index;
  uint64_t blocks;
  uint64_t min_size;
  uint64_t max_size;
  uint64_t seed;
  uint64_t freed;  // consumers: blocks freed
} role;

static uint64_t tag_for(uint64_t seed, const void *block) { return bench_block_tag(seed, 0, block); }

static void queue_put(const batch *b) {
  pthread_mutex_lock(&queue.lock);
  while (queue.tail - queue.head == QUEUE_BATCHES) pthread_cond_wait(&queue.not_full, &queue.lock);
  queue.ring[queue.tail % QUEUE_BATCHES] = *b;
  queue.tail++;
  pthread_cond_signal(&queue.not_empty);
  pthread_mutex_unlock(&queue.lock);
}

// Returns false once the queue is empty and no producer is left.
static bool queue_take(batch *b) {
  pthread_mutex_lock(&queue.lock);
  while (queue.tail == queue.head && queue.producers_left > 0) pthread_cond_wait(&queue.not_empty, &queue.lock);
  bool got = queue.tail != queue.head;
  if (got) {
    *b = queue.ring[queue.head % QUEUE_BATCHES];
    queue.head++;
    pthread_cond_signal(&queue.not_full);
  }
  pthread_mutex_unlock(&queue.lock);
  return got;
}

static void *producer_thread(void *argument) {
  role *r = argument;
  bench_rng rng;
  bench_rng_seed(&rng, r->seed, r->index + 1);
  batch b;
  b.count = 0;
  for (uint64_t i = 0; i < r->blocks; i++) {
    size_t size = (size_t)bench_rng_range(&rng, r->min_size, r->max_size);
    void *block = bench_check_alloc(malloc(size), size);
    bench_fill(block, size, tag_for(r->seed, block));
    b.blocks[b.count] = block;
    b.sizes[b.count] = (uint32_t)size;
    if (++b.count == BATCH_BLOCKS) {
      queue_put(&b);
      b.count = 0;
    }
  }
  if (b.count) queue_put(&b);
  pthread_mutex_lock(&queue.lock);
  queue.producers_left--;
  pthread_cond_broadcast(&queue.not_empty);
  pthread_mutex_unlock(&queue.lock);
  return NULL;
}

static void *consumer_thread(void *argument) {
  role *r = argument;
  batch b;
  while (queue_take(&b)) {
    for (uint32_t i = 0; i < b.count; i++) {
      bench_verify_or_die(b.blocks[i], b.sizes[i], tag_for(r->seed, b.blocks[i]), "xthread remote free");
      free(b.blocks[i]);
    }
    r->freed += b.count;
  }
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t producers = 1;
  uint64_t consumers = 1;
  uint64_t blocks = quick ? 200000 : 4000000;
  uint64_t min_size = 16;
  uint64_t max_size = 512;
  uint64_t seed = 1;
  const bench_arg args[] = {
      {"producers", BENCH_ARG_U64, &producers, "allocating threads"},
      {"consumers", BENCH_ARG_U64, &consumers, "freeing threads"},
      {"blocks", BENCH_ARG_U64, &blocks, "blocks allocated by all producers together"},
      {"min", BENCH_ARG_U64, &min_size, "smallest block in bytes"},
      {"max", BENCH_ARG_U64, &max_size, "largest block in bytes"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run"},
  };
  bench_set_name("xthread");
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0], "producers allocate, consumers free");
  if (producers == 0 || consumers == 0 || min_size == 0 || min_size > max_size || max_size > UINT32_MAX) {
    bench_fail_usage("need producers, consumers > 0 and 0 < min <= max < 4 GiB");
  }

  uint64_t threads = producers + consumers;
  role *roles = bench_check_alloc(calloc(threads, sizeof(role)), threads * sizeof(role));
  pthread_t *handles = bench_check_alloc(calloc(threads, sizeof(pthread_t)), threads * sizeof(pthread_t));
  queue.producers_left = producers;
  double start = bench_now_seconds();
  for (uint64_t t = 0; t < threads; t++) {
    bool producer = t < producers;
    uint64_t share = producer ? blocks / producers + (t < blocks % producers ? 1 : 0) : 0;
    roles[t] = (role){t, share, min_size, max_size, seed, 0};
    bench_thread_start(&handles[t], producer ? producer_thread : consumer_thread, &roles[t]);
  }
  uint64_t freed = 0;
  for (uint64_t t = 0; t < threads; t++) {
    pthread_join(handles[t], NULL);
    freed += roles[t].freed;
  }
  double seconds = bench_now_seconds() - start;
  if (freed != blocks) bench_fail_check("consumers freed %llu of %llu blocks", (unsigned long long)freed,
                                        (unsigned long long)blocks);
  free(handles);
  free(roles);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "producers", producers);
  bench_result_u64(&result, "consumers", consumers);
  bench_result_u64(&result, "live_bytes_peak_bound",
                   (uint64_t)(QUEUE_BATCHES + 2 * threads) * BATCH_BLOCKS * max_size);
  // ops counts malloc+free pairs: one per block.
  bench_result_finish(&result, blocks, seconds);
  return 0;
}
