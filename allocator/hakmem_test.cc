// The prefixed API, function by function, on every size range, with glibc's edge cases.
#include "allocator/hakmem.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "allocator/midlarge/ace.h"
#include "allocator/superslab/registry.h"
#include "allocator/testing/fd_text.h"
#include "gtest/gtest.h"

namespace {

// Sizes that cross every range boundary: tiny (<= 1 KiB), mid (<= 32 KiB), large (<= 512 KiB),
// huge (above), each at the boundary and one byte either side.
const std::vector<size_t> &BoundarySizes() {
  static const std::vector<size_t> sizes = {
      0, 1, 15, 16, 17, 127, 128, 129, 1023, 1024, 1025, 4095, 4096, 4097, 32767, 32768, 32769,
      65535, 65536, 65537, 524287, 524288, 524289, (size_t)1 << 20, (size_t)5 << 20, (size_t)64 << 20,
  };
  return sizes;
}

void Fill(void *block, size_t size, unsigned seed) {
  unsigned char *bytes = static_cast<unsigned char *>(block);
  for (size_t i = 0; i < size; i++) bytes[i] = static_cast<unsigned char>(i * 31 + seed);
}

bool Holds(const void *block, size_t size, unsigned seed) {
  const unsigned char *bytes = static_cast<const unsigned char *>(block);
  for (size_t i = 0; i < size; i++)
    if (bytes[i] != static_cast<unsigned char>(i * 31 + seed)) return false;
  return true;
}

TEST(Malloc, EveryRangeHoldsDataAndReportsUsableSize) {
  for (size_t size : BoundarySizes()) {
    void *block = hakmem_malloc(size);
    ASSERT_NE(block, nullptr) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % 16, 0u) << size;
    EXPECT_TRUE(hakmem_owns(block));
    EXPECT_GE(hakmem_malloc_usable_size(block), size);
    Fill(block, size, 3);
    EXPECT_TRUE(Holds(block, size, 3)) << size;
    hakmem_free(block);
  }
}

TEST(Malloc, ImpossibleSizesFailWithEnomem) {
  for (size_t size : {SIZE_MAX, SIZE_MAX - 4096, (size_t)1 << 62, (size_t)1 << 50}) {
    errno = 0;
    EXPECT_EQ(hakmem_malloc(size), nullptr) << size;
    EXPECT_EQ(errno, ENOMEM) << size;
  }
}

TEST(Free, NullIsIgnored) { hakmem_free(nullptr); }

