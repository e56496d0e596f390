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
#include "gtest/gtest.h"

namespace {

// A block is filled with a pattern derived from its address and a seed; Verify checks it.
void Fill(void *block, size_t size, uint32_t seed) {
  unsigned char *bytes = static_cast<unsigned char *>(block);
  for (size_t i = 0; i < size; i++) bytes[i] = static_cast<unsigned char>((reinterpret_cast<uintptr_t>(block) >> 4) + i * 7 + seed);
}

bool Verify(const void *block, size_t size, uint32_t seed) {
  const unsigned char *bytes = static_cast<const unsigned char *>(block);
  for (size_t i = 0; i < size; i++)
    if (bytes[i] != static_cast<unsigned char>((reinterpret_cast<uintptr_t>(block) >> 4) + i * 7 + seed)) return false;
  return true;
}

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

// Scattered frees leave slabs a tenth full: tiny_trim decommits (parks) the pages that hold only
// free blocks while the live blocks keep their data; allocating again takes the pages back, and
// the blocks handed out never overlap a live one.
TEST(Tiny, TrimParksFreePagesOfSparseSlabsAndTakesThemBack) {
  se_thread_flush();  // the thread's bins start empty
  const size_t size = 1000;
  const unsigned c = tiny_size_to_class(size);
  std::vector<void *> blocks(64 * 40);  // about 40 slabs of this class
  for (size_t i = 0; i < blocks.size(); i++) {
    blocks[i] = tiny_alloc(size);
    ASSERT_NE(blocks[i], nullptr);
    Fill(blocks[i], size, 11);
  }
  std::vector<void *> kept;
  for (size_t i = 0; i < blocks.size(); i++) {
    if (i % 10 == 0) {
      kept.push_back(blocks[i]);
    } else {
      Free(blocks[i]);
    }
  }
  tiny_class_stats before = Totals(c);
  hk_stats_snapshot os_before;
  hk_stats_take_snapshot(&os_before);
  size_t trimmed = tiny_trim();
  tiny_class_stats parked = Totals(c);
  uint64_t pages = parked.pages_parked - before.pages_parked;
  // A 1,000-byte block every 10 KB: of the 16 pages of a slab, 10 or 11 hold no live block.
  EXPECT_GE(pages, 40u * 8) << "most pages of the sparse slabs hold no live block";
  EXPECT_GE(trimmed, pages * 4096) << "tiny_trim reports what it decommitted (other classes may add)";
  hk_stats_snapshot os_after;
  hk_stats_take_snapshot(&os_after);
  EXPECT_GE(os_after.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL] - os_before.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL],
            pages * 4096);
  for (void *block : kept) ASSERT_TRUE(Verify(block, size, 11)) << block;
  EXPECT_EQ(tiny_trim(), 0u) << "a second trim finds nothing new";

  // Allocating as many again adopts the slabs, uses their other free blocks first, then the
  // parked pages.
  std::vector<void *> again;
  for (size_t i = 0; i < blocks.size() - kept.size(); i++) {
    again.push_back(tiny_alloc(size));
    ASSERT_NE(again.back(), nullptr);
    Fill(again.back(), size, 12);
  }
  EXPECT_GT(Totals(c).pages_unparked, parked.pages_unparked);
  std::vector<void *> all = kept;
  all.insert(all.end(), again.begin(), again.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 1; i < all.size(); i++)
    ASSERT_GE(static_cast<char *>(all[i]), static_cast<char *>(all[i - 1]) + size) << "blocks overlap";
  for (void *block : kept) ASSERT_TRUE(Verify(block, size, 11)) << block;
  for (void *block : again) ASSERT_TRUE(Verify(block, size, 12)) << block;
  for (void *block : all) Free(block);
}

// A slab whose parked pages never come back is released whole when its last live block is
// freed, and the released pages are counted as taken back.
TEST(Tiny, TrimmedSlabIsReleasedWhenItsLastBlockIsFreed) {
  se_thread_flush();
  const size_t size = 512;
  const unsigned c = tiny_size_to_class(size);
  std::vector<void *> blocks(128 * 4);  // four slabs of this class
  for (void *&block : blocks) {
    block = tiny_alloc(size);
    ASSERT_NE(block, nullptr);
    Fill(block, size, 21);
  }
  std::vector<void *> kept;
  for (size_t i = 0; i < blocks.size(); i++) {
    if (i % 64 == 0) {
      kept.push_back(blocks[i]);
    } else {
      Free(blocks[i]);
    }
  }
  tiny_class_stats before = Totals(c);
  EXPECT_GT(tiny_trim(), 0u);
  tiny_class_stats parked = Totals(c);
  EXPECT_GT(parked.pages_parked, before.pages_parked);
  std::vector<ss_slab *> slabs;
  for (void *block : kept) {
    ss_slab *slab = ss_registry_lookup(block);
    if (slab->trimmed_pages) slabs.push_back(slab);
  }
  EXPECT_FALSE(slabs.empty());
  for (void *block : kept) {
    ASSERT_TRUE(Verify(block, size, 21)) << block;
    Free(block);  // into an abandoned slab (the trim abandoned them): its last block releases it
  }
  for (ss_slab *slab : slabs) {
    EXPECT_EQ(__atomic_load_n(&slab->owner, __ATOMIC_RELAXED), 0u) << "released to the pool";
    EXPECT_EQ(slab->trimmed_pages, 0u);
  }
  EXPECT_GT(Totals(c).pages_unparked, parked.pages_unparked);
}

