#include "allocator/midlarge/ace.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "allocator/base/config.h"
#include "allocator/base/stats.h"
#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"
#include "gtest/gtest.h"

extern "C" char **environ;

namespace {

#if defined(HK_DEBUG) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSlow = true;  // sanitizers and debug builds: scale the work down
#else
constexpr bool kSlow = false;
#endif

// Blocks above ACE_ARENA_BLOCK_MAX (32 MiB) get their own mappings and the mapping cache.
constexpr size_t kOwnMapping = size_t{33} << 20;
static_assert(kOwnMapping > ACE_ARENA_BLOCK_MAX, "an own mapping");

// Fills `size` bytes with a pattern from the seed; touching every page of big blocks would be
// slow, so big blocks get the pattern at both ends and every 4 KiB.
void Fill(void *block, size_t size, uint32_t seed) {
  unsigned char *bytes = static_cast<unsigned char *>(block);
  if (size <= 65536) {
    for (size_t i = 0; i < size; i++) bytes[i] = static_cast<unsigned char>(i * 7 + seed);
    return;
  }
  for (size_t i = 0; i < 4096; i++) bytes[i] = static_cast<unsigned char>(i * 7 + seed);
  for (size_t i = 4096; i < size; i += 4096) bytes[i] = static_cast<unsigned char>(i * 7 + seed);
  for (size_t i = size - 64; i < size; i++) bytes[i] = static_cast<unsigned char>(i * 7 + seed);
}

bool Verify(const void *block, size_t size, uint32_t seed) {
  const unsigned char *bytes = static_cast<const unsigned char *>(block);
  auto at = [&](size_t i) { return bytes[i] == static_cast<unsigned char>(i * 7 + seed); };
  if (size <= 65536) {
    for (size_t i = 0; i < size; i++)
      if (!at(i)) return false;
    return true;
  }
  for (size_t i = 0; i < 4096; i++)
    if (!at(i)) return false;
  for (size_t i = 4096; i < size; i += 4096)
    if (!at(i)) return false;
  for (size_t i = size - 64; i < size; i++)
    if (!at(i)) return false;
  return true;
}

// What the front door does for free / usable_size / realloc.
void Free(void *block) {
  ss_slab *slab = ss_registry_lookup(block);
  if (slab) {
    ASSERT_TRUE(ace_owns_slab(slab)) << block;
    ss_slab *head = ss_registry_lookup_head(block);
    ASSERT_EQ(head, ss_slab_head(slab)) << block;
    ASSERT_TRUE(ace_owns_head(head)) << block;
    ace_free(block, head, "free");
  } else {
    ASSERT_EQ(ace_huge_free(block), 1) << block;
  }
}

size_t Usable(void *block) {
  ss_slab *slab = ss_registry_lookup(block);
  return slab ? ace_usable_size(block, slab) : ace_huge_usable_size(block);
}

void *Realloc(void *block, size_t old_size, size_t new_size) {
  ss_slab *slab = ss_registry_lookup(block);
  void *resized = ace_resize(block, slab, new_size);
  if (resized) return resized;
  void *moved = ace_alloc(new_size);
  if (!moved) return nullptr;
  memcpy(moved, block, std::min(old_size, new_size));
  Free(block);
  return moved;
}

ace_stats Stats() {
  ace_stats stats;
  ace_stats_get(&stats);
  return stats;
}

uint64_t ClassTotal(uint64_t ace_class_stats::*field) {
  ace_stats stats = Stats();
  uint64_t total = 0;
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) total += stats.classes[c].*field;
  return total;
}

// Loads the test's environment plus `extra` (NAME=value strings) into the option table.
class ScopedConfig {
 public:
  explicit ScopedConfig(std::vector<std::string> extra) : strings_(std::move(extra)) {
    for (char **e = environ; *e; e++) strings_.push_back(*e);
    for (auto &s : strings_) pointers_.push_back(&s[0]);
    pointers_.push_back(nullptr);
    hk_config_load(pointers_.data());
  }
  ~ScopedConfig() { hk_config_load(environ); }

 private:
  std::vector<std::string> strings_;
  std::vector<char *> pointers_;
};

[[maybe_unused]] size_t RssBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// ---- Classes ---------------------------------------------------------------------------------