TEST(Calloc, ZeroesEveryRangeAndChecksOverflow) {
  for (size_t size : BoundarySizes()) {
    // Dirty a block of the same size first so reuse would show.
    void *dirty = hakmem_malloc(size);
    memset(dirty, 0xa5, size);
    hakmem_free(dirty);
    unsigned char *block = static_cast<unsigned char *>(hakmem_calloc(1, size));
    ASSERT_NE(block, nullptr) << size;
    for (size_t i = 0; i < size; i++) ASSERT_EQ(block[i], 0) << "size " << size << " byte " << i;
    hakmem_free(block);
  }
  errno = 0;
  EXPECT_EQ(hakmem_calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void *empty = hakmem_calloc(0, 0);
  EXPECT_NE(empty, nullptr);
  hakmem_free(empty);
}

TEST(Realloc, GrowsAndShrinksAcrossEveryBoundaryKeepingContent) {
  std::vector<size_t> path = BoundarySizes();
  path.erase(path.begin());  // start from 1 byte
  std::vector<size_t> down(path.rbegin(), path.rend());
  path.insert(path.end(), down.begin(), down.end());
  size_t current = path[0];
  void *block = hakmem_malloc(current);
  Fill(block, current, 7);
  for (size_t next : path) {
    block = hakmem_realloc(block, next);
    ASSERT_NE(block, nullptr) << next;
    size_t kept = current < next ? current : next;
    ASSERT_TRUE(Holds(block, kept, 7)) << current << " -> " << next;
    EXPECT_GE(hakmem_malloc_usable_size(block), next);
    Fill(block, next, 7);
    current = next;
  }
  hakmem_free(block);
}

TEST(Realloc, NullAndZeroFollowGlibc) {
  void *block = hakmem_realloc(nullptr, 100);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(hakmem_realloc(block, 0), nullptr);  // frees, like glibc
  void *large = hakmem_malloc(100000);
  errno = 0;
  EXPECT_EQ(hakmem_realloc(large, SIZE_MAX - 10), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  Fill(large, 100000, 1);  // the failed realloc left the block valid
  EXPECT_TRUE(Holds(large, 100000, 1));
  hakmem_free(large);
}

TEST(Reallocarray, ChecksOverflow) {
  errno = 0;
  EXPECT_EQ(hakmem_reallocarray(nullptr, SIZE_MAX / 8, 16), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  int *array = static_cast<int *>(hakmem_reallocarray(nullptr, 10, sizeof(int)));
  ASSERT_NE(array, nullptr);
  for (int i = 0; i < 10; i++) array[i] = i;
  array = static_cast<int *>(hakmem_reallocarray(array, 1000, sizeof(int)));
  for (int i = 0; i < 10; i++) EXPECT_EQ(array[i], i);
  hakmem_free(array);
}

TEST(AlignedAllocation, EveryPowerOfTwoUpTo64MiBOnEveryRange) {
  for (size_t alignment = 8; alignment <= ((size_t)64 << 20); alignment <<= 1) {
    for (size_t size : {(size_t)1, (size_t)100, (size_t)1500, (size_t)40000, (size_t)700000}) {
      void *block = nullptr;
      ASSERT_EQ(hakmem_posix_memalign(&block, alignment, size), 0) << alignment << " " << size;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % alignment, 0u) << alignment << " " << size;
      EXPECT_GE(hakmem_malloc_usable_size(block), size);
      Fill(block, size, 9);
      EXPECT_TRUE(Holds(block, size, 9));
      hakmem_free(block);
      void *other = hakmem_aligned_alloc(alignment, size);
      ASSERT_NE(other, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(other) % alignment, 0u);
      hakmem_free(other);
    }
  }
}

TEST(AlignedAllocation, BadAlignmentsAreRejected) {
  void *block = reinterpret_cast<void *>(0x1);
  EXPECT_EQ(hakmem_posix_memalign(&block, 0, 10), EINVAL);
  EXPECT_EQ(hakmem_posix_memalign(&block, 24, 10), EINVAL);
  EXPECT_EQ(hakmem_posix_memalign(&block, 4, 10), EINVAL);  // not a multiple of sizeof(void *)
  EXPECT_EQ(block, reinterpret_cast<void *>(0x1));           // untouched on failure
  errno = 0;
  EXPECT_EQ(hakmem_posix_memalign(&block, 64, SIZE_MAX - 100), ENOMEM);
  EXPECT_EQ(errno, ENOMEM) << "as glibc, errno says it too";
  // memalign: 2^63 is a valid alignment that no memory can meet (ENOMEM, as glibc); past it the
  // alignment cannot be rounded up to a power of two (EINVAL).
  errno = 0;
  EXPECT_EQ(hakmem_memalign(size_t{1} << 63, 10), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hakmem_memalign((size_t{1} << 63) + 1, 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(hakmem_posix_memalign(&block, size_t{1} << 63, 10), ENOMEM);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hakmem_aligned_alloc(3, 10), nullptr);
  EXPECT_EQ(errno, EINVAL);
  // memalign rounds a non-power of two up, as glibc does.
  void *rounded = hakmem_memalign(24, 10);
  ASSERT_NE(rounded, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(rounded) % 32, 0u);
  hakmem_free(rounded);
}

TEST(PageAlignedAllocation, VallocAndPvalloc) {
  long page = sysconf(_SC_PAGESIZE);
  void *v = hakmem_valloc(10);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v) % page, 0u);
  hakmem_free(v);
  void *p = hakmem_pvalloc(page + 1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % page, 0u);
  EXPECT_GE(hakmem_malloc_usable_size(p), static_cast<size_t>(2 * page));
  hakmem_free(p);
  errno = 0;
  EXPECT_EQ(hakmem_pvalloc(SIZE_MAX - 10), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(UsableSize, NullIsZero) { EXPECT_EQ(hakmem_malloc_usable_size(nullptr), 0u); }

TEST(Ownership, ForeignPointersAreNotOurs) {
  int on_stack = 0;
  static int in_data;
  EXPECT_FALSE(hakmem_owns(&on_stack));
  EXPECT_FALSE(hakmem_owns(&in_data));
  void *glibc = malloc(100);  // this test binary's malloc is glibc's
  EXPECT_FALSE(hakmem_owns(glibc));
  free(glibc);
}

TEST(FreeDeathTest, ForeignAndInteriorPointersAbortWithAMessage) {
  int on_stack = 0;
  EXPECT_DEATH(hakmem_free(&on_stack), "hakmem: free\\(\\): invalid pointer 0x");
  char *tiny = static_cast<char *>(hakmem_malloc(64));
  EXPECT_DEATH(hakmem_free(tiny + 16), "hakmem: free\\(\\): invalid pointer");
  char *mid = static_cast<char *>(hakmem_malloc(5000));
  EXPECT_DEATH(hakmem_free(mid + 8), "hakmem: free\\(\\): invalid pointer");
  char *huge = static_cast<char *>(hakmem_malloc(4 << 20));
  EXPECT_DEATH(hakmem_free(huge + 4096), "hakmem: free\\(\\): invalid pointer");
  EXPECT_DEATH(hakmem_realloc(&on_stack, 10), "hakmem: realloc\\(\\): invalid pointer");
  EXPECT_DEATH(hakmem_malloc_usable_size(&on_stack), "hakmem: malloc_usable_size\\(\\): invalid pointer");
  hakmem_free(tiny);
  hakmem_free(mid);
  hakmem_free(huge);
}

// A pointer into a SuperSlab slot that no layer holds (free goes through its own reporting call
// there, reached by a tail jump).
TEST(FreeDeathTest, PointerIntoAnUnheldSlotAbortsWithAMessage) {
  void *tiny = hakmem_malloc(64);
  ss_superslab *superslab = ss_registry_find(tiny);
  ASSERT_NE(superslab, nullptr);
  char *unheld = nullptr;
  for (unsigned i = 1; i < SS_SLABS_PER_SUPERSLAB && !unheld; i++) {
    unsigned head_byte = superslab->slab_heads[i];
    if (!(head_byte & SS_HEAD_SMALL_KIND) && !ace_owns_head(ss_head_from_byte(superslab, head_byte)))
      unheld = reinterpret_cast<char *>(superslab) + (size_t{i} << SS_SLAB_SIZE_LOG2);
  }
  ASSERT_NE(unheld, nullptr) << "a fresh SuperSlab has free slots";
  EXPECT_DEATH(hakmem_free(unheld + 64), "hakmem: free\\(\\): invalid pointer 0x");
  // realloc and malloc_usable_size refuse it too: neither front's block-start check passes there.
  EXPECT_DEATH(hakmem_realloc(unheld + 64, 10), "hakmem: realloc\\(\\): invalid pointer 0x");
  EXPECT_DEATH(hakmem_malloc_usable_size(unheld + 64), "hakmem: malloc_usable_size\\(\\): invalid pointer 0x");
  hakmem_free(tiny);
}

TEST(MallocTrim, ReturnsFreedMemory) {
  std::vector<void *> blocks;
  for (int i = 0; i < 200; i++) blocks.push_back(hakmem_malloc(200000));
  for (void *block : blocks) memset(block, 1, 200000);
  for (void *block : blocks) hakmem_free(block);
  hakmem_stats before;
  hakmem_stats_get(&before);
  EXPECT_EQ(hakmem_malloc_trim(0), 1);
  hakmem_stats after;
  hakmem_stats_get(&after);
  EXPECT_LT(after.bytes_committed, before.bytes_committed);
}

// fork() from a program with four allocating threads, repeatedly: each child allocates on every
// range and exits 0 (the fork handlers keep the allocator's locks consistent in the child).
TEST(Fork, ChildOfAThreadedProgramCanAllocate) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&stop, t] {
      std::vector<void *> held;
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t size : {(size_t)24, (size_t)3000, (size_t)70000, (size_t)(1 << 20)}) {
          void *block = hakmem_malloc(size + t);
          memset(block, t, size);
          held.push_back(block);
        }
        if (held.size() > 64) {
          for (void *block : held) hakmem_free(block);
          held.clear();
        }
      }
      for (void *block : held) hakmem_free(block);
    });
  for (int round = 0; round < 20; round++) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (int i = 0; i < 1000; i++) {
        for (size_t size : BoundarySizes()) {
          if (size > (1 << 20)) continue;
          void *block = hakmem_malloc(size);
          if (!block && size) _exit(2);
          memset(block, 5, size);
          hakmem_free(block);
        }
      }
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "round " << round;
    ASSERT_EQ(WEXITSTATUS(status), 0) << "round " << round;
  }
  stop = true;
  for (auto &thread : threads) thread.join();
}

