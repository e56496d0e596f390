#include "allocator/superslab/registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <atomic>
#include <thread>
#include <vector>

#include "allocator/base/stats.h"
#include "gtest/gtest.h"

namespace {

int static_variable = 42;

ss_slab *ExpectedSlab(ss_superslab *superslab, uintptr_t address) {
  return &superslab->slabs[(address - (uintptr_t)superslab) >> SS_SLAB_SIZE_LOG2];
}

TEST(Registry, GeometryIsAsDocumented) {
  EXPECT_EQ(SS_SIZE, (size_t)2 << 20);
  EXPECT_EQ(SS_SLAB_SIZE, (size_t)64 << 10);
  EXPECT_EQ(SS_SLABS_PER_SUPERSLAB, 32u);
  EXPECT_EQ(sizeof(ss_slab), 64u);
  EXPECT_LE(sizeof(ss_superslab), SS_HEADER_SIZE);
  EXPECT_EQ(offsetof(ss_superslab, slabs) % 64, 0u);
}

TEST(Registry, EverySlabAndInteriorAddressFindsItsSlab) {
  uint64_t mapped_before = hk_stat_get(HK_STAT_SS_MAPPED);
  ss_superslab *superslab = ss_superslab_map();
  ASSERT_NE(superslab, nullptr);
  EXPECT_EQ(hk_stat_get(HK_STAT_SS_MAPPED), mapped_before + 1);
  EXPECT_EQ((uintptr_t)superslab % SS_SIZE, 0u);
  EXPECT_EQ(superslab->magic, SS_MAGIC);
  uintptr_t base = (uintptr_t)superslab;
  for (unsigned i = 0; i < SS_SLABS_PER_SUPERSLAB; i++) {
    ss_slab *slab = &superslab->slabs[i];
    EXPECT_EQ(slab->index, i);
    uintptr_t start = base + ((uintptr_t)i << SS_SLAB_SIZE_LOG2);
    for (uintptr_t offset : {(uintptr_t)0, (uintptr_t)1, (uintptr_t)4095, (uintptr_t)4096, (uintptr_t)32768,
                             (uintptr_t)SS_SLAB_SIZE - 8, (uintptr_t)SS_SLAB_SIZE - 1}) {
      const void *address = (const void *)(start + offset);
      ASSERT_EQ(ss_registry_lookup(address), slab) << "slab " << i << " offset " << offset;
      ASSERT_EQ(ss_registry_find(address), superslab);
      ASSERT_EQ(ss_slab_from_pointer_unchecked(address), slab);
      ASSERT_EQ(ss_from_pointer_unchecked(address), superslab);
    }
    EXPECT_EQ(ss_slab_superslab(slab), superslab);
    EXPECT_EQ((uintptr_t)ss_slab_base(slab), i == 0 ? start + SS_HEADER_SIZE : start);
    EXPECT_EQ(ss_slab_usable_size(slab), i == 0 ? SS_SLAB_SIZE - SS_HEADER_SIZE : SS_SLAB_SIZE);
  }
  // The metadata itself lives in the header page, which belongs to slab 0.
  EXPECT_EQ(ss_registry_lookup(&superslab->slabs[7]), &superslab->slabs[0]);
  ss_superslab_unmap(superslab);
  EXPECT_EQ(ss_registry_lookup((void *)(base + 100)), nullptr);
  EXPECT_EQ(ss_registry_find((void *)(base + SS_SIZE - 1)), nullptr);
}

// The directory's reservation counts as committed only page by page as new ids reach it: mapping
// SuperSlabs under new ids adds their own 2 MiB plus at most the directory pages their entries
// reach, never the whole reservation (36 MiB: it used to count at the first mapping).
TEST(Registry, TheDirectoryCountsAsCommittedOnlyWhereItsEntriesReach) {
  std::vector<ss_superslab *> mapped;
  // Ids are reused after an unmap: map more than any earlier test freed, so new ids are reached.
  for (int i = 0; i < 64; i++) {
    ss_superslab *superslab = ss_superslab_map();
    ASSERT_NE(superslab, nullptr);
    mapped.push_back(superslab);
  }
  uint64_t committed_before = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  uint64_t reserved_before = hk_stat_get(HK_STAT_OS_BYTES_RESERVED);
  const int more = 200;
  for (int i = 0; i < more; i++) {
    ss_superslab *superslab = ss_superslab_map();
    ASSERT_NE(superslab, nullptr);
    mapped.push_back(superslab);
  }
  uint64_t committed = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED) - committed_before;
  uint64_t reserved = hk_stat_get(HK_STAT_OS_BYTES_RESERVED) - reserved_before;
  EXPECT_EQ(reserved, (uint64_t)more * SS_SIZE) << "the directory is reserved once, before";
  // Each new entry is under 1 KiB: 200 of them reach at most 200 KiB of pages (and more than none).
  EXPECT_GT(committed, (uint64_t)more * SS_SIZE);
  EXPECT_LE(committed, (uint64_t)more * SS_SIZE + (256u << 10));
  for (ss_superslab *superslab : mapped) ss_superslab_unmap(superslab);
}