TEST(AceClasses, EverySizeFitsWithBoundedWaste) {
  for (unsigned c = 1; c < ACE_CLASS_COUNT; c++) EXPECT_LT(ace_class_size(c - 1), ace_class_size(c));
  EXPECT_EQ(ace_class_size(ACE_CLASS_COUNT - 1), ACE_HUGE_THRESHOLD);
  for (size_t size = ACE_MIN_SIZE; size <= ACE_HUGE_THRESHOLD; size++) {
    unsigned c = ace_size_to_class(size);
    ASSERT_LT(c, static_cast<unsigned>(ACE_CLASS_COUNT));
    size_t block = ace_class_size(c);
    ASSERT_GE(block, size);
    if (c > 0) {
      ASSERT_LT(ace_class_size(c - 1), size) << size;
    }
    // Documented bound: a block is less than 1.125 x the request up to 8 KiB, 1.25 x above.
    if (size <= 8192) {
      ASSERT_LT(block * 8, size * 9) << size;
    } else {
      ASSERT_LT(block * 4, size * 5) << size;
    }
  }
}

TEST(AceClasses, ReciprocalsDecideBlockStartsExactly) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    uint64_t size = ace_class_size(c);
    ASSERT_EQ(ace_class_reciprocal[c], UINT64_MAX / size + 1) << c;
    EXPECT_EQ(ace_size_to_class(size), c);
    // offset * reciprocal <= reciprocal - 1 (mod 2^64) exactly when size divides the offset.
    for (uint64_t offset : {uint64_t{0}, size - 1, size, size + 1, 7 * size, 7 * size + 16, (uint64_t{1} << 20) - 1}) {
      uint64_t reciprocal = ace_class_reciprocal[c];
      EXPECT_EQ(offset * reciprocal <= reciprocal - 1, offset % size == 0) << c << " " << offset;
    }
  }
}

TEST(AceClasses, SlabGeometryHoldsEnoughBlocksWithLittleTailWaste) {
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    size_t size = ace_class_size(c);
    void *block = ace_alloc(size);
    ASSERT_NE(block, nullptr);
    ss_slab *slab = ss_registry_lookup(block);
    ASSERT_NE(slab, nullptr);
    ASSERT_TRUE(ace_owns_slab(slab));
    ss_slab *head = ss_slab_head(slab);
    EXPECT_EQ(head->block_size, size);
    EXPECT_EQ(ace_usable_size(block, slab), size);
    size_t usable = ss_slab_usable_size(head);
    size_t expected_blocks = std::max<size_t>(2, std::min<size_t>(8, (1u << 20) / size));
    if (head->index != 0) {
      EXPECT_GE(head->capacity, expected_blocks) << "class " << c;
      EXPECT_LE(usable - head->capacity * size, usable / 32) << "class " << c;
    }
    EXPECT_LE(head->span_slabs, ACE_MAX_SPAN_SLOTS);
    Free(block);
  }
}

// ---- Sizes -----------------------------------------------------------------------------------

std::vector<size_t> SweepSizes() {
  std::vector<size_t> sizes;
  for (unsigned c = 0; c < ACE_CLASS_COUNT; c++) {
    size_t b = ace_class_size(c);
    for (size_t s : {b - 1, b, b + 1}) sizes.push_back(s);
  }
  sizes.push_back(ACE_MIN_SIZE);
  size_t top = kSlow ? (size_t{16} << 20) : (size_t{64} << 20);
  for (size_t s = ACE_HUGE_THRESHOLD; s <= top; s *= 2)
    for (size_t d : {s - 4097, s - 1, s, s + 1, s + 4097}) sizes.push_back(d);
  for (double s = ACE_MIN_SIZE; s <= static_cast<double>(top); s *= 1.37) sizes.push_back(static_cast<size_t>(s));
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::remove_if(sizes.begin(), sizes.end(), [&](size_t s) { return s < ACE_MIN_SIZE || s > top; }), sizes.end());
  return sizes;
}

TEST(AceSizes, EverySizeAllocatesHoldsDataAndFrees) {
  std::vector<std::pair<void *, size_t>> live;
  uint32_t seed = 1;
  for (size_t size : SweepSizes()) {
    void *block = ace_alloc(size);
    ASSERT_NE(block, nullptr) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % 16, 0u);
    EXPECT_GE(Usable(block), size);
    Fill(block, size, seed++);
    live.push_back({block, size});
  }
  seed = 1;
  for (auto &[block, size] : live) EXPECT_TRUE(Verify(block, size, seed++)) << size;
  for (auto &[block, size] : live) Free(block);
}

TEST(AceSizes, CallocIsZero) {
  for (size_t size : SweepSizes()) {
    for (int round = 0; round < 2; round++) {  // the second round reuses dirty blocks
      unsigned char *block = static_cast<unsigned char *>(ace_calloc(size));
      ASSERT_NE(block, nullptr);
      for (size_t i = 0; i < size; i += (size > 65536 ? 4093 : 1)) ASSERT_EQ(block[i], 0) << size << " @" << i;
      ASSERT_EQ(block[size - 1], 0);
      memset(block, 0xA5, size);
      Free(block);
    }
  }
}

