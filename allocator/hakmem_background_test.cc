// The background thread (hakmem_background.c), through the prefixed API and its counters: it is
// not started by a program that stays small, it starts once an allocation finds 64 MiB committed
// and then gives memory back with no allocator call, it runs in one copy, and a
// forked child starts its own only when its parent had a single thread. The tests run in declaration order and build on each other's state
// (one process, one thread at most): gtest's default order is the file's.
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "allocator/hakmem.h"
#include "gtest/gtest.h"

namespace {

hakmem_stats Stats() {
  hakmem_stats stats;
  hakmem_stats_get(&stats);
  return stats;
}

// Allocates `bytes` in 256-byte blocks (every block written), then frees them all.
void BurstAndFree(size_t bytes) {
  std::vector<void *> blocks;
  blocks.reserve(bytes / 256);
  for (size_t done = 0; done < bytes; done += 256) {
    void *block = hakmem_malloc(256);
    ASSERT_NE(block, nullptr);
    memset(block, 0x5c, 256);
    blocks.push_back(block);
  }
  for (void *block : blocks) hakmem_free(block);
}

// Waits up to `limit` for `done`, polling every 20 ms with no allocator call.
template <typename Done>
bool WaitFor(Done done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST(Background, AProgramThatStaysSmallHasNoThread) {
  for (int round = 0; round < 4; round++) BurstAndFree(4 << 20);
  EXPECT_EQ(Stats().background_starts, 0u);
}

// Forks and runs `body` in the child, which exits 0 when it returns true; the child's exit status.
template <typename Body>
int InChild(Body body) {
  pid_t child = fork();
  if (child == 0) _exit(body() ? 0 : 1);
  int status = -1;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(Background, AChildOfASingleThreadedProcessStartsItsOwn) {
  ASSERT_EQ(Stats().background_starts, 0u);
  EXPECT_EQ(InChild([] {
              BurstAndFree(160 << 20);
              return Stats().background_starts == 1 &&
                     WaitFor([] { return Stats().background_bytes_returned > 0; }, std::chrono::seconds(10));
            }),
            0)
      << "the child did not start its thread, or it gave nothing back";
  EXPECT_EQ(Stats().background_starts, 0u);
}

TEST(Background, StartsOnceTheHeapIsLargeAndGivesMemoryBackWithNoCall) {
  BurstAndFree(160 << 20);
  hakmem_stats after_frees = Stats();
  EXPECT_EQ(after_frees.background_starts, 1u);
  // Now no call at all: the thread decommits what the delays allow (1 s by default).
  EXPECT_TRUE(WaitFor([] { return Stats().background_bytes_returned >= (64u << 20); }, std::chrono::seconds(10)))
      << "given back by the thread: " << Stats().background_bytes_returned << " bytes";
  EXPECT_LT(Stats().bytes_committed + (64u << 20), after_frees.bytes_committed);
}

TEST(Background, OneThreadAtATime) {
  BurstAndFree(160 << 20);
  EXPECT_EQ(Stats().background_starts, 1u);
}

// The child of a multi-threaded process (this one, now) may make only async-signal-safe calls until
// it execs, and pthread_create is none: it starts no thread, and its allocations keep working.
TEST(Background, AChildOfAProcessWithTheThreadStartsNone) {
  ASSERT_EQ(Stats().background_starts, 1u);
  EXPECT_EQ(InChild([] {
              BurstAndFree(160 << 20);  // the counters are the parent's copy: 1 start so far
              return Stats().background_starts == 1;
            }),
            0);
  EXPECT_EQ(Stats().background_starts, 1u);
}

}  // namespace
