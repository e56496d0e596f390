// long_tail_xthread: T threads allocate at random from a long-tailed size mix and free with mixed
// lifetimes, and a share of the blocks is freed by another thread. Models servers and runtimes whose
// objects are mostly small, sometimes a few KiB, mostly short-lived with a long-lived minority, and now
// and then passed to another thread (a request handed to a worker, a message to another queue).
//
// Per allocation, drawn from the thread's seeded PRNG:
//   size:     80 % 16-128 B (uniform), 15 % 128 B-1 KiB, 5 % 1-16 KiB (log-uniform within each);
//   lifetime: 30 % freed at once (scratch), 45 % short (a random slot of a 16-slot table, replaced
//             at random: about 35 allocations), 25 % long (a random slot of a 4,096-slot table: about
//             16,000 allocations);
//   owner:    --remote_percent (15 %) are marked at allocation; when a marked block dies, its thread
//             passes it to another thread (the next partner in turn) which frees it.
// Hand-over: each ordered pair of threads has a lock-free single-producer single-consumer ring of
// batches (32 blocks each). A thread drains the rings addressed to it every 32 allocations, and
// whenever it waits for room in a full ring, so no thread waits on one that is waiting on it.
//
// It exists to time the allocator, so its own work per block is small: a tag word at the head and a
// word at the tail, unique to the allocation, written once and checked before the free (by whichever
// thread frees it). A mismatch reports check=FAILED.
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchmarks/bench_common.h"

#define BATCH_BLOCKS 32
#define PAIR_QUEUE_BATCHES 8
#define SHORT_SLOTS 16
#define DRAIN_EVERY 32
#define MIN_BLOCK 16  // room for the head and tail words without overlap

typedef struct {
  void *block;
  uint64_t tag;
  uint32_t size;
  bool remote;
} live_block;

typedef struct {
  uint32_t count;
  live_block blocks[BATCH_BLOCKS];
} batch;

// One sender, one receiver. The indices count batches forever; slot = index % PAIR_QUEUE_BATCHES.
// Each index sits in its own cache line so the two threads do not write one line.
typedef struct {
  _Alignas(64) _Atomic uint64_t taken;  // written by the receiver after it has freed a batch
  _Alignas(64) _Atomic uint64_t sent;   // written by the sender after it has copied a batch in
  batch ring[PAIR_QUEUE_BATCHES];
} pair_queue;

typedef struct {
  uint64_t threads;
  uint64_t long_slots;
  uint64_t remote_percent;
  uint64_t seed;
  pair_queue *queues;  // queues[sender * threads + receiver]
  _Atomic uint64_t threads_done_sending;
} shared_state;

typedef struct {
  shared_state *shared;
  uint64_t index;
  uint64_t allocations;
  batch *pending;  // per receiver: blocks waiting for a full batch
  uint64_t next_partner;
  // Written by the thread, read after join.
  uint64_t handed_over;
  uint64_t freed_for_others;
} worker;

static uint64_t block_tail_word(uint64_t tag) { return tag * 0xD6E8FEB86659FD93ULL + 1; }

static void write_marks(const live_block *b) {
  memcpy(b->block, &b->tag, sizeof b->tag);
  uint64_t tail = block_tail_word(b->tag);
  memcpy((char *)b->block + b->size - sizeof tail, &tail, sizeof tail);
}

static void check_and_free(const live_block *b, const char *when) {
  uint64_t head, tail;
  memcpy(&head, b->block, sizeof head);
  memcpy(&tail, (const char *)b->block + b->size - sizeof tail, sizeof tail);
  if (head != b->tag || tail != block_tail_word(b->tag)) {
    bench_fail_check("long_tail_xthread %s: block %p of %u bytes lost its head or tail word", when, b->block, b->size);
  }
  free(b->block);
}

static pair_queue *queue_between(const shared_state *shared, uint64_t sender, uint64_t receiver) {
  return &shared->queues[sender * shared->threads + receiver];
}

