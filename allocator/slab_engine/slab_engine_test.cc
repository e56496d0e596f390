// The slab engine's mechanisms, tested once for every front: refill and carving, flush and slab
// release, remote frees, abandonment and adoption, zeroed blocks, spans, and the trim of sparse
// slabs (parked pages and pages inside free blocks). The test is its own small front: it defines
// classes the real fronts do not use (56 .. 59) over the real shared pool, and frees the way a
// front does (se_free_fast, then the full-bin flush or se_free_slow).
#include "allocator/slab_engine/slab_engine.h"

#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "allocator/base/stats.h"
#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"
#include "allocator/testing/block_pattern.h"
#include "gtest/gtest.h"

namespace {

// The test front's classes.
constexpr unsigned kSmall = 56;    // 1,008 B in one slot: trims park pages
constexpr unsigned kMid = 57;      // 2,000 B in one slot: parks too
constexpr unsigned kLarge = 58;    // 24 KiB in a span of 8 slots: trims inside free blocks
constexpr unsigned kTiny = 59;     // 48 B in one slot
constexpr uint32_t kBinCapacity = 64;

struct TestClass {
  unsigned index;
  uint32_t size;
  uint32_t slots;
};
constexpr TestClass kClasses[] = {{kSmall, 1008, 1}, {kMid, 2000, 1}, {kLarge, 24 << 10, 8}, {kTiny, 48, 1}};

// The front's tag: the class + 1 (never 0, so a tagged slab is the test front's).
uint64_t Tag(const ss_slab *, unsigned class_index) { return uint64_t{class_index} + 1; }

// The engine tells the front of frees that found the bin full and reached the slow path.
std::atomic<uint64_t> bin_full_calls{0};
void BinFull(unsigned) { bin_full_calls.fetch_add(1, std::memory_order_relaxed); }

void Start();
void Stop() {}
const se_front kFront = {Start, Stop, Tag, BinFull};
std::once_flag defined;

void Start() {
  std::call_once(defined, [] {
    for (const TestClass &c : kClasses) se_class_define(c.index, c.size, c.slots, &kFront);
  });
  for (const TestClass &c : kClasses) se_thread.bins[c.index].capacity = kBinCapacity;
}

uint32_t SizeOf(unsigned class_index) {
  for (const TestClass &c : kClasses)
    if (c.index == class_index) return c.size;
  return 0;
}

void *Alloc(unsigned class_index) {
  se_front_start(&kFront);
  void *block = se_bin_pop(&se_thread.bins[class_index]);
  return block ? block : se_refill(class_index, kBinCapacity / 2);
}

// A block start of `head`: in the carved range and on a block boundary.
bool IsBlockStart(const void *block, const ss_slab *head) {
  uintptr_t offset = reinterpret_cast<uintptr_t>(block) - reinterpret_cast<uintptr_t>(ss_slab_base(head));
  return head->block_size && offset < uintptr_t{head->capacity} * head->block_size && offset % head->block_size == 0;
}

void Free(void *block) {
  ss_slab *head = ss_registry_lookup_head(block);
  ASSERT_NE(head, nullptr) << block;
  ASSERT_NE(head->user_tag, 0u) << "a block of a released slab " << block;
  unsigned c = static_cast<unsigned>(head->user_tag - 1);
  if (se_free_fast(block, head, c, IsBlockStart(block, head), "free", 0)) return;
  se_free_slow(block, head, c);
}

se_class_stats Totals(unsigned class_index) {
  se_class_stats stats;
  se_stats_get(class_index, 1, &stats);
  return stats;
}

using hakmem_testing::Fill;
using hakmem_testing::Verify;

// The one check that blocks handed out never overlap: sorted, each starts past the previous end.
void ExpectDisjoint(std::vector<void *> blocks, size_t size) {
  std::sort(blocks.begin(), blocks.end());
  for (size_t i = 1; i < blocks.size(); i++)
    ASSERT_GE(static_cast<char *>(blocks[i]), static_cast<char *>(blocks[i - 1]) + size) << "blocks overlap";
}

uint64_t Committed() { return hk_stat_get(HK_STAT_OS_BYTES_COMMITTED); }

// The commit gauge with the thread's bins flushed, every free slab decommitted and every cached
// SuperSlab released, after one round of `count` blocks of class `c`: structures mapped once (the
// registry's directory grows with the number of SuperSlabs) are then in the baseline.
uint64_t Settle(unsigned c, size_t count) {
  std::vector<void *> blocks;
  for (size_t i = 0; i < count; i++) blocks.push_back(Alloc(c));
  for (void *block : blocks) Free(block);
  se_thread_flush();
  se_trim(c, 1);
  sp_trim(1);
  return Committed();
}

TEST(SlabEngine, RefillCarvesInAddressOrderAndBlocksNeverOverlap) {
  se_thread_flush();
  se_class_stats before = Totals(kTiny);
  std::vector<void *> blocks;
  for (int i = 0; i < 5000; i++) {
    blocks.push_back(Alloc(kTiny));
    ASSERT_NE(blocks.back(), nullptr);
    Fill(blocks.back(), 48, 1);
  }
  // A fresh slab's blocks come out in address order: consecutive allocations are adjacent.
  EXPECT_EQ(static_cast<char *>(blocks[1]) - static_cast<char *>(blocks[0]), 48);
  se_class_stats after = Totals(kTiny);
  EXPECT_EQ(after.blocks_refilled - before.blocks_refilled, 5000u + se_thread.bins[kTiny].count)
      << "every block refilled was handed out or waits in the bin";
  EXPECT_GE(after.slabs_acquired - before.slabs_acquired, 5000u * 48 / SS_SLAB_SIZE);
  ExpectDisjoint(blocks, 48);
  for (void *block : blocks) ASSERT_TRUE(Verify(block, 48, 1));
  for (void *block : blocks) Free(block);
}

// From a flushed thread, 600 blocks of kSmall: ten slabs of 61..65 blocks. `start` gets the
// counters before, `before` after the allocations.
std::vector<void *> AllocTenSlabs(se_class_stats *start, se_class_stats *before) {
  se_thread_flush();
  *start = Totals(kSmall);
  std::vector<void *> blocks;
  for (int i = 0; i < 600; i++) blocks.push_back(Alloc(kSmall));
  *before = Totals(kSmall);
  EXPECT_GE(before->slabs_acquired - start->slabs_acquired, 9u);
  return blocks;
}

// Frees past a full bin go straight back to their slabs (no flush); a slab (not the current one)
// whose last block comes back goes to the pool at once, and a thread flush releases the rest.
TEST(SlabEngine, FreesPastAFullBinReturnToSlabsAndReleaseEmptySlabs) {
  se_class_stats start, before;
  std::vector<void *> blocks = AllocTenSlabs(&start, &before);
  uint64_t full_calls_before = bin_full_calls.load();
  for (void *block : blocks) Free(block);
  se_class_stats after = Totals(kSmall);
  EXPECT_EQ(after.flushes, before.flushes) << "no bin flush: the blocks past a full bin went to their slabs";
  EXPECT_EQ(se_thread.bins[kSmall].count, kBinCapacity) << "the bin filled first";
  EXPECT_GE(bin_full_calls.load() - full_calls_before, 1u) << "the front heard of the full bin";
  EXPECT_GE(after.slabs_released - before.slabs_released, 6u) << "slabs other than the current one";
  se_thread_flush();
  EXPECT_EQ(Totals(kSmall).slabs_released - start.slabs_released, before.slabs_acquired - start.slabs_acquired)
      << "every slab of the class went back";
  EXPECT_EQ(se_abandoned_count(kSmall), 0u);
}

// A front that hears of a bin filled by a burst of frees gives it back (se_flush_burst): the bin's
// blocks go to their slabs, the bin takes no frees until the front opens it again, so the rest of
// the burst goes to the slabs too and every slab the burst empties restarts its carve.
TEST(SlabEngine, ABurstFlushGivesTheBinBackAndClosesItToFrees) {
  se_class_stats start, before;
  std::vector<void *> blocks = AllocTenSlabs(&start, &before);
  se_bin *bin = &se_thread.bins[kSmall];
  size_t next = 0;
  while (bin->count < kBinCapacity) Free(blocks[next++]);  // the last refill's leftovers and these
  se_flush_burst(kSmall);
  se_class_stats flushed = Totals(kSmall);
  EXPECT_EQ(flushed.burst_flushes - before.burst_flushes, 1u);
  EXPECT_EQ(flushed.blocks_flushed - before.blocks_flushed, uint64_t{kBinCapacity});
  EXPECT_EQ(bin->count, 0u);
  EXPECT_EQ(bin->capacity, 0u) << "closed to frees";
  for (; next < blocks.size(); next++) Free(blocks[next]);
  EXPECT_EQ(bin->count, 0u) << "the rest of the burst went to the slabs";
  se_class_stats after = Totals(kSmall);
  // Every slab emptied: the current one stays, one is the spare, the others went to the pool.
  EXPECT_EQ(after.slabs_released - before.slabs_released, before.slabs_acquired - start.slabs_acquired - 2);
  bin->capacity = kBinCapacity;  // the front opens it again at its next refill
  void *a = Alloc(kSmall);
  void *b = Alloc(kSmall);
  EXPECT_EQ(static_cast<char *>(b) - static_cast<char *>(a), 1008) << "the emptied slab is carved again";
  Free(a);
  Free(b);
  se_thread_flush();
  se_class_stats end = Totals(kSmall);
  EXPECT_EQ(end.slabs_released - start.slabs_released, end.slabs_acquired - start.slabs_acquired);
}

// A slab other than the current one emptied by frees is kept as the class's spare (one per
// class) and restarted: the next refill that needs a slab takes it instead of the pool's and
// carves it again in address order. A thread flush gives the spare back.
TEST(SlabEngine, AnEmptiedSlabIsKeptAsTheSpareAndCarvedAgain) {
  se_thread_flush();
  se_class_stats start = Totals(kSmall);
  std::vector<void *> blocks;
  for (int i = 0; i < 400; i++) blocks.push_back(Alloc(kSmall));  // about seven slabs of 65 blocks
  ASSERT_GE(Totals(kSmall).slabs_acquired - start.slabs_acquired, 6u);
  // Empty the first slab's blocks and the second's: two slabs other than the current one.
  ss_slab *first = ss_registry_lookup_head(blocks[0]);
  std::vector<void *> kept;
  for (void *block : blocks) {
    if (ss_registry_lookup_head(block) == first || ss_registry_lookup_head(block) == ss_registry_lookup_head(blocks[70]))
      Free(block);
    else
      kept.push_back(block);
  }
  se_flush_bin(kSmall, se_thread.bins[kSmall].count);  // the blocks the bin took go back too
  se_class_stats emptied = Totals(kSmall);
  EXPECT_EQ(emptied.slabs_released - start.slabs_released, 1u) << "one of the two went to the pool, one is the spare";
  // Use up the bin and the current slab: the next slab is the spare, not a pool slab.
  std::vector<void *> more;
  while (Totals(kSmall).spare_reuses == emptied.spare_reuses) {
    more.push_back(Alloc(kSmall));
    ASSERT_LT(more.size(), 400u) << "the spare was never taken";
  }
  se_class_stats reused = Totals(kSmall);
  EXPECT_EQ(reused.slabs_acquired, emptied.slabs_acquired) << "no slab from the pool";
  // Restarted: carved in address order again, from the slab's first block on.
  void *a = Alloc(kSmall);
  void *b = Alloc(kSmall);
  EXPECT_EQ(static_cast<char *>(b) - static_cast<char *>(a), 1008) << "adjacent: a carve, not the old free list";
  more.push_back(a);
  more.push_back(b);
  for (void *block : more) Fill(block, 1008, 7);
  for (void *block : kept) Free(block);
  for (void *block : more) {
    ASSERT_TRUE(Verify(block, 1008, 7));
    Free(block);
  }
  se_thread_flush();
  se_class_stats end = Totals(kSmall);
  EXPECT_EQ(end.slabs_released - start.slabs_released, end.slabs_acquired - start.slabs_acquired)
      << "the thread flush gave the spare back with the rest";
}

// A program that frees thousands of its blocks in a row and then allocates thousands (a ring of
// batches): the frees past the full bin join their slabs' lists and the refills take each list
// back in one splice, with every live block's contents intact and no slab taken from the pool.
TEST(SlabEngine, RefillsSpliceWhatFreesPastAFullBinLeftOnTheSlab) {
  se_thread_flush();
  constexpr int kRing = 4000;
  std::vector<void *> ring;
  for (int i = 0; i < kRing; i++) {
    ring.push_back(Alloc(kTiny));
    Fill(ring.back(), 48, static_cast<unsigned>(i));
  }
  se_class_stats start = Totals(kTiny);
  for (int cycle = 0; cycle < 20; cycle++) {
    // Keep the first fifth alive; free the older rest in order, the newer rest in reverse.
    for (int i = kRing / 5; i < kRing / 2; i++) Free(ring[i]);
    for (int i = kRing - 1; i >= kRing / 2; i--) Free(ring[i]);
    for (int i = kRing / 5; i < kRing; i++) {
      ring[i] = Alloc(kTiny);
      ASSERT_NE(ring[i], nullptr);
      Fill(ring[i], 48, static_cast<unsigned>(cycle * kRing + i));
    }
    for (int i = 0; i < kRing / 5; i++) ASSERT_TRUE(Verify(ring[i], 48, static_cast<unsigned>(i))) << "cycle " << cycle;
  }
  se_class_stats after = Totals(kTiny);
  EXPECT_GE(after.refill_splices - start.refill_splices, 20u) << "at least one splice per cycle";
  EXPECT_EQ(after.flushes, start.flushes) << "no bin flush";
  // Only a slab that a cycle empties goes to the pool (and comes back): 4,000 blocks of 48 B
  // span four slabs, one of them kept by the live fifth.
  EXPECT_LE(after.slabs_acquired - start.slabs_acquired, 20u * 3) << "the freed blocks were reused";
  // A refill walks at most a batch; the splices moved the rest: far fewer refills than blocks.
  EXPECT_LT(after.refills - start.refills, (after.blocks_refilled - start.blocks_refilled) / 16);
  ExpectDisjoint(ring, 48);
  for (int i = kRing / 5; i < kRing; i++) ASSERT_TRUE(Verify(ring[i], 48, static_cast<unsigned>(19 * kRing + i)));
  for (void *block : ring) Free(block);
  se_thread_flush();
}

// Blocks other threads freed come back to the owner's bin in one refill, all of them, even past
// the bin's capacity: the refill takes the slab's remote list with its length instead of walking it.
TEST(SlabEngine, RemoteFreesReturnToTheOwnerBinInOneRefill) {
  std::thread([&] {
    // Allocate until some slab has handed every block to us; those are the ones to free.
    std::map<ss_slab *, std::vector<void *>> by_slab;
    std::vector<void *> blocks;
    while (blocks.empty()) {
      void *block = Alloc(kSmall);
      Fill(block, 1008, 5);
      ss_slab *slab = ss_registry_lookup_head(block);
      by_slab[slab].push_back(block);
      if (by_slab[slab].size() == slab->capacity) blocks = by_slab[slab];
    }
    se_class_stats remote_before = Totals(kSmall);
    std::thread([&] {  // frees the slab's blocks remotely; its exit pushes the batched chains
      for (void *block : blocks) {
        ASSERT_TRUE(Verify(block, 1008, 5));
        Free(block);
      }
    }).join();
    EXPECT_EQ(Totals(kSmall).remote_frees - remote_before.remote_frees, blocks.size());
    // Use up what the bin still holds, then one refill: it brings the current slab's blocks back.
    se_class_stats before = Totals(kSmall);
    std::vector<void *> again;
    se_class_stats now = before;
    while (now.refills == before.refills) {
      again.push_back(Alloc(kSmall));
      now = Totals(kSmall);
    }
    EXPECT_EQ(now.refills - before.refills, 1u);
    EXPECT_GT(now.blocks_refilled - before.blocks_refilled, kBinCapacity / 2);
    EXPECT_GE(now.remote_collected - before.remote_collected, now.blocks_refilled - before.blocks_refilled);
    // Those blocks are handed out with no further refill, each once.
    uint64_t brought = now.blocks_refilled - before.blocks_refilled;
    for (uint64_t i = 1; i < brought; i++) again.push_back(Alloc(kSmall));
    EXPECT_EQ(Totals(kSmall).refills, now.refills);
    ExpectDisjoint(again, 1008);
    for (void *block : again) Fill(block, 1008, 6);
    for (void *block : again) {
      EXPECT_TRUE(Verify(block, 1008, 6));
      Free(block);
    }
    for (auto &entry : by_slab)
      if (entry.second != blocks)
        for (void *block : entry.second) Free(block);
  }).join();
}

// A slab whose blocks are all freed by other threads goes back to the pool.
TEST(SlabEngine, SlabEmptiedByRemoteFreesReturnsToThePool) {
  std::vector<void *> blocks;
  for (int i = 0; i < 1000; i++) blocks.push_back(Alloc(kMid));  // several slabs of 32
  std::thread([&] {
    for (void *block : blocks) Free(block);
  }).join();
  se_class_stats before = Totals(kMid);
  // The owner allocates again: its refills collect the remote frees.
  std::vector<void *> again;
  for (int i = 0; i < 200; i++) again.push_back(Alloc(kMid));
  se_class_stats after = Totals(kMid);
  EXPECT_GE(after.remote_collected - before.remote_collected, 1u);
  for (void *block : again) Free(block);
  se_thread_flush();
  EXPECT_GE(Totals(kMid).slabs_released - before.slabs_released, 25u);
  EXPECT_EQ(se_abandoned_count(kMid), 0u);
}

// A thread exits with blocks still live in another thread: its slab is abandoned and the blocks
// stay valid. Adoption happens two ways, both counted: a thread whose refill finds no free block
// in its own slabs adopts an abandoned slab instead of taking a new one from the pool, and a free
// into an abandoned slab is collected under the class's lock, and its last one releases the slab.
TEST(SlabEngine, ThreadExitAbandonsAndOtherThreadsAdopt) {
  std::vector<void *> blocks;
  std::thread([&] {
    for (int i = 0; i < 20; i++) {
      blocks.push_back(Alloc(kSmall));
      Fill(blocks.back(), 1008, 9);
    }
  }).join();
  ASSERT_GE(se_abandoned_count(kSmall), 1u);
  EXPECT_GE(Totals(kSmall).slabs_abandoned, 1u);
  // Refill route: a fresh thread allocating the class takes the abandoned slab, not a pool slab.
  se_class_stats before = Totals(kSmall);
  std::thread([&] { Free(Alloc(kSmall)); }).join();
  se_class_stats after = Totals(kSmall);
  EXPECT_GE(after.slabs_adopted - before.slabs_adopted, 1u);
  EXPECT_EQ(after.slabs_acquired - before.slabs_acquired, 0u);
  for (void *block : blocks) ASSERT_TRUE(Verify(block, 1008, 9));

  // Free route: the blocks' slab is abandoned again (the adopter exited); this thread frees them.
  ASSERT_GE(se_abandoned_count(kSmall), 1u);
  before = Totals(kSmall);
  for (void *block : blocks) {
    ASSERT_TRUE(Verify(block, 1008, 9));
    Free(block);
  }
  after = Totals(kSmall);
  EXPECT_GE(after.slabs_adopted - before.slabs_adopted, 1u);
  EXPECT_GE(after.slabs_released - before.slabs_released, 1u);
  EXPECT_EQ(se_abandoned_count(kSmall), 0u);
}

// Blocks allocated by some threads are freed by others while all of them allocate; every byte
// survives the handoff and every slab ends up back in the pool.
void CrossThreadFrees(int thread_count) {
  const int kPerThread = 20000;
  std::vector<std::vector<void *>> produced(thread_count);
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; t++)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; i++) {
        unsigned c = kClasses[(t + i) % 4].index;
        void *block = Alloc(c);
        Fill(block, std::min<size_t>(SizeOf(c), 64), c);
        produced[t].push_back(block);
        if (i % 16 == 0) Free(Alloc(kTiny));
      }
    });
  for (auto &thread : threads) thread.join();
  threads.clear();
  std::atomic<int> failures{0};
  for (int t = 0; t < thread_count; t++)
    threads.emplace_back([&, t] {
      // Thread t frees what thread t+1 allocated, and allocates a little meanwhile.
      std::vector<void *> own;
      for (void *block : produced[(t + 1) % thread_count]) {
        unsigned c = static_cast<unsigned>(ss_registry_lookup_head(block)->user_tag - 1);
        if (!Verify(block, std::min<size_t>(SizeOf(c), 64), c)) failures++;
        Free(block);
        own.push_back(Alloc(kTiny));
      }
      for (void *block : own) Free(block);
    });
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (const TestClass &c : kClasses) EXPECT_EQ(se_abandoned_count(c.index), 0u) << "class " << c.index;
}