// ---- Resize ----------------------------------------------------------------------------------

TEST(AceResize, AcrossClassBoundariesKeepsContent) {
  std::vector<size_t> sizes = SweepSizes();
  size_t size = ACE_MIN_SIZE;
  void *block = ace_alloc(size);
  Fill(block, size, 9);
  for (size_t next : sizes) {  // grow through every boundary
    block = Realloc(block, size, next);
    ASSERT_NE(block, nullptr);
    ASSERT_TRUE(Verify(block, std::min(size, next), 9)) << size << " -> " << next;
    Fill(block, next, 9);
    size = next;
  }
  std::reverse(sizes.begin(), sizes.end());
  for (size_t next : sizes) {  // and shrink back
    block = Realloc(block, size, next);
    ASSERT_NE(block, nullptr);
    ASSERT_TRUE(Verify(block, next, 9)) << size << " -> " << next;
    size = next;
  }
  Free(block);
}

TEST(AceResize, OwnMappingGrowsAndShrinksWithoutCopying) {
  size_t size = kOwnMapping;
  void *block = ace_alloc(size);
  Fill(block, size, 3);
  uint64_t remaps = Stats().huge_remaps;
  size_t top = kSlow ? (size_t{80} << 20) : (size_t{160} << 20);
  for (size_t next = size + 12345; next <= top; next = next * 3 / 2) {
    void *grown = ace_resize(block, nullptr, next);
    ASSERT_NE(grown, nullptr) << next;  // mremap never needs the caller to copy
    ASSERT_TRUE(Verify(grown, size, 3));
    Fill(grown, next, 3);
    EXPECT_GE(ace_huge_usable_size(grown), next);
    block = grown;
    size = next;
  }
  EXPECT_GT(Stats().huge_remaps, remaps);
  size_t shrunk = 700 << 10;
  ASSERT_EQ(ace_resize(block, nullptr, shrunk), block);
  const unsigned char *bytes = static_cast<const unsigned char *>(block);
  for (size_t i = 0; i < shrunk; i += (i < 4096 ? 1 : 4096))
    ASSERT_EQ(bytes[i], static_cast<unsigned char>(i * 7 + 3)) << i;
  EXPECT_LT(ace_huge_usable_size(block), size);
  EXPECT_EQ(ace_resize(block, nullptr, 5000), nullptr);  // much smaller: a mid block instead
  EXPECT_EQ(ace_huge_free(block), 1);
}

// ---- Alignment -------------------------------------------------------------------------------

TEST(AceAligned, EveryPowerOfTwoAlignmentUpTo64MiB) {
  const size_t sizes[] = {1, 100, 1025, 5000, 40000, 300000, 600000, 3 << 20};
  for (size_t alignment = 16; alignment <= (size_t{64} << 20); alignment *= 2) {
    for (size_t size : sizes) {
      void *block = ace_alloc_aligned(alignment, size);
      ASSERT_NE(block, nullptr) << alignment << " " << size;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % alignment, 0u) << alignment << " " << size;
      EXPECT_GE(Usable(block), size);
      Fill(block, size, 5);
      EXPECT_TRUE(Verify(block, size, 5));
      // realloc keeps working on aligned blocks
      void *resized = Realloc(block, size, size + 1000);
      ASSERT_NE(resized, nullptr);
      EXPECT_TRUE(Verify(resized, size, 5));
      Free(resized);
    }
  }
}

// ---- Cross-thread frees ----------------------------------------------------------------------

void CrossThread(int threads) {
  const int per_thread = kSlow ? 300 : 3000;
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::pair<void *, size_t>> queue;
  int producers_done = 0;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&, t] {
      std::mt19937 random(t);
      if (t % 2 == 0) {  // producer
        for (int i = 0; i < per_thread; i++) {
          size_t kind = random() % 16;
          size_t size = kind < 10 ? 1025 + random() % 31744 : kind < 15 ? 32768 + random() % 491520 : 600000 + random() % 3000000;
          void *block = ace_alloc(size);
          Fill(block, std::min<size_t>(size, 4096), static_cast<uint32_t>(size));
          std::lock_guard<std::mutex> lock(mutex);
          queue.push_back({block, size});
          ready.notify_one();
        }
        std::lock_guard<std::mutex> lock(mutex);
        producers_done++;
        ready.notify_all();
      } else {  // consumer: frees other threads' blocks, allocates a few of its own
        for (;;) {
          std::pair<void *, size_t> item;
          {
            std::unique_lock<std::mutex> lock(mutex);
            ready.wait(lock, [&] { return !queue.empty() || producers_done == (threads + 1) / 2; });
            if (queue.empty()) break;
            item = queue.front();
            queue.pop_front();
          }
          EXPECT_TRUE(Verify(item.first, std::min<size_t>(item.second, 4096), static_cast<uint32_t>(item.second)));
          Free(item.first);
          void *own = ace_alloc(item.second);
          Free(own);
        }
      }
      se_thread_flush();
    });
  }
  for (auto &w : workers) w.join();
}