// Frees every batch other threads have sent to this one. Returns the number of blocks freed.
static uint64_t drain_incoming(worker *w) {
  shared_state *shared = w->shared;
  uint64_t freed = 0;
  for (uint64_t sender = 0; sender < shared->threads; sender++) {
    if (sender == w->index) continue;
    pair_queue *queue = queue_between(shared, sender, w->index);
    uint64_t taken = atomic_load_explicit(&queue->taken, memory_order_relaxed);
    uint64_t sent = atomic_load_explicit(&queue->sent, memory_order_acquire);
    for (; taken < sent; taken++) {
      const batch *b = &queue->ring[taken % PAIR_QUEUE_BATCHES];
      for (uint32_t i = 0; i < b->count; i++) check_and_free(&b->blocks[i], "free by another thread");
      freed += b->count;
      // Release: the sender may reuse the slot only after the frees above have read it.
      atomic_store_explicit(&queue->taken, taken + 1, memory_order_release);
    }
  }
  w->freed_for_others += freed;
  return freed;
}

static void send_batch(worker *w, uint64_t receiver) {
  batch *b = &w->pending[receiver];
  pair_queue *queue = queue_between(w->shared, w->index, receiver);
  uint64_t sent = atomic_load_explicit(&queue->sent, memory_order_relaxed);
  // A full ring: free what others sent here while the receiver catches up, so two threads sending to
  // each other cannot both wait.
  while (sent - atomic_load_explicit(&queue->taken, memory_order_acquire) == PAIR_QUEUE_BATCHES) {
    if (drain_incoming(w) == 0) sched_yield();
  }
  queue->ring[sent % PAIR_QUEUE_BATCHES] = *b;
  atomic_store_explicit(&queue->sent, sent + 1, memory_order_release);
  b->count = 0;
}

// A block's life is over: free it here, or pass it to the next partner when it was marked remote.
static void retire(worker *w, const live_block *b) {
  if (!b->remote) {
    check_and_free(b, "free by the allocating thread");
    return;
  }
  uint64_t threads = w->shared->threads;
  uint64_t receiver = (w->index + 1 + w->next_partner) % threads;
  w->next_partner = (w->next_partner + 1) % (threads - 1);
  batch *pending = &w->pending[receiver];
  pending->blocks[pending->count++] = *b;
  w->handed_over++;
  if (pending->count == BATCH_BLOCKS) send_batch(w, receiver);
}

static uint32_t draw_size(bench_rng *rng) {
  uint64_t pick = bench_rng_next(rng) % 100;
  if (pick < 80) return (uint32_t)bench_rng_range(rng, MIN_BLOCK, 128);
  if (pick < 95) return (uint32_t)bench_rng_log_range(rng, 129, 1024);
  return (uint32_t)bench_rng_log_range(rng, 1025, 16384);
}

static void *worker_thread(void *argument) {
  worker *w = argument;
  shared_state *shared = w->shared;
  bool can_hand_over = shared->threads > 1;
  bench_rng rng;
  bench_rng_seed(&rng, shared->seed, w->index + 1);
  live_block short_lived[SHORT_SLOTS] = {{0}};
  live_block *long_lived = bench_check_alloc(calloc(shared->long_slots, sizeof(live_block)),
                                             shared->long_slots * sizeof(live_block));
  uint64_t tag_base = bench_block_tag(shared->seed, w->index, NULL);
  for (uint64_t sequence = 0; sequence < w->allocations; sequence++) {
    if (can_hand_over && sequence % DRAIN_EVERY == 0) drain_incoming(w);
    live_block b;
    b.size = draw_size(&rng);
    b.block = bench_check_alloc(malloc(b.size), b.size);
    b.tag = tag_base + sequence;
    b.remote = can_hand_over && bench_rng_next(&rng) % 100 < shared->remote_percent;
    write_marks(&b);
    uint64_t lifetime = bench_rng_next(&rng) % 100;
    if (lifetime < 30) {
      retire(w, &b);
      continue;
    }
    live_block *slot = lifetime < 75 ? &short_lived[bench_rng_next(&rng) % SHORT_SLOTS]
                                     : &long_lived[bench_rng_next(&rng) % shared->long_slots];
    if (slot->block) retire(w, slot);
    *slot = b;
  }
  for (uint64_t i = 0; i < SHORT_SLOTS; i++) {
    if (short_lived[i].block) retire(w, &short_lived[i]);
  }
  for (uint64_t i = 0; i < shared->long_slots; i++) {
    if (long_lived[i].block) retire(w, &long_lived[i]);
  }
  free(long_lived);
  if (can_hand_over) {
    for (uint64_t receiver = 0; receiver < shared->threads; receiver++) {
      if (w->pending[receiver].count) send_batch(w, receiver);
    }
  }
  atomic_fetch_add_explicit(&shared->threads_done_sending, 1, memory_order_release);
  // Every batch a finished sender sent is in its ring before it counted itself done, so one drain
  // after all have counted themselves frees the last of them.
  for (;;) {
    bool all_done = atomic_load_explicit(&shared->threads_done_sending, memory_order_acquire) == shared->threads;
    if (can_hand_over) drain_incoming(w);
    if (all_done) break;
    sched_yield();
  }
  return NULL;
}

