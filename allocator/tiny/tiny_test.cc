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

// A burst of frees (more in a row than twice what the bin holds) gives the bin back to its slabs
// and sends the rest of the burst there too: the slabs empty and the allocations after the burst
// come back in address order, one adjacent block after another, as a fresh carve does. The next
// refill opens the bin again. Before, the bin kept the burst's first blocks, their slabs could not
// empty, and the blocks came back in the reverse order of the frees.
TEST(Tiny, ABurstOfFreesEmptiesSlabsThatComeBackInAddressOrder) {
  const size_t size = 64;
  const unsigned class_index = tiny_size_to_class(size);
  std::thread([&] {
    constexpr int kBlocks = 3000;  // about three slabs of 64 B blocks
    std::vector<void *> blocks;
    for (int i = 0; i < kBlocks; i++) blocks.push_back(tiny_alloc(size));
    const uint32_t capacity = tiny_bin_of(class_index)->capacity;
    ASSERT_GT(capacity, 0u);
    ASSERT_LT(capacity, uint32_t{kBlocks});
    tiny_class_stats before = Totals(class_index);
    for (void *block : blocks) Free(block);  // in allocation order, as a queue drains
    tiny_class_stats after = Totals(class_index);
    EXPECT_GE(after.burst_flushes - before.burst_flushes, 1u);
    EXPECT_EQ(tiny_bin_of(class_index)->count, 0u) << "every block went back to its slab";
    EXPECT_EQ(tiny_bin_of(class_index)->capacity, 0u) << "closed to frees until the next refill";
    for (int i = 0; i < kBlocks; i++) blocks[i] = tiny_alloc(size);
    EXPECT_EQ(tiny_bin_of(class_index)->capacity, capacity) << "the refill opened the bin again";
    int adjacent = 0;
    for (int i = 1; i < kBlocks; i++)
      if (static_cast<char *>(blocks[i]) - static_cast<char *>(blocks[i - 1]) == static_cast<long>(size)) adjacent++;
    EXPECT_GE(adjacent, kBlocks * 9 / 10) << "the emptied slabs were carved again in address order";
    for (int i = 0; i < kBlocks; i++) Fill(blocks[i], size, static_cast<unsigned>(i));
    for (int i = 0; i < kBlocks; i++) ASSERT_TRUE(Verify(blocks[i], size, static_cast<unsigned>(i)));
    for (void *block : blocks) Free(block);
  }).join();
}

// Frees that fill the bin once and then give way to allocations are no burst: the bin takes a
// second capacity's worth on probation, flushes nothing, and the refill after it gives the bin its
// own capacity back.
TEST(Tiny, ABinFilledOnceIsOnProbationNotFlushed) {
  const size_t size = 64;
  const unsigned class_index = tiny_size_to_class(size);
  std::thread([&] {
    std::vector<void *> blocks;
    for (int i = 0; i < 2000; i++) blocks.push_back(tiny_alloc(size));
    se_bin *bin = tiny_bin_of(class_index);
    const uint32_t capacity = bin->capacity;
    ASSERT_GT(capacity, 0u);
    tiny_class_stats before = Totals(class_index);
    size_t freed = 0;
    while (bin->count < capacity) Free(blocks[freed++]);
    for (int i = 0; i < 10; i++) Free(blocks[freed++]);  // past the full bin
    EXPECT_EQ(bin->capacity, capacity * 2) << "on probation";
    EXPECT_EQ(bin->count, capacity + 10) << "the bin took the frees past its capacity";
    EXPECT_EQ(Totals(class_index).burst_flushes, before.burst_flushes) << "no burst yet";
    std::vector<void *> again;
    while (Totals(class_index).refills == before.refills) {
      again.push_back(tiny_alloc(size));
      ASSERT_LT(again.size(), size_t{capacity} * 3) << "no refill";
    }
    EXPECT_EQ(bin->capacity, capacity) << "the refill ended the probation";
    tiny_class_stats after = Totals(class_index);
    EXPECT_EQ(after.burst_flushes, before.burst_flushes);
    EXPECT_EQ(after.blocks_flushed, before.blocks_flushed) << "nothing was flushed";
    for (void *block : again) Free(block);
    for (size_t i = freed; i < blocks.size(); i++) Free(blocks[i]);
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