// Trims racing with frees into the same abandoned slabs (the freeing thread collects and releases
// under the abandoned-list lock, the trimming one parks under it): under TSan this checks the
// locking; everywhere, that the blocks left live keep their data.
TEST(Tiny, TrimRacesWithFreesIntoAbandonedSlabs) {
  const size_t size = 700;
  std::vector<void *> blocks(4000);
  std::thread owner([&] {
    for (void *&block : blocks) {
      block = tiny_alloc(size);
      ASSERT_NE(block, nullptr);
      Fill(block, size, 31);
    }
    se_thread_flush();  // what thread exit does: the slabs are abandoned with their blocks live
  });
  owner.join();
  std::atomic<bool> done{false};
  std::thread freer([&] {
    for (size_t i = 0; i < blocks.size(); i++)
      if (i % 10 != 0) Free(blocks[i]);
    se_thread_flush();
    done = true;
  });
  std::thread trimmer([&] {
    while (!done) tiny_trim();
    tiny_trim();
  });
  freer.join();
  trimmer.join();
  for (size_t i = 0; i < blocks.size(); i += 10) {
    ASSERT_TRUE(Verify(blocks[i], size, 31)) << blocks[i];
    Free(blocks[i]);
  }
  se_thread_flush();
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

// Blocks allocated by one thread are freed by others; every byte must survive the handoff.
void CrossThreadFrees(int thread_count) {
  const int kPerThread = 20000;
  std::vector<std::vector<void *>> produced(thread_count);
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; t++)
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      for (int i = 0; i < kPerThread; i++) {
        size_t size = 1 + random() % TINY_MAX_SIZE;
        void *block = tiny_alloc(size);
        Fill(block, size, 5);
        produced[t].push_back(block);
      }
    });
  for (auto &thread : threads) thread.join();
  threads.clear();
  uint64_t remote_before = 0;
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) remote_before += Totals(c).remote_frees;
  std::atomic<int> failures{0};
  for (int t = 0; t < thread_count; t++)
    threads.emplace_back([&, t] {
      // Thread t frees what thread t+1 allocated, and allocates a little meanwhile.
      std::vector<void *> own;
      for (void *block : produced[(t + 1) % thread_count]) {
        ss_slab *slab = ss_registry_lookup(block);
        size_t size = tiny_usable_size(slab);
        // Fill covered the requested size only; check the first byte range every request had.
        if (!Verify(block, 1, 5)) failures++;
        (void)size;
        tiny_free(block, slab, "free");
        own.push_back(tiny_alloc(48));
      }
      for (void *block : own) tiny_free(block, ss_registry_lookup(block), "free");
    });
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  uint64_t remote_after = 0;
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) remote_after += Totals(c).remote_frees;
  // The producers had exited, so their slabs were abandoned: the first free into each one adopts
  // it (later frees into it are then local), the others wait on no one. Either way some frees
  // took the remote path only if another thread adopted the slab first; all blocks came back.
  (void)remote_before;
  (void)remote_after;
  for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) EXPECT_EQ(se_abandoned_count(c), 0u) << "class " << c;
}

TEST(Tiny, TwoThreadsCrossThreadFrees) { CrossThreadFrees(2); }
TEST(Tiny, EightThreadsCrossThreadFrees) { CrossThreadFrees(8); }

