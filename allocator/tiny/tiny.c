// The tiny front's slow paths: refill, flush, remote free, thread exit and adoption.
// Fast paths and the overview are in tiny.h.
#define _GNU_SOURCE
#include "allocator/tiny/tiny.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/os/os.h"
#include "allocator/superslab/shared_pool.h"
#include "allocator/superslab/slab_list.h"
#include "allocator/superslab/slab_trim.h"

__thread tiny_thread_cache tiny_thread __attribute__((tls_model("initial-exec")));

// Owner ids: 0 = no owner (the pool's), 1 = abandoned by an exited thread, 2.. = live threads.
#define TINY_OWNER_ABANDONED 1u
static uint64_t next_owner_id = 2;

// ---- Per-thread slow-path state ---------------------------------------------------------------
// Kept out of tiny_thread so the fast paths' TLS block stays small.
typedef struct {
  ss_slab *current;         // the slab refills take blocks from; on no list
  ss_slab_list owned;          // the thread's other slabs of this class
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
  uint32_t slow_calls;         // slow-path calls; the clock is read every 16th
  uint64_t clock_ms;           // last clock reading
  uint64_t last_maintenance_ms;
} tiny_maintenance_state;

static __thread tiny_maintenance_state maintenance __attribute__((tls_model("initial-exec")));
static void (*maintenance_hook)(void);

void tiny_set_maintenance_hook(void (*hook)(void)) { __atomic_store_n(&maintenance_hook, hook, __ATOMIC_RELEASE); }

// ---- Counters ---------------------------------------------------------------------------------
static tiny_class_stats class_stats[TINY_CLASS_COUNT];
static int stats_enabled;  // HAKMEM_STATS != 0; set (relaxed) at each thread's first refill

#define COUNT(class_index, field, amount)                                                     \
  do {                                                                                        \
    if (HK_UNLIKELY(__atomic_load_n(&stats_enabled, __ATOMIC_RELAXED)))                                                       \
      __atomic_fetch_add(&class_stats[class_index].field, (amount), __ATOMIC_RELAXED);        \
  } while (0)

void tiny_stats_get(tiny_class_stats *out) {
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
    const uint64_t *source = (const uint64_t *)&class_stats[c];
    uint64_t *target = (uint64_t *)&out[c];
    for (size_t i = 0; i < sizeof(tiny_class_stats) / sizeof(uint64_t); i++)
      target[i] = __atomic_load_n(&source[i], __ATOMIC_RELAXED);
  }
}

// ---- Abandoned slabs --------------------------------------------------------------------------
// One list per class, under a tiny spin lock. Only thread exit
// and refills that found no block in their own slabs take it, so it is never hot.
typedef struct {
  uint32_t lock;   // 0 free, 1 held: acquire exchange to take, release store to give back
  ss_slab_list list;  // guarded by lock; list.count is also read relaxed as an emptiness hint
} __attribute__((aligned(64))) tiny_abandoned_list;

static tiny_abandoned_list abandoned[TINY_CLASS_COUNT];

static void abandoned_lock(unsigned class_index) {
  // Acquire: the holder sees every write the previous holder made before releasing, which
  // includes the abandoning thread's last writes to the slab's owner-only fields.
  while (__atomic_exchange_n(&abandoned[class_index].lock, 1, __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(&abandoned[class_index].lock, __ATOMIC_RELAXED)) hk_cpu_relax();
  }
  COUNT(class_index, abandoned_lock_takes, 1);
}

static void abandoned_unlock(unsigned class_index) {
  __atomic_store_n(&abandoned[class_index].lock, 0, __ATOMIC_RELEASE);
}

size_t tiny_abandoned_count(unsigned class_index) {
  return (size_t)__atomic_load_n(&abandoned[class_index].list.count, __ATOMIC_RELAXED);
}

void tiny_prefork(void) {
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) abandoned_lock(c);
}

void tiny_postfork_parent(void) {
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) abandoned_unlock(c);
}

void tiny_postfork_child(void) {
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) abandoned_unlock(c);
}

// ---- Thread set-up and exit -------------------------------------------------------------------
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void thread_exit_destructor(void *unused);

