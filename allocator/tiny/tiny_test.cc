#include "allocator/tiny/tiny.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "allocator/base/stats.h"
#include "allocator/superslab/registry.h"
#include "allocator/testing/block_pattern.h"
#include "gtest/gtest.h"

namespace {

using hakmem_testing::Fill;
using hakmem_testing::Verify;

void Free(void *block) {
  ss_slab *slab = ss_registry_lookup(block);
  ASSERT_NE(slab, nullptr);
  ASSERT_TRUE(tiny_owns_slab(slab));
  tiny_free(block, slab, "free");
}

tiny_class_stats Totals(unsigned class_index) {
  std::vector<tiny_class_stats> all(TINY_CLASS_COUNT);
  tiny_stats_get(all.data());
  return all[class_index];
}

TEST(TinySizeClasses, EverySizeFitsAndWasteIsBounded) {
  for (unsigned c = 1; c < TINY_CLASS_COUNT; c++) EXPECT_LT(tiny_class_size[c - 1], tiny_class_size[c]);
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) EXPECT_EQ(tiny_class_size[c] % 16, 0u);
  EXPECT_EQ(tiny_class_size[TINY_CLASS_COUNT - 1], TINY_MAX_SIZE);
  for (size_t size = 0; size <= TINY_MAX_SIZE; size++) {
    unsigned c = tiny_size_to_class(size);
    ASSERT_LT(c, TINY_CLASS_COUNT);
    size_t block = tiny_class_size[c];
    EXPECT_GE(block, size) << size;
    // The smallest class that fits: the class below is too small.
    if (c > 0) {
      EXPECT_LT(tiny_class_size[c - 1], size) << size;
    }
    // Documented bound: at most 15 bytes, or at most 1/5 of the block, of waste.
    size_t waste = block - (size == 0 ? 1 : size);
    EXPECT_TRUE(waste <= 15 || waste * 5 <= block) << "size " << size << " block " << block;
  }
}

// Every byte of a slab, in slot 0 (after the header page) and in a later slot, for every class:
// only block starts pass, checked against a division.
TEST(TinySizeClasses, BlockStartCheckIsExactForEveryOffset) {
  for (unsigned slot : {0u, 5u}) {
    ss_slab slab = {};
    slab.index = static_cast<uint8_t>(slot);
    uint32_t first = slot == 0 ? SS_HEADER_SIZE : 0;
    for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
      uint32_t size = tiny_class_size[c];
      uint32_t capacity = (SS_SLAB_SIZE - first) / size;
      slab.user_tag = tiny_slab_geometry(tiny_class_reciprocal[c], first, (capacity - 1) * size);
      uintptr_t slot_start = (uintptr_t{1} << 40) + uintptr_t{slot} * SS_SLAB_SIZE;
      for (uint32_t offset = 0; offset < SS_SLAB_SIZE; offset++) {
        bool expected = offset >= first && (offset - first) % size == 0 && (offset - first) / size < capacity;
        ASSERT_EQ(tiny_is_block_start(reinterpret_cast<void *>(slot_start + offset), &slab), expected)
            << "class " << c << " slot " << slot << " offset " << offset;
      }
    }
    slab.user_tag = 0;  // a slab the tiny front has not set up: nothing passes
    EXPECT_FALSE(tiny_is_block_start(reinterpret_cast<void *>((uintptr_t{1} << 40) + first), &slab));
  }
}

TEST(Tiny, AllocFreePatternsKeepData) {
  std::mt19937 random(42);
  std::vector<std::pair<void *, size_t>> live;
  for (int round = 0; round < 200000; round++) {
    if (live.empty() || (random() % 3 != 0 && live.size() < 5000)) {
      size_t size = 1 + random() % TINY_MAX_SIZE;
      void *block = tiny_alloc(size);
      ASSERT_NE(block, nullptr);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(block) % 16, 0u);
      ss_slab *slab = ss_registry_lookup(block);
      ASSERT_NE(slab, nullptr);
      ASSERT_GE(tiny_usable_size(slab), size);
      Fill(block, size, static_cast<uint32_t>(size));
      live.emplace_back(block, size);
    } else {
      size_t index = random() % live.size();
      auto [block, size] = live[index];
      ASSERT_TRUE(Verify(block, size, static_cast<uint32_t>(size))) << "block " << block << " size " << size;
      Free(block);
      live[index] = live.back();
      live.pop_back();
    }
  }
  for (auto [block, size] : live) {
    ASSERT_TRUE(Verify(block, size, static_cast<uint32_t>(size)));
    Free(block);
  }
}

