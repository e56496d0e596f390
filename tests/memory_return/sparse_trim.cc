// malloc_trim returns the free pages of sparse slabs: 64 MiB of blocks of --min..--max bytes
// (default 256-1024), nine in ten freed in a scattered order, leave every slab about a tenth
// full. No slab is empty, so nothing goes back on its own; hakmem_malloc_trim(0) must decommit
// at least --want-percent (default 25) of the freed bytes: for small blocks the pages that hold
// no live block (tiny_trim), for blocks of 8 KiB and more the pages inside each free block
// (ACE). Every live block keeps its data, and allocating the same sizes again reuses those
// pages before the heap grows.
//
// Footprint: the OS layer's bytes_committed gauge in every build, and the resident set except
// under ASan/TSan (shadow memory).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "allocator/hakmem.h"
#include "tests/memory_return/footprint.h"

namespace {

struct Block {
  unsigned char *data;
  size_t size;
  unsigned char seed;
};

bool Holds(const Block &block) {
  for (size_t i = 0; i < block.size; i++)
    if (block.data[i] != (unsigned char)(block.seed + i)) return false;
  return true;
}

void FillBlock(Block &block) {
  for (size_t i = 0; i < block.size; i++) block.data[i] = (unsigned char)(block.seed + i);
}

int Fail(const char *what) {
  fprintf(stderr, "sparse_trim: FAIL: %s\n", what);
  hakmem_stats_write(2, 0);
  return 1;
}

}  // namespace

int main(int argc, char **argv) {
  size_t min_size = 256, max_size = 1024, want_percent = 25;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg.rfind("--min=", 0) == 0) {
      min_size = strtoul(arg.c_str() + 6, nullptr, 10);
    } else if (arg.rfind("--max=", 0) == 0) {
      max_size = strtoul(arg.c_str() + 6, nullptr, 10);
    } else if (arg.rfind("--want-percent=", 0) == 0) {
      want_percent = strtoul(arg.c_str() + 15, nullptr, 10);
    } else {
      fprintf(stderr, "usage: sparse_trim [--min=BYTES] [--max=BYTES] [--want-percent=N]\n");
      return 2;
    }
  }
  if (min_size == 0 || min_size > max_size) return Fail("need 0 < min <= max");
  std::mt19937_64 rng(7);
  std::vector<Block> blocks;
  blocks.reserve(1 << 18);
  hakmem_malloc_trim(0);
  const int64_t resident_before = ResidentBytes(), committed_before = CommittedBytes();

  const size_t total = 64 << 20;
  size_t allocated = 0;
  while (allocated < total) {
    Block block{nullptr, min_size + rng() % (max_size - min_size + 1), (unsigned char)rng()};
    block.data = static_cast<unsigned char *>(hakmem_malloc(block.size));
    if (!block.data) return Fail("allocation failed");
    FillBlock(block);
    blocks.push_back(block);
    allocated += block.size;
  }
  std::vector<Block> kept;
  size_t freed = 0;
  for (const Block &block : blocks) {
    if (rng() % 10 == 0) {
      kept.push_back(block);
    } else {
      hakmem_free(block.data);
      freed += block.size;
    }
  }
  const int64_t resident_sparse = ResidentBytes(), committed_sparse = CommittedBytes();
  if (!hakmem_malloc_trim(0)) return Fail("hakmem_malloc_trim(0) returned 0 with free pages to release");
  const int64_t resident_trimmed = ResidentBytes(), committed_trimmed = CommittedBytes();
  printf("sparse_trim: %zu-%zu B blocks: %.1f MiB allocated, %.1f MiB freed; committed %.1f -> %.1f MiB, resident %.1f -> %.1f MiB "
         "(from %.1f / %.1f MiB)\n",
         min_size, max_size, allocated / kMiB, freed / kMiB, committed_sparse / kMiB, committed_trimmed / kMiB, resident_sparse / kMiB,
         resident_trimmed / kMiB, committed_before / kMiB, resident_before / kMiB);
  const int64_t want = (int64_t)(freed * want_percent / 100);
  if (committed_sparse - committed_trimmed < want) return Fail("bytes_committed fell by less than --want-percent of the freed bytes");
  if (kRssMeaningful && resident_sparse - resident_trimmed < want) return Fail("RSS fell by less than --want-percent of the freed bytes");
  for (const Block &block : kept)
    if (!Holds(block)) return Fail("a live block lost its contents across the trim");

  // The same sizes again: they fill the slabs' free blocks and parked pages first, so the heap
  // ends up no bigger than it was before the trim.
  std::vector<Block> again;
  for (size_t done = 0; done < freed;) {
    Block block{nullptr, min_size + rng() % (max_size - min_size + 1), (unsigned char)rng()};
    block.data = static_cast<unsigned char *>(hakmem_malloc(block.size));
    if (!block.data) return Fail("allocation after the trim failed");
    FillBlock(block);
    again.push_back(block);
    done += block.size;
  }
  const int64_t committed_again = CommittedBytes();
  printf("sparse_trim: after allocating %.1f MiB again, committed %.1f MiB\n", freed / kMiB, committed_again / kMiB);
  if (committed_again > committed_sparse + (int64_t)(4 << 20)) return Fail("the heap grew instead of reusing the parked pages");
  for (const Block &block : kept)
    if (!Holds(block)) return Fail("a live block lost its contents");
  for (const Block &block : again)
    if (!Holds(block)) return Fail("a block allocated after the trim lost its contents");
  for (const Block &block : kept) hakmem_free(block.data);
  for (const Block &block : again) hakmem_free(block.data);
  printf("sparse_trim: PASS\n");
  return 0;
}