TEST(AceThreads, CrossThreadFreesTwoThreads) {
  uint64_t before = ClassTotal(&ace_class_stats::remote_frees);
  CrossThread(2);
  EXPECT_GT(ClassTotal(&ace_class_stats::remote_frees) + ClassTotal(&ace_class_stats::slabs_adopted), before);
}

TEST(AceThreads, CrossThreadFreesEightThreads) { CrossThread(8); }

// ---- Adaptive caches -------------------------------------------------------------------------

TEST(AceAdaptive, CachesGrowOnMissesAndShrinkWhenIdle) {
  ScopedConfig config({"HAKMEM_ACE_EPOCH_MS=10", "HAKMEM_ACE_IDLE_MS=100000"});
  se_thread_flush();
  uint64_t grows = ClassTotal(&ace_class_stats::capacity_grows);
  const size_t size = 3000;
  unsigned c = ace_size_to_class(size);
  std::vector<void *> blocks;
  for (int round = 0; round < 20; round++) {  // bursts bigger than the bin: misses, overflows
    for (int i = 0; i < 200; i++) blocks.push_back(ace_alloc(size));
    for (void *b : blocks) Free(b);
    blocks.clear();
  }
  EXPECT_GT(ClassTotal(&ace_class_stats::capacity_grows), grows);
  EXPECT_GT(ace_bin_of(c)->capacity, 8u);
  uint32_t grown = ace_bin_of(c)->capacity;
  // Class c goes quiet; another class keeps missing, which runs the epoch ticks.
  uint64_t shrinks = ClassTotal(&ace_class_stats::capacity_shrinks);
  for (int round = 0; round < 30; round++) {
    usleep(12000);
    for (int i = 0; i < 40; i++) blocks.push_back(ace_alloc(200000));
    for (void *b : blocks) Free(b);
    blocks.clear();
  }
  EXPECT_GT(ClassTotal(&ace_class_stats::capacity_shrinks), shrinks);
  EXPECT_LT(ace_bin_of(c)->capacity, grown);
  ace_stats stats = Stats();
  EXPECT_LE(stats.budget_used, stats.budget_limit);
  se_thread_flush();
}

TEST(AceAdaptive, BudgetBoundsGrowth) {
  ScopedConfig config({"HAKMEM_ACE_CACHE_BUDGET=1", "HAKMEM_ACE_CACHE_SHARE=0"});
  se_thread_flush();
  uint64_t denied = ClassTotal(&ace_class_stats::budget_denied);
  std::vector<void *> blocks;
  for (int i = 0; i < 100; i++) blocks.push_back(ace_alloc(9000));
  for (void *b : blocks) Free(b);
  EXPECT_GT(ClassTotal(&ace_class_stats::budget_denied), denied);
  EXPECT_LE(ace_bin_of(ace_size_to_class(9000))->capacity, 8u);
  se_thread_flush();
}

// A class the budget refused does not ask again before its epoch ends while the limit stays where
// it was: the budget then gains room only when classes shrink or go idle at epoch ends, or threads
// exit.
TEST(AceAdaptive, ARefusedClassAsksAgainOnlyInTheNextEpoch) {
  ScopedConfig config({"HAKMEM_ACE_CACHE_BUDGET=1", "HAKMEM_ACE_CACHE_SHARE=0", "HAKMEM_ACE_EPOCH_MS=600000"});
  se_thread_flush();
  uint64_t denied = ClassTotal(&ace_class_stats::budget_denied);
  std::vector<void *> blocks;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 50; i++) blocks.push_back(ace_alloc(9000));
    for (void *b : blocks) Free(b);
    blocks.clear();
  }
  // Hundreds of misses and overflows, one refusal.
  EXPECT_EQ(ClassTotal(&ace_class_stats::budget_denied), denied + 1);
  se_thread_flush();
}

