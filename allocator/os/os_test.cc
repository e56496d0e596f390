#include "allocator/os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "allocator/base/stats.h"
#include "gtest/gtest.h"

namespace {

// /proc/self/maps read with raw syscalls into a static buffer, so reading it allocates nothing
// and cannot itself change the mappings being measured.
struct Mapping {
  uintptr_t start, end;
};

size_t ReadMappings(Mapping *out, size_t capacity) {
  static char buffer[1 << 20];
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return 0;
  size_t length = 0;
  ssize_t got;
  while ((got = read(fd, buffer + length, sizeof buffer - 1 - length)) > 0) length += (size_t)got;
  close(fd);
  buffer[length] = '\0';
  size_t count = 0;
  for (char *line = buffer; *line && count < capacity;) {
    unsigned long start, end;
    if (sscanf(line, "%lx-%lx", &start, &end) == 2) out[count++] = {start, end};
    char *newline = strchr(line, '\n');
    if (!newline) break;
    line = newline + 1;
  }
  return count;
}

uint64_t TotalMappedBytes() {
  static Mapping mappings[65536];
  size_t count = ReadMappings(mappings, 65536);
  uint64_t total = 0;
  for (size_t i = 0; i < count; i++) total += mappings[i].end - mappings[i].start;
  return total;
}

// True when [start, end) lies inside one line of /proc/self/maps.
bool RangeIsOneMapping(uintptr_t start, uintptr_t end) {
  static Mapping mappings[65536];
  size_t count = ReadMappings(mappings, 65536);
  for (size_t i = 0; i < count; i++)
    if (mappings[i].start <= start && end <= mappings[i].end) return true;
  return false;
}

size_t ResidentPages(void *address, size_t size) {
  size_t page = hk_os_page_size();
  std::vector<unsigned char> vector(size / page);
  if (mincore(address, size, vector.data()) != 0) return SIZE_MAX;
  size_t resident = 0;
  for (unsigned char entry : vector) resident += entry & 1;
  return resident;
}

TEST(Os, PageSizeIsAPowerOfTwo) {
  size_t page = hk_os_page_size();
  EXPECT_GE(page, 4096u);
  EXPECT_EQ(page & (page - 1), 0u);
  EXPECT_EQ(page, static_cast<size_t>(sysconf(_SC_PAGESIZE)));
}

TEST(Os, EveryAlignmentFromPageTo64MiBIsHonouredAndTrimmed) {
  for (size_t alignment = 4096; alignment <= ((size_t)64 << 20); alignment <<= 1) {
    for (size_t size : {(size_t)4096, alignment, (size_t)3 * 4096 + 17}) {
      uint64_t mapped_before = TotalMappedBytes();
      void *p = hk_os_reserve_aligned(size, alignment, HK_OS_RESERVE_DEFAULT);
      ASSERT_NE(p, nullptr) << "alignment " << alignment;
      size_t rounded = (size + 4095) & ~(size_t)4095;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u) << "alignment " << alignment;
      // The over-mapped head and tail are gone: the process maps exactly `rounded` more bytes
      // (the kernel may merge our range with a neighbour, so count bytes, not lines).
      EXPECT_EQ(TotalMappedBytes() - mapped_before, rounded) << "alignment " << alignment;
      EXPECT_TRUE(RangeIsOneMapping((uintptr_t)p, (uintptr_t)p + rounded));
      memset(p, 0xab, rounded);  // writable end to end
      ASSERT_EQ(hk_os_release(p, size), 0);
      EXPECT_EQ(TotalMappedBytes(), mapped_before) << "alignment " << alignment;
    }
  }
}

TEST(Os, DecommitDropsResidentPages) {
  const size_t size = 64 * 4096;
  for (hk_os_decommit_kind kind : {HK_OS_DECOMMIT_DONTNEED, HK_OS_DECOMMIT_CONFIGURED}) {
    char *p = static_cast<char *>(hk_os_reserve_aligned(size, 1 << 16, 0));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ResidentPages(p, size), 0u);  // MAP_NORESERVE: nothing until touched
    memset(p, 1, size);
    EXPECT_EQ(ResidentPages(p, size), size / 4096);
    uint64_t committed = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
    ASSERT_EQ(hk_os_decommit(p, size, kind), 0);
    EXPECT_EQ(ResidentPages(p, size), 0u);
    EXPECT_EQ(committed - hk_stat_get(HK_STAT_OS_BYTES_COMMITTED), size);
    EXPECT_EQ(p[0], 0);  // DONTNEED pages read back as zero
    hk_os_commit(p, size);
    EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_COMMITTED), committed);
    ASSERT_EQ(hk_os_release(p, size), 0);
  }
}

