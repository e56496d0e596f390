#include "allocator/superslab/shared_pool.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "allocator/base/config.h"
#include "allocator/base/stats.h"
#include "allocator/os/os.h"
#include "allocator/superslab/registry.h"
#include "gtest/gtest.h"

namespace {

// Counter deltas since construction.
class Counters {
 public:
  Counters() { hk_stats_take_snapshot(&before_); }
  uint64_t operator()(hk_stat_id id) const { return hk_stat_get(id) - before_.values[id]; }

 private:
  hk_stats_snapshot before_;
};

void LoadConfig(std::vector<const char *> entries) {
  entries.push_back(nullptr);
  hk_config_load(const_cast<char *const *>(entries.data()));
}

size_t ResidentPages(const void *address, size_t size) {
  size_t page = hk_os_page_size();
  uintptr_t start = (uintptr_t)address & ~(page - 1);
  size_t length = ((uintptr_t)address + size - start + page - 1) / page;
  std::vector<unsigned char> vector(length);
  if (mincore((void *)start, length * page, vector.data()) != 0) return SIZE_MAX;
  size_t resident = 0;
  for (unsigned char entry : vector) resident += entry & 1;
  return resident;
}

uint64_t RssPages() {
  FILE *file = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (file) {
    if (fscanf(file, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(file);
  }
  return resident;
}

// Every test starts from an empty pool (nothing mapped) with a long decommit delay, so the
// opportunistic aging never runs in the middle of a counted workload, and with no fully free
// SuperSlab kept in service (each goes to the LRU cache at its last release), unless the test
// is about keeping them.
class SharedPool : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadConfig({"HAKMEM_SS_DECOMMIT_DELAY_MS=600000", "HAKMEM_SS_CACHE_TTL_MS=600000", "HAKMEM_SS_KEEP_FREE=0"});
    sp_trim(1);
    ASSERT_EQ(hk_stat_get(HK_STAT_SS_LIVE), 0u) << "an earlier test leaked slabs";
  }
  void TearDown() override {
    sp_trim(1);
    EXPECT_EQ(hk_stat_get(HK_STAT_SS_LIVE), 0u);
    LoadConfig({});
  }
};

TEST_F(SharedPool, BadArgumentsGiveEinval) {
  errno = 0;
  EXPECT_EQ(sp_acquire_slab(SP_MAX_KINDS), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(sp_acquire_span(0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(sp_acquire_span(SP_MAX_SPAN_SLABS + 1), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(SharedPool, SlabsAreFreshUsableAndFoundByTheRegistry) {
  Counters counters;
  std::vector<ss_slab *> slabs;
  for (unsigned i = 0; i < 40; i++) {
    ss_slab *slab = sp_acquire_slab(i % 5);
    ASSERT_NE(slab, nullptr);
    EXPECT_EQ(slab->kind, i % 5);
    EXPECT_EQ(slab->span_slabs, 1u);
    EXPECT_EQ(slab->owner, 0u);
    EXPECT_EQ(slab->used, 0u);
    EXPECT_EQ(slab->free_list, nullptr);
    EXPECT_EQ(slab->remote_free, 0u);
    EXPECT_TRUE(sp_slab_is_zeroed(slab));
    char *base = (char *)sp_slab_base(slab);
    size_t size = sp_slab_usable_size(slab);
    EXPECT_EQ(size, slab->index == 0 ? SS_SLAB_SIZE - SS_HEADER_SIZE : SS_SLAB_SIZE);
    EXPECT_EQ(ss_registry_lookup(base), slab);
    EXPECT_EQ(ss_registry_lookup(base + size - 1), slab);
    EXPECT_EQ(base[0], 0);
    EXPECT_EQ(base[size - 1], 0);
    memset(base, 0xab, size);
    for (ss_slab *other : slabs) ASSERT_NE(other, slab);
    slabs.push_back(slab);
  }
  EXPECT_EQ(counters(HK_STAT_SS_MAPPED), 2u);  // 40 slabs, 32 per SuperSlab
  EXPECT_EQ(counters(HK_STAT_SP_STAGE4_MAP), 2u);
  EXPECT_EQ(counters(HK_STAT_SP_LOCK_ACQUISITIONS), 2u);
  for (ss_slab *slab : slabs) sp_release_slab(slab);
  // Both SuperSlabs are fully free: they went to the LRU cache, nothing was unmapped.
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_PUSHES), 2u);
  EXPECT_EQ(ss_cache_count(), 2u);
  EXPECT_EQ(counters(HK_STAT_SS_UNMAPPED), 0u);
  // A released slab reused at once, by another kind, is not zero any more.
  ss_slab *again = sp_acquire_slab(9);
  ASSERT_NE(again, nullptr);
  EXPECT_FALSE(sp_slab_is_zeroed(again));
  EXPECT_EQ(counters(HK_STAT_SP_STAGE3_CACHE), 1u);
  sp_release_slab(again);
}

// The census: slabs and spans in use are visited once each (a span by its head), free slots
// and cached SuperSlabs are counted with their committed bytes.
TEST_F(SharedPool, CensusVisitsHeadsInUseAndCountsFreeAndCachedSlots) {
  ss_slab *slab = sp_acquire_slab(3);
  ss_slab *span = sp_acquire_span(4);
  ASSERT_NE(slab, nullptr);
  ASSERT_NE(span, nullptr);
  std::vector<const ss_slab *> visited;
  sp_census census;
  sp_census_take(&census, [](const ss_slab *head, void *arg) {
    static_cast<std::vector<const ss_slab *> *>(arg)->push_back(head);
  }, &visited);
  EXPECT_EQ(std::set<const ss_slab *>(visited.begin(), visited.end()), (std::set<const ss_slab *>{slab, span}));
  EXPECT_EQ(visited.size(), 2u);
  EXPECT_EQ(census.superslabs, 1u);
  EXPECT_EQ(census.cached_superslabs, 0u);
  EXPECT_EQ(census.slots_in_use, 5u);
  EXPECT_EQ(census.slots_free, SS_SLABS_PER_SUPERSLAB - 5u);
  // Slot 0 is 60 KiB (the header page); every free slot of a fresh SuperSlab counts as committed.
  uint64_t free_bytes = (SS_SLABS_PER_SUPERSLAB - 5u) * SS_SLAB_SIZE - (slab->index == 0 ? 0 : SS_HEADER_SIZE);
  EXPECT_EQ(census.free_bytes, free_bytes);
  EXPECT_EQ(census.free_committed_bytes, free_bytes);
  sp_release_slab(slab);
  sp_release_span(span);
  sp_census_take(&census, nullptr, nullptr);
  EXPECT_EQ(census.slots_in_use, 0u);
  EXPECT_EQ(census.cached_superslabs, 1u) << "fully free: in the LRU cache";
  EXPECT_EQ(census.cached_bytes, SS_SIZE - SS_HEADER_SIZE);
  EXPECT_EQ(census.free_bytes, 0u);
}

// Free slots count as resident only for the pages that were touched: a fresh SuperSlab's free
// slots are committed but never faulted in.
TEST_F(SharedPool, FreeResidentBytesCountOnlyTouchedPagesOfSlotsNotInUse) {
  ss_slab *keep = sp_acquire_slab(0);  // keeps the SuperSlab in service
  ss_slab *slab = sp_acquire_slab(1);
  ASSERT_NE(keep, nullptr);
  ASSERT_NE(slab, nullptr);
  EXPECT_EQ(sp_free_resident_bytes(), 0u) << "the other slots were never touched";
  char *base = static_cast<char *>(ss_slab_base(slab));
  for (int page = 0; page < 3; page++) base[page * 4096] = 1;
  EXPECT_EQ(sp_free_resident_bytes(), 0u) << "a slot in use is not free";
  sp_release_slab(slab);
  EXPECT_EQ(sp_free_resident_bytes(), 3u * 4096);
  sp_release_slab(keep);
}

TEST_F(SharedPool, ReleasedSlabIsReusedAtOnceByItsKindThenByAnyKind) {
  ss_slab *keep = sp_acquire_slab(0);  // keeps the SuperSlab live
  ss_slab *slab = sp_acquire_slab(1);
  ASSERT_NE(keep, nullptr);
  ASSERT_NE(slab, nullptr);
  Counters counters;
  sp_release_slab(slab);
  EXPECT_EQ(sp_acquire_slab(1), slab);  // stage 0: the kind's hot slot
  EXPECT_EQ(counters(HK_STAT_SP_STAGE0_HOT), 1u);
  sp_release_slab(slab);
  // Kind 7 has nothing of its own: stage 2 takes a free slot of another kind or a fresh one.
  ss_slab *other = sp_acquire_slab(7);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(counters(HK_STAT_SP_STAGE2_SHARED), 1u);
  EXPECT_EQ(counters(HK_STAT_SS_MAPPED), 0u);
  sp_release_slab(other);
  sp_release_slab(keep);
}

// The lesson-4 workload: every SuperSlab stays partly used while slabs of several kinds become
// empty and are reacquired by other kinds. After warm-up nothing is mapped and no lock taken.
TEST_F(SharedPool, RecyclingKeepsPartlyUsedSuperSlabsAndMapsNothingAfterWarmUp) {
  absl::BitGen random;
  constexpr unsigned kKinds = 8, kHeld = 128, kBatch = 16, kRounds = 2000;
  std::vector<ss_slab *> held;
  for (unsigned i = 0; i < kHeld; i++) {
    held.push_back(sp_acquire_slab(i % kKinds));
    ASSERT_NE(held.back(), nullptr);
  }
  Counters counters;
  uint64_t acquisitions = 0;
  for (unsigned round = 0; round < kRounds; round++) {
    std::vector<size_t> picked;
    for (unsigned b = 0; b < kBatch; b++) {
      size_t i = absl::Uniform<size_t>(random, 0, held.size());
      if (!held[i]) continue;
      sp_release_slab(held[i]);
      held[i] = nullptr;
      picked.push_back(i);
    }
    for (size_t i : picked) {
      held[i] = sp_acquire_slab(absl::Uniform<unsigned>(random, 0, kKinds));
      ASSERT_NE(held[i], nullptr);
      acquisitions++;
    }
  }
  uint64_t stage[5] = {counters(HK_STAT_SP_STAGE0_HOT), counters(HK_STAT_SP_STAGE1_KIND_LIST),
                       counters(HK_STAT_SP_STAGE2_SHARED), counters(HK_STAT_SP_STAGE3_CACHE),
                       counters(HK_STAT_SP_STAGE4_MAP)};
  EXPECT_EQ(counters(HK_STAT_SS_MAPPED), 0u);
  EXPECT_EQ(counters(HK_STAT_SP_LOCK_ACQUISITIONS), 0u);
  EXPECT_EQ(counters(HK_STAT_OS_MMAP_CALLS), 0u);
  EXPECT_EQ(stage[3] + stage[4], 0u);
  EXPECT_EQ(stage[0] + stage[1] + stage[2], acquisitions);
  EXPECT_GT(stage[0] + stage[1], 0u);
  std::cout << "[recycling] " << acquisitions << " reacquisitions after warm-up of " << kHeld
            << " slabs (4 SuperSlabs): mapped " << counters(HK_STAT_SS_MAPPED) << ", stage0 " << stage[0]
            << ", stage1 " << stage[1] << ", stage2 " << stage[2] << ", stage3 " << stage[3] << ", stage4 "
            << stage[4] << ", stale entries dropped " << counters(HK_STAT_SP_STALE_ENTRIES) << ", lock "
            << counters(HK_STAT_SP_LOCK_ACQUISITIONS) << "\n";
  RecordProperty("stage0", std::to_string(stage[0]));
  RecordProperty("stage1", std::to_string(stage[1]));
  RecordProperty("stage2", std::to_string(stage[2]));
  for (ss_slab *slab : held) sp_release_slab(slab);
}

TEST_F(SharedPool, FreeingEverythingThenAcquiringAgainHitsTheLruCache) {
  constexpr unsigned kSlabs = 96;  // three SuperSlabs
  std::vector<ss_slab *> held;
  for (unsigned i = 0; i < kSlabs; i++) held.push_back(sp_acquire_slab(i % 6));
  Counters counters;
  for (ss_slab *slab : held) sp_release_slab(slab);
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_PUSHES), 3u);
  EXPECT_EQ(ss_cache_count(), 3u);
  for (unsigned i = 0; i < kSlabs; i++) {
    held[i] = sp_acquire_slab((i + 1) % 6);
    ASSERT_NE(held[i], nullptr);
  }
  EXPECT_EQ(counters(HK_STAT_SS_MAPPED), 0u);
  EXPECT_EQ(counters(HK_STAT_SP_LOCK_ACQUISITIONS), 0u);
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_HITS), 3u);
  EXPECT_EQ(counters(HK_STAT_SP_STAGE3_CACHE), 3u);
  std::cout << "[lru] " << kSlabs << " slabs freed and acquired again: mapped " << counters(HK_STAT_SS_MAPPED)
            << ", cache pushes " << counters(HK_STAT_SS_CACHE_PUSHES) << ", cache hits "
            << counters(HK_STAT_SS_CACHE_HITS) << ", stage0 " << counters(HK_STAT_SP_STAGE0_HOT) << ", stage1 "
            << counters(HK_STAT_SP_STAGE1_KIND_LIST) << ", stage2 " << counters(HK_STAT_SP_STAGE2_SHARED)
            << ", stale " << counters(HK_STAT_SP_STALE_ENTRIES) << "\n";
  for (ss_slab *slab : held) sp_release_slab(slab);
  Counters trim;
  sp_trim(1);
  EXPECT_EQ(trim(HK_STAT_SS_UNMAPPED), 3u);
  EXPECT_EQ(trim(HK_STAT_SS_CACHE_UNMAPPED_FORCED), 3u);
  EXPECT_EQ(ss_cache_count(), 0u);
}