TEST(Tiny, UsableSizeIsTheClassSize) {
  for (size_t size : {1, 16, 17, 100, 128, 129, 500, 1000, 1024}) {
    void *block = tiny_alloc(size);
    ss_slab *slab = ss_registry_lookup(block);
    EXPECT_EQ(tiny_usable_size(slab), tiny_class_size[tiny_size_to_class(size)]);
    Free(block);
  }
}

TEST(Tiny, CallocReturnsZeroedBlocks) {
  std::vector<void *> blocks;
  for (int i = 0; i < 20000; i++) {
    size_t size = 1 + (i * 37) % TINY_MAX_SIZE;
    void *dirty = tiny_alloc(size);
    memset(dirty, 0xff, size);
    Free(dirty);  // the next block of this class may be this dirty one
    void *block = tiny_calloc(size);
    ASSERT_NE(block, nullptr);
    const unsigned char *bytes = static_cast<const unsigned char *>(block);
    for (size_t b = 0; b < size; b++) ASSERT_EQ(bytes[b], 0) << "size " << size << " byte " << b;
    memset(block, 0xee, size);
    blocks.push_back(block);
  }
  for (void *block : blocks) Free(block);
}

TEST(TinyDeathTest, InteriorPointerFreeAborts) {
  void *block = tiny_alloc(64);
  char *interior = static_cast<char *>(block) + 8;
  EXPECT_DEATH(tiny_free(interior, ss_registry_lookup(interior), "free"),
               "hakmem: free\\(\\): invalid pointer 0x[0-9a-f]+ \\(not the start of a block\\)");
  Free(block);
}


// A thread's refills of a class start small and double: a thread that allocates a few blocks
// does not take (and at exit give back) half a bin.
TEST(Tiny, RefillsStartSmallAndDouble) {
  const size_t size = 48;
  const unsigned class_index = tiny_size_to_class(size);
  std::thread([&] {
    std::vector<void *> blocks;
    std::vector<uint64_t> batches;  // blocks each refill brought
    tiny_class_stats last = Totals(class_index);
    for (int i = 0; i < 100; i++) {
      blocks.push_back(tiny_alloc(size));
      tiny_class_stats now = Totals(class_index);
      if (now.refills != last.refills) batches.push_back(now.blocks_refilled - last.blocks_refilled);
      last = now;
    }
    ASSERT_GE(batches.size(), 4u);
    EXPECT_LE(batches[0], 4u);
    EXPECT_LE(batches[1], 8u);
    EXPECT_LE(batches[2], 16u);
    uint64_t brought = 0;
    for (uint64_t batch : batches) brought += batch;
    EXPECT_LT(brought, 100u + 64);  // the last batch is at most 64: far less than half a bin (128)
    for (void *block : blocks) Free(block);
  }).join();
}

long ResidentKiB() {
  long pages = 0, resident = 0;
  FILE *file = fopen("/proc/self/statm", "r");
  if (!file) return -1;
  if (fscanf(file, "%ld %ld", &pages, &resident) != 2) resident = -1;
  fclose(file);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Ten thousand short-lived threads, each allocating and freeing a little and handing a few live
// blocks to the next thread, must not grow memory without bound: their slabs are released when
// empty, and abandoned slabs with live blocks are adopted by later threads.
TEST(Tiny, TenThousandShortLivedThreadsKeepMemoryBounded) {
  std::vector<void *> handed;  // live blocks the previous thread left for this one
  auto churn = [&handed](int threads) {
    for (int t = 0; t < threads; t++) {
      std::thread([t, &handed] {
        for (void *block : handed) tiny_free(block, ss_registry_lookup(block), "free");
        handed.clear();
        std::vector<void *> blocks;
        for (int i = 0; i < 50; i++) blocks.push_back(tiny_alloc(16 + (t * 7 + i * 13) % 1000));
        for (size_t i = 0; i < blocks.size(); i++) {
          if (i % 10 == 0) handed.push_back(blocks[i]);
          else tiny_free(blocks[i], ss_registry_lookup(blocks[i]), "free");
        }
      }).join();
    }
  };
  churn(2000);  // warm-up
  long warm = ResidentKiB();
  uint64_t mapped_warm = hk_stat_get(HK_STAT_OS_BYTES_RESERVED);
  churn(10000);
  long after = ResidentKiB();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers keep per-thread state of their own for every thread ever created, so the
  // process RSS grows with the thread count regardless of the allocator: check our mappings only.
  (void)warm;
  (void)after;
#else
  EXPECT_LT(after - warm, 8 * 1024) << "RSS grew from " << warm << " KiB to " << after << " KiB";
#endif
  EXPECT_LE(hk_stat_get(HK_STAT_OS_BYTES_RESERVED), mapped_warm + (4u << 20));
  for (void *block : handed) tiny_free(block, ss_registry_lookup(block), "free");
}

}  // namespace
