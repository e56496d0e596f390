// Mid/large classes over the slab engine: the thread's start and stop, and the refill and
// full-bin policy. The fast paths are in ace.h, the class table in ace_classes.c, the capacity
// policy in ace_adaptive.c; every block and slab movement is the engine's (slab_engine.h).
#define _GNU_SOURCE
#include <pthread.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"

// ---- Thread start and stop ----------------------------------------------------------------------
static __thread int started __attribute__((tls_model("initial-exec")));  // thread_start ran, no stop since

static const se_front ace_front;

// ACE's classes, defined to the engine once their table exists.
static void define_engine_classes(void) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++)
    se_class_define(ACE_KIND_BASE + c, ace_classes[c].block_size, ace_classes[c].slots, &ace_front);
}

static pthread_once_t engine_classes_once = PTHREAD_ONCE_INIT;

static void thread_start(void) {
  started = 1;
  ace_classes_init();
  pthread_once(&engine_classes_once, define_engine_classes);
  // Relaxed: every thread stores the same value; it orders nothing.
  __atomic_store_n(&ace_stats_enabled, hk_config_string(HK_OPT_STATS)[0] != '0', __ATOMIC_RELAXED);
  ace_adapt_thread_start();
}

// The thread flushes or exits: its hits go to the counters, its capacity back to the budget.
static void thread_stop(void) {
  started = 0;
  ace_fold_hits();
  ace_adapt_thread_stop();
}

// ACE's word in a slab's user_tag (ace_head_word): the first block's address and the class.
static uint64_t slab_tag(const ss_slab *head, unsigned engine_class) {
  return ace_head_word(ss_slab_base(head), engine_class - ACE_KIND_BASE);
}

static void bin_full(unsigned engine_class);

static const se_front ace_front = {thread_start, thread_stop, slab_tag, bin_full};

int ace_thread_started(void) { return started; }

// ---- Slow paths ---------------------------------------------------------------------------------
void *ace_alloc_refill(unsigned c) {
  if (HK_UNLIKELY(!started)) se_front_start(&ace_front);
  se_bin *bin = ace_bin_of(c);
  ace_class_state *state = &ace_slow.classes[c];
  ACE_COUNT(c, misses, 1);
  if (ace_bin_hits[c] != state->hits_folded) {
    ACE_COUNT(c, hits, ace_bin_hits[c] - state->hits_folded);
    state->hits_folded = ace_bin_hits[c];
  }
  ace_adapt_event(c);
  ace_adapt_tick();
  return se_refill(ACE_KIND_BASE + c, bin->capacity / 2 + 1);
}

// A free into the thread's own slab found the bin full: ACE hears of the overflow (it may grow the
// bin); if it is still full, the engine puts the block straight on its slab.
static void bin_full(unsigned engine_class) {
  unsigned c = engine_class - ACE_KIND_BASE;
  ACE_COUNT(c, overflows, 1);
  ace_adapt_event(c);
  ace_adapt_tick();
}

void ace_free_slow(void *block, ss_slab *head) {
  se_free_slow(block, head, ACE_KIND_BASE + ace_head_class(head->user_tag));
}

void *ace_take_zeroed(unsigned c) { return se_take_zeroed(ACE_KIND_BASE + c); }

size_t ace_trim_free_blocks(void) { return se_trim(ACE_KIND_BASE, ACE_CLASS_COUNT); }