static void create_exit_key(void) {
  // Key creation uses no malloc for the first PTHREAD_KEYS_MAX keys' storage in glibc.
  if (pthread_key_create(&exit_key, thread_exit_destructor) != 0) hk_report_fatal("tiny: pthread_key_create failed");
}

// Bin capacity per class: more blocks for small classes (cheap to hold), fewer for large ones, so
// a bin holds at most ~32 KiB. Measured: see docs/tiny.md.
static uint32_t bin_capacity(unsigned class_index) {
  uint32_t capacity = 32768u / tiny_class_size[class_index];
  if (capacity > 256) capacity = 256;
  if (capacity < 32) capacity = 32;
  return capacity;
}

static void thread_init(void) {
  hk_freelist_init();
  __atomic_store_n(&stats_enabled, hk_config_string(HK_OPT_STATS)[0] != '0', __ATOMIC_RELAXED);
  pthread_once(&exit_key_once, create_exit_key);
  // Any non-NULL value makes the destructor run at thread exit.
  pthread_setspecific(exit_key, &tiny_thread);
  tiny_thread.owner_id = __atomic_fetch_add(&next_owner_id, 1, __ATOMIC_RELAXED);
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) tiny_thread.bins[c].capacity = bin_capacity(c);
}

// ---- Sparse slabs: pages given back while the slab stays in use --------------------------------
// Scattered frees can leave a slab a tenth full: it cannot go back to the pool, and other sizes
// cannot use its holes, so its free pages stay resident (the fragmentation benchmark: 256 MiB of
// small blocks, 90 % freed, a third of it on pages holding no live block). tiny_trim
// (malloc_trim) parks the pages of a slab that only blocks of its local free list overlap
// (slab_trim.h); they come back, faulting in again, once every other free block of the slab is
// used. Only an explicit trim parks: a trigger on the free path cost larson 4-8 % and the python
// workload a third more page faults, and splits huge pages under live blocks (docs/tiny.md,
// "Tried and reverted").
static void tiny_link_set(void *block, void *next) { hk_link_set(block, next); }
static void tiny_mark_free(void *block) { hk_block_mark_free(block); }
static const ss_free_list_ops tiny_list_ops = {tiny_next, tiny_link_set, tiny_mark_free};

static uint32_t park_free_pages(unsigned class_index, ss_slab *slab) {
  uint32_t pages = ss_slab_park_free_pages(slab, &tiny_list_ops);
  COUNT(class_index, pages_parked, pages);
  return pages;
}

static void unpark_pages(unsigned class_index, ss_slab *slab) {
  uint32_t pages = ss_slab_unpark_pages(slab, &tiny_list_ops);  // not inside COUNT: it may not evaluate
  COUNT(class_index, pages_unparked, pages);
}

// ---- Slab helpers -----------------------------------------------------------------------------
static void release_slab(unsigned class_index, ss_slab *slab) {
  // The pool counts a released slab as committed until it decommits it: keep the gauge exact.
  if (HK_UNLIKELY(slab->trimmed_pages)) {
    uint32_t pages = ss_slab_release_parked(slab);
    COUNT(class_index, pages_unparked, pages);
  }
  __atomic_store_n(&slab->owner, 0, __ATOMIC_RELAXED);
  slab->free_list = NULL;
  COUNT(class_index, slabs_released, 1);
  sp_release_slab(slab);
}

// Takes the blocks other threads freed to `slab` (the whole remote-free word, see registry.h).
static uint64_t take_remote(ss_slab *slab) {
  if (!__atomic_load_n(&slab->remote_free, __ATOMIC_RELAXED)) return 0;  // cheap emptiness check
  // Acquire pairs with the pushers' release CAS: each block's link word is visible.
  return __atomic_exchange_n(&slab->remote_free, 0, __ATOMIC_ACQUIRE);
}

// Moves the blocks other threads freed to `slab` onto its local free list. Returns how many.
static uint32_t collect_remote(unsigned class_index, ss_slab *slab) {
  uint64_t word = take_remote(slab);
  uint32_t count = ss_remote_count(word);
  if (!count) return 0;
  void *list = ss_remote_list(word);
  if (slab->free_list) {
    // Only the rare callers (exit, abandonment) get here with a local list: refills collect when
    // the local list is empty, so they never walk the remote one.
    void *tail = list;
    while (tiny_next(tail)) tail = tiny_next(tail);
    hk_link_set(tail, slab->free_list);
  }
  slab->free_list = list;
  slab->used -= count;
  COUNT(class_index, remote_collected, count);
  return count;
}