// The limit is HAKMEM_ACE_CACHE_BUDGET or HAKMEM_ACE_CACHE_SHARE percent of the committed bytes,
// whichever is more.
TEST(AceAdaptive, BudgetFollowsTheCommittedBytes) {
  ScopedConfig config({"HAKMEM_ACE_CACHE_BUDGET=1", "HAKMEM_ACE_CACHE_SHARE=50"});
  uint64_t before = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  uint64_t limit = Stats().budget_limit;
  uint64_t after = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  ASSERT_GT(before, 2u);  // the test's own heap
  EXPECT_GE(limit, std::min(before, after) / 100 * 50);
  EXPECT_LE(limit, std::max(before, after) / 100 * 50);
  {
    ScopedConfig fixed({"HAKMEM_ACE_CACHE_BUDGET=1", "HAKMEM_ACE_CACHE_SHARE=0"});
    EXPECT_EQ(Stats().budget_limit, 1u);
  }
  {
    ScopedConfig large({"HAKMEM_ACE_CACHE_BUDGET=64G", "HAKMEM_ACE_CACHE_SHARE=50"});
    EXPECT_EQ(Stats().budget_limit, uint64_t{64} << 30);
  }
}

// A class refused while the limit was low asks again, within the same epoch, once the heap has
// grown the limit past the one that refused it.
TEST(AceAdaptive, ARefusedClassAsksAgainWhenTheHeapGrows) {
  const size_t size = 9000;
  unsigned c = ace_size_to_class(size);
  auto churn = [&] {
    std::vector<void *> blocks;
    for (int round = 0; round < 10; round++) {
      for (int i = 0; i < 50; i++) blocks.push_back(ace_alloc(size));
      for (void *b : blocks) Free(b);
      blocks.clear();
    }
  };
  uint64_t denied = ClassTotal(&ace_class_stats::budget_denied);
  uint64_t grows = ClassTotal(&ace_class_stats::capacity_grows);
  uint32_t refused_capacity;
  std::vector<void *> huge;
  {
    ScopedConfig fixed({"HAKMEM_ACE_CACHE_BUDGET=1", "HAKMEM_ACE_CACHE_SHARE=0", "HAKMEM_ACE_EPOCH_MS=600000"});
    se_thread_flush();
    churn();
    EXPECT_EQ(ClassTotal(&ace_class_stats::budget_denied), denied + 1);
    EXPECT_EQ(ClassTotal(&ace_class_stats::capacity_grows), grows);
    refused_capacity = ace_bin_of(c)->capacity;
  }
  {
    // Now 1 % of the committed bytes, and the heap grown with huge blocks (mapped, never touched)
    // until that leaves room: the same epoch, so only the grown limit lets the class ask again.
    ScopedConfig share({"HAKMEM_ACE_CACHE_BUDGET=1", "HAKMEM_ACE_CACHE_SHARE=1", "HAKMEM_ACE_EPOCH_MS=600000"});
    const size_t huge_size = size_t{64} << 20;
    while (hk_stat_get(HK_STAT_OS_BYTES_COMMITTED) / 100 < Stats().budget_used + (size_t{4} << 20)) {
      void *block = ace_alloc(huge_size);
      ASSERT_NE(block, nullptr);
      huge.push_back(block);
    }
    churn();
    EXPECT_GT(ClassTotal(&ace_class_stats::capacity_grows), grows);
    EXPECT_GT(ace_bin_of(c)->capacity, refused_capacity);
    ace_stats stats = Stats();
    EXPECT_LE(stats.budget_used, stats.budget_limit);
  }
  for (void *block : huge) Free(block);
  se_thread_flush();
}

TEST(AceAdaptive, RssReturnsAfterABurst) {
  ScopedConfig config({"HAKMEM_SS_DECOMMIT_DELAY_MS=20", "HAKMEM_ACE_IDLE_MS=20", "HAKMEM_ACE_EPOCH_MS=10"});
  se_thread_flush();
  sp_trim(1);
#ifdef HK_TSAN
  // TSan's shadow of the touched pages stays resident after they are decommitted, so RSS says
  // nothing there: the OS layer's committed-bytes gauge stands in for it.
  auto resident = [] { return static_cast<size_t>(hk_stat_get(HK_STAT_OS_BYTES_COMMITTED)); };
#else
  auto resident = [] { return RssBytes(); };
#endif
  size_t before = resident();
  const size_t burst = kSlow ? (size_t{128} << 20) : (size_t{1} << 30);
  std::vector<void *> blocks;
  std::mt19937 random(7);
  size_t total = 0;
  while (total < burst) {
    size_t size = 2048 + random() % (400 << 10);
    void *block = ace_alloc(size);
    ASSERT_NE(block, nullptr);
    memset(block, 1, size);
    blocks.push_back(block);
    total += size;
  }
  EXPECT_GT(resident(), before + burst / 2);
  for (void *b : blocks) Free(b);
  usleep(60000);
  size_t released = ace_trim(0);
  usleep(60000);  // the pool's decommit delay runs from the release
  sp_trim(0);
  EXPECT_GT(released, 0u);
  size_t after = resident();
  EXPECT_LT(after, before + (kSlow ? (size_t{24} << 20) : (size_t{8} << 20)))
      << "before " << before << " after " << after;
}

