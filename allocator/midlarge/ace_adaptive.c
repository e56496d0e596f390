// The adaptive cache engine: how big each thread's bin of each class may be.
//
// Policy (docs/midlarge.md has the reasons for the defaults):
//   start   every bin starts at its floor (16 KiB worth of blocks, 1..8 blocks);
//   grow    every second miss or overflow of a class within an epoch doubles its bin, up to
//           HAKMEM_ACE_CLASS_MAX_BYTES worth of blocks (2..256), if the global budget (bytes of
//           bin capacity, all threads: HAKMEM_ACE_CACHE_BUDGET, or HAKMEM_ACE_CACHE_SHARE percent
//           of the committed bytes when more) has room; a class refused once does not ask again
//           before the next epoch or a larger limit (see ACE_EVENTS_DENIED);
//   shrink  at the end of an epoch (HAKMEM_ACE_EPOCH_MS, checked on slow paths), a class with
//           no miss, overflow or bin hit during it halves its bin (blocks beyond go back);
//   idle    a class unused for HAKMEM_ACE_IDLE_MS has its bin emptied and its empty current
//           slab released to the pool, which decommits it after its own delay.
// Capacities only change on slow paths; the budget is one relaxed counter updated by CAS there.
#define _GNU_SOURCE
#include "allocator/base/config.h"
#include "allocator/base/stats.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"

// Bytes of bin capacity granted to all threads now. Relaxed CAS: it orders nothing, it only
// has to bound the sum.
static uint64_t budget_used;

uint64_t ace_budget_used(void) { return __atomic_load_n(&budget_used, __ATOMIC_RELAXED); }
// The budget follows the heap: HAKMEM_ACE_CACHE_BUDGET, or HAKMEM_ACE_CACHE_SHARE percent of the
// bytes committed now when that is more. A fixed budget bounded a process whose threads all use the
// same classes to a few blocks per class and thread once the heap was large (16 threads over
// 8-32 KiB: 75 % hit rate, 463 K slow paths per million allocations). It did not bound memory
// either: the blocks the bins could not take waited on their spans' lists instead, and the spans
// that emptied went to the pool and were carved again by other classes (peak RSS 275 MiB against
// 175 MiB with room; docs/midlarge.md). A share of the committed bytes keeps the caches' memory in
// proportion to the heap, as the extra memory of a heap is judged (against glibc's).
uint64_t ace_budget_limit(void) {
  uint64_t fixed = (uint64_t)hk_config_int(HK_OPT_ACE_CACHE_BUDGET);
  uint64_t share = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED) / 100 * (uint64_t)hk_config_int(HK_OPT_ACE_CACHE_SHARE);
  return share > fixed ? share : fixed;
}