int main(int argc, char **argv) {
  bool quick = bench_has_flag(argc, argv, "--quick");
  uint64_t threads = 2;
  uint64_t ops = quick ? 300000 : 12000000;
  uint64_t long_slots = 4096;
  uint64_t remote_percent = 15;
  uint64_t seed = 1;
  const char *name = "long_tail_xthread";
  const bench_arg args[] = {
      {"threads", BENCH_ARG_U64, &threads, "worker threads"},
      {"ops", BENCH_ARG_U64, &ops, "allocations in total (each freed once), split evenly over the threads"},
      {"long_slots", BENCH_ARG_U64, &long_slots, "long-lived slots per thread"},
      {"remote_percent", BENCH_ARG_U64, &remote_percent, "share of blocks freed by another thread"},
      {"seed", BENCH_ARG_U64, &seed, "PRNG seed"},
      {"name", BENCH_ARG_STRING, &name, "bench name in the RESULT line"},
      {"quick", BENCH_ARG_FLAG, &quick, "tiny run (300K allocations)"},
  };
  bench_set_name(name);
  bench_parse_args(argc, argv, args, sizeof args / sizeof args[0],
                   "long-tailed sizes, mixed lifetimes, a share freed by other threads");
  bench_set_name(name);
  if (threads == 0 || long_slots == 0 || remote_percent > 100) {
    bench_fail_usage("need threads > 0, long_slots > 0 and remote_percent <= 100");
  }

  shared_state shared = {threads, long_slots, remote_percent, seed, NULL, 0};
  size_t queues_bytes = threads * threads * sizeof(pair_queue);
  shared.queues = bench_check_alloc(aligned_alloc(64, queues_bytes), queues_bytes);
  memset(shared.queues, 0, queues_bytes);
  worker *workers = bench_check_alloc(calloc(threads, sizeof(worker)), threads * sizeof(worker));
  for (uint64_t t = 0; t < threads; t++) {
    uint64_t share = ops / threads + (t < ops % threads ? 1 : 0);
    batch *pending = bench_check_alloc(calloc(threads, sizeof(batch)), threads * sizeof(batch));
    workers[t] = (worker){&shared, t, share, pending, 0, 0, 0};
  }
  double seconds = bench_run_threads(threads, worker_thread, workers, sizeof(worker));
  uint64_t handed_over = 0;
  uint64_t freed_for_others = 0;
  for (uint64_t t = 0; t < threads; t++) {
    handed_over += workers[t].handed_over;
    freed_for_others += workers[t].freed_for_others;
  }
  if (handed_over != freed_for_others) {
    bench_fail_check("%llu blocks handed to other threads but %llu freed there", (unsigned long long)handed_over,
                     (unsigned long long)freed_for_others);
  }
  for (uint64_t t = 0; t < threads; t++) free(workers[t].pending);
  free(workers);
  free(shared.queues);

  bench_result result;
  bench_result_init(&result);
  bench_result_u64(&result, "threads", threads);
  bench_result_u64(&result, "remote_frees", handed_over);
  bench_result_double(&result, "remote_share", ops ? (double)handed_over / (double)ops : 0.0);
  // ops counts allocations; each block is freed once.
  bench_result_finish(&result, ops, seconds);
  return 0;
}