// The residency map names exactly the pages written, and agrees with the count.
TEST(Os, ResidentMapNamesThePagesWritten) {
  const size_t pages = 8, page = hk_os_page_size();
  char *p = static_cast<char *>(hk_os_reserve_aligned(pages * page, 0, 0));
  ASSERT_NE(p, nullptr);
  p[0] = 1;
  p[2 * page + 17] = 1;
  p[7 * page] = 1;
  unsigned char map[pages];
  memset(map, 9, sizeof map);
  ASSERT_EQ(hk_os_resident_map(p, pages * page, map), 0);
  const unsigned char expected[pages] = {1, 0, 1, 0, 0, 0, 0, 1};
  EXPECT_EQ(memcmp(map, expected, pages), 0);
  EXPECT_EQ(hk_os_resident_pages(p, pages * page), 3);
  errno = 0;
  EXPECT_EQ(hk_os_resident_map(p + 1, page, map), -1) << "not page-aligned";
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(hk_os_release(p, pages * page), 0);
}

TEST(Os, MadviseFreeKeepsRangeUsable) {
  const size_t size = 16 * 4096;
  char *p = static_cast<char *>(hk_os_reserve_aligned(size, 0, 0));
  ASSERT_NE(p, nullptr);
  memset(p, 7, size);
  ASSERT_EQ(hk_os_decommit(p, size, HK_OS_DECOMMIT_FREE), 0);
  hk_os_commit(p, size);
  memset(p, 9, size);  // writing again cancels the lazy free
  EXPECT_EQ(p[size - 1], 9);
  ASSERT_EQ(hk_os_release(p, size), 0);
}

TEST(Os, CountersCountExactly) {
  hk_stats_snapshot before, after;
  hk_stats_take_snapshot(&before);
  void *plain = hk_os_reserve_aligned(8192, 4096, 0);          // 1 mmap
  void *aligned = hk_os_reserve_aligned(1 << 21, 1 << 21, 0);  // 1 mmap + 1 or 2 trims
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(aligned, nullptr);
  hk_stats_take_snapshot(&after);
  EXPECT_EQ(after.values[HK_STAT_OS_MMAP_CALLS] - before.values[HK_STAT_OS_MMAP_CALLS], 2u);
  uint64_t trims = after.values[HK_STAT_OS_MUNMAP_CALLS] - before.values[HK_STAT_OS_MUNMAP_CALLS];
  EXPECT_GE(trims, 1u);
  EXPECT_LE(trims, 2u);
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_RESERVED] - before.values[HK_STAT_OS_BYTES_RESERVED], 8192u + (1u << 21));
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_COMMITTED] - before.values[HK_STAT_OS_BYTES_COMMITTED], 8192u + (1u << 21));

  ASSERT_EQ(hk_os_decommit(aligned, 1 << 20, HK_OS_DECOMMIT_DONTNEED), 0);
  ASSERT_EQ(hk_os_hugepage_hint(aligned, 1 << 21), 0);
  ASSERT_EQ(hk_os_hugepage_withdraw(aligned, 1 << 21), 0);
  hk_os_commit(aligned, 1 << 20);
  ASSERT_EQ(hk_os_release(plain, 8192), 0);
  ASSERT_EQ(hk_os_release(aligned, 1 << 21), 0);
  hk_stats_snapshot end;
  hk_stats_take_snapshot(&end);
  EXPECT_EQ(end.values[HK_STAT_OS_MADVISE_CALLS] - after.values[HK_STAT_OS_MADVISE_CALLS], 3u);
  EXPECT_EQ(end.values[HK_STAT_OS_MUNMAP_CALLS] - after.values[HK_STAT_OS_MUNMAP_CALLS], 2u);
  EXPECT_EQ(end.values[HK_STAT_OS_BYTES_RESERVED], before.values[HK_STAT_OS_BYTES_RESERVED]);
  EXPECT_EQ(end.values[HK_STAT_OS_BYTES_COMMITTED], before.values[HK_STAT_OS_BYTES_COMMITTED]);
  EXPECT_EQ(end.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL] - after.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL],
            1u << 20);
  // Releases count as given back; the alignment trims of a reservation do not.
  EXPECT_EQ(end.values[HK_STAT_OS_BYTES_UNMAPPED_TOTAL] - before.values[HK_STAT_OS_BYTES_UNMAPPED_TOTAL],
            8192u + (1u << 21));
  EXPECT_GE(after.values[HK_STAT_OS_BYTES_COMMITTED_PEAK], after.values[HK_STAT_OS_BYTES_COMMITTED]);
}