// Moves free blocks of `slab` into `bin`: the whole remote list when the bin and the local list
// are empty, else up to `want` from the local free list, remote frees and carving.
static uint32_t take_blocks(unsigned class_index, ss_slab *slab, tiny_bin *bin, uint32_t want) {
  if (!bin->head && !slab->free_list) {
    // Blocks freed by other threads go to the empty bin as they are, all of them (at most a
    // slab's worth, even past the bin's capacity): cutting the list would mean walking it, and
    // the blocks were last written by the freeing thread, so a walk waits on one cache miss
    // after another (xthread: a quarter of the producer's time). They stay counted in `used`
    // (out of the slab) all along. A free by this thread into an over-full bin flushes half.
    uint64_t word = take_remote(slab);
    uint32_t count = ss_remote_count(word);
    if (count) {
      COUNT(class_index, remote_collected, count);
      bin->head = ss_remote_list(word);
      bin->count = count;
      return count;
    }
  }
  uint32_t size = slab->block_size;
  uint32_t limit = slab->capacity * size;
  uint32_t got = 0;
  while (got < want) {
    void *block = slab->free_list;
    if (!block) {
      if (collect_remote(class_index, slab) != 0) continue;
      // Nothing else free and nothing left to carve: the parked pages come back.
      if (HK_UNLIKELY(slab->carve >= limit && slab->trimmed_pages)) {
        unpark_pages(class_index, slab);
        continue;
      }
      break;
    }
    slab->free_list = tiny_next(block);
    hk_link_set(block, bin->head);
    bin->head = block;
    got++;
  }
  if (got < want && slab->carve < limit) {
    // Carve in address order: the chain runs first -> ... -> last -> old bin head.
    char *base = (char *)ss_slab_base(slab);
    uint32_t count = (limit - slab->carve) / size;
    if (count > want - got) count = want - got;
    char *first = base + slab->carve;
    char *block = first;
    for (uint32_t i = 1; i < count; i++, block += size) hk_link_set(block, block + size);
    hk_link_set(block, bin->head);
    bin->head = first;
    slab->carve += count * size;
    got += count;
  }
  slab->used += got;
  bin->count += got;
  return got;
}

// The front door's free routes a block here by the header's SS_HEAD_SMALL_KIND flag: exactly
// the tiny classes' kinds (the class indexes) must carry it.
_Static_assert(TINY_CLASS_COUNT == SS_SMALL_KINDS, "tiny kinds are the SuperSlab's small kinds");

static void init_new_slab(unsigned class_index, ss_slab *slab) {
  uint32_t size = tiny_class_size[class_index];
  slab->block_size = size;
  slab->capacity = (uint32_t)(ss_slab_usable_size(slab) / size);
  slab->carve = 0;
  slab->used = 0;
  slab->free_list = NULL;
  uint32_t first_offset = (uint32_t)((uintptr_t)ss_slab_base(slab) & (SS_SLAB_SIZE - 1));
  slab->user_tag = tiny_slab_geometry(tiny_class_reciprocal[class_index], first_offset,
                                      (slab->capacity - 1) * size);
  ss_slab_list_set_links(slab, 0, 0);
  // Relaxed: other threads reach this slab only through blocks we hand out, and handing a block
  // to another thread is itself a synchronising operation of the program.
  __atomic_store_n(&slab->owner, tiny_thread.owner_id, __ATOMIC_RELAXED);
}

// Up to this many owned slabs are examined per refill before adopting or taking a new slab.
#define OWNED_SCAN_LIMIT 16
// Up to this many abandoned slabs are adopted per refill before a new slab is taken.
#define ADOPT_LIMIT 8

static ss_slab *find_owned_with_free_blocks(tiny_class_state *state) {
  for (uint32_t scanned = 0; scanned < OWNED_SCAN_LIMIT && state->owned.head; scanned++) {
    ss_slab *slab = ss_slab_from_ref(state->owned.head);
    if (slab->free_list || __atomic_load_n(&slab->remote_free, __ATOMIC_RELAXED) ||
        slab->carve < slab->capacity * slab->block_size || slab->trimmed_pages) {
      ss_slab_list_unlink(&state->owned, slab);
      return slab;
    }
    // Nothing free here: rotate it to the back so the next scan looks at others first.
    ss_slab_list_unlink(&state->owned, slab);
    ss_slab_list_push_back(&state->owned, slab);
  }
  return NULL;
}

