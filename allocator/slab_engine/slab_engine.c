// The slab engine's slow paths: refill, flush, remote free, thread set-up and exit, adoption,
// trim. The overview and the inline fast paths are in slab_engine.h.
#define _GNU_SOURCE
#include "allocator/slab_engine/slab_engine.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "allocator/os/os.h"
#include "allocator/slab_engine/slab_engine_internal.h"
#include "allocator/superslab/shared_pool.h"
#include "allocator/superslab/slab_list.h"

__thread se_thread_cache se_thread __attribute__((tls_model("initial-exec")));

static uint64_t next_owner_id = 2;  // relaxed fetch_add: ids only need to be unique

// ---- Classes ------------------------------------------------------------------------------------
typedef struct {
  uint32_t block_size;          // 0 until defined
  uint32_t slots;               // 1: a pool slab of kind = class; more: a span
  uint32_t remote_batch_limit;  // remote frees batched per slab before a push (remote_batch)
  const se_front *front;
} se_class_info;

// Written by se_class_define before the class's first refill on any thread (the fronts define
// their classes under pthread_once, which orders these stores before every later use).
static se_class_info classes[SE_CLASS_MAX];

static uint32_t remote_batch_limit(uint32_t block_size);

void se_class_define(unsigned class_index, uint32_t block_size, uint32_t slots, const se_front *front) {
  // Blocks are 16-byte aligned multiples of 16: free-list links are checked for that alignment.
  if (class_index >= SE_CLASS_MAX || block_size < 16 || block_size % 16 != 0 || slots == 0)
    hk_report_fatal("slab engine: bad class definition");
  classes[class_index] = (se_class_info){block_size, slots, remote_batch_limit(block_size), front};
}

// ---- Counters -----------------------------------------------------------------------------------
se_class_stats se_counters[SE_CLASS_MAX];
int se_stats_enabled;

void se_stats_get(unsigned first, unsigned count, se_class_stats *out) {
  for (unsigned c = 0; c < count; c++) {
    const uint64_t *source = (const uint64_t *)&se_counters[first + c];
    uint64_t *target = (uint64_t *)&out[c];
    for (size_t i = 0; i < sizeof(se_class_stats) / sizeof(uint64_t); i++)
      target[i] = __atomic_load_n(&source[i], __ATOMIC_RELAXED);  // relaxed: counters only add up
  }
}

// ---- Per-thread slow-path state -----------------------------------------------------------------
// Kept out of se_thread so the fast paths' TLS block stays small.
// Slabs as 32-bit references (ss_slab_ref; 0: none): every byte here is in every thread's TLS, which a
// new thread pays for (docs/compaction.md, "Thread-local storage").
typedef struct {
  uint32_t current;    // the slab refills take blocks from; on no list
  uint32_t spare;      // one emptied one-slot slab kept (on no list) for the next refill that would
                       // take a slab from the pool
  ss_slab_list owned;  // the thread's other slabs of this class
} se_class_state;

static inline ss_slab *state_slab(uint32_t ref) { return ref ? ss_slab_from_ref(ref) : NULL; }

static __thread se_class_state class_states[SE_CLASS_MAX] __attribute__((tls_model("initial-exec")));
static __thread const se_front *started_fronts[SE_MAX_FRONTS] __attribute__((tls_model("initial-exec")));
// Bit c: the thread took a slab of class c since its last flush. Only those classes can hold
// blocks in the bin or slabs, so a thread flush (every thread's exit) visits only them.
#define USED_CLASS_WORDS ((SE_CLASS_MAX + 63) / 64)
static __thread uint64_t used_classes[USED_CLASS_WORDS] __attribute__((tls_model("initial-exec")));

// ---- Abandoned slabs ----------------------------------------------------------------------------
// One list per class under a small spin lock. Only thread exit, refills that found no block in
// their own slabs, frees into abandoned slabs and trims take it, so it is never hot.
typedef struct {
  uint32_t lock;      // hk_spin_lock: spins briefly, then yields (a holder never blocks; its sections
                      // are list operations, a slab's remote collection and, in a trim, madvise calls)
  ss_slab_list list;  // guarded by lock; list.count is also read relaxed as an emptiness hint
} __attribute__((aligned(64))) se_abandoned_list;

