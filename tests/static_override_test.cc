// //:hakmem_static linked into a test binary (linkstatic): the standard malloc family and C++
// operator new/delete resolve to HAKMEM. Checks ownership across sizes 1 B .. 16 MiB, that free
// works, aligned and sized new/delete, the invalid-free death message, and fork from a program
// with four allocating threads; glibc's introspection calls.
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "allocator/hakmem.h"
#include "gtest/gtest.h"

namespace {

// Sizes from 1 B to 16 MiB: every power of two and its neighbours.
std::vector<size_t> Sizes() {
  std::vector<size_t> sizes;
  for (size_t p = 1; p <= (size_t{16} << 20); p <<= 1) {
    if (p > 1) sizes.push_back(p - 1);
    sizes.push_back(p);
    if (p < (size_t{16} << 20)) sizes.push_back(p + 1);
  }
  sizes.push_back(size_t{16} << 20);
  return sizes;
}

TEST(StaticOverrideTest, MallocReturnsHakmemMemory) {
  void *small = malloc(100);
  ASSERT_NE(small, nullptr);
  EXPECT_TRUE(hakmem_owns(small));
  free(small);
  for (size_t size : Sizes()) {
    unsigned char *p = static_cast<unsigned char *>(malloc(size));
    ASSERT_NE(p, nullptr) << size;
    EXPECT_TRUE(hakmem_owns(p)) << "malloc(" << size << ")";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << size;
    EXPECT_GE(malloc_usable_size(p), size);
    p[0] = 1;
    p[size - 1] = 2;
    free(p);
  }
}

TEST(StaticOverrideTest, CallocZeroesAndIsOwned) {
  for (size_t size : Sizes()) {
    if (size > (size_t{4} << 20)) break;  // zero-checking 16 MiB is slow and adds nothing
    unsigned char *p = static_cast<unsigned char *>(calloc(1, size));
    ASSERT_NE(p, nullptr) << size;
    EXPECT_TRUE(hakmem_owns(p)) << "calloc(" << size << ")";
    for (size_t i = 0; i < size; i += 61) ASSERT_EQ(p[i], 0) << size << " at " << i;
    EXPECT_EQ(p[size - 1], 0);
    memset(p, 0xab, size);
    free(p);
  }
  errno = 0;
  volatile size_t huge_count = SIZE_MAX / 2;  // hidden from the compiler's size warnings
  EXPECT_EQ(calloc(huge_count, 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(StaticOverrideTest, ReallocKeepsContentsAcrossSizes) {
  unsigned char *p = static_cast<unsigned char *>(malloc(1));
  ASSERT_NE(p, nullptr);
  p[0] = 7;
  size_t kept = 1;
  for (size_t size : Sizes()) {
    p = static_cast<unsigned char *>(realloc(p, size));
    ASSERT_NE(p, nullptr) << size;
    EXPECT_TRUE(hakmem_owns(p)) << "realloc to " << size;
    size_t check = kept < size ? kept : size;
    for (size_t i = 0; i < check; ++i) ASSERT_EQ(p[i], static_cast<unsigned char>(i * 7 + 7)) << size;
    for (size_t i = check; i < size && i < 4096; ++i) p[i] = static_cast<unsigned char>(i * 7 + 7);
    kept = size < 4096 ? size : 4096;
  }
  // And back down.
  p = static_cast<unsigned char *>(realloc(p, 10));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(p[i], static_cast<unsigned char>(i * 7 + 7));
  EXPECT_TRUE(hakmem_owns(p));
  free(p);
}

TEST(StaticOverrideTest, PosixMemalignAcrossSizesAndAlignments) {
  for (size_t alignment = sizeof(void *); alignment <= (size_t{1} << 20); alignment <<= 1) {
    for (size_t size : {size_t{1}, size_t{100}, size_t{4096}, size_t{70000}, size_t{1} << 20,
                        size_t{16} << 20}) {
      void *p = nullptr;
      ASSERT_EQ(posix_memalign(&p, alignment, size), 0) << alignment << " " << size;
      EXPECT_TRUE(hakmem_owns(p)) << "posix_memalign(" << alignment << ", " << size << ")";
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u) << alignment << " " << size;
      static_cast<char *>(p)[size - 1] = 1;
      free(p);
    }
  }
  void *p = nullptr;
  EXPECT_EQ(posix_memalign(&p, 24, 10), EINVAL);
  void *q = aligned_alloc(4096, 8192);
  EXPECT_TRUE(hakmem_owns(q));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 4096, 0u);
  free(q);
}

struct alignas(256) Aligned256 {
  char bytes[300];
};

TEST(StaticOverrideTest, OperatorNewAndDeleteAreHakmem) {
  for (size_t size : Sizes()) {
    char *p = new char[size];
    EXPECT_TRUE(hakmem_owns(p)) << "new char[" << size << "]";
    p[size - 1] = 1;
    delete[] p;
    void *q = ::operator new(size);
    EXPECT_TRUE(hakmem_owns(q)) << "operator new(" << size << ")";
    ::operator delete(q, size);  // sized delete
  }
  auto object = std::make_unique<int>(5);
  EXPECT_TRUE(hakmem_owns(object.get()));
  auto shared = std::make_shared<std::vector<int>>(1000, 3);
  EXPECT_TRUE(hakmem_owns(shared->data()));

  std::vector<std::unique_ptr<Aligned256>> aligned;
  for (int i = 0; i < 1000; ++i) {
    aligned.push_back(std::make_unique<Aligned256>());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned.back().get()) % 256, 0u);
    EXPECT_TRUE(hakmem_owns(aligned.back().get()));
  }
  Aligned256 *array = new Aligned256[33];
  EXPECT_EQ(reinterpret_cast<uintptr_t>(array) % 256, 0u);
  delete[] array;
  for (size_t align = 16; align <= 65536; align <<= 1) {
    void *p = ::operator new(1000, std::align_val_t{align});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align;
    EXPECT_TRUE(hakmem_owns(p));
    ::operator delete(p, 1000, std::align_val_t{align});  // sized aligned delete
  }
}

