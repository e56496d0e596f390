// The sampling heap profiler (hakmem_profile.h says how it sits in the front door; README "Heap
// profiler" how to use it). Ideas from gperftools' heap profiler and tcmalloc's sampler (exponential
// gaps, the 1 / (1 - exp(-s/R)) weights, the legacy text format); the code is HAKMEM's.
//
// What runs where:
//   - every allocation while profiling: hk_malloc_outside (hakmem.c) counts its bytes down
//     (hk_profile_count_down: per-thread, no lock) and, unless the count crosses 0, hands out a
//     normal block;
//   - a sample (about every HAKMEM_PROFILE_RATE bytes): the stack is taken with libgcc's
//     _Unwind_Backtrace (loaded by dlopen at start, so libhakmem.so gains no link dependency; it
//     reads the .eh_frame tables, so programs built without frame pointers unwind; it does not
//     call malloc once initialised, and a per-thread guard sends any malloc made inside the
//     profiler to the normal, unsampled path), the block gets a mapping of its own (so that free
//     finds it out of line, never on the fast path; above 128 KiB it is the huge layer's, which
//     free finds out of line too), and the stack's bucket and the live block are recorded under
//     one spin lock;
//   - writes (exit, SIGUSR2, every HAKMEM_PROFILE_INTERVAL_MS): under the same lock, with
//     open/write/read only (no malloc, no stdio), so the SIGUSR2 handler writes itself when it can
//     take the lock, and otherwise leaves a flag for the next profiled allocation.
#define _GNU_SOURCE
#include "allocator/hakmem_profile.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <unistd.h>
#include <unwind.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "allocator/midlarge/ace.h"
#include "allocator/os/os.h"
#include "allocator/superslab/registry.h"
#include "allocator/tiny/tiny.h"

hk_profile_gate_t hk_profile_gate = {TINY_MAX_SIZE, ACE_HUGE_THRESHOLD};

// ---- Numbers: log, exp, weights, gaps ---------------------------------------------------------
double hk_profile_log(double x) {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172,
  // whose odd series reaches 1e-15 by t^21.
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int exponent = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52);
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    exponent++;
  }
  double t = (m - 1) / (m + 1), t2 = t * t, term = t, sum = 0;
  for (int k = 1; k <= 21; k += 2) {
    sum += term / k;
    term *= t2;
  }
  return 2 * sum + exponent * 0.6931471805599453;
}

double hk_profile_exp(double x) {
  if (x < -700) return 0;
  if (x > 700) x = 700;
  // x = k ln 2 + r, |r| <= ln 2 / 2; e^r by its Taylor series (r^18/18! < 1e-17).
  double kf = x * 1.4426950408889634;
  int k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
  double r = x - k * 0.6931471805599453;
  double term = 1, sum = 1;
  for (int n = 1; n <= 18; n++) {
    term *= r / n;
    sum += term;
  }
  uint64_t bits = (uint64_t)(k + 1023) << 52;
  double scale;
  memcpy(&scale, &bits, sizeof scale);
  return sum * scale;
}

double hk_profile_weight(size_t size, uint64_t rate) {
  double ratio = (double)size / (double)rate;
  // 1 - exp(-ratio) loses digits when ratio is tiny: its series instead.
  double p = ratio < 1e-4 ? ratio * (1 - ratio / 2 + ratio * ratio / 6) : 1 - hk_profile_exp(-ratio);
  return 1 / p;
}

int64_t hk_profile_gap(uint64_t bits, uint64_t rate) {
  // u uniform in (0, 1]: never 0, so the log is finite (at most 36.8 * rate).
  double u = (double)((bits >> 11) + 1) * (1.0 / 9007199254740992.0);
  return (int64_t)(-hk_profile_log(u) * (double)rate) + 1;
}

// ---- State -----------------------------------------------------------------------------------
#define PROFILE_MAX_DEPTH 64
#define PROFILE_FREED_RING 64
// Freed sampled mappings kept for the next samples (no munmap, mmap and page faults again): a
// profiled program that allocates many bytes per second samples thousands of times a second.
#define PROFILE_SPARE_MAX 64
#define PROFILE_SPARE_BYTES ((size_t)4 << 20)
#define PROFILE_SPARE_BLOCK_MAX ((size_t)256 << 10)

