// A randomized multi-threaded stress program for HAKMEM's prefixed API (so it also runs under
// ASan and TSan, which own the standard malloc).
//
// Every block is filled with a pattern derived from its address, size and the run's seed, and
// verified before it is freed and after realloc (the old pattern up to the smaller size). Sizes
// come from every range, 0 .. 64 MiB, weighted toward small. Blocks travel between threads
// through shared slots, worker threads are created and exit every round (so exited threads'
// slabs are abandoned and adopted), and the program forks: the child verifies some inherited
// blocks, frees them, allocates on its own and exits 0.
//
//   stress [--seconds N | --ops N] [--threads N] [--seed N] [--max-live-mib N] [--no-fork]
//
// Prints one summary line and exits 1 on any error.
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "allocator/hakmem.h"

namespace {

#if defined(__SANITIZE_THREAD__)
// TSan does not support forking while other threads run: fork only between rounds.
constexpr bool kForkWhileThreadsRun = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kForkWhileThreadsRun = false;
#else
constexpr bool kForkWhileThreadsRun = true;
#endif
#else
constexpr bool kForkWhileThreadsRun = true;
#endif

// ---- Options ----------------------------------------------------------------------------------
struct Options {
  double seconds = 0;
  uint64_t ops = 0;
  unsigned threads = 4;
  uint64_t seed = 1;
  uint64_t max_live_bytes = 512ull << 20;
  bool fork_enabled = true;
};

// ---- Random numbers and patterns --------------------------------------------------------------
uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Rng {
  uint64_t state;
  uint64_t Next() { return state = Mix64(state); }
  uint64_t Below(uint64_t n) { return n ? Next() % n : 0; }
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
};

uint64_t g_seed = 1;

// The key a block's pattern derives from: its address, its size and the run's seed. A block that
// moved or changed size gets a different pattern, so stale contents never pass for fresh ones.
uint64_t PatternKey(const void *block, size_t size) {
  return Mix64((uint64_t)(uintptr_t)block ^ (size * 0x2545f4914f6cdd1dull) ^ g_seed);
}

void FillPattern(unsigned char *block, size_t size, uint64_t key) {
  size_t words = size / 8;
  for (size_t i = 0; i < words; i++) {
    uint64_t value = Mix64(key + i);
    memcpy(block + i * 8, &value, 8);
  }
  uint64_t tail = Mix64(key + words);
  for (size_t i = words * 8; i < size; i++) block[i] = (unsigned char)(tail >> ((i % 8) * 8));
}

// Index of the first byte in [0, size) that differs from the pattern, or size when all match.
size_t FirstMismatch(const unsigned char *block, size_t size, uint64_t key) {
  size_t words = size / 8;
  for (size_t i = 0; i < words; i++) {
    uint64_t value = Mix64(key + i), actual;
    memcpy(&actual, block + i * 8, 8);
    if (actual != value) {
      for (size_t b = 0; b < 8; b++) {
        if (block[i * 8 + b] != (unsigned char)(value >> (b * 8))) return i * 8 + b;
      }
    }
  }
  uint64_t tail = Mix64(key + words);
  for (size_t i = words * 8; i < size; i++) {
    if (block[i] != (unsigned char)(tail >> ((i % 8) * 8))) return i;
  }
  return size;
}

// ---- Errors and counters ----------------------------------------------------------------------
std::atomic<uint64_t> g_errors{0};
std::atomic<uint64_t> g_ops{0};
std::atomic<uint64_t> g_live_bytes{0};
std::atomic<uint64_t> g_max_live_bytes{0};
std::atomic<uint64_t> g_forks{0};
std::atomic<uint64_t> g_threads_started{0};

// Reports with write(2): the child of a fork may not use stdio safely.
void Error(const char *what, const void *block, size_t size, size_t detail) {
  uint64_t n = g_errors.fetch_add(1) + 1;
  if (n > 20) return;
  char line[256];
  int length = snprintf(line, sizeof line, "stress: error: %s (block %p, size %zu, detail %zu, pid %d)\n", what,
                        block, size, detail, (int)getpid());
  if (length > 0) (void)!write(2, line, (size_t)length);
}

void AddLive(size_t size) {
  uint64_t now = g_live_bytes.fetch_add(size) + size;
  uint64_t max = g_max_live_bytes.load(std::memory_order_relaxed);
  while (now > max && !g_max_live_bytes.compare_exchange_weak(max, now)) {
  }
}
void SubLive(size_t size) { g_live_bytes.fetch_sub(size); }

// ---- Blocks -----------------------------------------------------------------------------------
struct Block {
  unsigned char *data = nullptr;
  size_t size = 0;
};

// Sizes from every range, weighted toward small.
size_t RandomSize(Rng &rng) {
  uint64_t r = rng.Below(1000);
  if (r < 650) return rng.Between(0, 1024);                    // tiny
  if (r < 900) return rng.Between(1025, 64 << 10);             // mid
  if (r < 975) return rng.Between((64 << 10) + 1, 512 << 10);  // large
  if (r < 999) return rng.Between((512 << 10) + 1, 4 << 20);   // huge
  return rng.Between((4 << 20) + 1, 64 << 20);                 // very large huge
}

size_t RandomAlignment(Rng &rng) {
  uint64_t r = rng.Below(100);
  if (r < 70) return (size_t)1 << rng.Between(4, 12);   // 16 .. 4 KiB
  if (r < 97) return (size_t)1 << rng.Between(13, 16);  // 8 .. 64 KiB
  return (size_t)1 << rng.Between(17, 21);              // 128 KiB .. 2 MiB
}

// Checks what every allocation result must satisfy, then fills it.
void Accept(Block &block, size_t size, size_t alignment, bool zeroed) {
  if (((uintptr_t)block.data & (alignment - 1)) != 0) Error("misaligned block", block.data, size, alignment);
  size_t usable = hakmem_malloc_usable_size(block.data);
  if (usable < size) Error("usable size below the request", block.data, size, usable);
  if (!hakmem_owns(block.data)) Error("hakmem_owns denies a block it handed out", block.data, size, 0);
  if (zeroed) {
    for (size_t i = 0; i < size; i++) {
      if (block.data[i] != 0) {
        Error("calloc block not zero", block.data, size, i);
        break;
      }
    }
  }
  block.size = size;
  FillPattern(block.data, size, PatternKey(block.data, size));
  AddLive(size);
}

// Allocates a block through a random member of the malloc family. Returns false on ENOMEM.
bool Allocate(Rng &rng, Block &block, uint64_t max_live) {
  size_t size = RandomSize(rng);
  // Keep the live total bounded: very large requests shrink while the process holds a lot.
  if (g_live_bytes.load(std::memory_order_relaxed) + size > max_live) size = rng.Between(0, 4096);
  uint64_t how = rng.Below(100);
  size_t alignment = 16;
  bool zeroed = false;
  void *p = nullptr;
  if (how < 60) {
    p = hakmem_malloc(size);
  } else if (how < 75) {
    // calloc with a count/size split of the same total.
    size_t count = size == 0 ? 0 : (size_t)rng.Between(1, 8);
    if (count && size % count) size -= size % count;
    p = count ? hakmem_calloc(count, size / count) : hakmem_calloc(0, 1);
    zeroed = true;
  } else if (how < 85) {
    alignment = RandomAlignment(rng);
    int status = hakmem_posix_memalign(&p, alignment, size);
    if (status != 0) {
      if (status != ENOMEM) Error("posix_memalign failed with a status other than ENOMEM", nullptr, size, (size_t)status);
      p = nullptr;
    }
  } else if (how < 93) {
    alignment = RandomAlignment(rng);
    p = hakmem_aligned_alloc(alignment, size);
  } else {
    alignment = RandomAlignment(rng);
    p = hakmem_memalign(alignment, size);
  }
  if (!p) {
    Error("allocation returned NULL", nullptr, size, (size_t)errno);
    return false;
  }
  block.data = (unsigned char *)p;
  Accept(block, size, alignment, zeroed);
  return true;
}

void VerifyAndFree(Block &block) {
  if (!block.data) return;
  size_t bad = FirstMismatch(block.data, block.size, PatternKey(block.data, block.size));
  if (bad != block.size) Error("block content changed while live", block.data, block.size, bad);
  SubLive(block.size);
  hakmem_free(block.data);
  block.data = nullptr;
  block.size = 0;
}

// realloc to a random size: the old pattern must survive up to the smaller size.
void Reallocate(Rng &rng, Block &block, uint64_t max_live) {
  size_t old_size = block.size;
  uint64_t old_key = PatternKey(block.data, old_size);
  size_t bad = FirstMismatch(block.data, old_size, old_key);
  if (bad != old_size) Error("block content changed before realloc", block.data, old_size, bad);
  size_t new_size = rng.Below(4) == 0 ? old_size + rng.Between(1, 4096) : RandomSize(rng);
  if (g_live_bytes.load(std::memory_order_relaxed) + new_size > max_live) new_size = rng.Between(1, 4096);
  if (rng.Below(200) == 0) new_size = 0;  // realloc(p, 0) frees and returns NULL
  void *moved = hakmem_realloc(block.data, new_size);
  SubLive(old_size);
  if (new_size == 0) {
    if (moved != nullptr) Error("realloc(p, 0) did not return NULL", moved, 0, 0);
    block.data = nullptr;
    block.size = 0;
    return;
  }
  if (!moved) {
    Error("realloc returned NULL", block.data, new_size, (size_t)errno);
    AddLive(old_size);  // the block is untouched and still ours
    return;
  }
  unsigned char *data = (unsigned char *)moved;
  size_t kept = old_size < new_size ? old_size : new_size;
  bad = FirstMismatch(data, kept, old_key);
  if (bad != kept) Error("realloc lost content", data, new_size, bad);
  block.data = data;
  Accept(block, new_size, 16, false);
}

// ---- Shared slots -----------------------------------------------------------------------------
// Blocks handed between threads: a thread may free or resize a block another thread allocated.
struct Slot {
  std::atomic<bool> locked{false};
  Block block;
  bool TryLock() { return !locked.exchange(true, std::memory_order_acquire); }
  void Lock() {
    while (!TryLock()) std::this_thread::yield();
  }
  void Unlock() { locked.store(false, std::memory_order_release); }
};

constexpr size_t kSlotCount = 2048;
Slot g_slots[kSlotCount];

// ---- Fork -------------------------------------------------------------------------------------
// The child is single-threaded: only the forking thread exists. Slots other threads held locked
// at the fork stay locked in the child, so it only try-locks.
void RunForkChild(uint64_t seed) {
  Rng rng{seed};
  unsigned verified = 0;
  for (size_t i = 0; i < kSlotCount && verified < 64; i += 1 + rng.Below(64)) {
    Slot &slot = g_slots[i];
    if (!slot.TryLock()) continue;
    if (slot.block.data) {
      VerifyAndFree(slot.block);
      verified++;
    }
  }
  std::vector<Block> own(512);
  for (Block &block : own) {
    size_t size = rng.Below(8) == 0 ? rng.Between(1025, 1 << 20) : rng.Between(1, 1024);
    block.data = (unsigned char *)hakmem_malloc(size);
    if (!block.data) {
      Error("allocation in the fork child returned NULL", nullptr, size, (size_t)errno);
      continue;
    }
    Accept(block, size, 16, false);
  }
  for (Block &block : own) VerifyAndFree(block);
  _exit(g_errors.load() == 0 ? 0 : 1);
}

void ForkAndCheck(uint64_t seed) {
  pid_t pid = fork();
  if (pid < 0) {
    Error("fork failed", nullptr, 0, (size_t)errno);
    return;
  }
  if (pid == 0) RunForkChild(seed);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_forks.fetch_add(1);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Error("fork child failed", nullptr, 0, (size_t)status);
}

// ---- Workers ----------------------------------------------------------------------------------
struct Round {
  std::chrono::steady_clock::time_point deadline;
  uint64_t op_limit;  // stop when g_ops reaches this (0: no limit)
};

bool RoundOver(const Round &round) {
  if (round.op_limit && g_ops.load(std::memory_order_relaxed) >= round.op_limit) return true;
  return std::chrono::steady_clock::now() >= round.deadline;
}

void Worker(const Options &options, const Round &round, uint64_t seed, bool may_fork) {
  Rng rng{seed};
  std::vector<Block> local(64);  // thread-private blocks: the common short-lived case
  auto next_fork = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  uint64_t done = 0;
  while (true) {
    if ((done & 63) == 0) {
      g_ops.fetch_add(done ? 64 : 0, std::memory_order_relaxed);
      if (RoundOver(round)) break;
    }
    done++;
    uint64_t op = rng.Below(100);
    if (op < 55) {
      // Thread-private: replace a random local block.
      Block &block = local[rng.Below(local.size())];
      VerifyAndFree(block);
      Allocate(rng, block, options.max_live_bytes);
    } else if (op < 62) {
      Block &block = local[rng.Below(local.size())];
      if (block.data) Reallocate(rng, block, options.max_live_bytes);
    } else if (op < 85) {
      // Shared: allocate into a slot, freeing what another thread may have left there.
      Slot &slot = g_slots[rng.Below(kSlotCount)];
      slot.Lock();
      VerifyAndFree(slot.block);
      Allocate(rng, slot.block, options.max_live_bytes);
      slot.Unlock();
    } else if (op < 95) {
      Slot &slot = g_slots[rng.Below(kSlotCount)];
      slot.Lock();
      VerifyAndFree(slot.block);
      slot.Unlock();
    } else {
      Slot &slot = g_slots[rng.Below(kSlotCount)];
      slot.Lock();
      if (slot.block.data) Reallocate(rng, slot.block, options.max_live_bytes);
      slot.Unlock();
    }
    if (may_fork && (done & 1023) == 0 && std::chrono::steady_clock::now() >= next_fork) {
      ForkAndCheck(rng.Next());
      next_fork = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    }
  }
  g_ops.fetch_add(done & 63, std::memory_order_relaxed);
  // Some exiting threads leave their blocks in the slots for others; most free their own.
  for (Block &block : local) {
    if (rng.Below(4) == 0) {
      Slot &slot = g_slots[rng.Below(kSlotCount)];
      slot.Lock();
      VerifyAndFree(slot.block);
      slot.block = block;
      slot.Unlock();
      block = Block();
    } else {
      VerifyAndFree(block);
    }
  }
}

bool ParseNumber(const char *text, double *out) {
  char *end = nullptr;
  errno = 0;
  double value = strtod(text, &end);
  if (errno || end == text || *end || value < 0) return false;
  *out = value;
  return true;
}

int Usage() {
  fprintf(stderr,
          "usage: stress [--seconds N | --ops N] [--threads N] [--seed N] [--max-live-mib N] [--no-fork]\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  Options options;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    double value = 0;
    if (arg == "--no-fork") {
      options.fork_enabled = false;
      continue;
    }
    if (i + 1 >= argc || !ParseNumber(argv[i + 1], &value)) return Usage();
    i++;
    if (arg == "--seconds") {
      options.seconds = value;
    } else if (arg == "--ops") {
      options.ops = (uint64_t)value;
    } else if (arg == "--threads" && value >= 1) {
      options.threads = (unsigned)value;
    } else if (arg == "--seed") {
      options.seed = (uint64_t)value;
    } else if (arg == "--max-live-mib" && value >= 1) {
      options.max_live_bytes = (uint64_t)value << 20;
    } else {
      return Usage();
    }
  }
  if (options.seconds == 0 && options.ops == 0) options.seconds = 10;
  g_seed = Mix64(options.seed);

  auto start = std::chrono::steady_clock::now();
  auto end = options.seconds > 0 ? start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                               std::chrono::duration<double>(options.seconds))
                                 : std::chrono::steady_clock::time_point::max();
  Rng rng{g_seed};
  unsigned rounds = 0;
  // Rounds of at most a second: every round starts fresh threads, which exit at its end.
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    if (options.ops && g_ops.load() >= options.ops) break;
    Round round;
    round.deadline = std::min(end, now + std::chrono::milliseconds(options.ops ? 250 : 1000));
    round.op_limit = options.ops;
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < options.threads; t++) {
      bool may_fork = options.fork_enabled && kForkWhileThreadsRun && t == 0;
      workers.emplace_back(Worker, std::cref(options), std::cref(round), rng.Next(), may_fork);
      g_threads_started.fetch_add(1);
    }
    for (std::thread &worker : workers) worker.join();
    rounds++;
    // Between rounds only this thread runs: fork here under every build (including TSan).
    if (options.fork_enabled && rounds % 4 == 1) ForkAndCheck(rng.Next());
  }
  for (Slot &slot : g_slots) VerifyAndFree(slot.block);
  if (g_live_bytes.load() != 0) Error("live byte count did not return to zero", nullptr, 0, (size_t)g_live_bytes.load());

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t errors = g_errors.load();
  printf("stress: %" PRIu64 " ops, %u threads (%" PRIu64 " started over %u rounds), %.1f seconds, %" PRIu64
         " forks, max live %.1f MiB, seed %" PRIu64 ", %" PRIu64 " errors\n",
         g_ops.load(), options.threads, g_threads_started.load(), rounds, seconds, g_forks.load(),
         (double)g_max_live_bytes.load() / (1 << 20), options.seed, errors);
  return errors == 0 ? 0 : 1;
}