TEST(SlabEngine, TwoThreadsCrossThreadFrees) { CrossThreadFrees(2); }
TEST(SlabEngine, EightThreadsCrossThreadFrees) { CrossThreadFrees(8); }

// A block carved from a fresh, known-zero slab needs no memset; once the slab's carve position
// has passed, the engine says so by returning NULL.
TEST(SlabEngine, TakeZeroedGivesFreshZeroBlocksOnly) {
  se_thread_flush();
  sp_trim(1);  // free slabs decommitted: the next one is known zero
  EXPECT_EQ(se_take_zeroed(kSmall), nullptr) << "no current slab";
  void *first = Alloc(kSmall);  // carves half a bin of a fresh slab
  ss_slab *head = ss_registry_lookup_head(first);
  if (!head->zeroed) GTEST_SKIP() << "the pool handed out a slab not known zero";
  const uint32_t room = head->capacity - head->carve / head->block_size;
  ASSERT_GT(room, 0u);
  std::vector<void *> blocks;
  for (uint32_t i = 0; i < room; i++) {
    void *block = se_take_zeroed(kSmall);
    ASSERT_NE(block, nullptr) << i;
    const unsigned char *bytes = static_cast<const unsigned char *>(block);
    for (size_t b = 0; b < 1008; b++) ASSERT_EQ(bytes[b], 0) << b;
    memset(block, 0xee, 1008);
    blocks.push_back(block);
  }
  EXPECT_EQ(se_take_zeroed(kSmall), nullptr) << "never past the slab's capacity";
  blocks.push_back(first);
  ExpectDisjoint(blocks, 1008);
  for (void *block : blocks) Free(block);
}