// ---- Huge cache ------------------------------------------------------------------------------

TEST(AceHuge, RepeatedOwnMappingsReuseTheCache) {
  ScopedConfig config({"HAKMEM_HUGE_CACHE_MAX_COUNT=8"});
  ace_trim(1);
  ace_stats before = Stats();
  std::mt19937 random(3);
  for (int i = 0; i < 50; i++) {
    size_t size = kOwnMapping + random() % (20 << 20);
    void *block = ace_alloc(size);
    ASSERT_NE(block, nullptr);
    static_cast<char *>(block)[size - 1] = 1;
    EXPECT_EQ(ace_huge_free(block), 1);
  }
  ace_stats after = Stats();
  EXPECT_GE(after.huge_reused - before.huge_reused, 45u);
  EXPECT_LE(after.huge_mapped - before.huge_mapped, 5u);
  EXPECT_EQ(after.arena_committed_reuses + after.arena_uncommitted_allocs,
            before.arena_committed_reuses + before.arena_uncommitted_allocs);  // none went to the arena
}

TEST(AceHuge, CacheIsBoundedByCountAndBytes) {
  {
    ScopedConfig config({"HAKMEM_HUGE_CACHE_MAX_COUNT=2"});
    ace_trim(1);
    ace_stats before = Stats();
    std::vector<void *> blocks;
    for (int i = 0; i < 6; i++) blocks.push_back(ace_alloc(kOwnMapping + i * 8192));
    for (void *b : blocks) EXPECT_EQ(ace_huge_free(b), 1);
    ace_stats after = Stats();
    EXPECT_LE(after.huge_cache_count, 2u);
    EXPECT_GE(after.huge_evicted - before.huge_evicted, 4u);
    EXPECT_GE(after.huge_unmapped - before.huge_unmapped, 4u);
  }
  {
    ScopedConfig config({"HAKMEM_HUGE_CACHE_MAX_BYTES=100M"});
    ace_trim(1);
    std::vector<void *> blocks;
    for (int i = 0; i < 4; i++) blocks.push_back(ace_alloc(kOwnMapping));
    for (void *b : blocks) EXPECT_EQ(ace_huge_free(b), 1);
    EXPECT_LE(Stats().huge_cache_bytes, size_t{100} << 20);
    EXPECT_GE(Stats().huge_cache_bytes, kOwnMapping);
  }
  {
    ScopedConfig config({"HAKMEM_HUGE_CACHE_TTL_MS=10"});
    void *block = ace_alloc(kOwnMapping);
    EXPECT_EQ(ace_huge_free(block), 1);
    usleep(20000);
    ace_stats before = Stats();
    ace_trim(0);
    EXPECT_EQ(Stats().huge_cache_count, 0u);
    EXPECT_GT(Stats().huge_expired, before.huge_expired);
  }
}

// ---- Huge arena (blocks > 512 KiB up to 32 MiB) -----------------------------------------------

TEST(AceArena, FreedPagesServeLaterBlocksOfAnySize) {
  ace_trim(1);
  ace_stats before = Stats();
  std::mt19937 random(5);
  struct Live {
    void *block;
    size_t size;
    uint32_t seed;
  };
  std::vector<Live> live;
  for (uint32_t i = 0; i < 200; i++) {
    if (live.size() < 4) {
      size_t size = (600 << 10) + random() % (8 << 20);
      void *block = ace_alloc(size);
      ASSERT_NE(block, nullptr);
      Fill(block, size, i);
      live.push_back({block, size, i});
    } else {
      size_t k = random() % live.size();
      ASSERT_TRUE(Verify(live[k].block, live[k].size, live[k].seed)) << "block " << k << " lost its data";
      EXPECT_EQ(ace_huge_free(live[k].block), 1);
      live.erase(live.begin() + k);
    }
  }
  for (auto &b : live) EXPECT_EQ(ace_huge_free(b.block), 1);
  ace_stats after = Stats();
  uint64_t reuses = after.arena_committed_reuses - before.arena_committed_reuses;
  uint64_t fresh = after.arena_uncommitted_allocs - before.arena_uncommitted_allocs;
  EXPECT_GE(reuses + fresh, 100u);
  EXPECT_GE(reuses, fresh * 4) << "freed arena pages should serve most later blocks";
  EXPECT_EQ(after.arena_regions_mapped - before.arena_regions_mapped, 1u);  // 4 x 9 MiB fit one region
  EXPECT_EQ(after.huge_mapped, before.huge_mapped);                         // no own mapping
  EXPECT_EQ(after.arena_free_bytes, after.arena_regions * ACE_ARENA_REGION_SIZE);
}