// HAKMEM_SS_KEEP_FREE: a SuperSlab whose last slot comes back stays in service (its slots listed
// for any kind) while fewer than the limit do; the next ones go to the LRU cache. The kept one
// serves the next acquisitions at stages 0-2, without a cache pop or a mapping, and the aging
// pass retires it only once its slots have all been free for the decommit delay (or at a forced
// trim). The count of kept SuperSlabs comes back down, so a second round keeps one again.
TEST_F(SharedPool, AFullyFreeSuperSlabStaysInServiceUpToTheLimit) {
  LoadConfig({"HAKMEM_SS_KEEP_FREE=1", "HAKMEM_SS_DECOMMIT_DELAY_MS=600000", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  for (int round = 0; round < 2; round++) {
    std::vector<ss_slab *> held;
    for (unsigned i = 0; i < 2 * SS_SLABS_PER_SUPERSLAB; i++) held.push_back(sp_acquire_slab(i % 4));
    Counters released;
    for (ss_slab *slab : held) sp_release_slab(slab);
    EXPECT_EQ(released(HK_STAT_SP_SUPERSLABS_KEPT), 1u) << "round " << round;
    EXPECT_EQ(released(HK_STAT_SS_CACHE_PUSHES), 1u) << "round " << round;
    EXPECT_EQ(ss_cache_count(), 1u);
    EXPECT_EQ(hk_stat_get(HK_STAT_SS_LIVE), 2u);

    Counters reused;
    held.clear();
    for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) held.push_back(sp_acquire_slab((i + 1) % 4));
    EXPECT_EQ(reused(HK_STAT_SP_STAGE3_CACHE), 0u) << "the kept SuperSlab's slots serve first";
    EXPECT_EQ(reused(HK_STAT_SS_MAPPED), 0u);
    EXPECT_EQ(reused(HK_STAT_SS_CACHE_HITS), 0u);
    for (ss_slab *slab : held) sp_release_slab(slab);

    // Emptied just now: the aging pass leaves it in service; a forced trim retires and unmaps it.
    Counters aged;
    sp_trim(0);
    EXPECT_EQ(aged(HK_STAT_SS_CACHE_PUSHES), 0u) << "round " << round;
    sp_trim(1);
    EXPECT_EQ(hk_stat_get(HK_STAT_SS_LIVE), 0u);
  }
}

// Past the decommit delay, the aging pass retires a kept SuperSlab (its idle slots decommitted
// first, as any idle free slot is).
TEST_F(SharedPool, AKeptSuperSlabRetiresOnceIdleForTheDelay) {
  LoadConfig({"HAKMEM_SS_KEEP_FREE=1", "HAKMEM_SS_DECOMMIT_DELAY_MS=40", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  std::vector<ss_slab *> held;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) held.push_back(sp_acquire_slab(i % 3));
  Counters counters;
  for (ss_slab *slab : held) sp_release_slab(slab);
  EXPECT_EQ(counters(HK_STAT_SP_SUPERSLABS_KEPT), 1u);
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_PUSHES), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  sp_trim(0);
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_PUSHES), 1u);
  EXPECT_EQ(ss_cache_count(), 1u);
}