// A class of several slots takes spans from the pool and gives them back.
TEST(SlabEngine, LargeClassesUseSpans) {
  se_thread_flush();
  uint64_t spans = hk_stat_get(HK_STAT_SE_SPANS_ACQUIRED), released = hk_stat_get(HK_STAT_SE_SPANS_RELEASED);
  std::vector<void *> blocks;
  for (int i = 0; i < 100; i++) {
    blocks.push_back(Alloc(kLarge));
    ASSERT_EQ(ss_registry_lookup_head(blocks.back())->span_slabs, 8u);
  }
  EXPECT_GE(hk_stat_get(HK_STAT_SE_SPANS_ACQUIRED) - spans, 100u * (24 << 10) / (8 * SS_SLAB_SIZE));
  ExpectDisjoint(blocks, 24 << 10);
  for (void *block : blocks) Free(block);
  se_thread_flush();
  EXPECT_GE(hk_stat_get(HK_STAT_SE_SPANS_RELEASED) - released, hk_stat_get(HK_STAT_SE_SPANS_ACQUIRED) - spans);
}

// ---- Trim of sparse slabs ---------------------------------------------------------------------

// Scattered frees leave slabs a tenth full; a trim gives back the pages that hold no live block
// (parked pages for small blocks, the pages inside free blocks for large ones) while the live
// blocks keep their data. Allocating as many again takes the pages back before the heap grows,
// no block is handed out twice, and the commit gauge ends exactly where it started.
void TrimAndReuse(unsigned c, size_t count, uint64_t min_pages) {
  const size_t size = SizeOf(c);
  const uint64_t committed_start = Settle(c, count);
  std::vector<void *> blocks(count);
  for (void *&block : blocks) {
    block = Alloc(c);
    ASSERT_NE(block, nullptr);
    Fill(block, size, 11);
  }
  std::vector<void *> kept;
  for (size_t i = 0; i < blocks.size(); i++) {
    if (i % 10 == 0) {
      kept.push_back(blocks[i]);
    } else {
      Free(blocks[i]);
    }
  }
  se_thread_flush();  // what malloc_trim does first: the bins' blocks go back to their slabs
  se_class_stats before = Totals(c);
  uint64_t decommitted = hk_stat_get(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL);
  uint64_t committed_sparse = Committed();
  size_t trimmed = se_trim(c, 1);
  uint64_t pages = Totals(c).pages_parked - before.pages_parked;
  EXPECT_GE(pages, min_pages) << "most pages of the sparse slabs hold no live block";
  EXPECT_EQ(trimmed, pages * 4096);
  EXPECT_GE(hk_stat_get(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL) - decommitted, pages * 4096);
  EXPECT_EQ(committed_sparse - Committed(), pages * 4096) << "the gauge follows the trim";
  EXPECT_EQ(se_trim(c, 1), 0u) << "a second trim finds nothing new";
  for (void *block : kept) ASSERT_TRUE(Verify(block, size, 11)) << block;

  std::vector<void *> again;
  for (size_t i = 0; i < blocks.size() - kept.size(); i++) {
    again.push_back(Alloc(c));
    ASSERT_NE(again.back(), nullptr);
    Fill(again.back(), size, 12);
  }
  // The trimmed slabs served the blocks; only the last slab, partly carved, may have held no kept
  // block, gone back to the pool at the trim, and been taken again.
  EXPECT_LE(Totals(c).slabs_acquired - before.slabs_acquired, 1u);
  std::vector<void *> all = kept;
  all.insert(all.end(), again.begin(), again.end());
  ExpectDisjoint(all, size);
  for (void *block : kept) ASSERT_TRUE(Verify(block, size, 11)) << block;
  for (void *block : again) ASSERT_TRUE(Verify(block, size, 12)) << block;
  for (void *block : all) Free(block);
  EXPECT_EQ(Settle(c, 0), committed_start) << "every trimmed page was counted back";
}