static se_abandoned_list abandoned[SE_CLASS_MAX];

// The holder sees every write the previous holder made before releasing (hk_spin_lock's orders),
// which includes an abandoning thread's last writes to the slab's owner-only fields.
static void abandoned_lock_uncounted(unsigned c) { hk_spin_lock(&abandoned[c].lock); }

static void abandoned_lock(unsigned c) {
  abandoned_lock_uncounted(c);
  SE_COUNT(c, abandoned_lock_takes, 1);
}

static void abandoned_unlock(unsigned c) { hk_spin_unlock(&abandoned[c].lock); }

size_t se_abandoned_count(unsigned c) { return (size_t)__atomic_load_n(&abandoned[c].list.count, __ATOMIC_RELAXED); }

// fork() takes every class's lock; the counter counts the allocator's own uses only.
void se_prefork(void) {
  for (unsigned c = 0; c < SE_CLASS_MAX; c++) abandoned_lock_uncounted(c);
}

void se_postfork_parent(void) {
  for (unsigned c = 0; c < SE_CLASS_MAX; c++) abandoned_unlock(c);
}

void se_postfork_child(void) {
  for (unsigned c = 0; c < SE_CLASS_MAX; c++) abandoned_unlock(c);
}

// ---- Thread set-up and exit ---------------------------------------------------------------------
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void thread_exit_destructor(void *unused) {
  (void)unused;
  se_thread_flush();
}

static void create_exit_key(void) {
  // Key creation uses no malloc for the first PTHREAD_KEYS_MAX keys' storage in glibc.
  if (pthread_key_create(&exit_key, thread_exit_destructor) != 0) hk_report_fatal("slab engine: pthread_key_create failed");
}

static void thread_start(void) {
  hk_freelist_init();
  // Relaxed: every thread stores the same value; it orders nothing.
  __atomic_store_n(&se_stats_enabled, hk_config_string(HK_OPT_STATS)[0] != '0', __ATOMIC_RELAXED);
  pthread_once(&exit_key_once, create_exit_key);
  pthread_setspecific(exit_key, &se_thread);  // any non-NULL value makes the destructor run
  se_thread.owner_id = __atomic_fetch_add(&next_owner_id, 1, __ATOMIC_RELAXED);
}

static int front_started(const se_front *front) {
  for (unsigned i = 0; i < SE_MAX_FRONTS; i++)
    if (started_fronts[i] == front) return 1;
  return 0;
}

void se_front_start(const se_front *front) {
  if (front_started(front)) return;
  if (se_thread.owner_id == 0) thread_start();
  unsigned i = 0;
  while (i < SE_MAX_FRONTS && started_fronts[i]) i++;
  if (i == SE_MAX_FRONTS) hk_report_fatal("slab engine: too many fronts");
  started_fronts[i] = front;
  front->start();
}

// ---- Slab helpers -------------------------------------------------------------------------------
static size_t release_slab(unsigned c, ss_slab *head) {
  size_t bytes = ss_slab_usable_size(head);
  if (HK_UNLIKELY(head->trimmed_pages)) {
    uint32_t pages = se_settle_trimmed(head);  // not inside SE_COUNT: it may not evaluate
    SE_COUNT(c, pages_unparked, pages);
  }
  __atomic_store_n(&head->owner, 0, __ATOMIC_RELAXED);
  head->free_list = NULL;
  // Capacity, block size and the front's tag 0: a stale pointer into the released slab is no
  // block start, and the slab is no longer the front's.
  head->capacity = 0;
  head->block_size = 0;
  head->user_tag = 0;
  SE_COUNT(c, slabs_released, 1);
  if (head->span_slabs > 1) {
    hk_stat_add(HK_STAT_SE_SPANS_RELEASED, 1);
    sp_release_span(head);
  } else {
    sp_release_slab(head);
  }
  return bytes;
}

