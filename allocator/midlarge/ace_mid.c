// Mid/large slow paths: class geometry, refill, flush, remote free, thread exit and adoption.
// The fast paths are in ace.h; the capacity policy is in ace_adaptive.c.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/stats.h"
#include "allocator/midlarge/ace.h"
#include "allocator/midlarge/ace_internal.h"
#include "allocator/os/os.h"
#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"
#include "allocator/superslab/slab_trim.h"

__thread ace_thread_cache ace_thread __attribute__((tls_model("initial-exec")));
__thread ace_thread_state ace_slow __attribute__((tls_model("initial-exec")));

ace_class_info ace_classes[ACE_CLASS_COUNT];
ace_class_stats ace_class_counters[ACE_CLASS_COUNT];
int ace_stats_enabled;

// Owner ids: 0 = none (the pool's), 1 = abandoned by an exited thread, 2.. = live threads.
#define ACE_OWNER_ABANDONED 1u
static uint64_t next_owner_id = 2;  // relaxed fetch_add: ids only need to be unique

// ---- Class geometry ---------------------------------------------------------------------------
// Blocks a class's slab should hold: 8 up to 128 KiB blocks (so a slab amortises its pool call
// and its metadata over a useful batch), fewer above so a slab stays <= 1 MiB, never below 2.
static uint32_t target_blocks(size_t size) {
  size_t target = ((size_t)1 << 20) / size;
  if (target > 8) target = 8;
  if (target < 2) target = 2;
  return (uint32_t)target;
}

static void compute_classes(void) {
  int64_t class_max_bytes = hk_config_int(HK_OPT_ACE_CLASS_MAX_BYTES);
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    size_t size = ace_class_size(c);
    uint32_t target = target_blocks(size);
    // The fewest slots giving `target` blocks with tail waste <= 1/32 of the slab; failing
    // that (never, for these classes: tested), the least tail waste with >= 1 block.
    uint32_t best = 0, best_waste = UINT32_MAX;
    for (uint32_t n = 1; n <= ACE_MAX_SPAN_SLOTS; n++) {
      size_t usable = (size_t)n << SS_SLAB_SIZE_LOG2;
      size_t blocks = usable / size;
      if (blocks == 0) continue;
      uint32_t waste = (uint32_t)(usable - blocks * size);
      if (blocks >= target && waste <= usable / 32) {
        best = n;
        break;
      }
      if (waste < best_waste) best = n, best_waste = waste;
    }
    ace_class_info *info = &ace_classes[c];
    info->block_size = (uint32_t)size;
    info->slots = best;
    info->blocks = (uint32_t)(((size_t)best << SS_SLAB_SIZE_LOG2) / size);
    // Floor: 16 KiB worth (at least 1, at most 8 blocks). Ceiling: HAKMEM_ACE_CLASS_MAX_BYTES
    // worth, at least 2 blocks (so a large class can hold a freed block and a spare), at most 256.
    uint32_t floor = (uint32_t)(16384 / size);
    if (floor < 1) floor = 1;
    if (floor > 8) floor = 8;
    int64_t ceiling = class_max_bytes / (int64_t)size;
    if (ceiling < 2) ceiling = 2;
    if (ceiling > 256) ceiling = 256;
    if (ceiling < floor) ceiling = floor;
    info->cap_min = floor;
    info->cap_max = (uint32_t)ceiling;
  }
}

static pthread_once_t classes_once = PTHREAD_ONCE_INIT;
void ace_classes_init(void) { pthread_once(&classes_once, compute_classes); }

// ---- Abandoned slabs: one list per class under a small spin lock (thread exit, adoption) -------
typedef struct {
  uint32_t lock;       // 0 free, 1 held: acquire exchange to take, release store to give back
  ss_slab_list list;  // guarded by lock; list.count also read relaxed as an emptiness hint
} __attribute__((aligned(64))) ace_abandoned_list;

static ace_abandoned_list abandoned[ACE_CLASS_COUNT];