// One stack: its sampled allocations, all and live, weighted (what they stand for).
typedef struct {
  uint64_t hash;  // 0: an empty slot
  uint32_t depth;
  uint32_t unused;
  uint64_t alloc_count, alloc_bytes;
  uint64_t live_count, live_bytes;
  uintptr_t pcs[PROFILE_MAX_DEPTH];  // innermost first, each an address inside its call instruction
} profile_bucket;

// One live sampled block.
typedef struct {
  uintptr_t address;  // 0: an empty slot
  uint32_t bucket;
  uint32_t unused;
  uint64_t size;    // requested
  uint64_t mapped;  // bytes of its own mapping (its usable size); 0: a block of the huge layer's (sample_block)
  uint64_t count_weight, byte_weight;
} profile_live;

// Everything below is guarded by `lock` (an hk_spin_lock, so fork's handler knows when this thread
// holds it; taken by table_lock, with signals blocked), except what says otherwise.
static struct {
  uint32_t lock;
  profile_bucket *buckets;  // open addressing, linear probing on the stack's hash
  size_t bucket_capacity, bucket_count;
  profile_live *live;  // open addressing on the address; deletion shifts back (no tombstones)
  size_t live_capacity, live_count;
  uintptr_t freed[PROFILE_FREED_RING];  // the last sampled blocks freed (double-free reports)
  unsigned freed_next;
  struct {
    uintptr_t address;
    size_t mapped;
  } spares[PROFILE_SPARE_MAX];  // freed sampled mappings, still mapped and committed
  unsigned spare_count;
  size_t spare_bytes;
  uint64_t next_write_ms;  // the interval's next write
} table;

// Set once by hk_profile_setup before the gate opens.
int hk_profile_started;
static uint64_t profile_rate;
static uint64_t profile_interval_ms;
static int owner_fd = -1;   // PATH, locked with flock: this process (owner_pid) writes PATH
static pid_t owner_pid;
static const char *profile_path;
static uint64_t profile_seed;
typedef _Unwind_Reason_Code (*backtrace_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*get_ip_info_fn)(struct _Unwind_Context *, int *);
static backtrace_fn unwind_backtrace;
static get_ip_info_fn unwind_get_ip_info;

// A SIGUSR2 that found the lock held: the next sample writes (hk_profile_crossed). Relaxed.
static int write_requested;

__thread hk_profile_sampler hk_profile_thread;

// The lock is held with every signal blocked: a handler that frees a sampled block (or asks the
// table anything) must not interrupt its own thread's holder and wait for it forever. Two
// sigprocmask calls per hold, next to a sample's unwinding (~12,000 instructions): cheap. The mask
// to restore keeps the kernel's 64 signals only: a whole sigset_t is 128 bytes of every thread's TLS,
// and TLS is what a new thread pays for (docs/compaction.md, "Thread-local storage").
static __thread uint64_t held_signal_mask __attribute__((tls_model("initial-exec")));
_Static_assert(_NSIG - 1 <= 64, "the kernel's signals fit a 64-bit mask");

static void hold_signal_mask(const sigset_t *mask) { memcpy(&held_signal_mask, mask, sizeof held_signal_mask); }

static void restore_signal_mask(void) {
  sigset_t mask;
  sigemptyset(&mask);
  memcpy(&mask, &held_signal_mask, sizeof held_signal_mask);
  pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

static void table_lock(void) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  hold_signal_mask(&old);
  hk_profile_thread.busy++;
  hk_spin_lock(&table.lock);
}

// 1 with the lock held (as table_lock leaves it), 0 when another thread holds it.
static int table_trylock(void) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (!hk_spin_trylock(&table.lock)) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
  }
  hold_signal_mask(&old);
  hk_profile_thread.busy++;
  return 1;
}

static void table_unlock(void) {
  hk_spin_unlock(&table.lock);
  hk_profile_thread.busy--;
  restore_signal_mask();
}