TEST_F(SharedPool, SmallCacheBoundsUnmapAndTheCountersSaySo) {
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_SS_CACHE_MAX_COUNT=1", "HAKMEM_SS_DECOMMIT_DELAY_MS=600000", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  std::vector<ss_slab *> held;
  for (unsigned i = 0; i < 4 * SS_SLABS_PER_SUPERSLAB; i++) held.push_back(sp_acquire_slab(i % 3));
  Counters counters;
  for (ss_slab *slab : held) sp_release_slab(slab);
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_PUSHES), 4u);
  EXPECT_EQ(counters(HK_STAT_SS_CACHE_UNMAPPED_BOUNDS), 3u);
  EXPECT_EQ(counters(HK_STAT_SS_UNMAPPED), 3u);
  EXPECT_EQ(ss_cache_count(), 1u);
  EXPECT_EQ(hk_stat_get(HK_STAT_SS_LIVE), 1u);

  // The byte bound: 4 MiB keeps two SuperSlabs.
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_SS_CACHE_MAX_BYTES=4M", "HAKMEM_SS_DECOMMIT_DELAY_MS=600000", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  held.clear();
  for (unsigned i = 0; i < 4 * SS_SLABS_PER_SUPERSLAB; i++) held.push_back(sp_acquire_slab(i % 3));
  Counters bytes;
  for (ss_slab *slab : held) sp_release_slab(slab);
  EXPECT_EQ(bytes(HK_STAT_SS_CACHE_UNMAPPED_BOUNDS), 2u);
  EXPECT_EQ(ss_cache_count(), 2u);

  // The TTL: past it, a trim unmaps what is left.
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_SS_CACHE_TTL_MS=20", "HAKMEM_SS_DECOMMIT_DELAY_MS=600000"});
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  Counters age;
  sp_trim(0);
  EXPECT_EQ(age(HK_STAT_SS_CACHE_UNMAPPED_AGE), 2u);
  EXPECT_EQ(ss_cache_count(), 0u);
  EXPECT_EQ(hk_stat_get(HK_STAT_SS_LIVE), 0u);
}

