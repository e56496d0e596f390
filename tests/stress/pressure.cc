// Behaviour under memory pressure: with RLIMIT_AS a little above the process's current size,
// every allocation path (tiny, mid, large, huge, calloc, realloc growth, the aligned family)
// must eventually return NULL with errno == ENOMEM, without a crash or an abort; the process
// keeps running, and after freeing, allocations succeed again.
//
// The limit is set in a forked child so the test runner is unaffected; the parent reports how
// the child ended. Skipped under ASan/TSan: their shadow memory needs the address space.
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allocator/hakmem.h"

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerOwnsAddressSpace = true;
#else
constexpr bool kSanitizerOwnsAddressSpace = false;
#endif

constexpr size_t kMaxBlocks = 1 << 18;
void *g_blocks[kMaxBlocks];  // static: the child must not need malloc to keep its list
int g_failures = 0;

// The child reports with write(2) and snprintf into a stack buffer (no malloc).
void Say(const char *format, ...) __attribute__((format(printf, 1, 2)));
void Say(const char *format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  int length = vsnprintf(line, sizeof line, format, args);
  va_end(args);
  if (length > 0) (void)!write(2, line, (size_t)length < sizeof line ? (size_t)length : sizeof line - 1);
}

void Fail(const char *path, const char *what, size_t detail) {
  Say("pressure: FAIL [%s]: %s (%zu)\n", path, what, detail);
  g_failures++;
}

uint64_t g_rng = 88172645463325252ull;
uint64_t NextRandom() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

enum class Path { kMalloc, kCalloc, kPosixMemalign, kAlignedAlloc, kMemalign };

// Allocates blocks of [low, high] bytes through `path` until one fails; checks the failure is
// NULL/ENOMEM, frees everything, then checks that allocations succeed again. Returns the count.
size_t ExhaustAndRecover(const char *name, Path path, size_t low, size_t high, size_t alignment) {
  Say("pressure: %s: allocating %zu..%zu bytes until the limit\n", name, low, high);
  size_t count = 0;
  int failed_errno = 0;
  bool failed = false;
  while (count < kMaxBlocks) {
    size_t size = low + NextRandom() % (high - low + 1);
    void *block = nullptr;
    errno = 0;
    switch (path) {
      case Path::kMalloc:
        block = hakmem_malloc(size);
        break;
      case Path::kCalloc:
        block = hakmem_calloc(1, size);
        break;
      case Path::kPosixMemalign: {
        int status = hakmem_posix_memalign(&block, alignment, size);
        if (status != 0) {
          if (block != nullptr) Fail(name, "posix_memalign set *result on failure", 0);
          // glibc leaves errno = ENOMEM too, and its own test (tst-posix_memalign) checks both.
          if (errno != status) Fail(name, "posix_memalign left errno unlike its result", (size_t)errno);
          block = nullptr;
        }
        break;
      }
      case Path::kAlignedAlloc:
        block = hakmem_aligned_alloc(alignment, size);
        break;
      case Path::kMemalign:
        block = hakmem_memalign(alignment, size);
        break;
    }
    if (!block) {
      failed = true;
      failed_errno = errno;
      break;
    }
    if (alignment && ((uintptr_t)block & (alignment - 1))) Fail(name, "misaligned block", (size_t)block);
    // Touch the first and last bytes: a block handed out must be usable memory.
    ((volatile char *)block)[0] = 1;
    ((volatile char *)block)[size - 1] = 2;
    g_blocks[count++] = block;
  }
  if (!failed) {
    Fail(name, "never failed: the limit is not binding", count);
  } else if (failed_errno != ENOMEM) {
    Fail(name, "allocation failed with errno other than ENOMEM", (size_t)failed_errno);
  }
  Say("pressure: %s: %zu blocks before NULL/ENOMEM; freeing them\n", name, count);
  for (size_t i = 0; i < count; i++) hakmem_free(g_blocks[i]);
  // Reusable: the same path succeeds again for half the count (the allocator may keep some of
  // the freed memory cached, which is fine as long as it serves these).
  size_t again = count / 2 ? count / 2 : 1;
  for (size_t i = 0; i < again; i++) {
    size_t size = low + NextRandom() % (high - low + 1);
    void *block = nullptr;
    if (path == Path::kPosixMemalign || path == Path::kAlignedAlloc || path == Path::kMemalign) {
      block = hakmem_aligned_alloc(alignment, size);
    } else {
      block = hakmem_malloc(size);
    }
    if (!block) {
      Fail(name, "allocation after freeing failed", i);
      again = i;
      break;
    }
    g_blocks[i] = block;
  }
  for (size_t i = 0; i < again; i++) hakmem_free(g_blocks[i]);
  hakmem_malloc_trim(0);
  return count;
}