// realloc moves a block growing past ACE_ARENA_MIN_SIZE into the huge arena, where it grows and
// shrinks without copies; malloc of the same size stays in a size class.
TEST(Realloc, BlocksGrownPastTheArenaMinimumMoveToTheArena) {
  void *plain = hakmem_malloc(200000);
  EXPECT_NE(ss_registry_lookup(plain), nullptr) << "malloc of 200,000 B is a mid/large class block";
  hakmem_free(plain);

  ace_stats before, after;
  ace_stats_get(&before);
  void *block = hakmem_malloc(100000);
  ASSERT_NE(ss_registry_lookup(block), nullptr);
  Fill(block, 100000, 3);
  block = hakmem_realloc(block, 200000);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(ss_registry_lookup(block), nullptr) << "grown by realloc: an arena block";
  EXPECT_EQ(ace_huge_usable_size(block), 200704u) << "page-rounded, not a class size (229,376)";
  ASSERT_TRUE(Holds(block, 100000, 3));
  Fill(block, 200000, 4);
  block = hakmem_realloc(block, 700000);
  ASSERT_TRUE(Holds(block, 200000, 4));
  Fill(block, 700000, 5);
  ace_stats_get(&after);
  EXPECT_EQ(after.arena_grows_in_place + after.arena_moves - before.arena_grows_in_place - before.arena_moves, 1u);
  // Shrinking while above the minimum stays in place; below it, the block moves to a class.
  void *same = hakmem_realloc(block, 300000);
  EXPECT_EQ(same, block);
  ASSERT_TRUE(Holds(same, 300000, 5));
  void *small = hakmem_realloc(same, 100000);
  ASSERT_NE(small, nullptr);
  EXPECT_NE(ss_registry_lookup(small), nullptr);
  ASSERT_TRUE(Holds(small, 100000, 5));
  hakmem_free(small);
}