TEST_F(SharedPool, IdleEmptySlabsAndCachedSuperSlabsAreDecommittedAfterTheDelay) {
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_SS_DECOMMIT_DELAY_MS=200", "HAKMEM_SS_CACHE_TTL_MS=600000", "HAKMEM_OS_DECOMMIT=dontneed"});
  std::vector<ss_slab *> held;
  for (unsigned i = 0; i < 2 * SS_SLABS_PER_SUPERSLAB; i++) {
    held.push_back(sp_acquire_slab(i % 4));
    memset(sp_slab_base(held.back()), 0x5a, sp_slab_usable_size(held.back()));
  }
  uint64_t committed_before = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  // Release every other slab: both SuperSlabs stay live, half their slabs empty.
  std::vector<ss_slab *> released;
  for (size_t i = 1; i < held.size(); i += 2) {
    released.push_back(held[i]);
    sp_release_slab(held[i]);
    held[i] = nullptr;
  }
  size_t resident_before = 0;
  for (ss_slab *slab : released) resident_before += ResidentPages(sp_slab_base(slab), sp_slab_usable_size(slab));
  uint64_t rss_before = RssPages();
  Counters counters;
  sp_trim(0);  // too early: nothing is old enough
  EXPECT_EQ(counters(HK_STAT_SP_SLABS_DECOMMITTED), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t bytes = sp_trim(0);
  EXPECT_EQ(counters(HK_STAT_SP_SLABS_DECOMMITTED), released.size());
  EXPECT_GE(bytes, released.size() * (SS_SLAB_SIZE - SS_HEADER_SIZE));
  size_t resident_after = 0;
  for (ss_slab *slab : released) resident_after += ResidentPages(sp_slab_base(slab), sp_slab_usable_size(slab));
  uint64_t rss_after = RssPages();
  std::cout << "[decommit] empty slabs' resident pages " << resident_before << " -> " << resident_after
            << "; process RSS pages " << rss_before << " -> " << rss_after << "\n";
  EXPECT_GT(resident_before, 0u);
  EXPECT_EQ(resident_after, 0u);
  EXPECT_LT(rss_after, rss_before);
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_COMMITTED), committed_before - bytes);

  // A decommitted slab comes back zeroed and counted as committed again.
  ss_slab *again = sp_acquire_slab(2);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(sp_slab_is_zeroed(again));
  const char *base = (const char *)sp_slab_base(again);
  for (size_t i = 0; i < sp_slab_usable_size(again); i += 997) ASSERT_EQ(base[i], 0);
  sp_release_slab(again);

  // Now everything: both SuperSlabs go to the cache, and their pages go after the delay.
  for (ss_slab *slab : held)
    if (slab) sp_release_slab(slab);
  EXPECT_EQ(ss_cache_count(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Counters cached;
  sp_trim(0);
  EXPECT_GT(cached(HK_STAT_SS_BYTES_DECOMMITTED), 0u);
  EXPECT_EQ(cached(HK_STAT_SS_UNMAPPED), 0u);
  for (ss_slab *slab : held)
    if (slab) {
      EXPECT_EQ(ResidentPages(sp_slab_base(slab), sp_slab_usable_size(slab)), 0u);
    }
}

// A slot of a released span, taken again as a slab of its own, is its own head again.
TEST_F(SharedPool, HeadLookupFollowsSlotsFromSpanToSlab) {
  ss_slab *head = sp_acquire_span(SS_SLABS_PER_SUPERSLAB - 1);  // every slot but slot 0
  ASSERT_NE(head, nullptr);
  ss_superslab *superslab = ss_slab_superslab(head);
  char *last = (char *)sp_slab_base(head) + (SS_SLABS_PER_SUPERSLAB - 2) * SS_SLAB_SIZE + 8;
  EXPECT_EQ(ss_registry_lookup_head(last), head);
  EXPECT_EQ(ss_registry_lookup(last), &superslab->slabs[SS_SLABS_PER_SUPERSLAB - 1]);
  sp_release_span(head);
  std::vector<ss_slab *> slabs;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) slabs.push_back(sp_acquire_slab(3));
  for (ss_slab *slab : slabs) {
    ASSERT_NE(slab, nullptr);
    EXPECT_EQ(ss_registry_lookup_head((char *)sp_slab_base(slab) + 8), slab);
  }
  EXPECT_EQ(ss_registry_lookup_head(last), ss_registry_lookup(last));
  for (ss_slab *slab : slabs) sp_release_slab(slab);
  EXPECT_EQ(ss_registry_lookup_head((void *)1), nullptr);
}

