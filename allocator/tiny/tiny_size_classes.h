// Tiny size classes: 1 B .. 1 KiB in 20 classes.
//
//   class  size   class  size   class  size   class  size
//     0     16      5     96     10    224     15    512
//     1     32      6    112     11    256     16    640
//     2     48      7    128     12    320     17    768
//     3     64      8    160     13    384     18    896
//     4     80      9    192     14    448     19   1024
//
// Spacing: 16 B up to 128 B, then four classes per doubling. Every size is a multiple of 16, so every
// block is 16-byte aligned (what malloc promises on x86-64). Waste bound (tested): a request is served
// by a block at most 15 bytes larger, or at most 1/5 of the block larger (the gap between neighbours
// above 128 B is exactly 1/5 of the upper one).
#ifndef HAKMEM_ALLOCATOR_TINY_TINY_SIZE_CLASSES_H_
#define HAKMEM_ALLOCATOR_TINY_TINY_SIZE_CLASSES_H_

#include <stddef.h>
#include <stdint.h>

#define TINY_CLASS_COUNT 20
#define TINY_MAX_SIZE 1024

// Block size of each class.
extern const uint16_t tiny_class_size[TINY_CLASS_COUNT];
// floor(2^32 / size) + 1 of each class (ceil, plus one for powers of two so that size * this
// always exceeds 2^32): free's block-start check multiplies by it instead of dividing
// (tiny_block_start_key in tiny.h).
extern const uint32_t tiny_class_reciprocal[TINY_CLASS_COUNT];
// Class of a request, indexed by its size 0 .. TINY_MAX_SIZE. Indexed by the size itself rather than
// by 16-byte granules: 1 KiB of table instead of 65 bytes, but malloc's class lookup is one load
// with no add and shift before it (two instructions, and two cycles of latency, less per malloc).
extern const uint8_t tiny_class_by_size[TINY_MAX_SIZE + 1];

// The class that serves `size` (size <= TINY_MAX_SIZE): one table load, no branch.
static inline unsigned tiny_size_to_class(size_t size) { return tiny_class_by_size[size]; }

#endif  // HAKMEM_ALLOCATOR_TINY_TINY_SIZE_CLASSES_H_