static ss_slab *acquire_slab(unsigned c) {
  const se_class_info *info = &classes[c];
  if (HK_UNLIKELY(info->block_size == 0)) hk_report_fatal("slab engine: refill of an undefined class");
  ss_slab *head;
  if (info->slots > 1) {
    head = sp_acquire_span(info->slots);
    if (head) hk_stat_add(HK_STAT_SE_SPANS_ACQUIRED, 1);
  } else {
    head = sp_acquire_slab(c);
  }
  if (!head) return NULL;
  head->block_size = info->block_size;
  head->capacity = (uint32_t)(ss_slab_usable_size(head) / info->block_size);
  head->carve = 0;
  head->used = 0;
  head->free_list = NULL;
  head->user_tag = info->front->slab_tag(head, c);
  ss_slab_list_set_links(head, 0, 0);
  // Relaxed: other threads reach this slab only through blocks handed out from it, and handing a
  // block to another thread is itself a synchronising operation of the program.
  __atomic_store_n(&head->owner, se_thread.owner_id, __ATOMIC_RELAXED);
  SE_COUNT(c, slabs_acquired, 1);
  return head;
}

// Takes the blocks other threads freed to `head` (the whole remote-free word, see registry.h).
static uint64_t take_remote(ss_slab *head) {
  if (!__atomic_load_n(&head->remote_free, __ATOMIC_RELAXED)) return 0;  // cheap emptiness check
  // Acquire pairs with the pushers' release CAS: each block's link word is visible.
  return __atomic_exchange_n(&head->remote_free, 0, __ATOMIC_ACQUIRE);
}

// Moves the blocks other threads freed to `head` onto its local free list. Returns how many.
static uint32_t collect_remote(unsigned c, ss_slab *head) {
  uint64_t word = take_remote(head);
  uint32_t count = ss_remote_count(word);
  if (!count) return 0;
  void *list = ss_remote_list(word);
  if (head->free_list) {
    // Only the rare callers (exit, abandonment, trim) get here with a local list: refills collect
    // when the local list is empty, so they never walk the remote one.
    void *tail = list;
    while (se_next(tail)) tail = se_next(tail);
    hk_link_set(tail, head->free_list);
  }
  head->free_list = list;
  head->used -= count;
  SE_COUNT(c, remote_collected, count);
  return count;
}

// A refill asking for at least this many blocks (half the bin: a front that has seen the class
// busy) may take more than it asked for, a slab's whole free list. Smaller asks walk: a thread
// that allocates a few blocks and exits then flushes back only those few.
static inline uint32_t splice_threshold(const se_bin *bin) { return bin->capacity / 2 > 1 ? bin->capacity / 2 : 2; }

