#include "allocator/tiny/tiny_size_classes.h"

const uint16_t tiny_class_size[TINY_CLASS_COUNT] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
};

#define RECIPROCAL(size) ((uint32_t)((UINT64_C(1) << 32) / (size) + 1))
const uint32_t tiny_class_reciprocal[TINY_CLASS_COUNT] = {
    RECIPROCAL(16),  RECIPROCAL(32),  RECIPROCAL(48),  RECIPROCAL(64),  RECIPROCAL(80),
    RECIPROCAL(96),  RECIPROCAL(112), RECIPROCAL(128), RECIPROCAL(160), RECIPROCAL(192),
    RECIPROCAL(224), RECIPROCAL(256), RECIPROCAL(320), RECIPROCAL(384), RECIPROCAL(448),
    RECIPROCAL(512), RECIPROCAL(640), RECIPROCAL(768), RECIPROCAL(896), RECIPROCAL(1024),
};

// Granule g covers sizes 16*(g-1)+1 .. 16*g; the entry is the smallest class of at least 16*g bytes.
const uint8_t tiny_class_by_granule[TINY_MAX_SIZE / 16 + 1] = {
    0,  0,  1,  2,  3,  4,  5,  6,  7,                                   // 0 .. 128
    8,  8,  9,  9,  10, 10, 11, 11,                                      // 129 .. 256
    12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,      // 257 .. 512
    16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17,      // 513 .. 768
    18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19,      // 769 .. 1024
};