static void abandoned_lock(unsigned c) {
  // Acquire: the holder sees the previous holder's writes, including an exited owner's last
  // writes to the slab's owner-only fields.
  while (__atomic_exchange_n(&abandoned[c].lock, 1, __ATOMIC_ACQUIRE))
    while (__atomic_load_n(&abandoned[c].lock, __ATOMIC_RELAXED)) hk_cpu_relax();
}
static void abandoned_unlock(unsigned c) { __atomic_store_n(&abandoned[c].lock, 0, __ATOMIC_RELEASE); }

void ace_mid_prefork(void) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) abandoned_lock(c);
}
void ace_mid_postfork(void) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) abandoned_unlock(c);
}

// ---- Thread set-up and exit ---------------------------------------------------------------------
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void thread_exit_destructor(void *unused) {
  (void)unused;
  ace_thread_flush();
}

static void create_exit_key(void) {
  if (pthread_key_create(&exit_key, thread_exit_destructor) != 0) hk_report_fatal("ace: pthread_key_create failed");
}

void ace_thread_init(void) {
  hk_freelist_init();
  ace_classes_init();
  // Relaxed: every thread stores the same value; it orders nothing.
  __atomic_store_n(&ace_stats_enabled, hk_config_string(HK_OPT_STATS)[0] != '0', __ATOMIC_RELAXED);
  pthread_once(&exit_key_once, create_exit_key);
  pthread_setspecific(exit_key, &ace_thread);  // any non-NULL value makes the destructor run
  ace_thread.owner_id = __atomic_fetch_add(&next_owner_id, 1, __ATOMIC_RELAXED);
  ace_adapt_thread_start();
}

void ace_fold_hits(void) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    uint64_t hits = ace_thread.bins[c].hits, *folded = &ace_slow.classes[c].hits_folded;
    if (hits != *folded) {
      ACE_COUNT(c, hits, hits - *folded);
      *folded = hits;
    }
  }
}

// ---- Trimmed free blocks (malloc_trim) ---------------------------------------------------------
// A slab whose blocks were freed in a scattered order keeps its free blocks resident until its
// last one comes back. ace_trim_free_blocks gives their pages back in one of two ways:
//   - blocks of 8 KiB and more: the whole pages inside each free block on a slab's local list,
//     past the block's first 32 bytes, are decommitted. Word 0 is the link, word 1 the hardened
//     build's canary, words 2 and 3 record the trim (a marker derived from the address, and the
//     page count), so the list stays intact and nothing has to be taken off it. The pages fault
//     back in, zeroed, when the block is used again. head->trimmed_pages counts the pages
//     decommitted in the slab's free blocks so that the commit gauge (hk_os) stays exact:
//     take_blocks counts a trimmed block's pages committed again as it leaves the list,
//     release_slab counts the rest;
//   - smaller blocks hold no whole page past those bytes: their slabs park the pages that only
//     free blocks overlap, as tiny does (slab_trim.h; head->trimmed_pages is then a page mask),
//     when the slab is one slot (parks_pages).
#define ACE_TRIM_MARKER UINT64_C(0x41434554524d4431)  // "ACETRMD1", XORed with the block address
#define ACE_TRIM_KEPT_BYTES (4 * sizeof(uintptr_t))
#define ACE_TRIM_INSIDE_MIN 8192  // blocks this big are trimmed inside, smaller ones parked

static void ace_link_set(void *block, void *next) { hk_link_set(block, next); }
static void ace_mark_free(void *block) { hk_block_mark_free(block); }
static const ss_free_list_ops ace_list_ops = {ace_next, ace_link_set, ace_mark_free};

// True when malloc_trim parks pages of `head` rather than trimming inside its free blocks: small
// blocks on a single slot (the page mask covers one slot; the 5 and 6 KiB classes, whose slabs
// are two slots, are trimmed inside, which frees a page in some of their blocks).
static inline int parks_pages(const ss_slab *head) {
  return head->block_size < ACE_TRIM_INSIDE_MIN && head->span_slabs <= 1;
}

static inline uintptr_t trim_marker(const void *block) { return (uintptr_t)ACE_TRIM_MARKER ^ (uintptr_t)block; }