// A class block resized within its size keeps its place while the new size uses more than half of
// it (se_resize_in_place), in both fronts; a deeper shrink moves it to a smaller class, and a
// buffer that crosses a class boundary back and forth by a few bytes moves only once.
TEST(Realloc, ClassBlocksStayInPlaceWhileMoreThanHalfIsUsed) {
  struct Case {
    size_t first, grown_in_class, shrunk_in_place, shrunk_past_half;
  };
  // 100 B: the 112 B class (half: 56); 3,000 B: ACE's 3,072 B class (half: 1,536).
  for (Case c : {Case{100, 112, 57, 56}, Case{3000, 3072, 1537, 1536}}) {
    void *block = hakmem_malloc(c.first);
    ASSERT_NE(block, nullptr);
    Fill(block, c.first, 9);
    EXPECT_EQ(hakmem_realloc(block, c.grown_in_class), block) << c.first;
    EXPECT_EQ(hakmem_realloc(block, c.shrunk_in_place), block) << c.first << " -> " << c.shrunk_in_place;
    EXPECT_EQ(hakmem_realloc(block, c.grown_in_class), block) << "and back: no move";
    void *moved = hakmem_realloc(block, c.shrunk_past_half);
    ASSERT_NE(moved, nullptr);
    EXPECT_NE(moved, block) << c.first << " -> " << c.shrunk_past_half << ": a smaller class";
    EXPECT_LT(hakmem_malloc_usable_size(moved), c.grown_in_class);
    ASSERT_TRUE(Holds(moved, c.shrunk_past_half, 9));
    hakmem_free(moved);
  }
  // The smallest class holds anything down to 1 B in place.
  void *smallest = hakmem_malloc(16);
  EXPECT_EQ(hakmem_realloc(smallest, 1), smallest);
  hakmem_free(smallest);
}