// Hides a pointer's origin from the compiler (which would warn about freeing a non-heap object).
void *Launder(void *p) {
  void *volatile hidden = p;
  return hidden;
}

TEST(StaticOverrideDeathTest, FreeOfStackAddressAborts) {
  char on_stack[64];
  memset(on_stack, 0, sizeof on_stack);
  EXPECT_DEATH(free(Launder(on_stack)), "hakmem: free\\(\\): invalid pointer 0x");
}

TEST(StaticOverrideDeathTest, FreeOfInteriorPointerAborts) {
  for (size_t size : {size_t{100}, size_t{5000}, size_t{300000}, size_t{4} << 20}) {
    char *p = static_cast<char *>(malloc(size));
    ASSERT_NE(p, nullptr);
    EXPECT_DEATH(free(Launder(p + 16)), "hakmem: free\\(\\): invalid pointer 0x") << size;
    free(p);
  }
}

TEST(StaticOverrideForkTest, ForkWhileFourThreadsAllocate) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &stop] {
      std::vector<void *> held(64, nullptr);
      unsigned x = 12345u + static_cast<unsigned>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        x = x * 1103515245u + 12345u;
        size_t slot = (x >> 8) % held.size();
        free(held[slot]);
        size_t size = (x >> 4) % 4 == 0 ? (x >> 12) % 300000 + 1 : (x >> 12) % 1024 + 1;
        held[slot] = malloc(size);
        if (held[slot]) static_cast<char *>(held[slot])[0] = 1;
      }
      for (void *p : held) free(p);
    });
  }
  for (int round = 0; round < 60; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(20);  // a deadlocked child dies of SIGALRM instead of hanging the test
      std::vector<void *> blocks;
      for (size_t i = 0; i < 2000; ++i) {
        void *p = malloc(1 + (i * 37) % 70000);
        if (p == nullptr || !hakmem_owns(p)) _exit(2);
        memset(p, 1, 1);
        blocks.push_back(p);
      }
      for (void *p : blocks) free(p);
      void *big = malloc(size_t{8} << 20);
      if (big == nullptr) _exit(3);
      free(big);
      exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "round " << round << ": child killed by signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ASSERT_EQ(WEXITSTATUS(status), 0) << "round " << round;
  }
  stop = true;
  for (auto &thread : threads) thread.join();
}

// glibc's introspection calls resolve to HAKMEM's too: mallinfo2 counts its blocks, malloc_stats
// prints its summary, mallopt refuses what HAKMEM has no counterpart for.
TEST(StaticOverrideTest, IntrospectionCallsAnswerWithHakmemsFigures) {
  struct mallinfo2 before = mallinfo2();
  std::vector<void *> blocks(20000);
  for (void *&block : blocks) block = malloc(100);
  struct mallinfo2 held = mallinfo2();
  EXPECT_GE(held.uordblks, before.uordblks + blocks.size() * 100);
  testing::internal::CaptureStderr();
  malloc_stats();
  std::string text = testing::internal::GetCapturedStderr();
  EXPECT_EQ(text.rfind(std::string("hakmem: ") + HAKMEM_SUMMARY_TITLE, 0), 0u) << text;
  EXPECT_EQ(mallopt(M_ARENA_MAX, 2), 0);
  for (void *block : blocks) free(block);
  EXPECT_LE(mallinfo2().uordblks + blocks.size() * 100, held.uordblks);
}

}  // namespace