// realloc growth: double a block until realloc fails; the old block must stay valid and intact.
void ReallocGrowth() {
  const char *name = "realloc growth";
  Say("pressure: %s: doubling one block until the limit\n", name);
  size_t size = 64;
  unsigned char *block = (unsigned char *)hakmem_malloc(size);
  if (!block) {
    Fail(name, "first malloc failed", 0);
    return;
  }
  memset(block, 0x5a, size);
  for (int step = 0; step < 48; step++) {
    size_t bigger = size * 2;
    errno = 0;
    unsigned char *grown = (unsigned char *)hakmem_realloc(block, bigger);
    if (!grown) {
      if (errno != ENOMEM) Fail(name, "realloc failed with errno other than ENOMEM", (size_t)errno);
      for (size_t i = 0; i < size; i++) {
        if (block[i] != 0x5a) {
          Fail(name, "the block changed after a failed realloc", i);
          break;
        }
      }
      Say("pressure: %s: NULL/ENOMEM growing %zu -> %zu bytes; the old block is intact\n", name, size, bigger);
      hakmem_free(block);
      hakmem_malloc_trim(0);
      return;
    }
    for (size_t i = 0; i < size; i++) {
      if (grown[i] != 0x5a) {
        Fail(name, "realloc lost content", i);
        break;
      }
    }
    memset(grown + size, 0x5a, bigger - size);
    block = grown;
    size = bigger;
  }
  Fail(name, "never failed: the limit is not binding", size);
  hakmem_free(block);
}

long AddressSpaceBytes() {
  FILE *file = fopen("/proc/self/statm", "r");
  long pages = 0;
  if (!file) return -1;
  if (fscanf(file, "%ld", &pages) != 1) pages = -1;
  fclose(file);
  return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

int RunChild(long headroom) {
  // Warm every layer up first (registry leaves, per-thread state), so the limit measures what
  // the allocations themselves need.
  void *warm[4] = {hakmem_malloc(64), hakmem_malloc(8192), hakmem_malloc(200 << 10), hakmem_malloc(1 << 20)};
  for (void *block : warm) hakmem_free(block);
  hakmem_malloc_trim(0);
  long now = AddressSpaceBytes();
  if (now < 0) {
    Fail("setup", "cannot read /proc/self/statm", 0);
    return 1;
  }
  struct rlimit limit = {(rlim_t)(now + headroom), (rlim_t)(now + headroom)};
  if (setrlimit(RLIMIT_AS, &limit) != 0) {
    Fail("setup", "setrlimit(RLIMIT_AS) failed", (size_t)errno);
    return 1;
  }
  Say("pressure: RLIMIT_AS = %ld MiB (%ld MiB mapped now + %ld MiB)\n", (now + headroom) >> 20, now >> 20,
      headroom >> 20);
  ExhaustAndRecover("tiny malloc", Path::kMalloc, 512, 1024, 16);
  ExhaustAndRecover("mid malloc", Path::kMalloc, 1025, 64 << 10, 16);
  ExhaustAndRecover("large malloc", Path::kMalloc, (64 << 10) + 1, 512 << 10, 16);
  ExhaustAndRecover("huge malloc", Path::kMalloc, (512 << 10) + 1, 8 << 20, 4096);
  ExhaustAndRecover("tiny calloc", Path::kCalloc, 512, 1024, 16);
  ExhaustAndRecover("mid calloc", Path::kCalloc, 1025, 64 << 10, 16);
  ExhaustAndRecover("huge calloc", Path::kCalloc, (512 << 10) + 1, 8 << 20, 4096);
  ReallocGrowth();
  ExhaustAndRecover("posix_memalign 64 B", Path::kPosixMemalign, 16, 4096, 64);
  ExhaustAndRecover("aligned_alloc 4 KiB", Path::kAlignedAlloc, 1025, 64 << 10, 4096);
  ExhaustAndRecover("memalign 64 KiB", Path::kMemalign, 1, 256 << 10, 64 << 10);
  ExhaustAndRecover("memalign 2 MiB", Path::kMemalign, 1, 1 << 20, 2 << 20);
  // Still alive and able to allocate after every path hit the limit.
  void *after = hakmem_malloc(100);
  if (!after) Fail("after", "a small allocation failed once everything was freed", 0);
  hakmem_free(after);
  Say("pressure: child done, %d failures\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}

}  // namespace

int main() {
  if (kSanitizerOwnsAddressSpace) {
    printf("pressure: SKIPPED: under ASan/TSan the shadow memory needs the address space, so RLIMIT_AS "
           "cannot be set low\n");
    return 0;
  }
  const long headroom = 96l << 20;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) _exit(RunChild(headroom));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("waitpid");
      return 1;
    }
  }
  if (WIFSIGNALED(status)) {
    printf("pressure: FAIL: the child died of signal %d (%s); its last line above names the path\n",
           WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("pressure: FAIL: the child exited with status %d\n", WEXITSTATUS(status));
    return 1;
  }
  printf("pressure: PASS: every path returned NULL/ENOMEM at the limit and recovered after freeing\n");
  return 0;
}