// A class block that must move to grow gets a quarter more room than it had (so a block grown a
// few bytes at a time moves a logarithmic number of times); one that grows by a quarter or more at
// once gets the class of what it asked for; a tiny request stays tiny.
TEST(Realloc, GrowingMovesTakeAQuarterMoreRoom) {
  struct Case {
    size_t first, grown;
  };
  // 200 B (224 B class) to 230 B: at least 280 B; 3,000 B (3,072 B class) to 3,100 B: at least
  // 3,840 B; 20,000 B (20,480 B class) to 20,500: at least 25,600 B.
  for (Case c : {Case{200, 230}, Case{3000, 3100}, Case{20000, 20500}}) {
    void *block = hakmem_malloc(c.first);
    ASSERT_NE(block, nullptr);
    size_t old_usable = hakmem_malloc_usable_size(block);
    ASSERT_LT(old_usable, c.grown) << "the case must move";
    Fill(block, c.first, 5);
    void *moved = hakmem_realloc(block, c.grown);
    ASSERT_NE(moved, nullptr);
    EXPECT_NE(moved, block);
    EXPECT_GE(hakmem_malloc_usable_size(moved), old_usable + old_usable / 4) << c.first << " -> " << c.grown;
    EXPECT_TRUE(Holds(moved, c.first, 5));
    // The room is used in place: growing into it moves nothing.
    EXPECT_EQ(hakmem_realloc(moved, old_usable + old_usable / 4), moved);
    hakmem_free(moved);
  }
  // A growth of a quarter or more at once: the class of the request, no more.
  void *block = hakmem_malloc(100);
  void *doubled = hakmem_realloc(block, 400);
  ASSERT_NE(doubled, nullptr);
  EXPECT_EQ(hakmem_malloc_usable_size(doubled), 448u) << "the 448 B class of 400 B";
  hakmem_free(doubled);
  // Near the top of the tiny range the room stops at 1 KiB: the block stays tiny.
  void *tiny = hakmem_malloc(800);  // the 896 B class; a quarter more would be 1,120 B
  ASSERT_EQ(hakmem_malloc_usable_size(tiny), 896u);
  void *grown = hakmem_realloc(tiny, 900);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(hakmem_malloc_usable_size(grown), 1024u);
  hakmem_free(grown);
}

TEST(Stats, WritesJsonWithTheCounters) {
  void *block = hakmem_malloc(2 << 20);
  hakmem_free(block);
  // Mid blocks of 3,000 B (class 3072) on a thread that exits: its bin hits are folded in at exit.
  std::thread([] {
    std::vector<void *> blocks;
    for (int round = 0; round < 2; round++) {
      for (int i = 0; i < 8; i++) blocks.push_back(hakmem_malloc(3000));
      for (void *mid : blocks) hakmem_free(mid);
      blocks.clear();
    }
  }).join();
  std::string text = hakmem_testing::TextWrittenTo([](int fd) { hakmem_stats_write(fd, 1); });
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.front(), '{');
  EXPECT_NE(text.find("\"os.mmap_calls\": "), std::string::npos) << text;
  EXPECT_NE(text.find("\"process.peak_rss_kib\": "), std::string::npos) << text;
  // Per-class ACE counters, named by class size, and only for classes that were used.
  EXPECT_NE(text.find("\"ace.class3072.hits\": "), std::string::npos) << text;
  EXPECT_EQ(text.find("\"ace.class393216.hits\": "), std::string::npos) << text;
  hakmem_stats stats;
  hakmem_stats_get(&stats);
  EXPECT_GT(stats.os_mmap_calls, 0u);
}

}  // namespace