TEST_F(SharedPool, SpansAreContiguousAndRecycled) {
  Counters counters;
  std::vector<ss_slab *> spans;
  for (unsigned n : {1u, 2u, 5u, 9u, 9u, 3u, SP_MAX_SPAN_SLABS}) {
    ss_slab *head = sp_acquire_span(n);
    ASSERT_NE(head, nullptr);
    EXPECT_EQ(head->span_slabs, n);
    EXPECT_EQ(head->kind, SS_KIND_SPAN);
    EXPECT_NE(head->index, 0u);
    EXPECT_EQ(sp_slab_usable_size(head), n * SS_SLAB_SIZE);
    char *base = (char *)sp_slab_base(head);
    memset(base, 0x11, sp_slab_usable_size(head));
    ss_superslab *superslab = ss_slab_superslab(head);
    for (unsigned i = 0; i < n; i++) {
      ss_slab *part = ss_registry_lookup(base + (size_t)i * SS_SLAB_SIZE + 100);
      ASSERT_EQ(part, &superslab->slabs[head->index + i]);
      EXPECT_EQ(part->span_head, head->index);
      EXPECT_EQ(ss_registry_lookup_head(base + (size_t)i * SS_SLAB_SIZE + 100), head);
      if (i) {
        EXPECT_EQ(part->span_slabs, 0u);
      }
    }
    spans.push_back(head);
  }
  uint64_t mapped = counters(HK_STAT_SS_MAPPED);
  for (ss_slab *head : spans) sp_release_span(head);
  for (int round = 0; round < 50; round++) {
    ss_slab *head = sp_acquire_span(9);
    ASSERT_NE(head, nullptr);
    ss_slab *slab = sp_acquire_slab(round % 4);
    ASSERT_NE(slab, nullptr);
    sp_release_span(head);
    sp_release_slab(slab);
  }
  EXPECT_EQ(counters(HK_STAT_SS_MAPPED), mapped);
}

