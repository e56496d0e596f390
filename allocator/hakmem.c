// The prefixed API, the slow paths of the front door, process-wide set-up (fork handlers, the
// exit-time statistics: hakmem_stats.c writes them) and malloc_trim.
#define _GNU_SOURCE
#include "allocator/hakmem.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/single_threaded.h>
#include <unistd.h>

#include "allocator/base/config.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "allocator/crash_report.h"
#include "allocator/hakmem_background.h"
#include "allocator/hakmem_fork.h"
#include "allocator/hakmem_inline.h"
#include "allocator/hakmem_profile.h"
#include "allocator/os/os.h"
#include "allocator/slab_engine/slab_engine.h"
#include "allocator/superslab/shared_pool.h"

void hk_invalid_pointer(const char *call, const void *block) {
  hk_report_invalid_pointer(call, "invalid pointer", block);
}

void hk_freed_block(const char *call, const void *block) {
  hk_report_invalid_pointer_detail(call, "use after free", block, "the block is already free");
}

void hk_free_unheld_slot(void *block, const char *call) { hk_invalid_pointer(call, block); }

void hk_not_a_huge_block(const char *call, const void *block) {
  if (ace_huge_was_freed(block) || hk_profile_was_freed(block)) hk_freed_block(call, block);
  hk_invalid_pointer(call, block);
}

void hk_free_outside_superslabs(void *block, const char *call) {
  // A block the heap profiler sampled, before the huge table: that takes the huge-block lock, which
  // a signal handler's free of a sampled block must not wait for (the interrupted code may hold it).
  if (HK_UNLIKELY(hk_profile_started) && hk_profile_free(block)) return;
  if (ace_huge_free(block)) return;
  // A free of a freed block is a double free, as se_free_fast names it for slab blocks.
  if (ace_huge_was_freed(block) || hk_profile_was_freed(block)) hk_report_invalid_pointer_detail(call, "double free", block, "the block is already free");
  hk_invalid_pointer(call, block);
}

// The out-of-line ends of malloc and calloc: huge blocks, or every allocation while the heap
// profiler samples. HK_PROFILE_FRAME: the profiler's stacks start at the caller.
// While profiling, the countdown is inline here and the allocation not sampled takes the normal
// paths; only a crossing (about one per HAKMEM_PROFILE_RATE bytes) calls the profiler.
HK_PROFILE_FRAME void *hk_malloc_outside(size_t size) {
  if (HK_LIKELY(!hk_profile_on())) {
    void *block = ace_huge_alloc(size, 0);
    hk_background_consider();  // an allocation: the background thread may start here
    return block;
  }
  if (HK_UNLIKELY(hk_profile_count_down(size))) {
    void *sampled = hk_profile_crossed(size, 0);
    if (sampled) return sampled;
  }
  if (size <= TINY_MAX_SIZE) return tiny_alloc(size);
  void *block = ace_alloc(size);
  if (size > ACE_HUGE_THRESHOLD) hk_background_consider();  // as when not profiling
  return block;
}

HK_PROFILE_FRAME void *hk_calloc_outside(size_t size) {
  if (HK_LIKELY(!hk_profile_on())) return ace_calloc(size);
  if (HK_UNLIKELY(hk_profile_count_down(size))) {
    void *sampled = hk_profile_crossed(size, 1);
    if (sampled) return sampled;
  }
  return size <= TINY_MAX_SIZE ? tiny_calloc(size) : ace_calloc(size);
}

// The size a growing block of a size class moves to: at least a quarter more than it had, so that a
// block grown a few bytes at a time (a string builder, a packed list reallocated to its exact new
// length on every insert) moves a logarithmic number of times, not once per class boundary: with
// eight mid classes per doubling, realloc_churn's lists moved and copied twice as many bytes as
// with this rule. A block that grows by a quarter or more at once (a buffer doubled, a one-shot
// realloc to its final size) gets exactly what it asked for, and the room stays within the range
// the request is in (a tiny request stays tiny).
static inline size_t realloc_grow_size(size_t old_usable, size_t new_size) {
  size_t with_room = old_usable + old_usable / 4;
  if (new_size >= with_room) return new_size;
  if (new_size <= TINY_MAX_SIZE && with_room > TINY_MAX_SIZE) return TINY_MAX_SIZE;
  if (with_room > ACE_ARENA_MIN_SIZE) return new_size;
  return with_room;
}

HK_PROFILE_FRAME void *hk_realloc_move(void *block, size_t old_usable, size_t new_size) {
  // A block growing past ACE_ARENA_MIN_SIZE goes to the huge arena, where it can go on growing and
  // shrinking in place (ace_alloc_growable).
  // While the heap profiler samples, the new block is an allocation like any other (it counts
  // down, and may be sampled); hk_malloc_inline would count it a second time.
  void *moved = HK_UNLIKELY(hk_profile_on()) ? hk_profile_sample(new_size) : NULL;
  if (!moved) {
    if (new_size > old_usable && new_size > ACE_ARENA_MIN_SIZE) {
      moved = ace_alloc_growable(new_size);
    } else {
      size_t size = new_size > old_usable ? realloc_grow_size(old_usable, new_size) : new_size;
      moved = size <= TINY_MAX_SIZE ? tiny_alloc(size) : ace_alloc(size);
    }
  }
  if (!moved) return NULL;  // errno is ENOMEM; the old block stays valid
  memcpy(moved, block, old_usable < new_size ? old_usable : new_size);
  hk_free_inline(block, "realloc");
  return moved;
}