// The capture skips the frames in this section (HK_PROFILE_FRAME); the linker defines its bounds.
extern const char __start_hk_profile_text[] __attribute__((visibility("hidden")));
extern const char __stop_hk_profile_text[] __attribute__((visibility("hidden")));

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

static uint64_t sampler_next_random(hk_profile_sampler *s) {
  uint64_t x = s->random;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s->random = x;
  return x * UINT64_C(0x2545f4914f6cdd1d);
}

// ---- Stack capture ----------------------------------------------------------------------------
typedef struct {
  uintptr_t *pcs;
  unsigned depth;
  int skipping;
} trace_state;

static _Unwind_Reason_Code trace_frame(struct _Unwind_Context *context, void *arg) {
  trace_state *state = (trace_state *)arg;
  int before_instruction = 0;
  uintptr_t ip = (uintptr_t)unwind_get_ip_info(context, &before_instruction);
  if (ip == 0) return _URC_END_OF_STACK;
  if (state->skipping) {
    if (ip >= (uintptr_t)__start_hk_profile_text && ip < (uintptr_t)__stop_hk_profile_text) return _URC_NO_REASON;
    state->skipping = 0;
  }
  // A return address is the instruction after the call: one byte back lies inside the call, in the
  // caller's line (an interrupted frame's address is the instruction itself).
  state->pcs[state->depth++] = before_instruction ? ip : ip - 1;
  return state->depth < PROFILE_MAX_DEPTH ? _URC_NO_REASON : _URC_END_OF_STACK;
}

// The sampling path's functions are inlined into hk_profile_crossed: each frame of ours costs the
// unwinder ~1,500 instructions to step over (callgrind, mid_large_mt), as much as a frame it keeps.
#define PROFILE_INLINE static inline __attribute__((always_inline))

PROFILE_INLINE unsigned capture_stack(uintptr_t *pcs) {
  trace_state state = {pcs, 0, 1};
  unwind_backtrace(trace_frame, &state);
  return state.depth;
}

// ---- Tables (lock held) -----------------------------------------------------------------------
static uint64_t stack_hash(const uintptr_t *pcs, unsigned depth) {
  uint64_t hash = depth;
  for (unsigned i = 0; i < depth; i++) hash = mix64(hash ^ pcs[i]) + i;
  return hash | 1;  // never 0, the empty slot's mark
}

static size_t live_slot_of(uintptr_t address, size_t capacity) {
  return (size_t)mix64(address >> 12) & (capacity - 1);
}

// Maps a zeroed table of `count` entries of `size` bytes; NULL when the OS refuses.
static void *table_map(size_t count, size_t size) { return hk_os_reserve_aligned(count * size, 0, 0); }

static int buckets_grow(void) {
  size_t capacity = table.bucket_capacity ? table.bucket_capacity * 2 : 1024;
  profile_bucket *grown = (profile_bucket *)table_map(capacity, sizeof(profile_bucket));
  if (!grown) return 0;
  for (size_t i = 0; i < table.bucket_capacity; i++) {
    if (table.buckets[i].hash == 0) continue;
    size_t slot = (size_t)table.buckets[i].hash & (capacity - 1);
    while (grown[slot].hash != 0) slot = (slot + 1) & (capacity - 1);
    grown[slot] = table.buckets[i];
  }
  // The live records name their bucket by index: renumber them.
  for (size_t i = 0; i < table.live_capacity; i++) {
    if (table.live[i].address == 0) continue;
    uint64_t hash = table.buckets[table.live[i].bucket].hash;
    const profile_bucket *old = &table.buckets[table.live[i].bucket];
    size_t slot = (size_t)hash & (capacity - 1);
    while (grown[slot].hash != hash || grown[slot].depth != old->depth ||
           memcmp(grown[slot].pcs, old->pcs, old->depth * sizeof(uintptr_t)) != 0)
      slot = (slot + 1) & (capacity - 1);
    table.live[i].bucket = (uint32_t)slot;
  }
  if (table.buckets) hk_os_release(table.buckets, table.bucket_capacity * sizeof(profile_bucket));
  table.buckets = grown;
  table.bucket_capacity = capacity;
  return 1;
}