TEST_F(SharedPool, ConcurrentAcquireReleaseHandsEachSlabToOneOwner) {
#ifdef HK_DEBUG
  const auto duration = std::chrono::milliseconds(1200);
#else
  const auto duration = std::chrono::milliseconds(2000);
#endif
  Counters counters;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> operations{0}, failures{0};
  std::vector<std::thread> threads;
  for (uint64_t t = 1; t <= 8; t++) {
    threads.emplace_back([&, t] {
      absl::BitGen random;
      struct Held {
        ss_slab *slab;
        bool span;
      };
      std::vector<Held> held;
      uint64_t local = 0;
      auto release = [&](size_t i) {
        Held item = held[i];
        unsigned count = item.span ? item.slab->span_slabs : 1;
        ss_slab *first = item.slab;
        for (unsigned s = 0; s < count; s++) {
          // The mark written when we got it must still be ours: nobody else was handed it.
          const volatile char *base = (const volatile char *)sp_slab_base(first + s);
          if (base[0] != (char)t || base[SS_SLAB_SIZE - SS_HEADER_SIZE - 1] != (char)t) failures++;
          uint64_t expected = t;
          if (!__atomic_compare_exchange_n(&first[s].owner, &expected, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            failures++;
        }
        if (item.span) sp_release_span(item.slab);
        else sp_release_slab(item.slab);
        held[i] = held.back();
        held.pop_back();
      };
      while (!stop.load(std::memory_order_relaxed)) {
        if (held.size() >= 12 || (!held.empty() && absl::Bernoulli(random, 0.45))) {
          release(absl::Uniform<size_t>(random, 0, held.size()));
          continue;
        }
        bool span = absl::Bernoulli(random, 0.2);
        ss_slab *slab = span ? sp_acquire_span(absl::Uniform<unsigned>(random, 1, 10))
                             : sp_acquire_slab(absl::Uniform<unsigned>(random, 0, SP_MAX_KINDS));
        if (!slab) {
          failures++;
          continue;
        }
        unsigned count = span ? slab->span_slabs : 1;
        for (unsigned s = 0; s < count; s++) {
          uint64_t expected = 0;
          if (!__atomic_compare_exchange_n(&slab[s].owner, &expected, t, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            failures++;
          volatile char *base = (volatile char *)sp_slab_base(slab + s);
          base[0] = (char)t;
          base[SS_SLAB_SIZE - SS_HEADER_SIZE - 1] = (char)t;
        }
        held.push_back({slab, span});
        local++;
      }
      while (!held.empty()) release(held.size() - 1);
      operations += local;
    });
  }
  std::this_thread::sleep_for(duration);
  stop.store(true);
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GT(operations.load(), 1000u);
  EXPECT_EQ(counters(HK_STAT_SP_LOCK_ACQUISITIONS), counters(HK_STAT_SS_MAPPED));
  EXPECT_EQ(counters(HK_STAT_SP_ACQUIRE_FAILURES), 0u);
  EXPECT_EQ(counters(HK_STAT_SP_STAGE0_HOT) + counters(HK_STAT_SP_STAGE1_KIND_LIST) +
                counters(HK_STAT_SP_STAGE2_SHARED) + counters(HK_STAT_SP_STAGE3_CACHE) +
                counters(HK_STAT_SP_STAGE4_MAP),
            operations.load());
  std::cout << "[concurrency] " << operations.load() << " acquisitions by 8 threads: mapped "
            << counters(HK_STAT_SS_MAPPED) << ", lock acquisitions " << counters(HK_STAT_SP_LOCK_ACQUISITIONS)
            << ", lock waits " << counters(HK_STAT_SP_LOCK_WAITS) << ", stage0 " << counters(HK_STAT_SP_STAGE0_HOT)
            << ", stage1 " << counters(HK_STAT_SP_STAGE1_KIND_LIST) << ", stage2 "
            << counters(HK_STAT_SP_STAGE2_SHARED) << ", stage3 " << counters(HK_STAT_SP_STAGE3_CACHE)
            << ", stage4 " << counters(HK_STAT_SP_STAGE4_MAP) << "\n";
}

TEST_F(SharedPool, ForkChildHasAWorkingPool) {
  ss_slab *slab = sp_acquire_slab(3);
  ASSERT_NE(slab, nullptr);
  sp_prefork();
  pid_t pid = fork();
  if (pid == 0) {
    sp_postfork_child();
    ss_slab *child = sp_acquire_slab(3);
    ss_slab *span = sp_acquire_span(4);
    bool ok = child && span && child != slab;
    if (child) sp_release_slab(child);
    if (span) sp_release_span(span);
    sp_release_slab(slab);
    _exit(ok ? 0 : 1);
  }
  sp_postfork_parent();
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  sp_release_slab(slab);
}

#ifdef HK_DEBUG
#define SKIP_WITHOUT_DEBUG()
#else
#define SKIP_WITHOUT_DEBUG() GTEST_SKIP() << "bad-input checks are tested in HK_DEBUG builds"
#endif

using SharedPoolDeathTest = SharedPool;

TEST_F(SharedPoolDeathTest, ReleasingASlabTwiceIsReported) {
  SKIP_WITHOUT_DEBUG();
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        ss_slab *keep = sp_acquire_slab(1);
        ss_slab *slab = sp_acquire_slab(1);
        (void)keep;
        sp_release_slab(slab);
        sp_release_slab(slab);
      },
      "sp_release_slab\\(\\): slab released twice");
}

TEST_F(SharedPoolDeathTest, ReleasingSomethingThatIsNotASlabIsReported) {
  SKIP_WITHOUT_DEBUG();
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  static ss_slab fake;
  EXPECT_DEATH(sp_release_slab(&fake), "sp_release_slab\\(\\): not a slab");
  EXPECT_DEATH(
      {
        ss_slab *slab = sp_acquire_slab(2);
        sp_release_slab((ss_slab *)((char *)slab + 8));
      },
      "not a slab");
  EXPECT_DEATH(
      {
        ss_slab *slab = sp_acquire_slab(2);
        sp_release_slab((ss_slab *)sp_slab_base(slab));
      },
      "not a slab");
  EXPECT_DEATH(
      {
        ss_slab *span = sp_acquire_span(3);
        sp_release_slab(span);
      },
      "not a slab");
  EXPECT_DEATH(
      {
        ss_slab *slab = sp_acquire_slab(2);
        sp_release_span(slab);
      },
      "not the head of a span");
}

// The line starting with `field` of the mapping that holds `address` (/proc/self/smaps), "" when none.
std::string SmapsLineOf(const void *address, const char *field) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  uintptr_t target = (uintptr_t)address;
  while (std::getline(smaps, line)) {
    uintptr_t start, end;
    if (sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find(':') > line.find(' ')) {
      inside = start <= target && target < end;
    } else if (inside && line.rfind(field, 0) == 0) {
      return line + " ";
    }
  }
  return "";
}

// The VmFlags line of the mapping that holds `address`, "" when none.
std::string VmFlagsOf(const void *address) { return SmapsLineOf(address, "VmFlags:"); }

TEST_F(SharedPool, SuperSlabsAskForHugePagesOnceTheHeapIsLargeAndWithdrawOnDecommit) {
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) GTEST_SKIP() << "no THP in this kernel";
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_OS_HUGEPAGES=3", "HAKMEM_SS_DECOMMIT_DELAY_MS=100", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  // Three SuperSlabs' worth of slabs: the third SuperSlab is mapped while two are live.
  std::vector<ss_slab *> held;
  std::vector<ss_superslab *> order;
  while (order.size() < 3) {
    ss_slab *slab = sp_acquire_slab(1);
    ASSERT_NE(slab, nullptr);
    held.push_back(slab);
    if (order.empty() || order.back() != ss_slab_superslab(slab)) order.push_back(ss_slab_superslab(slab));
  }
  EXPECT_EQ(VmFlagsOf(order[0]).find(" hg "), std::string::npos) << VmFlagsOf(order[0]);
  EXPECT_EQ(VmFlagsOf(order[1]).find(" hg "), std::string::npos) << VmFlagsOf(order[1]);
  EXPECT_NE(VmFlagsOf(order[2]).find(" hg "), std::string::npos) << VmFlagsOf(order[2]);

  // A decommit inside it withdraws the request (khugepaged must not make it all resident again).
  ss_slab *last = held.back();
  held.pop_back();
  ss_slab *neighbour = sp_acquire_slab(1);  // keeps the SuperSlab live
  ASSERT_EQ(ss_slab_superslab(neighbour), order[2]);
  sp_release_slab(last);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Counters counters;
  sp_trim(0);
  EXPECT_GE(counters(HK_STAT_SP_SLABS_DECOMMITTED), 1u);
  std::string flags = VmFlagsOf(order[2]);
  EXPECT_EQ(flags.find(" hg "), std::string::npos) << flags;
  EXPECT_NE(flags.find(" nh "), std::string::npos) << flags;
  held.push_back(neighbour);
  for (ss_slab *slab : held) sp_release_slab(slab);

  // 0 never asks.
  sp_trim(1);
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_OS_HUGEPAGES=0", "HAKMEM_SS_DECOMMIT_DELAY_MS=600000", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  held.clear();
  std::set<ss_superslab *> mapped;
  while (mapped.size() < 4) {
    held.push_back(sp_acquire_slab(1));
    mapped.insert(ss_slab_superslab(held.back()));
  }
  for (ss_superslab *superslab : mapped) EXPECT_EQ(VmFlagsOf(superslab).find(" hg "), std::string::npos);
  for (ss_slab *slab : held) sp_release_slab(slab);
}

