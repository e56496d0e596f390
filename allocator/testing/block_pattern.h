// A pattern written into a block and checked later: each byte depends on the block's address, its
// offset and a seed, so a block handed out twice, overlapping another, or moved without its data
// fails the check. For the layers' unit tests.
#ifndef HAKMEM_ALLOCATOR_TESTING_BLOCK_PATTERN_H_
#define HAKMEM_ALLOCATOR_TESTING_BLOCK_PATTERN_H_

#include <stddef.h>
#include <stdint.h>

namespace hakmem_testing {

inline unsigned char PatternByte(const void *block, size_t offset, uint32_t seed) {
  return static_cast<unsigned char>((reinterpret_cast<uintptr_t>(block) >> 4) + offset * 7 + seed);
}

// Writes the pattern of `seed` into the first `size` bytes of `block`.
inline void Fill(void *block, size_t size, uint32_t seed) {
  unsigned char *bytes = static_cast<unsigned char *>(block);
  for (size_t i = 0; i < size; i++) bytes[i] = PatternByte(block, i, seed);
}

// True when the first `size` bytes of `block` still hold the pattern of `seed`.
inline bool Verify(const void *block, size_t size, uint32_t seed) {
  const unsigned char *bytes = static_cast<const unsigned char *>(block);
  for (size_t i = 0; i < size; i++)
    if (bytes[i] != PatternByte(block, i, seed)) return false;
  return true;
}

}  // namespace hakmem_testing

#endif  // HAKMEM_ALLOCATOR_TESTING_BLOCK_PATTERN_H_