// Decommits the pages inside free block `block` (unless done already). Returns how many.
static uint32_t trim_block(void *block, uint32_t size) {
  uintptr_t *words = block;
  if (words[2] == trim_marker(block)) return 0;
  size_t page = hk_os_page_size();
  uintptr_t start = ((uintptr_t)block + ACE_TRIM_KEPT_BYTES + page - 1) & ~(page - 1);
  uintptr_t end = ((uintptr_t)block + size) & ~(page - 1);
  if (end <= start) return 0;
  ss_withdraw_hugepage(ss_from_pointer_unchecked(block));
  if (hk_os_decommit((void *)start, end - start, HK_OS_DECOMMIT_CONFIGURED) != 0) return 0;
  uint32_t pages = (uint32_t)((end - start) / page);
  words[2] = trim_marker(block);
  words[3] = pages;
  return pages;
}

// `block` leaves `head`'s free list: if a trim decommitted pages inside it, they count as
// committed again (the caller is about to hand the block out, so they will be).
static void untrim_block(ss_slab *head, void *block) {
  uintptr_t *words = block;
  if (words[2] != trim_marker(block)) return;
  uint32_t pages = (uint32_t)words[3];
  if (pages > head->trimmed_pages) pages = head->trimmed_pages;  // a forged marker: stay bounded
  words[2] = 0;
  head->trimmed_pages = (uint16_t)(head->trimmed_pages - pages);
  hk_os_commit(block, (size_t)pages * hk_os_page_size());
}

// Decommits the pages inside the free blocks of `head`'s local list. Returns the bytes.
static size_t trim_slab(ss_slab *head) {
  uint32_t size = head->block_size;
  if (!head->free_list) return 0;
  uint32_t pages = 0;
  if (parks_pages(head)) {
    pages = ss_slab_park_free_pages(head, &ace_list_ops);
  } else {
    for (void *block = head->free_list; block; block = ace_next(block)) pages += trim_block(block, size);
    head->trimmed_pages = (uint16_t)(head->trimmed_pages + pages);
  }
  hk_stat_add(HK_STAT_ACE_PAGES_TRIMMED, pages);
  return (size_t)pages * hk_os_page_size();
}

// ---- Slab helpers ------------------------------------------------------------------------------
static size_t release_slab(unsigned c, ss_slab *head) {
  size_t bytes = ss_slab_usable_size(head);
  if (HK_UNLIKELY(head->trimmed_pages)) {
    // The pool counts a released slab as committed: count the trimmed pages back (and clear the
    // markers, so that no block of the slab's next life looks trimmed).
    if (parks_pages(head)) {
      ss_slab_release_parked(head);
    } else {
      for (void *block = head->free_list; block; block = ace_next(block)) untrim_block(head, block);
    }
  }
  __atomic_store_n(&head->owner, 0, __ATOMIC_RELAXED);
  head->free_list = NULL;
  // capacity/block_size and the head word 0: a stale pointer into the released slab is no block
  // start, and the slab is no longer ACE's (ace_owns_slab).
  head->capacity = 0;
  head->block_size = 0;
  head->user_tag = 0;
  ACE_COUNT(c, slabs_released, 1);
  if (ace_classes[c].slots > 1) {
    hk_stat_add(HK_STAT_ACE_SPANS_RELEASED, 1);
    sp_release_span(head);
  } else {
    sp_release_slab(head);
  }
  return bytes;
}

// Moves the blocks other threads freed to `head` onto its local list. Returns how many.
static uint32_t collect_remote(ss_slab *head) {
  if (!__atomic_load_n(&head->remote_free, __ATOMIC_RELAXED)) return 0;  // cheap emptiness check
  // Acquire pairs with the pushers' release CAS: every block's link word is visible.
  uint64_t word = __atomic_exchange_n(&head->remote_free, 0, __ATOMIC_ACQUIRE);
  void *list = ss_remote_list(word);
  uint32_t count = ss_remote_count(word);
  if (head->free_list) {
    void *tail = list;
    while (ace_next(tail)) tail = ace_next(tail);
    hk_link_set(tail, head->free_list);
  }
  head->free_list = list;
  head->used -= count;
  return count;
}