TEST(SlabEngine, TrimParksFreePagesOfSmallBlocksAndTakesThemBack) {
  // A live 1,008-byte block every 10 KB: most of a slab's 16 pages hold none.
  TrimAndReuse(kSmall, 65 * 40, 40 * 7);
  EXPECT_GT(Totals(kSmall).pages_unparked, 0u);
}

TEST(SlabEngine, TrimDecommitsPagesInsideLargeFreeBlocks) {
  // 24 KiB blocks: 5 of a free block's 6 pages are whole pages past its first bytes.
  TrimAndReuse(kLarge, 400, 360 * 4);
}

// A slab whose trimmed pages never come back is released whole when its last live block is
// freed (here into the abandoned slab by another thread), and its pages are counted back.
void TrimmedSlabIsReleasedWithItsLastBlock(unsigned c, size_t count) {
  const size_t size = SizeOf(c);
  const uint64_t committed_start = Settle(c, count);
  std::vector<void *> blocks(count);
  std::thread([&] {
    for (void *&block : blocks) {
      block = Alloc(c);
      Fill(block, size, 21);
    }
    for (size_t i = 0; i < blocks.size(); i++)
      if (i % 16 != 0) Free(blocks[i]);
  }).join();  // exits: the slabs are abandoned with their live blocks
  se_class_stats before = Totals(c);
  EXPECT_GT(se_trim(c, 1), 0u);
  std::vector<ss_slab *> slabs;
  for (size_t i = 0; i < blocks.size(); i += 16) {
    ss_slab *head = ss_registry_lookup_head(blocks[i]);
    if (head->trimmed_pages && std::find(slabs.begin(), slabs.end(), head) == slabs.end()) slabs.push_back(head);
  }
  EXPECT_FALSE(slabs.empty());
  for (size_t i = 0; i < blocks.size(); i += 16) {
    ASSERT_TRUE(Verify(blocks[i], size, 21)) << blocks[i];
    Free(blocks[i]);
  }
  for (ss_slab *head : slabs) {
    EXPECT_EQ(__atomic_load_n(&head->owner, __ATOMIC_RELAXED), 0u) << "released to the pool";
    EXPECT_EQ(head->trimmed_pages, 0u);
  }
  EXPECT_GE(Totals(c).slabs_released - before.slabs_released, slabs.size());
  EXPECT_EQ(Settle(c, 0), committed_start);
}