// Moves free blocks of `head` into `bin`: the whole remote list when the bin and the local list
// are empty, the whole local list when the bin is empty and `want` is large, else up to `want`
// from the local free list, remote frees, parked pages and carving.
static uint32_t take_blocks(unsigned c, ss_slab *head, se_bin *bin, uint32_t want) {
  if (!bin->head && !head->free_list) {
    // Blocks freed by other threads go to the empty bin as they are, all of them (at most a
    // slab's worth, even past the bin's capacity): cutting the list would mean walking it, and
    // the blocks were last written by the freeing thread, so a walk waits on one cache miss
    // after another (xthread: a quarter of the producer's time). They stay counted in `used`
    // (out of the slab) all along. A free by this thread into an over-full bin flushes.
    uint64_t word = take_remote(head);
    uint32_t count = ss_remote_count(word);
    if (count) {
      SE_COUNT(c, remote_collected, count);
      bin->head = ss_remote_list(word);
      bin->count = count;
      return count;
    }
  }
  uint32_t size = head->block_size;
  uint32_t limit = head->capacity * size;
  if (!bin->head && head->free_list && want >= splice_threshold(bin) && !head->trimmed_pages) {
    // A hot class (the front asks for big batches) takes the slab's whole local list in one
    // splice instead of walking it block by block: a program that freed thousands of blocks
    // onto the slab (frees past a full bin) takes them back at one step. The list holds
    // exactly the carved blocks that are not out (`used` counts the bin's, the program's and
    // the remote list's); with no page parked, none is missing from it.
    uint32_t count = head->carve / size - head->used;
    bin->head = head->free_list;
    bin->count = count;
    head->free_list = NULL;
    head->used += count;
    SE_COUNT(c, refill_splices, 1);
    return count;
  }
  uint32_t got = 0;
  while (got < want) {
    void *block = head->free_list;
    if (!block) {
      if (collect_remote(c, head) != 0) continue;
      // Nothing else free and nothing left to carve: the parked pages come back.
      if (HK_UNLIKELY(head->carve >= limit && head->trimmed_pages && se_parks_pages(head))) {
        uint32_t pages = se_unpark_pages(head);  // not inside SE_COUNT: it may not evaluate
        SE_COUNT(c, pages_unparked, pages);
        continue;
      }
      break;
    }
    head->free_list = se_next(block);
    if (HK_UNLIKELY(head->trimmed_pages) && !se_parks_pages(head)) {
      uint32_t pages = se_untrim_block(head, block);  // not inside SE_COUNT: it may not evaluate
      SE_COUNT(c, pages_unparked, pages);
    }
    hk_link_set(block, bin->head);
    bin->head = block;
    got++;
  }
  if (got < want && head->carve < limit) {
    // Carve in address order: the chain runs first -> ... -> last -> old bin head, so consecutive
    // allocations are adjacent.
    char *base = (char *)ss_slab_base(head);
    uint32_t count = (limit - head->carve) / size;
    if (count > want - got) count = want - got;
    char *first = base + head->carve;
    char *block = first;
    for (uint32_t i = 1; i < count; i++, block += size) hk_link_set(block, block + size);
    hk_link_set(block, bin->head);
    bin->head = first;
    head->carve += count * size;
    got += count;
  }
  head->used += got;
  bin->count += got;
  return got;
}

// Up to this many owned slabs are examined per refill before adopting or taking a new slab.
#define OWNED_SCAN_LIMIT 16
// Up to this many abandoned slabs are adopted per refill before a new slab is taken.
#define ADOPT_LIMIT 8

static ss_slab *find_owned_with_free_blocks(se_class_state *state) {
  for (uint32_t scanned = 0; scanned < OWNED_SCAN_LIMIT && state->owned.head; scanned++) {
    ss_slab *head = ss_slab_from_ref(state->owned.head);
    ss_slab_list_unlink(&state->owned, head);
    if (head->free_list || __atomic_load_n(&head->remote_free, __ATOMIC_RELAXED) ||
        head->carve < head->capacity * head->block_size || head->trimmed_pages)
      return head;
    ss_slab_list_push_back(&state->owned, head);  // nothing free: look at the others first next time
  }
  return NULL;
}

static ss_slab *adopt_abandoned(unsigned c) {
  if (!__atomic_load_n(&abandoned[c].list.count, __ATOMIC_RELAXED)) return NULL;
  abandoned_lock(c);
  uint32_t ref = abandoned[c].list.head;
  ss_slab *head = NULL;
  if (ref) {
    head = ss_slab_from_ref(ref);
    ss_slab_list_unlink(&abandoned[c].list, head);
    __atomic_store_n(&head->owner, se_thread.owner_id, __ATOMIC_RELAXED);  // under the lock
  }
  abandoned_unlock(c);
  if (head) SE_COUNT(c, slabs_adopted, 1);
  return head;
}

