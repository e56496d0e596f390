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

// Sizes 16*(g-1)+1 .. 16*g (granule g) share the smallest class of at least 16*g bytes; size 0 gets
// class 0. SIZES16(c) is that class for one granule's 16 sizes.
#define SIZES16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
const uint8_t tiny_class_by_size[TINY_MAX_SIZE + 1] = {
    0,                                                                          // 0
    SIZES16(0),  SIZES16(1),  SIZES16(2),  SIZES16(3),                          // 1 .. 64
    SIZES16(4),  SIZES16(5),  SIZES16(6),  SIZES16(7),                          // 65 .. 128
    SIZES16(8),  SIZES16(8),  SIZES16(9),  SIZES16(9),                          // 129 .. 192
    SIZES16(10), SIZES16(10), SIZES16(11), SIZES16(11),                         // 193 .. 256
    SIZES16(12), SIZES16(12), SIZES16(12), SIZES16(12),                         // 257 .. 320
    SIZES16(13), SIZES16(13), SIZES16(13), SIZES16(13),                         // 321 .. 384
    SIZES16(14), SIZES16(14), SIZES16(14), SIZES16(14),                         // 385 .. 448
    SIZES16(15), SIZES16(15), SIZES16(15), SIZES16(15),                         // 449 .. 512
    SIZES16(16), SIZES16(16), SIZES16(16), SIZES16(16),                         // 513 .. 576
    SIZES16(16), SIZES16(16), SIZES16(16), SIZES16(16),                         // 577 .. 640
    SIZES16(17), SIZES16(17), SIZES16(17), SIZES16(17),                         // 641 .. 704
    SIZES16(17), SIZES16(17), SIZES16(17), SIZES16(17),                         // 705 .. 768
    SIZES16(18), SIZES16(18), SIZES16(18), SIZES16(18),                         // 769 .. 832
    SIZES16(18), SIZES16(18), SIZES16(18), SIZES16(18),                         // 833 .. 896
    SIZES16(19), SIZES16(19), SIZES16(19), SIZES16(19),                         // 897 .. 960
    SIZES16(19), SIZES16(19), SIZES16(19), SIZES16(19),                         // 961 .. 1024
};