static ss_slab *adopt_abandoned(unsigned class_index) {
  if (!__atomic_load_n(&abandoned[class_index].list.count, __ATOMIC_RELAXED)) return NULL;
  abandoned_lock(class_index);
  uint32_t ref = abandoned[class_index].list.head;
  ss_slab *slab = NULL;
  if (ref) {
    slab = ss_slab_from_ref(ref);
    ss_slab_list_unlink(&abandoned[class_index].list, slab);
    __atomic_store_n(&slab->owner, tiny_thread.owner_id, __ATOMIC_RELAXED);
  }
  abandoned_unlock(class_index);
  if (slab) COUNT(class_index, slabs_adopted, 1);
  return slab;
}

static void flush_bin(unsigned class_index, uint32_t count);

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
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
    tiny_bin *bin = &tiny_thread.bins[c];
    if (c != active_class && bin->count && now - class_states[c].last_active_ms >= idle_ms) flush_bin(c, bin->count);
  }
  void (*hook)(void) = __atomic_load_n(&maintenance_hook, __ATOMIC_ACQUIRE);
  if (hook) hook();
}

void *tiny_alloc_refill(unsigned class_index) {
  if (HK_UNLIKELY(tiny_thread.owner_id == 0)) thread_init();
  tiny_bin *bin = &tiny_thread.bins[class_index];
  tiny_class_state *state = &class_states[class_index];
  maintenance_tick(class_index);
  state->last_active_ms = maintenance.clock_ms;
  uint32_t want = state->refill_batch ? state->refill_batch : TINY_FIRST_REFILL;
  if (want > bin->capacity / 2) want = bin->capacity / 2;
  state->refill_batch = want * 2;
  uint32_t adopted = 0;
  for (;;) {
    ss_slab *slab = state->current;
    if (slab) {
      uint32_t got = take_blocks(class_index, slab, bin, want);
      if (got) {
        COUNT(class_index, refills, 1);
        COUNT(class_index, blocks_refilled, got);
        void *block = bin->head;
        bin->head = tiny_next(block);
        hk_block_mark_used(block);
        bin->count--;
        return block;
      }
      // Every block of this slab is out: park it; remote frees or flushes will refill it.
      ss_slab_list_push_back(&state->owned, slab);
      state->current = NULL;
    }
    slab = find_owned_with_free_blocks(state);
    if (!slab && adopted < ADOPT_LIMIT && (slab = adopt_abandoned(class_index)) != NULL) adopted++;
    if (!slab) {
      slab = sp_acquire_slab(class_index);
      if (!slab) {
        errno = ENOMEM;
        return NULL;
      }
      init_new_slab(class_index, slab);
      COUNT(class_index, slabs_acquired, 1);
    }
    state->current = slab;
  }
}

// Returns `count` blocks from the head of the bin to their slabs (all owned by this thread).
static void flush_bin(unsigned class_index, uint32_t count) {
  tiny_bin *bin = &tiny_thread.bins[class_index];
  tiny_class_state *state = &class_states[class_index];
  COUNT(class_index, flushes, 1);
  COUNT(class_index, blocks_flushed, count);
  for (uint32_t i = 0; i < count; i++) {
    void *block = bin->head;
    bin->head = tiny_next(block);
    bin->count--;
    ss_slab *slab = ss_slab_from_pointer_unchecked(block);
    hk_link_set(block, slab->free_list);
    slab->free_list = block;
    slab->used--;
    if (slab == state->current) continue;
    if (slab->used == 0) {
      ss_slab_list_unlink(&state->owned, slab);
      release_slab(class_index, slab);
    } else if (state->owned.head != ss_slab_ref(slab)) {
      // It has free blocks now: move it to the front, where the next refill looks first.
      ss_slab_list_unlink(&state->owned, slab);
      ss_slab_list_push_front(&state->owned, slab);
    }
  }
}