void *se_refill(unsigned c, uint32_t want) {
  se_bin *bin = &se_thread.bins[c];
  if (HK_UNLIKELY(bin->head != NULL)) se_next(bin->head);  // se_bin_pop refused the head's link: reports
  se_class_state *state = &class_states[c];
  uint32_t adopted = 0;
  for (;;) {
    ss_slab *head = state_slab(state->current);
    if (head) {
      uint32_t got = take_blocks(c, head, bin, want);
      if (got) {
        if (SE_COUNTING()) {
          SE_ADD(c, refills, 1);
          SE_ADD(c, blocks_refilled, got);
        }
        void *block = bin->head;  // not NULL: got >= 1
        bin->head = se_next(block);
        bin->count--;
        hk_block_mark_used(block);
        return block;
      }
      // Every block of this slab is out: park it; remote frees or flushes will refill it.
      ss_slab_list_push_back(&state->owned, head);
      state->current = 0;
    }
    head = find_owned_with_free_blocks(state);
    if (!head && state->spare) {
      head = state_slab(state->spare);
      state->spare = 0;
      SE_COUNT(c, spare_reuses, 1);
    }
    if (!head && adopted < ADOPT_LIMIT && (head = adopt_abandoned(c)) != NULL) adopted++;
    if (!head) {
      head = acquire_slab(c);
      if (!head) {
        errno = ENOMEM;
        return NULL;
      }
    }
    state->current = ss_slab_ref(head);
    used_classes[c / 64] |= (uint64_t)1 << (c % 64);
  }
}

// A slab with no block out (`used` 0, no page parked) starts over: its free list is dropped and
// the next refills carve it again in address order. The list was in the order of the frees, a
// walk through cold lines that the hardware cannot prefetch (the pops of a ring of batches
// stalled on every link); a carve runs through adjacent lines. Its pages are no longer known zero.
static inline void restart_empty_slab(ss_slab *head) {
  head->free_list = NULL;
  head->carve = 0;
  head->zeroed = 0;
}

// A one-slot slab other than the current one whose last block came back: kept, restarted, as the
// class's spare when there is none, else given to the pool. A program that empties slabs in
// bursts and fills them again (a ring of batches) then reuses the spare without a pool round
// trip. Returns the bytes released.
static size_t retire_empty_slab(unsigned c, se_class_state *state, ss_slab *head) {
  if (!state->spare && classes[c].slots == 1 && !head->trimmed_pages) {
    restart_empty_slab(head);
    state->spare = ss_slab_ref(head);
    return 0;
  }
  return release_slab(c, head);
}

// Gives the class's spare slab, if any, back to the pool. Returns the bytes released.
static size_t release_spare(unsigned c, se_class_state *state) {
  ss_slab *spare = state_slab(state->spare);
  if (!spare) return 0;
  state->spare = 0;
  return release_slab(c, spare);
}

// Puts free `block` back on its slab `head`, owned by the thread: a slab other than the current
// one whose last block came back is retired (kept as the spare, or to the pool), else it goes to
// the front of the owned list, where the next refill looks first. Returns the bytes released.
static inline __attribute__((always_inline)) size_t return_block(unsigned c, se_class_state *state, ss_slab *head,
                                                                 void *block) {
  hk_link_set(block, head->free_list);
  head->free_list = block;
  head->used--;
  if (ss_slab_ref(head) == state->current) {
    if (head->used == 0 && !head->trimmed_pages) restart_empty_slab(head);
    return 0;
  }
  if (head->used == 0) {
    ss_slab_list_unlink(&state->owned, head);
    return retire_empty_slab(c, state, head);
  }
  if (state->owned.head != ss_slab_ref(head)) {
    ss_slab_list_unlink(&state->owned, head);
    ss_slab_list_push_front(&state->owned, head);
  }
  return 0;
}

// se_flush_bin's loop, specialised by `spans` (the class's slabs are spans): a single-slot slab is
// its block's own slot, which spares the span-head lookup per block.
static inline __attribute__((always_inline)) size_t flush_blocks(unsigned c, uint32_t count, int spans) {
  se_bin *bin = &se_thread.bins[c];
  se_class_state *state = &class_states[c];
  size_t released = 0;
  for (uint32_t i = 0; i < count; i++) {
    void *block = bin->head;
    bin->head = se_next(block);
    bin->count--;
    ss_slab *head = ss_slab_from_pointer_unchecked(block);
    if (spans) head = ss_slab_head(head);
    released += return_block(c, state, head, block);
  }
  return released;
}

