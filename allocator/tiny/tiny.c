// The tiny front's policy over the slab engine: class definitions, bin capacities, refill batch
// sizes, the full-bin flush and the maintenance tick. The fast paths are in tiny.h; every block
// and slab movement is the engine's (slab_engine.h).
#define _GNU_SOURCE
#include "allocator/tiny/tiny.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/registry.h"

// The front door's free routes a block here by the header's SS_HEAD_SMALL_KIND flag: exactly
// the tiny classes' kinds (the class indexes) must carry it.
_Static_assert(TINY_CLASS_COUNT == SS_SMALL_KINDS, "tiny kinds are the SuperSlab's small kinds");
_Static_assert(TINY_CLASS_COUNT <= SE_CLASS_MAX, "tiny classes are engine classes");

// ---- Per-thread policy state --------------------------------------------------------------------
typedef struct {
  uint64_t last_active_ms;  // clock of the last refill or flush (maintenance tick's reading)
  uint32_t refill_batch;    // blocks the next refill asks for; 0 = the class's first refill
} tiny_class_state;

// Slow start: a thread's first refill of a class asks for this many blocks, and each refill after
// it for twice as many as the one before, up to half the bin. A thread that allocates a few blocks
// of a class and exits (thread_churn: 100 blocks over ~30 classes) then walks and flushes back a
// few blocks instead of half a bin of an adopted slab's cold free list.
#define TINY_FIRST_REFILL 4

static __thread tiny_class_state class_states[TINY_CLASS_COUNT] __attribute__((tls_model("initial-exec")));

// Maintenance tick state (see tiny.h).
typedef struct {
  uint32_t slow_calls;  // slow-path calls; the clock is read every 16th
  uint32_t hook_due;    // the tick ran: the hook runs at the end of this slow path
  uint64_t clock_ms;    // last clock reading
  uint64_t last_maintenance_ms;
} tiny_maintenance_state;

static __thread tiny_maintenance_state maintenance __attribute__((tls_model("initial-exec")));
static void (*maintenance_hook)(int allocating, int due);

void tiny_set_maintenance_hook(void (*hook)(int allocating, int due)) { __atomic_store_n(&maintenance_hook, hook, __ATOMIC_RELEASE); }

void tiny_stats_get(tiny_class_stats *out) { se_stats_get(0, TINY_CLASS_COUNT, out); }

// ---- Classes and thread start -------------------------------------------------------------------
static const se_front tiny_front;

// The geometry word free's block-start check reads (tiny_slab_geometry).
static uint64_t slab_tag(const ss_slab *slab, unsigned class_index) {
  uint32_t first_offset = (uint32_t)((uintptr_t)ss_slab_base(slab) & (SS_SLAB_SIZE - 1));
  return tiny_slab_geometry(tiny_class_reciprocal[class_index], first_offset,
                            (slab->capacity - 1) * tiny_class_size[class_index]);
}

static void define_classes(void) {
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) se_class_define(c, tiny_class_size[c], 1, &tiny_front);
}

static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

// Bin capacity per class: more blocks for small classes (cheap to hold), fewer for large ones, so
// a bin holds at most ~32 KiB. Measured: see docs/tiny.md.
static uint32_t bin_capacity(unsigned class_index) {
  uint32_t capacity = 32768u / tiny_class_size[class_index];
  if (capacity > 256) capacity = 256;
  if (capacity < 32) capacity = 32;
  return capacity;
}

// Gives every tiny bin a capacity: a bin of capacity 0 is how a refill knows the front has not
// started on the thread (or was stopped by a thread flush, which zeroes every capacity).
static void thread_start(void) {
  pthread_once(&classes_once, define_classes);
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
    tiny_bin_of(c)->capacity = bin_capacity(c);
    class_states[c].refill_batch = 0;
  }
}

// The engine zeroes the capacities itself; the refill batches restart at the next start.
static void thread_stop(void) {}

static void bin_full(unsigned class_index);

static const se_front tiny_front = {thread_start, thread_stop, slab_tag, bin_full};

