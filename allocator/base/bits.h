// Small helpers every layer may use: branch hints, power-of-two arithmetic, spin pause.
#ifndef HAKMEM_ALLOCATOR_BASE_BITS_H_
#define HAKMEM_ALLOCATOR_BASE_BITS_H_

#include <stddef.h>
#include <stdint.h>

#define HK_LIKELY(x) __builtin_expect(!!(x), 1)
#define HK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HK_CACHE_LINE 64

// True when x is a power of two (0 is not).
static inline int hk_is_power_of_two(uintptr_t x) { return x != 0 && (x & (x - 1)) == 0; }

// x rounded up to a multiple of `alignment` (a power of two). Wraps to 0 on overflow: callers that
// take sizes from users check hk_align_up_overflows first.
static inline uintptr_t hk_align_up(uintptr_t x, uintptr_t alignment) {
  return (x + alignment - 1) & ~(alignment - 1);
}

// True when rounding x up to `alignment` would overflow.
static inline int hk_align_up_overflows(uintptr_t x, uintptr_t alignment) {
  return x > UINTPTR_MAX - (alignment - 1);
}

// x rounded down to a multiple of `alignment` (a power of two).
static inline uintptr_t hk_align_down(uintptr_t x, uintptr_t alignment) { return x & ~(alignment - 1); }

// Index of the highest set bit of x (x != 0).
static inline unsigned hk_log2_floor(uint64_t x) { return 63u - (unsigned)__builtin_clzll(x); }

// Smallest n with 2^n >= x (x != 0).
static inline unsigned hk_log2_ceil(uint64_t x) { return x <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(x - 1); }

// Tells the CPU we are spinning (cheaper for the sibling hyper-thread).
static inline void hk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif  // HAKMEM_ALLOCATOR_BASE_BITS_H_
