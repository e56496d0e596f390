// The hardened variant (//allocator:hakmem_hardened): what it catches that the default build does
// not, on every range that uses free lists (tiny and mid/large).
#include <stdint.h>
#include <string.h>

#include <thread>
#include <vector>

#include "allocator/hakmem.h"
#include "gtest/gtest.h"

namespace {

TEST(HardenedDeathTest, DoubleFreeAbortsOnEveryBlockRange) {
  for (size_t size : {(size_t)16, (size_t)100, (size_t)1024, (size_t)1500, (size_t)20000, (size_t)200000}) {
    void *block = hakmem_malloc(size);
    ASSERT_NE(block, nullptr);
    hakmem_free(block);
    EXPECT_DEATH(hakmem_free(block), "hakmem: free\\(\\): double free 0x[0-9a-f]+ \\(the block is already free\\)")
        << "size " << size;
  }
}

TEST(HardenedDeathTest, DoubleFreeFromAnotherThreadAborts) {
  void *block = hakmem_malloc(64);
  hakmem_free(block);
  EXPECT_DEATH(
      {
        std::thread([block] { hakmem_free(block); }).join();
      },
      "double free");
}

TEST(HardenedDeathTest, OverwrittenFreeListLinkIsCaught) {
  for (size_t size : {(size_t)48, (size_t)3000}) {
    EXPECT_DEATH(
        {
          void *first = hakmem_malloc(size);
          void *second = hakmem_malloc(size);
          hakmem_free(second);
          hakmem_free(first);  // first is now the bin's head, linking to second
          // A use-after-free write: the program scribbles a pointer over the freed block.
          uintptr_t forged = reinterpret_cast<uintptr_t>(&size);
          memcpy(first, &forged, sizeof forged);
          void *again = hakmem_malloc(size);  // pops first; following its link must fail
          (void)again;
        },
        "heap corruption");
  }
}

// Normal use is unaffected: blocks are reused, contents kept, nothing reported.
TEST(Hardened, NormalUseWorks) {
  std::vector<void *> blocks;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 20000; i++) {
      size_t size = 1 + (i * 97) % 40000;
      void *block = hakmem_malloc(size);
      ASSERT_NE(block, nullptr);
      memset(block, i & 0xff, size);
      blocks.push_back(block);
    }
    for (void *block : blocks) hakmem_free(block);
    blocks.clear();
  }
  void *block = hakmem_calloc(10, 10);
  for (int i = 0; i < 100; i++) ASSERT_EQ(static_cast<unsigned char *>(block)[i], 0);
  block = hakmem_realloc(block, 5000);
  block = hakmem_realloc(block, 50);
  hakmem_free(block);
}

}  // namespace