// The bucket of this stack, created when new; -1 when the table cannot grow.
static long bucket_find_or_add(const uintptr_t *pcs, unsigned depth) {
  if ((table.bucket_count + 1) * 2 > table.bucket_capacity && !buckets_grow()) return -1;
  uint64_t hash = stack_hash(pcs, depth);
  size_t mask = table.bucket_capacity - 1;
  for (size_t slot = (size_t)hash & mask;; slot = (slot + 1) & mask) {
    profile_bucket *bucket = &table.buckets[slot];
    if (bucket->hash == 0) {
      bucket->hash = hash;
      bucket->depth = depth;
      memcpy(bucket->pcs, pcs, depth * sizeof(uintptr_t));
      table.bucket_count++;
      return (long)slot;
    }
    if (bucket->hash == hash && bucket->depth == depth && memcmp(bucket->pcs, pcs, depth * sizeof(uintptr_t)) == 0)
      return (long)slot;
  }
}

static void live_put(profile_live *slots, size_t capacity, const profile_live *record) {
  size_t slot = live_slot_of(record->address, capacity);
  while (slots[slot].address != 0) slot = (slot + 1) & (capacity - 1);
  slots[slot] = *record;
}

static int live_add(const profile_live *record) {
  if ((table.live_count + 1) * 2 > table.live_capacity) {
    size_t capacity = table.live_capacity ? table.live_capacity * 2 : 1024;
    profile_live *grown = (profile_live *)table_map(capacity, sizeof(profile_live));
    if (!grown) return 0;
    for (size_t i = 0; i < table.live_capacity; i++)
      if (table.live[i].address != 0) live_put(grown, capacity, &table.live[i]);
    if (table.live) hk_os_release(table.live, table.live_capacity * sizeof(profile_live));
    table.live = grown;
    table.live_capacity = capacity;
  }
  live_put(table.live, table.live_capacity, record);
  table.live_count++;
  return 1;
}

// The slot of live block `address`, or -1.
static long live_find(uintptr_t address) {
  if (table.live_count == 0) return -1;
  size_t mask = table.live_capacity - 1;
  for (size_t slot = live_slot_of(address, table.live_capacity); table.live[slot].address != 0; slot = (slot + 1) & mask)
    if (table.live[slot].address == address) return (long)slot;
  return -1;
}

// Removes the record in `slot`, shifting later records of its probe run back into the hole.
static void live_remove(size_t slot) {
  size_t mask = table.live_capacity - 1;
  size_t hole = slot;
  for (size_t next = (hole + 1) & mask; table.live[next].address != 0; next = (next + 1) & mask) {
    size_t home = live_slot_of(table.live[next].address, table.live_capacity);
    // The record may move into the hole when its home is not in (hole, next] (cyclically).
    int stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
    if (stays) continue;
    table.live[hole] = table.live[next];
    hole = next;
  }
  table.live[hole].address = 0;
  table.live_count--;
}

// ---- Writing ----------------------------------------------------------------------------------
// One buffer for every write (the lock serialises them): no malloc, and no large stack frame in
// a signal handler.
static char write_buffer[16384];
static char maps_buffer[4096];


// PATH.<pid>, for a process other than PATH's owner.
static void own_path(char *out, size_t capacity) {
  char digits[24];
  hk_report_format_decimal(digits, (uint64_t)getpid());
  size_t length = strlen(profile_path);
  if (length + 1 + strlen(digits) + 1 > capacity) length = capacity - strlen(digits) - 2;
  memcpy(out, profile_path, length);
  out[length] = '.';
  strcpy(out + length + 1, digits);
}

static void write_pair(hk_writer *writer, uint64_t count, uint64_t bytes) {
  hk_writer_decimal(writer, count);
  hk_writer_text(writer, ": ");
  hk_writer_decimal(writer, bytes);
}