// ---- Maintenance --------------------------------------------------------------------------------
// Every 16th slow-path call: read the clock; at most every TINY_MAINTENANCE_PERIOD_MS, give the
// bins of idle classes back to their slabs and run the registered hook. `active_class` is the
// class the caller is working on: its bin is never touched here.
static void maintenance_tick(unsigned active_class) {
  if ((++maintenance.slow_calls & 15) != 0) return;
  uint64_t now = ss_clock_ms();
  maintenance.clock_ms = now;
  if (now - maintenance.last_maintenance_ms < TINY_MAINTENANCE_PERIOD_MS) return;
  maintenance.last_maintenance_ms = now;
  uint64_t idle_ms = (uint64_t)hk_config_int(HK_OPT_TINY_IDLE_MS);
  // An idle class gives back its bin, its spare slab and an empty current slab.
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++)
    if (c != active_class && now - class_states[c].last_active_ms >= idle_ms) se_flush_class(c);
  maintenance.hook_due = 1;
}

// The end of a slow path (the block handed out or taken back, the bin consistent): runs the hook
// after every refill (it may allocate there: it may start a thread, so it cannot run in the middle
// of a refill, whose bin must stay empty until the engine fills it), and after a free when the tick
// asked for it.
static void run_hook(int allocating) {
  int due = maintenance.hook_due;
  if (HK_LIKELY(!allocating && !due)) return;
  maintenance.hook_due = 0;
  void (*hook)(int, int) = __atomic_load_n(&maintenance_hook, __ATOMIC_ACQUIRE);
  if (hook) hook(allocating, due);
}

// ---- Slow paths ---------------------------------------------------------------------------------
void *tiny_alloc_refill(unsigned class_index) {
  se_bin *bin = tiny_bin_of(class_index);
  uint32_t capacity = bin_capacity(class_index);
  if (HK_UNLIKELY(bin->capacity != capacity)) {
    // Not started on the thread (0), closed by a burst of frees (0) or on probation for one (twice
    // the capacity; bin_full): allocations drained it, so it is back to its own capacity.
    if (bin->capacity == 0) se_front_start(&tiny_front);
    bin->capacity = capacity;
  }
  tiny_class_state *state = &class_states[class_index];
  maintenance_tick(class_index);
  state->last_active_ms = maintenance.clock_ms;
  uint32_t want = state->refill_batch ? state->refill_batch : TINY_FIRST_REFILL;
  if (want > bin->capacity / 2) want = bin->capacity / 2;
  state->refill_batch = want * 2;
  void *block = se_refill(class_index, want);
  run_hook(1);
  return block;
}

// A free into the thread's own slab found the bin full (the engine then puts the block straight
// on its slab): a slow-path call, so the class is active and the maintenance clock may tick.
// Exactly full means frees filled it (a bin over capacity was filled by a refill's splice: left
// alone). Most such fills are followed by allocations, not more frees (gcc: three in four, none),
// so the bin first takes a second capacity's worth on probation. Frees that fill that too are a
// burst: the bin goes back to its slabs and takes no frees until the next refill
// (se_flush_burst), so the burst empties whole slabs, which restart in address order.
static void bin_full(unsigned class_index) {
  maintenance_tick(class_index);
  class_states[class_index].last_active_ms = maintenance.clock_ms;
  se_bin *bin = tiny_bin_of(class_index);
  if (bin->capacity == 0 || bin->count != bin->capacity) return;
  uint32_t capacity = bin_capacity(class_index);
  if (bin->capacity == capacity) {
    bin->capacity = capacity * 2;
    return;
  }
  se_flush_burst(class_index);
}

void tiny_free_slow(void *block, ss_slab *slab) {
  se_free_slow(block, slab, slab->kind);
  run_hook(0);
}

void *tiny_calloc(size_t size) {
  unsigned class_index = tiny_size_to_class(size);
  void *block = se_take_zeroed(class_index);
  if (block) return block;
  block = tiny_alloc_class(class_index);
  if (block) memset(block, 0, tiny_class_size[class_index]);
  return block;
}

size_t tiny_trim(void) {
  se_thread_flush();
  return se_trim(0, TINY_CLASS_COUNT);
}