TEST(Os, UncommittedReservationCountsOnlyAsReserved) {
  hk_stats_snapshot before, after, end;
  hk_stats_take_snapshot(&before);
  void *region = hk_os_reserve_aligned(1 << 22, 1 << 22, HK_OS_RESERVE_UNCOMMITTED);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(region) & ((1u << 22) - 1), 0u);
  hk_stats_take_snapshot(&after);
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_RESERVED] - before.values[HK_STAT_OS_BYTES_RESERVED], 1u << 22);
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_COMMITTED], before.values[HK_STAT_OS_BYTES_COMMITTED]);
  static_cast<char *>(region)[0] = 1;  // usable at once
  hk_os_commit(region, 1 << 22);       // the contract of release: commit the bookkeeping first
  ASSERT_EQ(hk_os_release(region, 1 << 22), 0);
  hk_stats_take_snapshot(&end);
  EXPECT_EQ(end.values[HK_STAT_OS_BYTES_RESERVED], before.values[HK_STAT_OS_BYTES_RESERVED]);
  EXPECT_EQ(end.values[HK_STAT_OS_BYTES_COMMITTED], before.values[HK_STAT_OS_BYTES_COMMITTED]);
}

TEST(Os, DecommitZeroesOnlyForDontneed) {
  EXPECT_TRUE(hk_os_decommit_zeroes(HK_OS_DECOMMIT_DONTNEED));
  EXPECT_FALSE(hk_os_decommit_zeroes(HK_OS_DECOMMIT_FREE));
}