// Pushes the chain first -> ... -> last of `count` blocks (linked already) onto the slab's
// remote-free list.
static void push_remote_chain(ss_slab *slab, void *first, void *last, uint32_t count) {
  uint64_t head = __atomic_load_n(&slab->remote_free, __ATOMIC_RELAXED);
  uint64_t pushed;
  do {
    hk_link_set(last, ss_remote_list(head));
    pushed = ss_remote_word(first, ss_remote_count(head) + count);
    // Release: the owner's acquire exchange sees every link word of the chain.
  } while (!__atomic_compare_exchange_n(&slab->remote_free, &head, pushed, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

// Under the abandoned-list lock, with `slab` abandoned (its owner-only fields are then ours):
// collects its remote frees and, when no live block is left, takes it off the list and marks it
// unowned (decided under the lock: a racing reclaim waits on it). 1 when the caller should
// release it.
static int take_if_empty(unsigned class_index, ss_slab *slab) {
  collect_remote(class_index, slab);
  if (slab->used != 0) return 0;
  ss_slab_list_unlink(&abandoned[class_index].list, slab);
  __atomic_store_n(&slab->owner, 0, __ATOMIC_RELAXED);
  return 1;
}

// Blocks freed into a slab whose owner exited: under the abandoned-list lock, collect its remote
// frees and release it if no live block is left, else leave it abandoned. Keeping it instead
// would route the later frees of its blocks into this thread's bins, where each block pins its
// slab (a thread that only frees, like a main thread collecting leftovers, would pin hundreds).
static void reclaim_if_abandoned(unsigned class_index, ss_slab *slab) {
  if (__atomic_load_n(&slab->owner, __ATOMIC_RELAXED) != TINY_OWNER_ABANDONED) return;
  abandoned_lock(class_index);
  if (__atomic_load_n(&slab->owner, __ATOMIC_RELAXED) != TINY_OWNER_ABANDONED) {
    abandoned_unlock(class_index);  // adopted meanwhile: the new owner collects
    return;
  }
  if (!take_if_empty(class_index, slab)) {
    abandoned_unlock(class_index);
    return;
  }
  abandoned_unlock(class_index);
  COUNT(class_index, slabs_adopted, 1);
  release_slab(class_index, slab);
}

// ---- Batched remote frees ---------------------------------------------------------------------
// A thread freeing many blocks of another thread's slab (a consumer of a producer's blocks)
// chains them per slab and pushes each chain with one CAS instead of one per block. The batch
// table is direct-mapped by slab; a batch is pushed when it reaches REMOTE_BATCH_BLOCKS, when
// another slab needs its entry, and at thread exit, so at most REMOTE_BATCH_SLABS x
// REMOTE_BATCH_BLOCKS blocks wait in a thread.
#define REMOTE_BATCH_SLABS 8
#define REMOTE_BATCH_BLOCKS 32

typedef struct {
  ss_slab *slab;  // NULL when the entry is empty
  void *first;    // most recently freed block; links run first -> ... -> last
  void *last;
  uint32_t count;
} remote_batch;

static __thread remote_batch remote_batches[REMOTE_BATCH_SLABS] __attribute__((tls_model("initial-exec")));

static void remote_batch_push(remote_batch *batch) {
  ss_slab *slab = batch->slab;
  if (!slab) return;
  batch->slab = NULL;
  push_remote_chain(slab, batch->first, batch->last, batch->count);
  reclaim_if_abandoned(slab->kind, slab);
}

static void remote_batches_push_all(void) {
  for (unsigned i = 0; i < REMOTE_BATCH_SLABS; i++) remote_batch_push(&remote_batches[i]);
}

static void remote_free(unsigned class_index, ss_slab *slab, void *block) {
  COUNT(class_index, remote_frees, 1);
  // The thread must be set up so that its exit destructor pushes what it batches.
  if (HK_UNLIKELY(tiny_thread.owner_id == 0)) thread_init();
  remote_batch *batch = &remote_batches[((uintptr_t)slab / sizeof(ss_slab)) % REMOTE_BATCH_SLABS];
  if (batch->slab != slab) {
    remote_batch_push(batch);
    batch->slab = slab;
    batch->first = batch->last = block;
    batch->count = 1;
  } else {
    hk_link_set(block, batch->first);
    batch->first = block;
    batch->count++;
  }
  if (batch->count >= REMOTE_BATCH_BLOCKS) remote_batch_push(batch);
}

void tiny_free_slow(void *block, ss_slab *slab) {
  unsigned class_index = slab->kind;
  uint64_t owner = __atomic_load_n(&slab->owner, __ATOMIC_RELAXED);
  tiny_bin *bin = &tiny_thread.bins[class_index];
  if (owner == tiny_thread.owner_id && owner != 0) {
    // Our own slab and the bin is full: half of it goes back to the slabs.
    maintenance_tick(class_index);
    class_states[class_index].last_active_ms = maintenance.clock_ms;
    if (bin->count >= bin->capacity) flush_bin(class_index, bin->count / 2 + 1);
    hk_link_set(block, bin->head);
    bin->head = block;
    bin->count++;
    return;
  }
  if (owner == TINY_OWNER_ABANDONED) {
    // Straight to the slab (no batching): the block may be its last live one.
    COUNT(class_index, remote_frees, 1);
    push_remote_chain(slab, block, block, 1);
    reclaim_if_abandoned(class_index, slab);
    return;
  }
  remote_free(class_index, slab, block);
}

void tiny_invalid_free(void *block, const char *call) {
  hk_report_invalid_pointer_detail(call, "invalid pointer", block, "not the start of a block");
}

void tiny_double_free(void *block, const char *call) {
  hk_report_invalid_pointer_detail(call, "double free", block, "the block is already free");
}

void tiny_corrupted_list(const void *block) {
  hk_report_invalid_pointer_detail("malloc", "heap corruption at", block, "a free block's link was overwritten");
}

void *tiny_calloc(size_t size) {
  unsigned class_index = tiny_size_to_class(size);
  ss_slab *slab = class_states[class_index].current;
  if (slab && slab->zeroed) {
    uint32_t block_size = slab->block_size;
    if (slab->carve + block_size <= slab->capacity * block_size) {
      // Never handed out since the slab's pages were known zero: no memset needed.
      void *block = (char *)ss_slab_base(slab) + slab->carve;
      slab->carve += block_size;
      slab->used++;
      return block;
    }
  }
  void *block = tiny_alloc_class(class_index);
  if (block) memset(block, 0, tiny_class_size[class_index]);
  return block;
}

static void abandon_or_release(unsigned class_index, ss_slab *slab) {
  collect_remote(class_index, slab);
  if (slab->used == 0) {
    release_slab(class_index, slab);
    return;
  }
  COUNT(class_index, slabs_abandoned, 1);
  abandoned_lock(class_index);
  __atomic_store_n(&slab->owner, TINY_OWNER_ABANDONED, __ATOMIC_RELAXED);
  ss_slab_list_push_front(&abandoned[class_index].list, slab);
  abandoned_unlock(class_index);
}

void tiny_thread_flush(void) {
  remote_batches_push_all();
  if (tiny_thread.owner_id == 0) return;
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
    tiny_bin *bin = &tiny_thread.bins[c];
    if (bin->count) flush_bin(c, bin->count);
    bin->capacity = 0;  // frees from now on take the slow path until the thread allocates again
    tiny_class_state *state = &class_states[c];
    state->refill_batch = 0;
    if (state->current) {
      abandon_or_release(c, state->current);
      state->current = NULL;
    }
    while (state->owned.head) {
      ss_slab *slab = ss_slab_from_ref(state->owned.head);
      ss_slab_list_unlink(&state->owned, slab);
      abandon_or_release(c, slab);
    }
  }
  tiny_thread.owner_id = 0;
}

size_t tiny_trim(void) {
  tiny_thread_flush();
  size_t pages = 0;
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
    if (!__atomic_load_n(&abandoned[c].list.count, __ATOMIC_RELAXED)) continue;
    abandoned_lock(c);
    for (uint32_t ref = abandoned[c].list.head, next; ref; ref = next) {
      ss_slab *slab = ss_slab_from_ref(ref);
      next = ss_slab_list_next(slab);
      if (take_if_empty(c, slab)) {
        release_slab(c, slab);
      } else {
        pages += park_free_pages(c, slab);
      }
    }
    abandoned_unlock(c);
  }
  return pages * hk_os_page_size();
}

static void thread_exit_destructor(void *unused) {
  (void)unused;
  tiny_thread_flush();
}