// Moves up to `want` free blocks of `head` into `bin`: local list, remote frees, then carving.
static uint32_t take_blocks(ss_slab *head, ace_bin *bin, uint32_t want) {
  uint32_t size = head->block_size;
  uint32_t limit = head->capacity * size;
  uint32_t got = 0;
  while (got < want) {
    void *block = head->free_list;
    if (!block) {
      if (collect_remote(head) != 0) continue;
      // Nothing else free and nothing left to carve: the parked pages come back.
      if (HK_UNLIKELY(head->carve >= limit && head->trimmed_pages && parks_pages(head))) {
        ss_slab_unpark_pages(head, &ace_list_ops);
        continue;
      }
      break;
    }
    head->free_list = ace_next(block);
    if (HK_UNLIKELY(head->trimmed_pages) && !parks_pages(head)) untrim_block(head, block);
    hk_link_set(block, bin->head);
    bin->head = block;
    got++;
  }
  if (got < want && head->carve < limit) {
    // Carve in address order so consecutive allocations are adjacent.
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

static ss_slab *acquire_slab(unsigned c) {
  const ace_class_info *info = &ace_classes[c];
  ss_slab *head;
  if (info->slots > 1) {
    head = sp_acquire_span(info->slots);
    if (head) hk_stat_add(HK_STAT_ACE_SPANS_ACQUIRED, 1);
  } else {
    head = sp_acquire_slab(ACE_KIND_BASE + c);
  }
  if (!head) return NULL;
  head->block_size = info->block_size;
  head->capacity = (uint32_t)(ss_slab_usable_size(head) / info->block_size);
  head->user_tag = ace_head_word(ss_slab_base(head), c);
  head->carve = 0;
  head->used = 0;
  head->free_list = NULL;
  ss_slab_list_set_links(head, 0, 0);
  // Relaxed: other threads reach this slab only through blocks handed out from it, and passing
  // a block to another thread is itself a synchronising act of the program.
  __atomic_store_n(&head->owner, ace_thread.owner_id, __ATOMIC_RELAXED);
  ACE_COUNT(c, slabs_acquired, 1);
  return head;
}

#define OWNED_SCAN_LIMIT 16  // owned slabs examined per refill before adopting or acquiring
#define ADOPT_LIMIT 8        // abandoned slabs adopted per refill before acquiring

static ss_slab *find_owned_with_free_blocks(ace_class_state *state) {
  for (uint32_t scanned = 0; scanned < OWNED_SCAN_LIMIT && state->owned.head; scanned++) {
    ss_slab *slab = ss_slab_from_ref(state->owned.head);
    ss_slab_list_unlink(&state->owned, slab);
    if (slab->free_list || __atomic_load_n(&slab->remote_free, __ATOMIC_RELAXED) ||
        slab->carve < slab->capacity * slab->block_size || slab->trimmed_pages)
      return slab;
    ss_slab_list_push_back(&state->owned, slab);  // nothing free: look at the others first next time
  }
  return NULL;
}

static ss_slab *adopt_abandoned(unsigned c) {
  if (!__atomic_load_n(&abandoned[c].list.count, __ATOMIC_RELAXED)) return NULL;
  abandoned_lock(c);
  uint32_t ref = abandoned[c].list.head;
  ss_slab *slab = NULL;
  if (ref) {
    slab = ss_slab_from_ref(ref);
    ss_slab_list_unlink(&abandoned[c].list, slab);
    __atomic_store_n(&slab->owner, ace_thread.owner_id, __ATOMIC_RELAXED);  // under the lock
  }
  abandoned_unlock(c);
  if (slab) ACE_COUNT(c, slabs_adopted, 1);
  return slab;
}

void *ace_alloc_refill(unsigned c) {
  if (HK_UNLIKELY(ace_thread.owner_id == 0)) ace_thread_init();
  ace_bin *bin = &ace_thread.bins[c];
  ace_class_state *state = &ace_slow.classes[c];
  ACE_COUNT(c, misses, 1);
  if (bin->hits != state->hits_folded) {
    ACE_COUNT(c, hits, bin->hits - state->hits_folded);
    state->hits_folded = bin->hits;
  }
  ace_adapt_event(c);
  ace_adapt_tick();
  uint32_t want = bin->capacity / 2 + 1;
  uint32_t adopted = 0;
  for (;;) {
    ss_slab *slab = state->current;
    if (slab) {
      uint32_t got = take_blocks(slab, bin, want);
      if (got) {
        ACE_COUNT(c, blocks_refilled, got);
        void *block = bin->head;
        bin->head = ace_next(block);
        bin->count--;
        hk_block_mark_used(block);
        return block;
      }
      ss_slab_list_push_back(&state->owned, slab);  // all out: frees will bring blocks back
      state->current = NULL;
    }
    slab = find_owned_with_free_blocks(state);
    if (!slab && adopted < ADOPT_LIMIT && (slab = adopt_abandoned(c)) != NULL) adopted++;
    if (!slab) {
      slab = acquire_slab(c);
      if (!slab) {
        errno = ENOMEM;
        return NULL;
      }
    }
    state->current = slab;
  }
}

size_t ace_flush_bin(unsigned c, uint32_t count) {
  ace_bin *bin = &ace_thread.bins[c];
  ace_class_state *state = &ace_slow.classes[c];
  size_t released = 0;
  if (count > bin->count) count = bin->count;
  ACE_COUNT(c, blocks_flushed, count);
  for (uint32_t i = 0; i < count; i++) {
    void *block = bin->head;
    bin->head = ace_next(block);
    bin->count--;
    ss_slab *head = ace_slab_head(ss_slab_from_pointer_unchecked(block));
    hk_link_set(block, head->free_list);
    head->free_list = block;
    head->used--;
    if (head == state->current) continue;
    if (head->used == 0) {
      ss_slab_list_unlink(&state->owned, head);
      released += release_slab(c, head);
    } else if (state->owned.head != ss_slab_ref(head)) {
      ss_slab_list_unlink(&state->owned, head);  // has free blocks now: refills look at the front first
      ss_slab_list_push_front(&state->owned, head);
    }
  }
  return released;
}

size_t ace_flush_class(unsigned c) {
  ace_class_state *state = &ace_slow.classes[c];
  size_t released = ace_flush_bin(c, ace_thread.bins[c].count);
  ss_slab *current = state->current;
  if (current) {
    collect_remote(current);
    if (current->used == 0) {
      state->current = NULL;
      released += release_slab(c, current);
    }
  }
  return released;
}

static void push_remote(ss_slab *head, void *block) {
  uint64_t top = __atomic_load_n(&head->remote_free, __ATOMIC_RELAXED);
  uint64_t pushed;
  do {
    hk_link_set(block, ss_remote_list(top));
    pushed = ss_remote_word(block, ss_remote_count(top) + 1);
    // Release: the owner's acquire exchange then sees this block's link word.
  } while (!__atomic_compare_exchange_n(&head->remote_free, &top, pushed, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

// A free into a slab whose owner exited: under the list lock, return the block and collect the
// remote frees; release the slab if that was its last live block, else leave it abandoned.
// Keeping a slab with live blocks would route their later frees into this thread's bins, where
// each block pins its slab (see the same function in tiny.c). 0 when another thread adopted it.
static int adopt_on_free(unsigned c, ss_slab *head, void *block) {
  abandoned_lock(c);
  if (__atomic_load_n(&head->owner, __ATOMIC_RELAXED) != ACE_OWNER_ABANDONED) {
    abandoned_unlock(c);
    return 0;
  }
  ss_slab_list_unlink(&abandoned[c].list, head);
  hk_link_set(block, head->free_list);
  head->free_list = block;
  head->used--;
  collect_remote(head);
  if (head->used != 0) {
    ss_slab_list_push_front(&abandoned[c].list, head);  // still abandoned; owner unchanged
    abandoned_unlock(c);
    return 1;
  }
  __atomic_store_n(&head->owner, 0, __ATOMIC_RELAXED);  // under the lock
  abandoned_unlock(c);
  ACE_COUNT(c, slabs_adopted, 1);
  release_slab(c, head);
  return 1;
}

void ace_free_slow(void *block, ss_slab *head) {
  unsigned c = ace_head_class(head->user_tag);
  uint64_t owner = __atomic_load_n(&head->owner, __ATOMIC_RELAXED);
  ace_bin *bin = &ace_thread.bins[c];
  if (owner == ace_thread.owner_id && owner != 0) {
    // Our slab, bin full: ACE hears of the overflow (it may grow the bin), then half goes back.
    ACE_COUNT(c, overflows, 1);
    ace_adapt_event(c);
    ace_adapt_tick();
    if (bin->count >= bin->capacity) ace_flush_bin(c, bin->count - bin->capacity / 2);
    hk_link_set(block, bin->head);
    bin->head = block;
    bin->count++;
    return;
  }
  if (owner == ACE_OWNER_ABANDONED && adopt_on_free(c, head, block)) return;
  ACE_COUNT(c, remote_frees, 1);
  push_remote(head, block);
}

void ace_invalid_free(void *block, const char *call) {
  hk_report_invalid_pointer_detail(call, "invalid pointer", block, "not the start of a block");
}

void ace_double_free(void *block, const char *call) {
  hk_report_invalid_pointer_detail(call, "double free", block, "the block is already free");
}

void ace_corrupted_list(const void *block) {
  hk_report_invalid_pointer_detail("malloc", "heap corruption at", block, "a free block's link was overwritten");
}

void *ace_take_zeroed(unsigned c) {
  if (HK_UNLIKELY(ace_thread.owner_id == 0)) ace_thread_init();
  ss_slab *slab = ace_slow.classes[c].current;
  if (!slab || !slab->zeroed) return NULL;
  uint32_t size = slab->block_size;
  if (slab->carve + size > slab->capacity * size) return NULL;
  // Never handed out since the slab's pages were known zero: no memset needed.
  void *block = (char *)ss_slab_base(slab) + slab->carve;
  slab->carve += size;
  slab->used++;
  return block;
}

static void abandon_or_release(unsigned c, ss_slab *head) {
  collect_remote(head);
  if (head->used == 0) {
    release_slab(c, head);
    return;
  }
  ACE_COUNT(c, slabs_abandoned, 1);
  abandoned_lock(c);
  __atomic_store_n(&head->owner, ACE_OWNER_ABANDONED, __ATOMIC_RELAXED);  // under the lock
  ss_slab_list_push_front(&abandoned[c].list, head);
  abandoned_unlock(c);
}

size_t ace_trim_free_blocks(void) {
  size_t bytes = 0;
  if (ace_thread.owner_id != 0) {
    for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
      ace_class_state *state = &ace_slow.classes[c];
      if (state->current) bytes += trim_slab(state->current);
      for (uint32_t ref = state->owned.head; ref; ref = ss_slab_list_next(ss_slab_from_ref(ref)))
        bytes += trim_slab(ss_slab_from_ref(ref));
    }
  }
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    if (!__atomic_load_n(&abandoned[c].list.count, __ATOMIC_RELAXED)) continue;
    abandoned_lock(c);
    // Under the lock an abandoned slab's owner-only fields are ours (as in adopt_on_free).
    for (uint32_t ref = abandoned[c].list.head; ref; ref = ss_slab_list_next(ss_slab_from_ref(ref)))
      bytes += trim_slab(ss_slab_from_ref(ref));
    abandoned_unlock(c);
  }
  return bytes;
}

void ace_thread_flush(void) {
  if (ace_thread.owner_id == 0) return;
  ace_fold_hits();
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    ace_bin *bin = &ace_thread.bins[c];
    if (bin->count) ace_flush_bin(c, bin->count);
    ace_class_state *state = &ace_slow.classes[c];
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
  ace_adapt_thread_stop();  // capacities 0: frees take the slow path until the next refill
  ace_thread.owner_id = 0;
}