// AnonHugePages (KiB) of the mapping that holds `address`, -1 when not found.
long AnonHugeKibOf(const void *address) {
  std::string line = SmapsLineOf(address, "AnonHugePages:");
  return line.empty() ? -1 : atol(line.c_str() + 14);
}

TEST_F(SharedPool, SuperSlabsThatStayFullAndResidentAreCollapsedIntoHugePagesOnce) {
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) GTEST_SKIP() << "no THP in this kernel";
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_OS_HUGEPAGES=0", "HAKMEM_SS_DECOMMIT_DELAY_MS=600000", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  // Slabs until one SuperSlab has every slot in use; all of its pages written with a pattern.
  std::vector<ss_slab *> held;
  ss_superslab *full = nullptr;
  while (!full) {
    ss_slab *slab = sp_acquire_slab(1);
    ASSERT_NE(slab, nullptr);
    held.push_back(slab);
    ss_superslab *superslab = ss_slab_superslab(slab);
    size_t in_it = 0;
    for (ss_slab *s : held) in_it += ss_slab_superslab(s) == superslab;
    if (in_it == SS_SLABS_PER_SUPERSLAB) full = superslab;
  }
  for (ss_slab *slab : held) {
    if (ss_slab_superslab(slab) != full) continue;
    uint64_t *words = (uint64_t *)sp_slab_base(slab);
    for (size_t i = 0; i < sp_slab_usable_size(slab) / 8; i++) words[i] = (uintptr_t)&words[i] ^ 0x5eed;
  }
  // A short delay: the first pass sees it full, a pass after the delay collapses it.
  Counters counters;
  EXPECT_EQ(sp_collapse_dense(30), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  size_t collapsed = sp_collapse_dense(30);
  if (counters(HK_STAT_OS_HUGEPAGE_COLLAPSE_FAILURES) > 0 && collapsed == 0)
    GTEST_SKIP() << "MADV_COLLAPSE failed here (kernel before 6.1, or no huge page free)";
  EXPECT_GE(collapsed, 1u);
  EXPECT_GE(counters(HK_STAT_OS_HUGEPAGE_COLLAPSES), 1u);
  EXPECT_NE(VmFlagsOf(full).find(" hg "), std::string::npos) << VmFlagsOf(full);
  EXPECT_GE(AnonHugeKibOf(full), 2048) << "the SuperSlab's mapping holds no huge page";
  // Once: the next passes leave it alone.
  EXPECT_EQ(sp_collapse_dense(0), 0u);
  // The contents survived the copy.
  for (ss_slab *slab : held) {
    if (ss_slab_superslab(slab) != full) continue;
    uint64_t *words = (uint64_t *)sp_slab_base(slab);
    for (size_t i = 0; i < sp_slab_usable_size(slab) / 8; i++)
      ASSERT_EQ(words[i], (uintptr_t)&words[i] ^ 0x5eed) << "word " << i << " of slab " << (unsigned)slab->index;
  }
  // A decommit inside it withdraws the request, as for a hint given at the mapping.
  LoadConfig({"HAKMEM_SS_KEEP_FREE=0", "HAKMEM_OS_HUGEPAGES=0", "HAKMEM_SS_DECOMMIT_DELAY_MS=0", "HAKMEM_SS_CACHE_TTL_MS=600000"});
  ss_slab *one = nullptr;
  for (ss_slab *&slab : held)
    if (!one && ss_slab_superslab(slab) == full && slab->index != 0) std::swap(one, slab);
  held.erase(std::remove(held.begin(), held.end(), nullptr), held.end());
  sp_release_slab(one);
  sp_trim(0);
  std::string flags = VmFlagsOf(full);
  EXPECT_EQ(flags.find(" hg "), std::string::npos) << flags;
  // A SuperSlab with a slot free is not dense.
  EXPECT_EQ(sp_collapse_dense(0), 0u);
  for (ss_slab *slab : held) sp_release_slab(slab);
  sp_trim(1);
}

}  // namespace