// gperftools' legacy heap profile: the header with the totals, one line per stack (live count and
// bytes, then all sampled allocations' in brackets, then the stack), then /proc/self/maps. The
// figures are already weighted, which "@ heapprofile" tells google-pprof (it rescales nothing).
static int write_locked(void) {
  int fd = owner_fd;
  int own_file = fd < 0 || getpid() != owner_pid;
  if (own_file) {
    char path[HK_CONFIG_STRING_MAX + 32];
    own_path(path, sizeof path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
  } else {
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) return -1;
  }
  uint64_t live_count = 0, live_bytes = 0, alloc_count = 0, alloc_bytes = 0;
  for (size_t i = 0; i < table.bucket_capacity; i++) {
    const profile_bucket *bucket = &table.buckets[i];
    if (bucket->hash == 0) continue;
    live_count += bucket->live_count;
    live_bytes += bucket->live_bytes;
    alloc_count += bucket->alloc_count;
    alloc_bytes += bucket->alloc_bytes;
  }
  hk_writer writer = hk_writer_to(fd, write_buffer, sizeof write_buffer);
  hk_writer_text(&writer, "heap profile: ");
  write_pair(&writer, live_count, live_bytes);
  hk_writer_text(&writer, " [");
  write_pair(&writer, alloc_count, alloc_bytes);
  hk_writer_text(&writer, "] @ heapprofile\n");
  for (size_t i = 0; i < table.bucket_capacity; i++) {
    const profile_bucket *bucket = &table.buckets[i];
    if (bucket->hash == 0 || bucket->depth == 0) continue;
    write_pair(&writer, bucket->live_count, bucket->live_bytes);
    hk_writer_text(&writer, " [");
    write_pair(&writer, bucket->alloc_count, bucket->alloc_bytes);
    hk_writer_text(&writer, "] @");
    // google-pprof takes one byte off every address but the first (it expects return addresses
    // after the first): give those back.
    for (unsigned k = 0; k < bucket->depth; k++) {
      hk_writer_text(&writer, " ");
      hk_writer_hex(&writer, bucket->pcs[k] + (k > 0));
    }
    hk_writer_text(&writer, "\n");
  }
  hk_writer_text(&writer, "\nMAPPED_LIBRARIES:\n");
  hk_writer_flush(&writer);
  int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (maps >= 0) {
    for (;;) {
      ssize_t got = read(maps, maps_buffer, sizeof maps_buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      hk_write_all(fd, maps_buffer, (size_t)got);
    }
    close(maps);
  }
  if (own_file) close(fd);
  hk_stat_add(HK_STAT_PROFILE_WRITES, 1);
  return 0;
}

int hk_profile_write(void) {
  if (!hk_profile_started) return -1;
  int saved = errno;
  table_lock();
  int result = write_locked();
  table_unlock();
  errno = saved;
  return result;
}

// SIGUSR2: writes now when the lock is free (everything it does is async-signal-safe), else asks
// the next profiled allocation to (the lock's holder may be the very code this handler interrupted).
static void on_write_signal(int signal_number) {
  (void)signal_number;
  int saved = errno;
  if (table_trylock()) {
    write_locked();
    table_unlock();
  } else {
    __atomic_store_n(&write_requested, 1, __ATOMIC_RELAXED);
  }
  errno = saved;
}

static void write_at_exit(void) { hk_profile_write(); }

// ---- Sampling ---------------------------------------------------------------------------------
// A kept mapping of at least `mapped` bytes and at most twice that (the smallest), taken out of
// the spares; NULL when none fits. Lock held.
static void *spare_take(size_t *mapped) {
  unsigned best = PROFILE_SPARE_MAX;
  for (unsigned i = 0; i < table.spare_count; i++) {
    size_t size = table.spares[i].mapped;
    if (size >= *mapped && size <= 2 * *mapped && (best == PROFILE_SPARE_MAX || size < table.spares[best].mapped))
      best = i;
  }
  if (best == PROFILE_SPARE_MAX) return NULL;
  void *block = (void *)table.spares[best].address;
  *mapped = table.spares[best].mapped;
  table.spare_bytes -= *mapped;
  table.spares[best] = table.spares[--table.spare_count];
  return block;
}

// A sampled block above ACE_ARENA_MIN_SIZE from the huge layer (zero-filled with `zero`): a huge
// block, or for a size a class would hold, a block of the huge arena, which reuses the arena's
// resident free pages as realloc's growing blocks do (ace_alloc_growable). NULL: out of memory.
static void *huge_layer_block(size_t size, int zero) {
  if (size > ACE_HUGE_THRESHOLD) return zero ? ace_calloc(size) : ace_huge_alloc(size, 0);
  void *block = ace_huge_alloc(size, 0);
  if (block && zero) memset(block, 0, size);
  return block;
}

// Gets and records one sampled block; NULL when the OS or the tables refuse (the caller then
// allocates normally); zero-filled with `zero`. A small sampled block gets a mapping of its own
// (or a kept one; the block is its start, page-aligned), so that free finds it out of line. Above
// ACE_ARENA_MIN_SIZE it is the huge layer's (huge_layer_block; mapped 0 in its record), outside the
// SuperSlabs too: a mapping of its own made every such sample fault in all its pages and unmap them
// again (big_blocks, 64 KiB-16 MiB blocks, ran 100x slower profiled; 2x with huge blocks only).
PROFILE_INLINE void *sample_block(size_t size, int zero) {
  uintptr_t pcs[PROFILE_MAX_DEPTH];
  unsigned depth = capture_stack(pcs);
  if (depth == 0) return NULL;
  size_t page = hk_os_page_size();
  if (hk_align_up_overflows(size, page)) return NULL;
  int huge = size > ACE_ARENA_MIN_SIZE;
  size_t mapped = huge ? 0 : hk_align_up(size, page);
  void *block;
  if (huge) {
    block = huge_layer_block(size, zero);
    if (!block) return NULL;
    table_lock();
  } else {
    table_lock();
    block = mapped <= PROFILE_SPARE_BLOCK_MAX ? spare_take(&mapped) : NULL;
    if (block) {
      if (zero) memset(block, 0, size);
    } else {
      table_unlock();
      block = hk_os_reserve_aligned(mapped, 0, 0);
      if (!block) return NULL;
      table_lock();
    }
  }
  double weight = hk_profile_weight(size, profile_rate);
  profile_live record = {(uintptr_t)block, 0, 0, size, mapped, (uint64_t)(weight + 0.5),
                         (uint64_t)(weight * (double)size + 0.5)};
  long bucket = bucket_find_or_add(pcs, depth);
  int recorded = bucket >= 0;
  if (recorded) {
    record.bucket = (uint32_t)bucket;
    recorded = live_add(&record);
  }
  if (recorded) {
    profile_bucket *b = &table.buckets[bucket];
    b->alloc_count += record.count_weight;
    b->alloc_bytes += record.byte_weight;
    b->live_count += record.count_weight;
    b->live_bytes += record.byte_weight;
    // A new block here is no longer the freed one (double-free reports).
    for (unsigned i = 0; i < PROFILE_FREED_RING; i++)
      if (table.freed[i] == (uintptr_t)block) table.freed[i] = 0;
  }
  int write_due = 0;
  if (recorded && profile_interval_ms) {
    uint64_t now = ss_clock_ms();
    if (now >= table.next_write_ms) {
      table.next_write_ms = now + profile_interval_ms;
      write_due = 1;
    }
  }
  if (write_due) write_locked();
  table_unlock();
  if (!recorded) {
    // Not sampled after all: a huge block is still a good one (the caller would make the same).
    if (huge) return block;
    hk_os_release(block, mapped);
    return NULL;
  }
  hk_stat_add(HK_STAT_PROFILE_SAMPLES, 1);
  hk_stat_add(HK_STAT_PROFILE_LIVE_BYTES, size);
  return block;
}

// The crossing of the countdown: draws the next gap and samples this allocation (NULL: not
// sampled after all).
PROFILE_INLINE void *sample_alloc(hk_profile_sampler *s, size_t size, int zero) {
  s->busy++;
  if (!s->ready) {
    // A thread's first crossing: its countdown started at 0, not at a drawn gap. Draw one now.
    s->ready = 1;
    s->random = mix64(profile_seed ^ (uintptr_t)s ^ ss_clock_ms()) | 1;
    s->bytes_left = hk_profile_gap(sampler_next_random(s), profile_rate);
    s->busy--;
    return NULL;
  }
  // The gaps are exponential, so the distance from this allocation's end to the next sampled byte
  // is a fresh gap whatever happened inside it: each allocation of s bytes is sampled with
  // probability 1 - exp(-s/R), the weights' premise.
  s->bytes_left = hk_profile_gap(sampler_next_random(s), profile_rate);
  void *block = sample_block(size, zero);
  s->busy--;
  return block;
}

// The countdown crossed 0 on this allocation: a SIGUSR2 that could not write writes now, and the
// allocation is sampled unless this thread is inside the profiler already (it stays below 0 then:
// the thread's next allocation is sampled).
HK_PROFILE_FRAME void *hk_profile_crossed(size_t size, int zero) {
  hk_profile_sampler *s = &hk_profile_thread;
  if (HK_UNLIKELY(__atomic_load_n(&write_requested, __ATOMIC_RELAXED)) && !s->busy) {
    __atomic_store_n(&write_requested, 0, __ATOMIC_RELAXED);
    hk_profile_write();
  }
  if (HK_UNLIKELY(s->busy) || HK_UNLIKELY(size > (size_t)INT64_MAX)) return NULL;
  return sample_alloc(s, size, zero);
}

HK_PROFILE_FRAME void *hk_profile_sample(size_t size) {
  if (!hk_profile_count_down(size)) return NULL;
  return hk_profile_crossed(size, 0);
}

size_t hk_profile_block_size(const void *block) {
  if (!hk_profile_started) return 0;
  table_lock();
  long slot = live_find((uintptr_t)block);
  size_t size = slot >= 0 ? table.live[slot].mapped : 0;
  table_unlock();
  return size;
}

int hk_profile_was_freed(const void *block) {
  if (!hk_profile_started || !block) return 0;
  table_lock();
  int freed = 0;
  for (unsigned i = 0; i < PROFILE_FREED_RING; i++) freed |= table.freed[i] == (uintptr_t)block;
  table_unlock();
  return freed;
}

// Takes the live record in `slot` out of the profile (its bucket and the live-bytes counter) and
// returns it. Lock held.
static profile_live live_forget(long slot) {
  profile_live record = table.live[slot];
  profile_bucket *bucket = &table.buckets[record.bucket];
  bucket->live_count -= record.count_weight;
  bucket->live_bytes -= record.byte_weight;
  live_remove((size_t)slot);
  hk_stat_sub(HK_STAT_PROFILE_LIVE_BYTES, record.size);
  return record;
}

size_t hk_profile_resizing(void *block) {
  if (!hk_profile_started) return 0;
  table_lock();
  long slot = live_find((uintptr_t)block);
  size_t mapped = slot >= 0 ? table.live[slot].mapped : 0;
  if (slot >= 0 && mapped == 0) live_forget(slot);  // the huge layer's: the caller resizes it
  table_unlock();
  return mapped;
}

int hk_profile_free(void *block) {
  if (!hk_profile_started) return 0;
  table_lock();
  long slot = live_find((uintptr_t)block);
  if (slot < 0) {
    table_unlock();
    return 0;
  }
  profile_live record = live_forget(slot);
  if (record.mapped == 0) {
    // A huge block: forgotten here, freed (or resized) by the caller as a huge block, whose table
    // reports a second free.
    table_unlock();
    return 0;
  }
  table.freed[table.freed_next++ % PROFILE_FREED_RING] = record.address;
  int kept = record.mapped <= PROFILE_SPARE_BLOCK_MAX && table.spare_count < PROFILE_SPARE_MAX &&
             table.spare_bytes + record.mapped <= PROFILE_SPARE_BYTES;
  if (kept) {
    table.spares[table.spare_count].address = record.address;
    table.spares[table.spare_count++].mapped = record.mapped;
    table.spare_bytes += record.mapped;
  }
  table_unlock();
  if (!kept) hk_os_release(block, record.mapped);
  return 1;
}

// ---- Fork ---------------------------------------------------------------------------------------
void hk_profile_prefork(void) {
  if (hk_profile_started) table_lock();
}

void hk_profile_postfork_parent(void) {
  if (hk_profile_started) table_unlock();
}

void hk_profile_postfork_child(int locked) {
  if (!hk_profile_started) return;
  if (locked) table_unlock();
  // The parent's claim: a copy of its descriptor, which would keep PATH locked after the parent
  // exits. (flock's lock belongs to the open file, so closing a copy releases nothing.)
  if (owner_fd >= 0) close(owner_fd);
  owner_fd = -1;
}

// ---- Start ------------------------------------------------------------------------------------
// Claims PATH for this process: the first process to lock it (flock, held while the process lives)
// writes PATH; any other (a program the profiled one starts, a second run at the same time) finds
// it locked and writes PATH.<pid>, as does a forked child (it shares the lock: told apart by pid).
// A file left by an earlier run is taken over: its owner is gone, and so is its lock.
static void claim_output(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 || ftruncate(fd, 0) != 0) {
    close(fd);
    return;
  }
  owner_fd = fd;
  owner_pid = getpid();
}