TEST(Registry, AddressesThatAreNotOursMiss) {
  // Keep a SuperSlab registered so the leaves around real heap addresses exist.
  ss_superslab *superslab = ss_superslab_map();
  ASSERT_NE(superslab, nullptr);
  int stack_variable = 1;
  void *small = malloc(24);
  void *large = malloc((size_t)4 << 20);  // glibc maps this one on its own
  void *foreign = mmap(nullptr, (size_t)8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(foreign, MAP_FAILED);
  std::vector<uintptr_t> addresses = {
      0,
      1,
      4095,
      UINTPTR_MAX,
      UINTPTR_MAX - SS_SIZE,
      (uintptr_t)1 << 47,
      ((uintptr_t)1 << 47) - 1,  // canonical, top of user space, nothing there
      (uintptr_t)0x8000000000000000ull,
      (uintptr_t)0xffff800000000000ull,  // kernel half
      (uintptr_t)0x0000800000001000ull,  // non-canonical
      (uintptr_t)&stack_variable,
      (uintptr_t)&static_variable,
      (uintptr_t)&ExpectedSlab,
      (uintptr_t)small,
      (uintptr_t)large,
      (uintptr_t)large + ((size_t)4 << 20) - 1,
  };
  for (size_t offset = 0; offset < ((size_t)8 << 20); offset += 4096) addresses.push_back((uintptr_t)foreign + offset);
  for (uintptr_t address : addresses) {
    EXPECT_EQ(ss_registry_lookup((const void *)address), nullptr) << std::hex << address;
    EXPECT_EQ(ss_registry_find((const void *)address), nullptr) << std::hex << address;
  }
  munmap(foreign, (size_t)8 << 20);
  free(large);
  free(small);
  ss_superslab_unmap(superslab);
}

// Lookups racing with registration and deregistration: a result is NULL or exactly the slab the
// address belongs to; the SuperSlab that stays mapped is always found with its header visible.
TEST(Registry, LookupsRaceSafelyWithRegistration) {
  ss_superslab *stable = ss_superslab_map();
  ASSERT_NE(stable, nullptr);
  constexpr int kSlots = 8;
  std::atomic<uintptr_t> recent[kSlots];
  for (auto &slot : recent) slot.store(0);
  std::atomic<bool> stop{false};
  std::thread mapper([&] {
    ss_superslab *held[kSlots] = {};
    for (int round = 0; round < 400; round++) {
      int i = round % kSlots;
      if (held[i]) ss_superslab_unmap(held[i]);
      held[i] = ss_superslab_map();
      recent[i].store((uintptr_t)held[i], std::memory_order_relaxed);
    }
    for (auto *superslab : held)
      if (superslab) ss_superslab_unmap(superslab);
    stop.store(true);
  });
  std::vector<std::thread> readers;
  std::atomic<uint64_t> hits{0}, misses{0};
  for (int t = 0; t < 3; t++) {
    readers.emplace_back([&, t] {
      uint64_t local_hits = 0, local_misses = 0;
      for (uint64_t n = 0; !stop.load(std::memory_order_relaxed) || n < 1000; n++) {
        uintptr_t base = recent[(n + t) % kSlots].load(std::memory_order_relaxed);
        if (base) {
          uintptr_t address = base + ((n * 4099) % SS_SIZE);
          ss_slab *slab = ss_registry_lookup((const void *)address);
          if (slab) {
            ASSERT_EQ(slab, ExpectedSlab((ss_superslab *)base, address));
            local_hits++;
          } else {
            local_misses++;
          }
        }
        uintptr_t inside = (uintptr_t)stable + ((n * 65537) % SS_SIZE);
        ss_slab *slab = ss_registry_lookup((const void *)inside);
        ASSERT_EQ(slab, ExpectedSlab(stable, inside));
        ASSERT_EQ(ss_slab_superslab(slab)->magic, SS_MAGIC);  // acquire made the header visible
      }
      hits += local_hits;
      misses += local_misses;
    });
  }
  mapper.join();
  for (auto &reader : readers) reader.join();
  EXPECT_GT(hits.load() + misses.load(), 0u);
  ss_superslab_unmap(stable);
}

TEST(Registry, RemoteFreeWordHoldsTheListAndItsLength) {
  alignas(16) static char block[16];
  uint64_t word = ss_remote_word(block, 4095);
  EXPECT_EQ(ss_remote_list(word), static_cast<void *>(block));
  EXPECT_EQ(ss_remote_count(word), 4095u);
  void *highest = reinterpret_cast<void *>((uintptr_t{1} << 47) - 16);
  word = ss_remote_word(highest, 65535);
  EXPECT_EQ(ss_remote_list(word), highest);
  EXPECT_EQ(ss_remote_count(word), 65535u);
  EXPECT_EQ(ss_remote_word(nullptr, 0), 0u);
}

}  // namespace