TEST(AceArena, NeighboursCoalesceAndBlocksKeepTheirData) {
  ace_trim(1);
  const size_t mib = size_t{1} << 20;
  void *a = ace_alloc(mib), *b = ace_alloc(mib), *c = ace_alloc(mib);
  ASSERT_NE(c, nullptr);
  // A fresh region is carved from its start: the three blocks are neighbours.
  ASSERT_EQ(static_cast<char *>(b), static_cast<char *>(a) + mib);
  ASSERT_EQ(static_cast<char *>(c), static_cast<char *>(b) + mib);
  Fill(c, mib, 4);
  EXPECT_EQ(ace_huge_free(a), 1);
  EXPECT_EQ(ace_huge_free(b), 1);
  void *d = ace_alloc(2 * mib);  // only the coalesced a+b holds it without fresh pages
  EXPECT_EQ(d, a);
  EXPECT_TRUE(Verify(c, mib, 4));
  EXPECT_EQ(ace_huge_free(c), 1);
  EXPECT_EQ(ace_huge_free(d), 1);
  ace_stats after = Stats();
  EXPECT_EQ(after.arena_free_bytes, after.arena_regions * ACE_ARENA_REGION_SIZE);  // all free again
  // Same-state neighbours merged: at most a committed and a decommitted span per region.
  EXPECT_LE(after.arena_free_spans, 2 * after.arena_regions);
}

TEST(AceArena, ReallocGrowsInPlaceElseMovesWithItsData) {
  ace_trim(1);
  const size_t mib = size_t{1} << 20;
  void *block = ace_alloc(mib);
  Fill(block, mib, 6);
  ace_stats before = Stats();
  void *grown = ace_resize(block, nullptr, 3 * mib);  // the rest of the fresh region follows it
  EXPECT_EQ(grown, block);
  EXPECT_GE(ace_huge_usable_size(grown), 3 * mib);
  EXPECT_EQ(Stats().arena_grows_in_place - before.arena_grows_in_place, 1u);
  void *neighbour = static_cast<char *>(block) + ace_huge_usable_size(grown);
  void *next = ace_alloc(mib);
  EXPECT_EQ(next, neighbour);  // now the block cannot grow in place
  void *moved = ace_resize(grown, nullptr, 6 * mib);
  ASSERT_NE(moved, nullptr);
  EXPECT_NE(moved, block);
  EXPECT_TRUE(Verify(moved, mib, 6));
  EXPECT_EQ(Stats().arena_moves - before.arena_moves, 1u);
  EXPECT_EQ(ace_huge_free(block), 0);  // the old block is gone
  // A deep shrink gives the tail back and keeps the head.
  void *shrunk = ace_resize(moved, nullptr, 600 << 10);
  EXPECT_EQ(shrunk, moved);
  EXPECT_LT(ace_huge_usable_size(shrunk), 2 * mib);
  const unsigned char *bytes = static_cast<const unsigned char *>(shrunk);
  for (size_t i = 0; i < (600 << 10); i += (i < 4096 ? 1 : 4096))
    ASSERT_EQ(bytes[i], static_cast<unsigned char>(i * 7 + 6)) << i;
  EXPECT_EQ(ace_huge_free(shrunk), 1);
  EXPECT_EQ(ace_huge_free(next), 1);
}

// Growing past ACE_ARENA_BLOCK_MAX moves the block to its own mapping with its pages: the data
// arrives, and the arena gets the old range back with no resident page (a copy would leave 24 MiB
// resident there until the TTL).
TEST(AceArena, GrowthPastTheArenaTakesThePagesAlong) {
  ace_trim(1);
  const size_t size = 24 << 20;
  void *block = ace_alloc(size);
  ASSERT_NE(block, nullptr);
  Fill(block, size, 9);
  ace_stats before = Stats();
  size_t rss = RssBytes();
  void *moved = ace_resize(block, nullptr, 40 << 20);
  size_t rss_after = RssBytes();  // before Verify: sanitizers' shadow pages for its reads would count
  ASSERT_NE(moved, nullptr);
  EXPECT_NE(moved, block);
  EXPECT_GE(ace_huge_usable_size(moved), size_t{40} << 20);
  EXPECT_TRUE(Verify(moved, size, 9));
  ace_stats after = Stats();
  EXPECT_EQ(after.arena_moves - before.arena_moves, 1u);
  EXPECT_EQ(ace_huge_free(block), 0);  // the old block is gone
  // Moved, not copied: no new page was faulted in and the arena holds none of the old ones.
  EXPECT_EQ(after.arena_free_committed_bytes, before.arena_free_committed_bytes);
  EXPECT_LT(rss_after, rss + (size_t{4} << 20));
  EXPECT_EQ(after.huge_remaps - before.huge_remaps, 1u);
  // The arena's range reads as zero when it is carved again.
  unsigned char *again = static_cast<unsigned char *>(ace_calloc(size));
  ASSERT_NE(again, nullptr);
  for (size_t i = 0; i < size; i += 4096) ASSERT_EQ(again[i], 0) << i;
  EXPECT_EQ(ace_huge_free(again), 1);
  EXPECT_EQ(ace_huge_free(moved), 1);
}