HK_PROFILE_FRAME void *hakmem_malloc(size_t size) { return hk_malloc_inline(size); }

void hakmem_free(void *block) { hk_free_inline(block, "free"); }

HK_PROFILE_FRAME void *hakmem_calloc(size_t count, size_t size) { return hk_calloc_inline(count, size); }

HK_PROFILE_FRAME void *hakmem_realloc(void *block, size_t size) { return hk_realloc_inline(block, size); }

HK_PROFILE_FRAME void *hakmem_reallocarray(void *block, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return hk_realloc_inline(block, total);
}

HK_PROFILE_FRAME int hakmem_posix_memalign(void **result, size_t alignment, size_t size) {
  if (alignment % sizeof(void *) != 0 || !hk_is_power_of_two(alignment)) return EINVAL;
  void *block = hk_aligned_inline(alignment, size);
  // The result says ENOMEM, and errno too, as glibc's allocation failure leaves it (its own tests
  // check both).
  if (!block) return errno = ENOMEM;
  *result = block;
  return 0;
}

HK_PROFILE_FRAME void *hakmem_aligned_alloc(size_t alignment, size_t size) {
  if (!hk_is_power_of_two(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return hk_aligned_inline(alignment, size);
}

HK_PROFILE_FRAME void *hakmem_memalign(size_t alignment, size_t size) {
  // As glibc: an alignment past 2^63 cannot be rounded up to a power of two (EINVAL); 2^63 itself is
  // valid and fails for want of memory (ENOMEM).
  if (alignment > ((size_t)1 << 63)) {
    errno = EINVAL;
    return NULL;
  }
  if (!hk_is_power_of_two(alignment)) alignment = alignment == 0 ? 1 : (size_t)1 << hk_log2_ceil(alignment);
  return hk_aligned_inline(alignment, size);
}

void *hakmem_valloc(size_t size) { return hk_aligned_inline(hk_os_page_size(), size); }

void *hakmem_pvalloc(size_t size) {
  size_t page = hk_os_page_size();
  if (hk_align_up_overflows(size, page)) {
    errno = ENOMEM;
    return NULL;
  }
  return hk_aligned_inline(page, size == 0 ? page : hk_align_up(size, page));
}

size_t hakmem_malloc_usable_size(void *block) { return hk_usable_size_inline(block, "malloc_usable_size"); }

int hakmem_malloc_trim(size_t pad) {
  (void)pad;
  // The calling thread's bins hold freed blocks scattered over many slabs; each pins its slab's
  // pages until the bins are flushed (tests/memory_return: ~11 MiB after a 48 MiB burst).
  // tiny_trim flushes them (every class: se_thread_flush), then decommits the pages of sparse
  // slabs that hold no live block; ace_trim(1) does the same for mid/large slabs (and the pages
  // inside their free blocks) and expires cached huge memory.
  size_t released = tiny_trim();
  released += ace_trim(1);
  released += sp_trim(1);
  return released > 0;
}

int hakmem_owns(const void *block) {
  if (!block) return 0;
  ss_slab *slab = ss_registry_lookup(block);
  if (slab) return tiny_owns_slab(slab) || ace_owns_slab(slab);
  return ace_huge_usable_size(block) != 0 || hk_profile_block_size(block) != 0;
}

void hakmem_stats_get(hakmem_stats *out) {
  out->os_mmap_calls = hk_stat_get(HK_STAT_OS_MMAP_CALLS);
  out->os_munmap_calls = hk_stat_get(HK_STAT_OS_MUNMAP_CALLS);
  out->os_madvise_calls = hk_stat_get(HK_STAT_OS_MADVISE_CALLS);
  out->bytes_reserved = hk_stat_get(HK_STAT_OS_BYTES_RESERVED);
  out->bytes_committed = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  out->background_starts = hk_stat_get(HK_STAT_BG_STARTS);
  out->background_bytes_returned = hk_stat_get(HK_STAT_BG_BYTES_RETURNED);
}

// ---- Process set-up ---------------------------------------------------------------------------
// fork() takes every allocator lock before and releases them after, so that the child never
// inherits a lock another thread held mid-update. Two cases must take none:
//   - a fork inside a fork, from a signal handler that interrupted the outer one: this thread may
//     hold the locks already (plain spin locks: taking one again would wait forever), and the
//     outer fork releases them (in the inner child too, which goes on to finish the outer fork);
//   - a process with one thread (as glibc does): no other thread can hold a lock, and a signal
//     handler's fork must not wait on a lock the interrupted code of this thread holds;
//   - a fork from a signal handler that interrupted this thread inside a locked section of the
//     allocator (hk_locks_held > 0): taking that lock again would wait forever. The child then
//     inherits the section half done; it is the interrupted thread's own, as in a single-threaded
//     program (a child that only execs or exits, as such children should, never sees it).
// fork_depth counts the forks this thread is inside, from the first thing before_fork does to the
// last thing the after handlers do, so that a handler's fork anywhere in between (while the locks
// are being taken, are held, or are being released) sees it; fork_locked says whether the outermost
// fork took the locks. Both are per thread (the child's only thread is the one that forked) and
// volatile: a signal handler on the same thread reads them between any two statements.
static __thread volatile unsigned fork_depth __attribute__((tls_model("initial-exec")));
static __thread volatile int fork_locked __attribute__((tls_model("initial-exec")));

// hk_fork_assume_threads (tests): take the locks even while glibc's flag says one thread.
static volatile int fork_assume_threads;

void hk_fork_assume_threads(int on) { fork_assume_threads = on; }

static void before_fork(void) {
  if (fork_depth++ > 0) {
    hk_stat_add(HK_STAT_FORK_UNLOCKED, 1);
    return;
  }
  hk_background_before_fork();
  fork_locked = (fork_assume_threads || !__libc_single_threaded) && hk_locks_held == 0;
  hk_stat_add(fork_locked ? HK_STAT_FORK_LOCKED : HK_STAT_FORK_UNLOCKED, 1);
  if (!fork_locked) return;
  se_prefork();
  ace_prefork();
  sp_prefork();
  hk_profile_prefork();
}

static void after_fork_parent(void) {
  if (fork_depth == 1 && fork_locked) {
    hk_profile_postfork_parent();
    sp_postfork_parent();
    ace_postfork_parent();
    se_postfork_parent();
  }
  fork_depth--;
}

static void after_fork_child(void) {
  int locked = fork_depth == 1 && fork_locked;
  hk_profile_postfork_child(locked);  // any child: it writes PATH.<pid>, not the parent's file
  if (locked) {
    sp_postfork_child();
    ace_postfork_child();
    se_postfork_child();
  }
  hk_background_after_fork_child();  // any child: it has no background thread
  fork_depth--;
}

// Where HAKMEM_STATS=1 prints: a duplicate of stderr taken at start-up, because programs such as
// GNU ls close stderr in their own atexit handler, which runs before ours.
static int stats_fd = 2;

// The tiny front calls this at the end of every refill (`allocating`) and, when its maintenance
// tick is `due` (at most every TINY_MAINTENANCE_PERIOD_MS per thread), at the end of a free. When
// due: ACE gives idle per-thread caches back and expires cached huge mappings, the pool decommits
// slabs idle past its delay (the background thread does that instead once it runs), so memory
// returns while the program keeps allocating. After a refill it may also start the background
// thread (a load and a compare once it runs); never after a free.
static void tiny_slow_path_hook(int allocating, int due) {
  if (due) {
    ace_trim(0);
    if (!hk_background_running()) sp_trim(0);
  }
  if (allocating) hk_background_consider();
}

// HAKMEM_STATS: json:PATH writes the raw counters to PATH; all prints them and the summary; any
// other value but 0 (1) prints the summary.
static void print_stats_at_exit(void) {
  const char *setting = hk_config_string(HK_OPT_STATS);
  if (strncmp(setting, "json:", 5) == 0) {
    int fd = open(setting + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      hk_report_warning2(setting + 5, ": HAKMEM_STATS file cannot be opened");
      return;
    }
    hakmem_stats_write(fd, 1);
    close(fd);
    return;
  }
  if (setting[0] == '0') return;
  if (strcmp(setting, "all") == 0) hakmem_stats_write(stats_fd, 0);
  hakmem_stats_summary_write(stats_fd);
}

// Runs when the library is loaded (or the program starts, for the static override). Nothing
// here is needed for allocation to work: every layer initialises itself lazily on first use, so
// allocations made before this (by other constructors) are fine.
__attribute__((constructor)) static void hakmem_process_setup(void) {
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  tiny_set_maintenance_hook(tiny_slow_path_hook);
  hk_crash_report_install_if_enabled();
  if (hk_config_string(HK_OPT_STATS)[0] != '0') {
    int duplicate = fcntl(2, F_DUPFD_CLOEXEC, 100);
    if (duplicate >= 0) stats_fd = duplicate;
    atexit(print_stats_at_exit);
  }
  // After the statistics' atexit: exit handlers run last-registered first, so the thread has
  // stopped (its last timeline row written) when the summary prints.
  hk_background_setup();
  // Last: the heap profiler (HAKMEM_PROFILE) opens its gate once everything else is set up; its
  // exit-time write runs before the handlers above (last registered, first run).
  hk_profile_setup();
}