void hk_profile_setup(void) {
  const char *path = hk_config_string(HK_OPT_PROFILE);
  if (path[0] == '\0' || (path[0] == '0' && path[1] == '\0')) return;
  int64_t rate = hk_config_int(HK_OPT_PROFILE_RATE);
  if (rate < 1) {
    hk_report_warning2("HAKMEM_PROFILE_RATE must be at least 1", ": the profiler is off");
    return;
  }
  // Loaded here, once, where a malloc is harmless (dlopen makes several); RTLD_NOW so that the
  // first sample resolves nothing. libgcc_s is in every Debian system (libc's own backtrace loads it).
  void *unwinder = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
  if (unwinder) {
    unwind_backtrace = (backtrace_fn)dlsym(unwinder, "_Unwind_Backtrace");
    unwind_get_ip_info = (get_ip_info_fn)dlsym(unwinder, "_Unwind_GetIPInfo");
  }
  if (!unwind_backtrace || !unwind_get_ip_info) {
    hk_report_warning2("HAKMEM_PROFILE: libgcc_s.so.1 (_Unwind_Backtrace) cannot be loaded", ": the profiler is off");
    return;
  }
  profile_path = path;
  claim_output(path);
  if (owner_fd < 0) {
    // Not the owner: PATH.<pid> must be writable.
    char own[HK_CONFIG_STRING_MAX + 32];
    own_path(own, sizeof own);
    int fd = open(own, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      hk_report_warning2(path, ": HAKMEM_PROFILE file cannot be created: the profiler is off");
      return;
    }
    close(fd);
  }
  profile_rate = (uint64_t)rate;
  int64_t interval = hk_config_int(HK_OPT_PROFILE_INTERVAL_MS);
  profile_interval_ms = interval > 0 ? (uint64_t)interval : 0;
  table.next_write_ms = ss_clock_ms() + profile_interval_ms;
  const unsigned char *random_bytes = (const unsigned char *)getauxval(AT_RANDOM);
  uint64_t seed = (uintptr_t)&profile_seed;
  if (random_bytes) {
    uint64_t word;
    memcpy(&word, random_bytes + 8, sizeof word);
    seed ^= word;
  }
  profile_seed = mix64(seed);
  // The unwinder's own first-use set-up (it may allocate: the gate is still closed) happens now.
  uintptr_t warm_up[PROFILE_MAX_DEPTH];
  capture_stack(warm_up);
  hk_profile_started = 1;
  // The program's own SIGUSR2 handler, if it has one already, stays.
  struct sigaction old;
  if (sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_write_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR2, &action, NULL);
  }
  atexit(write_at_exit);
  // Last: from here every allocation of a byte or more counts down in hk_malloc_outside.
  hk_profile_gate.tiny_max = 0;
  hk_profile_gate.mid_max = 0;
}
