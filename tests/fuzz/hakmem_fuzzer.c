// libFuzzer target: the input is a small bytecode driving HAKMEM's prefixed API, and every
// result is checked against a model (requested size, alignment, contents, zeroing, errno).
//
// Each instruction is 5 bytes: op, slot, size class, two size bytes (little endian); aligned ops
// take their alignment exponent from the size class byte's high bits. 32 slots hold live blocks;
// everything still live is verified and freed at the end of each input.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator/hakmem.h"

#define SLOT_COUNT 32
#define MAX_LIVE_BYTES ((size_t)64 << 20)

typedef struct {
  unsigned char *data;
  size_t size;
  uint8_t tag;  // the pattern's seed: the block holds reference[tag * 257 ...]
} model_slot;

static model_slot slots[SLOT_COUNT];
static size_t live_bytes;
static uint8_t next_tag;

// A model mismatch is a bug in the allocator: report it and crash so libFuzzer keeps the input.
static void mismatch(const char *what, const void *block, size_t size, size_t detail) {
  fprintf(stderr, "hakmem_fuzzer: %s (block %p, size %zu, detail %zu)\n", what, block, size, detail);
  abort();
}

#define MAX_BLOCK_SIZE ((size_t)65535 * 64 + 4096 * 2)
// Patterns are windows of one reference sequence, so filling is memcpy and checking is memcmp
// (the fuzzer runs thousands of inputs a second only if the checks are cheap).
static unsigned char reference[MAX_BLOCK_SIZE + 256 * 257];
static const unsigned char zeros[MAX_BLOCK_SIZE];

static const unsigned char *pattern(uint8_t tag) {
  if (reference[1] == 0) {
    for (size_t i = 0; i < sizeof reference; i++) reference[i] = (unsigned char)(i * 31 + (i >> 8) + 1);
  }
  return reference + (size_t)tag * 257;
}

static void fill(unsigned char *data, size_t size, uint8_t tag) { memcpy(data, pattern(tag), size); }

static void verify(const unsigned char *data, size_t size, uint8_t tag, const char *what) {
  const unsigned char *expected = pattern(tag);
  if (memcmp(data, expected, size) == 0) return;
  for (size_t i = 0; i < size; i++) {
    if (data[i] != expected[i]) mismatch(what, data, size, i);
  }
}

// Checks a fresh block against the request, then gives it a new pattern.
static void accept_block(model_slot *slot, void *block, size_t size, size_t alignment) {
  if ((uintptr_t)block % alignment != 0) mismatch("misaligned block", block, size, alignment);
  size_t usable = hakmem_malloc_usable_size(block);
  if (usable < size) mismatch("usable size below the request", block, size, usable);
  if (!hakmem_owns(block)) mismatch("hakmem_owns denies a live block", block, size, 0);
  slot->data = block;
  slot->size = size;
  slot->tag = next_tag++;
  fill(slot->data, size, slot->tag);
  live_bytes += size;
}

static void release_slot(model_slot *slot) {
  if (!slot->data) return;
  verify(slot->data, slot->size, slot->tag, "block changed while live");
  hakmem_free(slot->data);
  live_bytes -= slot->size;
  slot->data = NULL;
  slot->size = 0;
}