static int budget_take(uint64_t bytes) {
  uint64_t limit = ace_budget_limit();
  uint64_t used = __atomic_load_n(&budget_used, __ATOMIC_RELAXED);
  do {
    if (used + bytes > limit) {
      ace_slow.denied_mib = (uint32_t)(limit >> 20);
      return 0;
    }
  } while (!__atomic_compare_exchange_n(&budget_used, &used, used + bytes, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  ace_slow.budget_held += bytes;
  return 1;
}

static void budget_give(uint64_t bytes) {
  __atomic_fetch_sub(&budget_used, bytes, __ATOMIC_RELAXED);
  ace_slow.budget_held -= bytes;
}

void ace_adapt_thread_start(void) {
  uint64_t floors = 0;
  uint64_t now = ss_clock_ms();
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    ace_bin_of(c)->capacity = ace_classes[c].cap_min;
    floors += (uint64_t)ace_classes[c].cap_min * ace_classes[c].block_size;
    ace_class_state *state = &ace_slow.classes[c];
    state->events = 0;
    state->quiet_epochs = 0;
    state->last_active_ms = now;
    state->hits_seen = ace_bin_hits[c];
  }
  // Floors are always granted (a thread must be able to cache something); they count against
  // the budget so growth elsewhere sees them.
  __atomic_fetch_add(&budget_used, floors, __ATOMIC_RELAXED);
  ace_slow.budget_held += floors;
  ace_slow.epoch_start_ms = now;
  ace_slow.clock_ms = now;
}

void ace_adapt_thread_stop(void) {
  // The engine zeroes the bins' capacities itself (a thread flush).
  if (ace_slow.budget_held) budget_give(ace_slow.budget_held);
}

// Set in a class's `events` when the budget refused it a growth; observe() clears it with the count
// at the end of the epoch, and the class asks again before that only once the limit has grown past
// the one that refused the thread (the heap grew). Otherwise the budget gains room only when some
// thread's class shrinks or goes idle (epoch ends) or a thread exits, so asking again on the next
// miss is refused again. It was: 16 threads over 8-32 KiB (mid_large_touch_t16) asked 13.4 million
// times, and the count of refusals, one shared atomic line, alone took 10 % of the run. A refusal
// kept for the whole epoch while the heap grows, on the other hand, left those threads' bins small
// for a fifth of the run.
#define ACE_EVENTS_DENIED (UINT32_C(1) << 31)

void ace_adapt_event(unsigned c) {
  ace_class_state *state = &ace_slow.classes[c];
  if (state->events & ACE_EVENTS_DENIED) {
    if ((ace_budget_limit() >> 20) <= ace_slow.denied_mib) return;
    state->events &= ~ACE_EVENTS_DENIED;
  }
  if ((++state->events & 1) != 0) return;  // every second event in an epoch
  se_bin *bin = ace_bin_of(c);
  const ace_class_info *info = &ace_classes[c];
  if (bin->capacity >= info->cap_max) return;
  uint32_t grown = bin->capacity * 2;
  if (grown > info->cap_max) grown = info->cap_max;
  if (!budget_take((uint64_t)(grown - bin->capacity) * info->block_size)) {
    state->events |= ACE_EVENTS_DENIED;
    ACE_COUNT(c, budget_denied, 1);
    hk_stat_add(HK_STAT_ACE_BUDGET_DENIED, 1);
    return;
  }
  bin->capacity = grown;
  ACE_COUNT(c, capacity_grows, 1);
  hk_stat_add(HK_STAT_ACE_CAPACITY_GROWS, 1);
}

// Halves class c's capacity (not below the floor) and returns the excess blocks.
static size_t shrink(unsigned c) {
  se_bin *bin = ace_bin_of(c);
  const ace_class_info *info = &ace_classes[c];
  if (bin->capacity <= info->cap_min) return 0;
  uint32_t shrunk = bin->capacity / 2;
  if (shrunk < info->cap_min) shrunk = info->cap_min;
  budget_give((uint64_t)(bin->capacity - shrunk) * info->block_size);
  bin->capacity = shrunk;
  ACE_COUNT(c, capacity_shrinks, 1);
  hk_stat_add(HK_STAT_ACE_CAPACITY_SHRINKS, 1);
  return bin->count > shrunk ? se_flush_bin(ACE_KIND_BASE + c, bin->count - shrunk) : 0;
}

// Empties class c's bin and releases its slabs when idle; resets its capacity to the floor.
static size_t idle_flush(unsigned c) {
  se_bin *bin = ace_bin_of(c);
  if (!bin->count && !se_has_current_slab(ACE_KIND_BASE + c)) return 0;
  size_t released = 0;
  while (bin->capacity > ace_classes[c].cap_min) released += shrink(c);
  released += se_flush_class(ACE_KIND_BASE + c);
  ACE_COUNT(c, idle_flushes, 1);
  hk_stat_add(HK_STAT_ACE_IDLE_FLUSHES, 1);
  return released;
}

// Marks classes used since the last look as active at `now`.
static void observe(unsigned c, uint64_t now) {
  ace_class_state *state = &ace_slow.classes[c];
  uint64_t hits = ace_bin_hits[c];
  if (state->events || hits != state->hits_seen) {
    state->last_active_ms = now;
    state->quiet_epochs = 0;
  } else {
    state->quiet_epochs++;
  }
  state->hits_seen = hits;
  state->events = 0;
}

void ace_adapt_tick(void) {
  // The clock is read once per 16 slow-path calls: a vDSO read, but still not free.
  if ((++ace_slow.slow_calls & 15) != 0) return;
  uint64_t now = ss_clock_ms();
  ace_slow.clock_ms = now;
  uint64_t epoch = (uint64_t)hk_config_int(HK_OPT_ACE_EPOCH_MS);
  if (now - ace_slow.epoch_start_ms < epoch) return;
  ace_slow.epoch_start_ms = now;
  uint64_t idle = (uint64_t)hk_config_int(HK_OPT_ACE_IDLE_MS);
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    observe(c, now);
    ace_class_state *state = &ace_slow.classes[c];
    if (now - state->last_active_ms >= idle) idle_flush(c);
    else if (state->quiet_epochs) shrink(c);
  }
}

size_t ace_adapt_trim(int force) {
  uint64_t now = ss_clock_ms();
  uint64_t idle = (uint64_t)hk_config_int(HK_OPT_ACE_IDLE_MS);
  size_t released = 0;
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    ace_class_state *state = &ace_slow.classes[c];
    uint64_t hits = ace_bin_hits[c];
    if (state->events || hits != state->hits_seen) {
      // Used since the last tick. Slow paths read the clock every 16 calls, so their last
      // reading approximates the last use (bin hits after it are not timed: a class that is
      // still hot just refills once).
      if (ace_slow.clock_ms > state->last_active_ms) state->last_active_ms = ace_slow.clock_ms;
      state->hits_seen = hits;
      state->events = 0;
    }
    if (force || now - state->last_active_ms >= idle) released += idle_flush(c);
  }
  return released;
}