TEST(Os, ImpossibleReservationFailsWithEnomem) {
  errno = 0;
  EXPECT_EQ(hk_os_reserve_aligned((size_t)1 << 60, 0, 0), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hk_os_reserve_aligned(SIZE_MAX - 100, 0, 0), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hk_os_reserve_aligned(4096, (size_t)1 << 62, 0), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Os, BadArgumentsFailWithEinval) {
  errno = 0;
  EXPECT_EQ(hk_os_reserve_aligned(0, 0, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(hk_os_reserve_aligned(4096, 3 * 4096, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  char *p = static_cast<char *>(hk_os_reserve_aligned(8192, 0, 0));
  ASSERT_NE(p, nullptr);
  errno = 0;
  EXPECT_EQ(hk_os_decommit(p + 1, 4096, HK_OS_DECOMMIT_DONTNEED), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(hk_os_release(p, 8192), 0);
}

TEST(Os, RemapGrowsAndShrinksKeepingContents) {
  char *p = static_cast<char *>(hk_os_reserve_aligned(1 << 20, 0, 0));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < (1 << 20); i += 4096) p[i] = static_cast<char>(i >> 12);
  uint64_t reserved = hk_stat_get(HK_STAT_OS_BYTES_RESERVED);
  char *q = static_cast<char *>(hk_os_remap(p, 1 << 20, 8 << 20, 1));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_RESERVED) - reserved, 7u << 20);
  for (size_t i = 0; i < (1 << 20); i += 4096) ASSERT_EQ(q[i], static_cast<char>(i >> 12));
  q[(8 << 20) - 1] = 1;
  char *r = static_cast<char *>(hk_os_remap(q, 8 << 20, 64 << 10, 0));
  ASSERT_EQ(r, q);  // shrinking never moves
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_RESERVED), reserved - ((1 << 20) - (64 << 10)));
  EXPECT_EQ(r[4096], 1);
  ASSERT_EQ(hk_os_release(r, 64 << 10), 0);
}

// A range moved out of the middle of a mapping: the contents arrive without a copy (the new pages
// are the old ones), the old range stays mapped, reads as zero and holds no pages.
TEST(Os, MovePagesTakesThePagesAndLeavesZeros) {
  const size_t kSize = 3 << 20, kMoved = 1 << 20;
  char *p = static_cast<char *>(hk_os_reserve_aligned(kSize, 0, 0));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < kSize; i += 4096) p[i] = static_cast<char>(1 + (i >> 12));
  uint64_t reserved = hk_stat_get(HK_STAT_OS_BYTES_RESERVED), committed = hk_stat_get(HK_STAT_OS_BYTES_COMMITTED);
  char *q = static_cast<char *>(hk_os_move_pages(p + kMoved, kMoved, nullptr));
  if (q == nullptr && errno == EINVAL) GTEST_SKIP() << "kernel without MREMAP_DONTUNMAP";
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_RESERVED) - reserved, kMoved);
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_COMMITTED), committed);
  EXPECT_EQ(ResidentPages(p + kMoved, kMoved), 0u);
  for (size_t i = 0; i < kMoved; i += 4096) {
    ASSERT_EQ(q[i], static_cast<char>(1 + ((kMoved + i) >> 12)));
    ASSERT_EQ(p[kMoved + i], 0);
  }
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[2 * kMoved], static_cast<char>(1 + ((2 * kMoved) >> 12)));
  // Back to where they came from: the destination's zero pages are replaced, the source empties.
  ASSERT_EQ(hk_os_move_pages(q, kMoved, p + kMoved), p + kMoved);
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_COMMITTED), committed);
  for (size_t i = 0; i < kMoved; i += 4096) ASSERT_EQ(p[kMoved + i], static_cast<char>(1 + ((kMoved + i) >> 12)));
  EXPECT_EQ(ResidentPages(q, kMoved), 0u);
  EXPECT_EQ(q[0], 0);
  q[0] = 7;  // an emptied range is usable again
  EXPECT_EQ(q[0], 7);
  hk_os_commit(q, kMoved);  // hk_os_release's contract: the range counts committed
  ASSERT_EQ(hk_os_release(q, kMoved), 0);
  ASSERT_EQ(hk_os_release(p, kSize), 0);
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_RESERVED), reserved - kSize);
}

// Eight threads reserve, decommit and release; every counter must add up exactly.
TEST(Os, CountersStayExactUnderEightThreads) {
  hk_stats_snapshot before, after;
  hk_stats_take_snapshot(&before);
  const int kThreads = 8, kRounds = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([t] {
      for (int i = 0; i < kRounds; i++) {
        size_t size = (size_t)4096 * (1 + (t + i) % 7);
        char *p = static_cast<char *>(hk_os_reserve_aligned(size, 4096, 0));  // exactly 1 mmap
        if (!p) abort();
        p[0] = 1;
        if (hk_os_decommit(p, size, HK_OS_DECOMMIT_DONTNEED) != 0) abort();
        hk_os_commit(p, size);
        if (hk_os_release(p, size) != 0) abort();
      }
    });
  }
  for (auto &thread : threads) thread.join();
  hk_stats_take_snapshot(&after);
  uint64_t expected_bytes = 0;
  for (int t = 0; t < kThreads; t++)
    for (int i = 0; i < kRounds; i++) expected_bytes += (uint64_t)4096 * (1 + (t + i) % 7);
  const uint64_t calls = kThreads * kRounds;
  EXPECT_EQ(after.values[HK_STAT_OS_MMAP_CALLS] - before.values[HK_STAT_OS_MMAP_CALLS], calls);
  EXPECT_EQ(after.values[HK_STAT_OS_MUNMAP_CALLS] - before.values[HK_STAT_OS_MUNMAP_CALLS], calls);
  EXPECT_EQ(after.values[HK_STAT_OS_MADVISE_CALLS] - before.values[HK_STAT_OS_MADVISE_CALLS], calls);
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL] - before.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL],
            expected_bytes);
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_RESERVED], before.values[HK_STAT_OS_BYTES_RESERVED]);
  EXPECT_EQ(after.values[HK_STAT_OS_BYTES_COMMITTED], before.values[HK_STAT_OS_BYTES_COMMITTED]);
}

}  // namespace