size_t se_flush_bin(unsigned c, uint32_t count) {
  if (count > se_thread.bins[c].count) count = se_thread.bins[c].count;
  if (!count) return 0;
  if (SE_COUNTING()) {
    SE_ADD(c, flushes, 1);
    SE_ADD(c, blocks_flushed, count);
  }
  return classes[c].slots > 1 ? flush_blocks(c, count, 1) : flush_blocks(c, count, 0);
}

size_t se_flush_burst(unsigned c) {
  se_bin *bin = &se_thread.bins[c];
  SE_COUNT(c, burst_flushes, 1);
  size_t released = se_flush_bin(c, bin->count);
  bin->capacity = 0;
  return released;
}

size_t se_flush_class(unsigned c) {
  se_class_state *state = &class_states[c];
  size_t released = se_flush_bin(c, se_thread.bins[c].count);
  released += release_spare(c, state);
  ss_slab *current = state_slab(state->current);
  if (current) {
    collect_remote(c, current);
    if (current->used == 0) {
      state->current = 0;
      released += release_slab(c, current);
    }
  }
  return released;
}

int se_has_current_slab(unsigned c) { return class_states[c].current != 0; }

void *se_take_zeroed(unsigned c) {
  ss_slab *head = state_slab(class_states[c].current);
  if (!head || !head->zeroed) return NULL;
  uint32_t size = head->block_size;
  if (head->carve + size > head->capacity * size) return NULL;
  // Never handed out since the slab's pages were known zero: no memset needed.
  void *block = (char *)ss_slab_base(head) + head->carve;
  head->carve += size;
  head->used++;
  return block;
}

