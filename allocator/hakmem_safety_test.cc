// Heap-corruption checks, in the default build and in the hardened one (the same tests run against
// both): double frees of every range from the owning thread and from others, realloc and
// malloc_usable_size of a freed block, and overwritten free-list links all abort with a message
// that names the call and the pointer, instead of handing one block to two owners or crashing.
#include <stdint.h>
#include <string.h>

#include <thread>
#include <vector>

#include "allocator/base/freelist.h"
#include "allocator/hakmem.h"
#include "gtest/gtest.h"

namespace {

// One size per range: tiny (16, 48, 100, 1024), mid (1500, 4096), large (20000, 65536, 200000,
// 512 KiB), huge from the arena (1 MiB) and an own mapping (40 MiB).
const size_t kSizes[] = {16, 48, 100, 1024, 1500, 4096, 20000, 65536, 200000, 512 << 10, 1 << 20, 40 << 20};

TEST(SafetyDeathTest, DoubleFreeAbortsOnEveryRange) {
  for (size_t size : kSizes) {
    void *block = hakmem_malloc(size);
    ASSERT_NE(block, nullptr);
    hakmem_free(block);
    EXPECT_DEATH(hakmem_free(block), "hakmem: free\\(\\): double free 0x[0-9a-f]+ \\(the block is already free\\)")
        << "size " << size;
  }
}

// The block waits in the freeing thread's bin (or its batch of remote frees): a second free from
// another thread still finds it marked.
TEST(SafetyDeathTest, DoubleFreeFromAnotherThreadAborts) {
  for (size_t size : kSizes) {
    void *block = hakmem_malloc(size);
    ASSERT_NE(block, nullptr);
    std::thread([block] { hakmem_free(block); }).join();
    EXPECT_DEATH(hakmem_free(block), "hakmem: free\\(\\): double free") << "size " << size;
    void *other = hakmem_malloc(size);
    hakmem_free(other);
    EXPECT_DEATH(std::thread([other] { hakmem_free(other); }).join(), "hakmem: free\\(\\): double free")
        << "size " << size;
  }
}

TEST(SafetyDeathTest, ReallocOfAFreedBlockAborts) {
  for (size_t size : kSizes) {
    void *block = hakmem_malloc(size);
    hakmem_free(block);
    EXPECT_DEATH(hakmem_realloc(block, size + 1), "hakmem: realloc\\(\\): use after free 0x[0-9a-f]+") << "size " << size;
  }
}

// realloc's block-start check: a pointer 8 bytes into a block of any class, tiny or mid (one slot or a
// span), is refused.
TEST(SafetyDeathTest, ReallocOfAnInteriorPointerAborts) {
  for (size_t size : kSizes) {
    if (size > (512 << 10)) continue;  // huge blocks: their own table, not the slab check
    char *block = static_cast<char *>(hakmem_malloc(size));
    ASSERT_NE(block, nullptr);
    EXPECT_DEATH(hakmem_realloc(block + 8, size), "hakmem: realloc\\(\\): invalid pointer 0x[0-9a-f]+") << "size " << size;
    hakmem_free(block);
  }
}

// The same check in malloc_usable_size.
TEST(SafetyDeathTest, UsableSizeOfAnInteriorPointerAborts) {
  for (size_t size : kSizes) {
    if (size > (512 << 10)) continue;
    char *block = static_cast<char *>(hakmem_malloc(size));
    ASSERT_NE(block, nullptr);
    EXPECT_DEATH(hakmem_malloc_usable_size(block + 8), "hakmem: malloc_usable_size\\(\\): invalid pointer 0x[0-9a-f]+")
        << "size " << size;
    hakmem_free(block);
  }
}

// Tiny and mid blocks resized in turn, as a program that grows both calls realloc (the calls then
// alternate between the fronts' checks): each call gets its own front's size and stays in place.
TEST(Safety, TinyAndMidBlocksResizedInTurnGetTheirOwnSizes) {
  const size_t sizes[] = {24, 3000, 200, 20000, 1024, 1100, 16, 65536};
  std::vector<char *> blocks;
  for (size_t size : sizes) {
    char *block = static_cast<char *>(hakmem_malloc(size));
    ASSERT_NE(block, nullptr);
    memset(block, static_cast<int>(size & 0xff), size);
    blocks.push_back(block);
  }
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < blocks.size(); i++) {
      size_t usable = hakmem_malloc_usable_size(blocks[i]);
      ASSERT_GE(usable, sizes[i]);
      ASSERT_LT(usable, sizes[i] + sizes[i] / 4 + 16) << "size " << sizes[i] << ": its class, not the other front's";
      ASSERT_EQ(hakmem_realloc(blocks[i], usable), blocks[i]) << "size " << sizes[i] << ": in place";
      ASSERT_EQ(blocks[i][sizes[i] - 1], static_cast<char>(sizes[i] & 0xff));
    }
  }
  for (char *block : blocks) hakmem_free(block);
}

