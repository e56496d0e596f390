// The compaction census (hakmem_census.c) on heaps built to a known shape through the prefixed API:
// pages whose live blocks sit at distinct offsets mesh onto one page, pairs halve them, pages with
// no live block are counted free, and full pages mesh with nothing. One process, one thread: the
// census sees only these tests' blocks (gtest itself allocates with glibc's malloc).
#include "allocator/hakmem_census.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "allocator/hakmem.h"
#include "gtest/gtest.h"

namespace {

const hk_census_figures *FiguresOf(const hk_census &census, uint32_t block_size) {
  for (uint32_t i = 0; i < census.sizes; i++)
    if (census.by_size[i].block_size == block_size) return &census.by_size[i].figures;
  return nullptr;
}

// Blocks of `size` bytes (a class size) grouped by the 4 KiB page they start on, in address order.
std::map<uintptr_t, std::vector<char *>> AllocateByPage(size_t size, size_t count) {
  std::map<uintptr_t, std::vector<char *>> pages;
  for (size_t i = 0; i < count; i++) {
    char *block = static_cast<char *>(hakmem_malloc(size));
    EXPECT_NE(block, nullptr);
    memset(block, 0x3c, size);
    pages[reinterpret_cast<uintptr_t>(block) & ~uintptr_t{4095}].push_back(block);
  }
  return pages;
}

TEST(Census, SparsePagesWithDistinctOffsetsMeshAndEmptyPagesCountFree) {
  // 64-byte blocks, 64 to a page. Of each run of four pages, three keep one block each, at an offset
  // no other page of the first 64 uses, and the fourth keeps none (every slab keeps live blocks, so
  // no slab goes back to the pool whole).
  auto pages = AllocateByPage(64, 96 * 64);
  uint64_t kept_pages = 0, free_pages = 0, index = 0;
  std::vector<char *> kept;
  for (auto &[page, blocks] : pages) {
    bool keep_one = index % 4 != 3 && blocks.size() == 64;
    size_t slot = index % 64;
    for (char *block : blocks) {
      if (keep_one && static_cast<size_t>((reinterpret_cast<uintptr_t>(block) & 4095) / 64) == slot) {
        kept.push_back(block);
      } else {
        hakmem_free(block);
      }
    }
    kept_pages += keep_one;
    free_pages += !keep_one;
    index++;
  }
  ASSERT_GE(kept_pages, 60u);

  hk_census census;
  ASSERT_EQ(hk_census_take(&census), 0);
  const hk_census_figures *figures = FiguresOf(census, 64);
  ASSERT_NE(figures, nullptr);
  std::printf("size 64: %llu pages (%llu written, %llu kept nothing), %llu free, %llu after pairs, %llu after meshing\n",
              (unsigned long long)figures->pages, (unsigned long long)pages.size(), (unsigned long long)free_pages,
              (unsigned long long)figures->pages_free, (unsigned long long)figures->pages_after_pairs,
              (unsigned long long)figures->pages_after_mesh);
  // Every page was written, so every one is resident. A refill's blocks not handed out yet carry no
  // free mark and count as live: a page or two of slack.
  EXPECT_GE(figures->pages, pages.size() - 2);
  EXPECT_LE(figures->pages, pages.size() + 2);
  EXPECT_GE(figures->pages_free + 2, free_pages);
  EXPECT_LE(figures->pages_free, free_pages + 2);
  uint64_t occupied = figures->pages - figures->pages_free;
  EXPECT_NEAR(static_cast<double>(figures->pages_after_pairs), (occupied + 1) / 2, 2.0);
  // The kept blocks of pages 0..63 lie at 48 distinct offsets, those of pages 64..95 repeat some:
  // two physical pages hold them all (plus the slack).
  EXPECT_LE(figures->pages_after_mesh, 4u);
  EXPECT_GE(figures->pages_after_mesh, 2u);
  EXPECT_GE(figures->live_bytes, kept.size() * 64);
  EXPECT_LE(figures->live_bytes, kept.size() * 64 + 256 * 64);
  EXPECT_GE(census.total.pages, figures->pages);
  EXPECT_EQ(census.pages_skipped, 0u);
  for (char *block : kept) hakmem_free(block);
}

TEST(Census, FullPagesMeshWithNothing) {
  // 1,024-byte blocks, four to a page, all kept.
  auto pages = AllocateByPage(1024, 64 * 4);
  hk_census census;
  ASSERT_EQ(hk_census_take(&census), 0);
  const hk_census_figures *figures = FiguresOf(census, 1024);
  ASSERT_NE(figures, nullptr);
  EXPECT_GE(figures->pages, 64u);
  EXPECT_EQ(figures->pages_free, 0u);
  EXPECT_EQ(figures->pages_after_pairs, figures->pages);
  EXPECT_EQ(figures->pages_after_mesh, figures->pages);
  EXPECT_GE(figures->live_bytes, 64u * 4096);
  for (auto &[page, blocks] : pages)
    for (char *block : blocks) hakmem_free(block);
}

TEST(Census, WritesTheTotalsAndOneLinePerSize) {
  auto pages = AllocateByPage(256, 512);
  hk_census census;
  ASSERT_EQ(hk_census_take(&census), 0);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  hk_census_write(fds[1], &census, 3);
  close(fds[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t got; (got = read(fds[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(got));
  close(fds[0]);
  EXPECT_EQ(text.rfind("census at_ms=", 0), 0u) << text;
  EXPECT_NE(text.find(" taken=3 "), std::string::npos) << text;
  EXPECT_NE(text.find("\ntotal pages="), std::string::npos) << text;
  EXPECT_NE(text.find("\nsize=256 pages="), std::string::npos) << text;
  EXPECT_EQ(static_cast<uint32_t>(std::count(text.begin(), text.end(), '\n')), 2 + census.sizes);
  for (auto &[page, blocks] : pages)
    for (char *block : blocks) hakmem_free(block);
}

}  // namespace