// ---- Remote frees -------------------------------------------------------------------------------
// Pushes the chain first -> ... -> last of `count` blocks (linked already) onto the slab's
// remote-free list.
static void push_remote_chain(ss_slab *head, void *first, void *last, uint32_t count) {
  uint64_t top = __atomic_load_n(&head->remote_free, __ATOMIC_RELAXED);
  uint64_t pushed;
  do {
    hk_link_set(last, ss_remote_list(top));
    pushed = ss_remote_word(first, ss_remote_count(top) + count);
    // Release: the owner's acquire exchange sees every link word of the chain.
  } while (!__atomic_compare_exchange_n(&head->remote_free, &top, pushed, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

// Under the abandoned-list lock, with `head` abandoned (its owner-only fields are then ours):
// collects its remote frees and, when no live block is left, takes it off the list and marks it
// unowned (decided under the lock: a racing reclaim waits on it). 1 when the caller should
// release it.
static int take_if_empty(unsigned c, ss_slab *head) {
  collect_remote(c, head);
  if (head->used != 0) return 0;
  ss_slab_list_unlink(&abandoned[c].list, head);
  __atomic_store_n(&head->owner, 0, __ATOMIC_RELAXED);
  return 1;
}

// Blocks freed into a slab whose owner exited: under the abandoned-list lock, collect its remote
// frees and release it if no live block is left, else leave it abandoned. Keeping it instead
// would route the later frees of its blocks into this thread's bins, where each block pins its
// slab (a thread that only frees, like a main thread collecting leftovers, would pin hundreds).
static __attribute__((noinline)) void reclaim_abandoned(unsigned c, ss_slab *head) {
  abandoned_lock(c);
  if (__atomic_load_n(&head->owner, __ATOMIC_RELAXED) != SE_OWNER_ABANDONED || !take_if_empty(c, head)) {
    abandoned_unlock(c);  // adopted meanwhile (the new owner collects), or still holds live blocks
    return;
  }
  abandoned_unlock(c);
  SE_COUNT(c, slabs_adopted, 1);
  release_slab(c, head);
}

static inline void reclaim_if_abandoned(unsigned c, ss_slab *head) {
  if (__atomic_load_n(&head->owner, __ATOMIC_RELAXED) == SE_OWNER_ABANDONED) reclaim_abandoned(c, head);
}

// A thread freeing many blocks of another thread's slab (a consumer of a producer's blocks)
// chains them per slab and pushes each chain with one CAS instead of one per block. The batch
// table is direct-mapped by slab; a batch is pushed when it reaches its class's limit (32 blocks,
// fewer so that it holds at most REMOTE_BATCH_BYTES: blocks of 16 KiB and more go at once), when
// another slab needs its entry, and at thread flush, so at most REMOTE_BATCH_SLABS x
// REMOTE_BATCH_BYTES wait in a thread.
#define REMOTE_BATCH_SLABS 16
#define REMOTE_BATCH_BLOCKS 32
#define REMOTE_BATCH_BYTES 32768

static uint32_t remote_batch_limit(uint32_t block_size) {
  uint32_t limit = REMOTE_BATCH_BYTES / block_size;
  return limit > REMOTE_BATCH_BLOCKS ? REMOTE_BATCH_BLOCKS : limit;
}

typedef struct {
  ss_slab *head;   // NULL when the entry is empty
  void *first;     // most recently freed block; links run first -> ... -> last
  void *last;
  uint32_t count;
  uint32_t limit;  // the class's remote_batch_limit: a batch this long is pushed
  uint32_t class_index;
} remote_batch;

static __thread remote_batch remote_batches[REMOTE_BATCH_SLABS] __attribute__((tls_model("initial-exec")));

static void remote_batch_push(remote_batch *batch) {
  ss_slab *head = batch->head;
  if (!head) return;
  batch->head = NULL;
  push_remote_chain(head, batch->first, batch->last, batch->count);
  reclaim_if_abandoned(batch->class_index, head);
}

static void remote_batches_push_all(void) {
  for (unsigned i = 0; i < REMOTE_BATCH_SLABS; i++) remote_batch_push(&remote_batches[i]);
}

static inline remote_batch *remote_batch_of(const ss_slab *head) {
  return &remote_batches[((uintptr_t)head / sizeof(ss_slab)) % REMOTE_BATCH_SLABS];
}

// se_free_slow's cases other than a block joining its slab's batch: out of line, so that the
// common case saves no register. `owner` is the slab's owner as se_free_slow read it.
static __attribute__((noinline)) void free_slow_rest(void *block, ss_slab *head, unsigned c, uint64_t owner) {
  if (owner == se_thread.owner_id && owner != 0) {
    // Our own slab and a full bin: the front hears of it (it may grow the bin). Still full, the
    // block goes onto its slab's list, as se_free_fast's do.
    classes[c].front->bin_full(c);
    se_bin *bin = &se_thread.bins[c];
    if (bin->count < bin->capacity) {
      se_bin_push(bin, block);
      return;
    }
    // The cases se_free_fast leaves here: the slab's first free block (a slab not current moves
    // to the front of the owned list) or its last one out (released when not current).
    return_block(c, &class_states[c], head, block);
    return;
  }
  SE_COUNT(c, remote_frees, 1);
  if (owner == SE_OWNER_ABANDONED) {
    // Straight to the slab (no batching): the block may be its last live one.
    push_remote_chain(head, block, block, 1);
    reclaim_if_abandoned(c, head);
    return;
  }
  // The first block of a batch. The thread must be set up so that its exit destructor pushes
  // what it batches.
  if (HK_UNLIKELY(se_thread.owner_id == 0)) thread_start();
  uint32_t limit = classes[c].remote_batch_limit;
  if (limit <= 1) {
    push_remote_chain(head, block, block, 1);
    return;
  }
  remote_batch *batch = remote_batch_of(head);
  remote_batch_push(batch);  // another slab's batch held the entry
  batch->head = head;
  batch->class_index = c;
  batch->limit = limit;
  batch->first = batch->last = block;
  batch->count = 1;
}

void se_free_slow(void *block, ss_slab *head, unsigned c) {
  uint64_t owner = __atomic_load_n(&head->owner, __ATOMIC_RELAXED);  // relaxed: as in se_free_fast
  remote_batch *batch = remote_batch_of(head);
  // A batch is only ever started for another live thread's slab (so this thread's own slabs never
  // match); an owner that has exited since sends the block straight to the slab instead.
  if (HK_LIKELY(batch->head == head && owner != SE_OWNER_ABANDONED)) {
    SE_COUNT(c, remote_frees, 1);
    hk_link_set(block, batch->first);
    batch->first = block;
    if (++batch->count >= batch->limit) remote_batch_push(batch);
    return;
  }
  free_slow_rest(block, head, c, owner);
}

// ---- Thread flush, trim -------------------------------------------------------------------------
static void abandon_or_release(unsigned c, ss_slab *head) {
  collect_remote(c, head);
  if (head->used == 0) {
    release_slab(c, head);
    return;
  }
  SE_COUNT(c, slabs_abandoned, 1);
  abandoned_lock(c);
  __atomic_store_n(&head->owner, SE_OWNER_ABANDONED, __ATOMIC_RELAXED);  // under the lock
  ss_slab_list_push_front(&abandoned[c].list, head);
  abandoned_unlock(c);
}

// A thread flush's part for class c: the bin back to its slabs, every slab given up.
static void give_up_class(unsigned c) {
  se_bin *bin = &se_thread.bins[c];
  if (bin->count) se_flush_bin(c, bin->count);
  se_class_state *state = &class_states[c];
  release_spare(c, state);
  if (state->current) {
    abandon_or_release(c, state_slab(state->current));
    state->current = 0;
  }
  while (state->owned.head) {
    ss_slab *head = ss_slab_from_ref(state->owned.head);
    ss_slab_list_unlink(&state->owned, head);
    abandon_or_release(c, head);
  }
}

void se_thread_flush(void) {
  remote_batches_push_all();
  if (se_thread.owner_id == 0) return;
  for (unsigned word = 0; word < USED_CLASS_WORDS; word++) {
    for (uint64_t classes_left = used_classes[word]; classes_left; classes_left &= classes_left - 1)
      give_up_class(word * 64 + (unsigned)__builtin_ctzll(classes_left));
  }
  memset(used_classes, 0, sizeof used_classes);
  // Every bin is empty now; capacity 0 sends the frees from now on to the slow path until a front
  // starts again.
  memset(se_thread.bins, 0, sizeof(se_thread.bins));
  for (unsigned i = 0; i < SE_MAX_FRONTS; i++) {
    const se_front *front = started_fronts[i];
    started_fronts[i] = NULL;
    if (front) front->stop();
  }
  se_thread.owner_id = 0;
}

static uint32_t trim_slab(unsigned c, ss_slab *head) {
  uint32_t pages = se_trim_slab(head);
  SE_COUNT(c, pages_parked, pages);
  hk_stat_add(HK_STAT_SE_PAGES_TRIMMED, pages);
  return pages;
}

size_t se_trim(unsigned first, unsigned count) {
  size_t pages = 0;
  for (unsigned c = first; c < first + count; c++) {
    se_class_state *state = &class_states[c];
    release_spare(c, state);
    if (state->current) pages += trim_slab(c, state_slab(state->current));
    for (uint32_t ref = state->owned.head; ref; ref = ss_slab_list_next(ss_slab_from_ref(ref)))
      pages += trim_slab(c, ss_slab_from_ref(ref));
    if (!__atomic_load_n(&abandoned[c].list.count, __ATOMIC_RELAXED)) continue;
    abandoned_lock(c);
    // Under the lock an abandoned slab's owner-only fields are ours.
    for (uint32_t ref = abandoned[c].list.head, next; ref; ref = next) {
      ss_slab *head = ss_slab_from_ref(ref);
      next = ss_slab_list_next(head);
      if (take_if_empty(c, head)) {
        release_slab(c, head);
      } else {
        pages += trim_slab(c, head);
      }
    }
    abandoned_unlock(c);
  }
  return pages * hk_os_page_size();
}

// ---- Reports ------------------------------------------------------------------------------------
void se_invalid_free(void *block, const char *call) {
  hk_report_invalid_pointer_detail(call, "invalid pointer", block, "not the start of a block");
}

void se_double_free(void *block, const char *call) {
  hk_report_invalid_pointer_detail(call, "double free", block, "the block is already free");
}

void se_corrupted_list(const void *block) {
  hk_report_invalid_pointer_detail("malloc", "heap corruption at", block, "a free block's link was overwritten");
}