TEST(AceArena, CallocOverReusedPagesIsZero) {
  ace_trim(1);
  const size_t size = 3 << 20;
  void *dirty = ace_alloc(size);
  memset(dirty, 0xAB, size);
  EXPECT_EQ(ace_huge_free(dirty), 1);
  unsigned char *zeroed = static_cast<unsigned char *>(ace_calloc(size));
  ASSERT_EQ(static_cast<void *>(zeroed), dirty);  // the same pages, reused
  for (size_t i = 0; i < size; i += 512) ASSERT_EQ(zeroed[i], 0) << i;
  EXPECT_EQ(zeroed[size - 1], 0);
  EXPECT_EQ(ace_huge_free(zeroed), 1);
}

TEST(AceArena, AlignmentUpTo1MiBInTheArenaLargerOwnMappings) {
  ace_trim(1);
  ace_stats before = Stats();
  void *small_pad = ace_alloc(700 << 10);  // puts the next block off any 1 MiB boundary
  void *aligned = ace_alloc_aligned(1 << 20, 3 << 20);
  ASSERT_NE(aligned, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) & ((1 << 20) - 1), 0u);
  EXPECT_EQ(Stats().huge_mapped, before.huge_mapped);
  void *wide = ace_alloc_aligned(4 << 20, 3 << 20);
  ASSERT_NE(wide, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(wide) & ((4 << 20) - 1), 0u);
  EXPECT_EQ(Stats().huge_mapped - before.huge_mapped, 1u);
  for (void *b : {small_pad, aligned, wide}) EXPECT_EQ(ace_huge_free(b), 1);
}

TEST(AceArena, BudgetAndTtlGiveMemoryBack) {
  {
    ScopedConfig config({"HAKMEM_HUGE_CACHE_MAX_BYTES=2M"});
    ace_trim(1);
    ace_stats before = Stats();
    std::vector<void *> blocks;
    for (int i = 0; i < 4; i++) {
      blocks.push_back(ace_alloc(1 << 20));
      memset(blocks.back(), 1, 1 << 20);
    }
    for (void *b : blocks) EXPECT_EQ(ace_huge_free(b), 1);
    ace_stats after = Stats();
    EXPECT_LE(after.arena_free_committed_bytes, size_t{2} << 20);
    EXPECT_GT(after.arena_decommits, before.arena_decommits);
  }
  {
    ScopedConfig config({"HAKMEM_HUGE_CACHE_TTL_MS=10"});
    ace_trim(1);
    ace_stats before = Stats();
    void *block = ace_alloc(5 << 20);
    memset(block, 1, 5 << 20);
    EXPECT_EQ(ace_huge_free(block), 1);
    EXPECT_GE(Stats().arena_free_committed_bytes, size_t{5} << 20);
    usleep(80000);
    ace_trim(0);
    ace_stats after = Stats();
    EXPECT_EQ(after.arena_free_committed_bytes, 0u);
    EXPECT_EQ(after.arena_regions, 0u);
    EXPECT_GT(after.arena_regions_unmapped, before.arena_regions_unmapped);
  }
}

TEST(AceHuge, NotAHugeBlock) {
  void *block = ace_alloc(1 << 20);
  EXPECT_EQ(ace_huge_free(static_cast<char *>(block) + 4096), 0);
  EXPECT_EQ(ace_huge_usable_size(static_cast<char *>(block) + 16), 0u);
  int local;
  EXPECT_EQ(ace_huge_free(&local), 0);
  EXPECT_EQ(ace_huge_free(block), 1);
  EXPECT_EQ(ace_huge_free(block), 0);  // freed already
}

// ---- Invalid frees ---------------------------------------------------------------------------

TEST(AceDeathTest, InteriorPointerFreeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void *block = ace_alloc(5000);
  char *interior = static_cast<char *>(block) + 16;
  EXPECT_DEATH(ace_free(interior, ss_registry_lookup_head(interior), "free"), "free\\(\\): invalid pointer");
  void *large = ace_alloc(100000);
  char *inside = static_cast<char *>(large) + 70000;  // in another slot of its span
  EXPECT_DEATH(ace_free(inside, ss_registry_lookup_head(inside), "realloc"), "realloc\\(\\): invalid pointer");
  Free(block);
  Free(large);
}

}  // namespace