// Every block of a span (blocks past its first slot included) resizes in place while the new size
// stays within its block and above half of it, and keeps its bytes.
TEST(Safety, ReallocInPlaceFindsEveryBlockOfASpan) {
  for (size_t size : {size_t{20000}, size_t{65536}, size_t{200000}}) {
    std::vector<unsigned char *> blocks;
    for (int i = 0; i < 24; i++) {
      auto *block = static_cast<unsigned char *>(hakmem_malloc(size));
      ASSERT_NE(block, nullptr);
      memset(block, i, size);
      blocks.push_back(block);
    }
    for (int i = 0; i < 24; i++) {
      size_t usable = hakmem_malloc_usable_size(blocks[i]);
      ASSERT_EQ(hakmem_realloc(blocks[i], usable), blocks[i]) << "size " << size << ", block " << i;
      ASSERT_EQ(hakmem_realloc(blocks[i], usable / 2 + 1), blocks[i]) << "size " << size << ", block " << i;
      ASSERT_EQ(blocks[i][usable / 2], i);
      auto *moved = static_cast<unsigned char *>(hakmem_realloc(blocks[i], usable / 2 - 1));
      ASSERT_NE(moved, blocks[i]) << "below half: a smaller class";
      ASSERT_EQ(moved[usable / 2 - 2], i);
      blocks[i] = moved;
    }
    for (unsigned char *block : blocks) hakmem_free(block);
  }
}

TEST(SafetyDeathTest, UsableSizeOfAFreedBlockAborts) {
  for (size_t size : kSizes) {
    void *block = hakmem_malloc(size);
    hakmem_free(block);
    EXPECT_DEATH(hakmem_malloc_usable_size(block), "hakmem: malloc_usable_size\\(\\): use after free 0x[0-9a-f]+")
        << "size " << size;
  }
}

// A use-after-free write plants a pointer in a freed block: following it would hand out memory the
// allocator does not own. The link is stored encoded, so the planted word decodes to garbage that
// the check before following it rejects.
TEST(SafetyDeathTest, OverwrittenFreeListLinkIsCaught) {
  for (size_t size : {(size_t)48, (size_t)3000, (size_t)20000}) {
    EXPECT_DEATH(
        {
          void *first = hakmem_malloc(size);
          void *second = hakmem_malloc(size);
          hakmem_free(second);
          hakmem_free(first);  // first is now the bin's head, linking to second
          uintptr_t forged = reinterpret_cast<uintptr_t>(&size);
          memcpy(first, &forged, sizeof forged);
          void *again = hakmem_malloc(size);  // pops first; following its link must fail
          (void)again;
          hakmem_malloc(size);
        },
        "hakmem: malloc\\(\\): heap corruption at 0x[0-9a-f]+ \\(a free block's link was overwritten\\)")
        << "size " << size;
  }
}

// A one-block overflow writes 16 bytes of 'A' over a free neighbour (its link and its free mark):
// the allocation that would follow the link aborts with the message, not with a crash on
// 0x4141414141414141.
TEST(SafetyDeathTest, OverflowIntoAFreeNeighbourIsCaught) {
  EXPECT_DEATH(
      {
        void *neighbour = hakmem_malloc(48);
        hakmem_free(neighbour);
        memset(neighbour, 0x41, 16);  // what an overflow from the block before it writes
        void *first = hakmem_malloc(48);  // the neighbour itself: its link is read here
        void *second = hakmem_malloc(48);
        (void)first;
        (void)second;
      },
      "heap corruption");
}

#if HK_HARDENED
// The hardened build also asks the registry before following a link: even a link forged by
// someone who knows the secret (aligned, a user address) is caught when it points outside the heap.
TEST(HardenedDeathTest, LinkForgedWithTheSecretIsCaughtByTheRegistry) {
  EXPECT_DEATH(
      {
        alignas(16) static char outside[64];
        void *first = hakmem_malloc(48);
        void *second = hakmem_malloc(48);
        hakmem_free(second);
        hakmem_free(first);
        uintptr_t forged = reinterpret_cast<uintptr_t>(outside) ^ hk_freelist_secret;
        memcpy(first, &forged, sizeof forged);
        hakmem_malloc(48);
        hakmem_malloc(48);
      },
      "heap corruption");
}
#endif

// Normal use is unaffected: blocks are reused, contents kept, nothing reported. Live data that
// happens to look like a free block's words does not trip the checks either.
TEST(Safety, NormalUseWorks) {
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
  EXPECT_GE(hakmem_malloc_usable_size(block), 50u);
  hakmem_free(block);
  // A huge block freed and allocated again at the same address is live, not "already freed".
  void *huge = hakmem_malloc(2 << 20);
  hakmem_free(huge);
  void *again = hakmem_malloc(2 << 20);
  EXPECT_GE(hakmem_malloc_usable_size(again), size_t{2} << 20);
  hakmem_free(again);
}

}  // namespace