TEST(SlabEngine, ParkedSlabIsReleasedWithItsLastBlock) { TrimmedSlabIsReleasedWithItsLastBlock(kSmall, 65 * 4); }
TEST(SlabEngine, InsideTrimmedSlabIsReleasedWithItsLastBlock) { TrimmedSlabIsReleasedWithItsLastBlock(kLarge, 64); }

// Trims racing with frees into the same abandoned slabs (the freeing thread collects and releases
// under the abandoned-list lock, the trimming one trims under it): under TSan this checks the
// locking; everywhere, that the blocks left live keep their data.
TEST(SlabEngine, TrimRacesWithFreesIntoAbandonedSlabs) {
  std::vector<void *> blocks(4000);
  std::thread owner([&] {
    for (size_t i = 0; i < blocks.size(); i++) {
      blocks[i] = Alloc(i % 2 ? kSmall : kLarge);
      Fill(blocks[i], 700, 31);
    }
  });
  owner.join();  // exits: the slabs are abandoned with their blocks live
  std::atomic<bool> done{false};
  std::thread freer([&] {
    for (size_t i = 0; i < blocks.size(); i++)
      if (i % 10 > 1) Free(blocks[i]);
    se_thread_flush();
    done = true;
  });
  std::thread trimmer([&] {
    while (!done) se_trim(kSmall, 3);
    se_trim(kSmall, 3);
  });
  freer.join();
  trimmer.join();
  for (size_t i = 0; i < blocks.size(); i++) {
    if (i % 10 > 1) continue;
    ASSERT_TRUE(Verify(blocks[i], 700, 31)) << blocks[i];
    Free(blocks[i]);
  }
  se_thread_flush();
}

TEST(SlabEngineDeathTest, InteriorPointerFreeAborts) {
  void *block = Alloc(kTiny);
  char *interior = static_cast<char *>(block) + 8;
  EXPECT_DEATH(Free(interior), "hakmem: free\\(\\): invalid pointer 0x[0-9a-f]+ \\(not the start of a block\\)");
  Free(block);
}

}  // namespace