// Sizes from every range: class 0 tiny, 1 mid, 2 large, 3 huge (up to 4 MiB).
static size_t decode_size(uint8_t size_class, uint16_t value) {
  switch (size_class & 3) {
    case 0: return value % 1025;
    case 1: return value;
    case 2: return (size_t)value * 8;
    default: return (size_t)value * 64;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t length) {
  for (size_t at = 0; at + 5 <= length; at += 5) {
    uint8_t op = input[at];
    model_slot *slot = &slots[input[at + 1] % SLOT_COUNT];
    uint8_t size_class = input[at + 2];
    uint16_t value = (uint16_t)(input[at + 3] | (input[at + 4] << 8));
    size_t size = decode_size(size_class, value);
    size_t alignment = (size_t)1 << (3 + (size_class >> 2) % 19);  // 8 B .. 2 MiB
    if (live_bytes + size > MAX_LIVE_BYTES) continue;
    void *block = NULL;
    switch (op % 11) {
      case 0:  // malloc
        release_slot(slot);
        block = hakmem_malloc(size);
        if (!block) mismatch("malloc returned NULL", NULL, size, (size_t)errno);
        accept_block(slot, block, size, 16);
        break;
      case 1: {  // calloc: the whole request reads zero
        release_slot(slot);
        size_t count = 1 + (size_class >> 4);
        size_t each = size / count;
        block = hakmem_calloc(count, each);
        if (!block) mismatch("calloc returned NULL", NULL, count * each, (size_t)errno);
        if (memcmp(block, zeros, count * each) != 0) mismatch("calloc block not zero", block, count * each, 0);
        accept_block(slot, block, count * each, 16);
        break;
      }
      case 2: {  // realloc: contents kept up to the smaller size; size 0 frees
        if (!slot->data) break;
        verify(slot->data, slot->size, slot->tag, "block changed before realloc");
        size_t kept = slot->size < size ? slot->size : size;
        uint8_t tag = slot->tag;
        block = hakmem_realloc(slot->data, size);
        live_bytes -= slot->size;
        slot->data = NULL;
        slot->size = 0;
        if (size == 0) {
          if (block) mismatch("realloc(p, 0) returned a block", block, 0, 0);
          break;
        }
        if (!block) mismatch("realloc returned NULL", NULL, size, (size_t)errno);
        verify(block, kept, tag, "realloc lost content");
        accept_block(slot, block, size, 16);
        break;
      }
      case 3:  // free
        release_slot(slot);
        break;
      case 4: {  // posix_memalign, with invalid alignments too
        release_slot(slot);
        size_t asked = (size_class & 0x80) ? alignment + 8 : alignment;  // +8: not a power of two
        int status = hakmem_posix_memalign(&block, asked, size);
        int valid = asked >= sizeof(void *) && (asked & (asked - 1)) == 0;
        if (!valid) {
          if (status != EINVAL) mismatch("posix_memalign accepted an invalid alignment", block, size, asked);
          break;
        }
        if (status != 0 || !block) mismatch("posix_memalign failed", NULL, size, (size_t)status);
        accept_block(slot, block, size, asked);
        break;
      }
      case 5:  // aligned_alloc
        release_slot(slot);
        block = hakmem_aligned_alloc(alignment, size);
        if (!block) mismatch("aligned_alloc returned NULL", NULL, size, alignment);
        accept_block(slot, block, size, alignment < 16 ? 16 : alignment);
        break;
      case 6: {  // memalign: a non-power-of-two alignment rounds up to the next power of two
        release_slot(slot);
        size_t asked = alignment / 2 + 1 + (size_class & 0x3);
        size_t rounded = 1;
        while (rounded < asked) rounded <<= 1;
        block = hakmem_memalign(asked, size);
        if (!block) mismatch("memalign returned NULL", NULL, size, asked);
        accept_block(slot, block, size, rounded < 16 ? 16 : rounded);
        break;
      }
      case 7:  // a look at a live block: contents, usable size, ownership
        if (!slot->data) break;
        verify(slot->data, slot->size, slot->tag, "block changed while live");
        if (hakmem_malloc_usable_size(slot->data) < slot->size) mismatch("usable size shrank", slot->data, slot->size, 0);
        if (!hakmem_owns(slot->data)) mismatch("hakmem_owns denies a live block", slot->data, slot->size, 0);
        break;
      case 8:  // overflowing requests: NULL with ENOMEM, the block untouched
        errno = 0;
        if (hakmem_calloc(SIZE_MAX / 2 + 1 + value, 2) != NULL || errno != ENOMEM)
          mismatch("calloc overflow not refused with ENOMEM", NULL, value, (size_t)errno);
        if (slot->data) {
          errno = 0;
          if (hakmem_reallocarray(slot->data, SIZE_MAX / 4 + value, 8) != NULL || errno != ENOMEM)
            mismatch("reallocarray overflow not refused with ENOMEM", slot->data, slot->size, (size_t)errno);
          verify(slot->data, slot->size, slot->tag, "a refused reallocarray changed the block");
        }
        break;
      case 9:  // growth in small steps: the in-place resize paths
        if (!slot->data) break;
        {
          size_t grown = slot->size + 1 + value % 4096;
          if (grown > MAX_BLOCK_SIZE) break;
          if (live_bytes + grown - slot->size > MAX_LIVE_BYTES) break;
          uint8_t tag = slot->tag;
          size_t kept = slot->size;
          block = hakmem_realloc(slot->data, grown);
          if (!block) mismatch("realloc growth returned NULL", NULL, grown, (size_t)errno);
          live_bytes -= slot->size;
          verify(block, kept, tag, "realloc growth lost content");
          accept_block(slot, block, grown, 16);
        }
        break;
      default:  // trim with live blocks: they must survive
        if (value % 64 == 0) hakmem_malloc_trim(0);
        break;
    }
  }
  for (unsigned i = 0; i < SLOT_COUNT; i++) release_slot(&slots[i]);
  return 0;
}