// A thread exits with blocks still live in another thread: its slab is abandoned and the blocks
// stay valid. Adoption happens two ways, both counted: a thread whose refill finds no free block
// in its own slabs adopts an abandoned slab instead of taking a new one from the pool, and a free
// into an abandoned slab adopts it on the spot.
TEST(Tiny, ThreadExitAbandonsAndOtherThreadsAdopt) {
  const unsigned class_index = tiny_size_to_class(200);
  std::vector<void *> blocks;
  auto allocate_and_exit = [&] {
    std::thread([&] {
      for (int i = 0; i < 100; i++) {
        void *block = tiny_alloc(200);
        Fill(block, 200, 9);
        blocks.push_back(block);
      }
    }).join();
  };
  allocate_and_exit();
  ASSERT_GE(se_abandoned_count(class_index), 1u);
  // Refill route: a fresh thread allocating the class takes the abandoned slab (whose unused
  // blocks the exiting thread flushed back), not a pool slab.
  tiny_class_stats before = Totals(class_index);
  std::thread([&] {
    void *block = tiny_alloc(200);
    EXPECT_NE(block, nullptr);
    Free(block);
  }).join();
  tiny_class_stats after = Totals(class_index);
  EXPECT_GE(after.slabs_adopted - before.slabs_adopted, 1u);
  EXPECT_EQ(after.slabs_acquired - before.slabs_acquired, 0u);
  for (void *block : blocks) ASSERT_TRUE(Verify(block, 200, 9));

  // Free route: the blocks' slab is abandoned again (the adopter exited); this thread frees them.
  ASSERT_GE(se_abandoned_count(class_index), 1u);
  before = Totals(class_index);
  for (void *block : blocks) {
    ASSERT_TRUE(Verify(block, 200, 9));
    Free(block);
  }
  after = Totals(class_index);
  EXPECT_GE(after.slabs_adopted - before.slabs_adopted, 1u);
  EXPECT_EQ(se_abandoned_count(class_index), 0u);
}

// A slab whose blocks are all freed by other threads goes back to the pool.
TEST(Tiny, SlabEmptiedByRemoteFreesReturnsToThePool) {
  const unsigned class_index = tiny_size_to_class(512);
  std::vector<void *> blocks;
  // Enough blocks to fill several slabs, so some slab is not the thread's current one.
  for (int i = 0; i < 1000; i++) blocks.push_back(tiny_alloc(512));
  std::thread([&] {
    for (void *block : blocks) Free(block);
  }).join();
  tiny_class_stats before = Totals(class_index);
  // The owner allocates again: its refill collects the remote frees and releases empty slabs.
  std::vector<void *> again;
  for (int i = 0; i < 200; i++) again.push_back(tiny_alloc(512));
  tiny_class_stats after = Totals(class_index);
  EXPECT_GE(after.remote_collected - before.remote_collected, 1u);
  for (void *block : again) Free(block);
  se_thread_flush();
  tiny_class_stats end = Totals(class_index);
  EXPECT_GE(end.slabs_released - before.slabs_released, 5u);
  EXPECT_EQ(se_abandoned_count(class_index), 0u);
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

// Blocks other threads freed come back to the owner's bin in one refill, all of them, even past
// the bin's capacity: the refill takes the slab's remote list with its length instead of walking it.
TEST(Tiny, RemoteFreesReturnToTheOwnerBinInOneRefill) {
  const size_t size = 1024;
  const unsigned class_index = tiny_size_to_class(size);
  std::thread([&] {
    const uint32_t bin_capacity = [&] {  // the thread's bin exists once it has allocated
      Free(tiny_alloc(size));
      return tiny_bin_of(class_index)->capacity;
    }();
    ASSERT_GT(bin_capacity, 0u);
    // Allocate until some slab has handed every block to us; those are the ones to free.
    std::map<ss_slab *, std::vector<void *>> by_slab;
    std::vector<void *> blocks;
    while (blocks.empty()) {
      void *block = tiny_alloc(size);
      Fill(block, size, 5);
      ss_slab *slab = ss_registry_lookup(block);
      by_slab[slab].push_back(block);
      if (by_slab[slab].size() == slab->capacity) blocks = by_slab[slab];
    }
    std::thread([&] {  // frees the slab's blocks remotely; its exit pushes the batched chains
      for (void *block : blocks) {
        ASSERT_TRUE(Verify(block, size, 5));
        Free(block);
      }
    }).join();
    // Use up what the bin still holds, then one refill: it brings the current slab's blocks back.
    tiny_class_stats before = Totals(class_index);
    std::vector<void *> again;
    tiny_class_stats now = before;
    while (now.refills == before.refills) {
      again.push_back(tiny_alloc(size));
      now = Totals(class_index);
    }
    EXPECT_EQ(now.refills - before.refills, 1u);
    EXPECT_GT(now.blocks_refilled - before.blocks_refilled, bin_capacity);
    EXPECT_GE(now.remote_collected - before.remote_collected, now.blocks_refilled - before.blocks_refilled);
    // Those blocks are handed out with no further refill, each once.
    uint64_t brought = now.blocks_refilled - before.blocks_refilled;
    for (uint64_t i = 1; i < brought; i++) again.push_back(tiny_alloc(size));
    EXPECT_EQ(Totals(class_index).refills, now.refills);
    std::sort(again.begin(), again.end());
    EXPECT_EQ(std::adjacent_find(again.begin(), again.end()), again.end());
    for (void *block : again) Fill(block, size, 6);
    for (void *block : again) {
      EXPECT_TRUE(Verify(block, size, 6));
      Free(block);
    }
    for (auto &entry : by_slab)
      if (entry.second != blocks)
        for (void *block : entry.second) Free(block);
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
