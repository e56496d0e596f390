// The standard names: malloc, free and the rest of the family, plus glibc's __libc_* aliases,
// for the preload library (//:hakmem_preload) and the link-time override (//:hakmem_static).
// Each body is the front door's inline code (hakmem_inline.h), so the fast paths make no call.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "allocator/hakmem.h"
#include "allocator/hakmem_inline.h"

#define HK_EXPORT __attribute__((visibility("default")))

HK_EXPORT void *malloc(size_t size) { return hk_malloc_inline(size); }

HK_EXPORT void free(void *block) { hk_free_inline(block, "free"); }

HK_EXPORT void *calloc(size_t count, size_t size) { return hk_calloc_inline(count, size); }

HK_EXPORT void *realloc(void *block, size_t size) { return hk_realloc_inline(block, size); }

HK_EXPORT void *reallocarray(void *block, size_t count, size_t size) {
  return hakmem_reallocarray(block, count, size);
}

HK_EXPORT int posix_memalign(void **result, size_t alignment, size_t size) {
  return hakmem_posix_memalign(result, alignment, size);
}

HK_EXPORT void *aligned_alloc(size_t alignment, size_t size) { return hakmem_aligned_alloc(alignment, size); }

HK_EXPORT void *memalign(size_t alignment, size_t size) { return hakmem_memalign(alignment, size); }

HK_EXPORT void *valloc(size_t size) { return hakmem_valloc(size); }

HK_EXPORT void *pvalloc(size_t size) { return hakmem_pvalloc(size); }

HK_EXPORT size_t malloc_usable_size(void *block) { return hk_usable_size_inline(block, "malloc_usable_size"); }

HK_EXPORT int malloc_trim(size_t pad) { return hakmem_malloc_trim(pad); }

// glibc's introspection calls, answered with HAKMEM's figures (hakmem_introspect.c).
HK_EXPORT struct mallinfo2 mallinfo2(void) {
  hakmem_mallinfo info = hakmem_mallinfo2();
  return (struct mallinfo2){info.arena, info.ordblks, info.smblks, info.hblks, info.hblkhd,
                            info.usmblks, info.fsmblks, info.uordblks, info.fordblks, info.keepcost};
}

// The int fields of the old call saturate at INT_MAX instead of wrapping (glibc's wrap).
static int saturated(size_t value) { return value > INT_MAX ? INT_MAX : (int)value; }

HK_EXPORT struct mallinfo mallinfo(void) {
  hakmem_mallinfo info = hakmem_mallinfo2();
  return (struct mallinfo){saturated(info.arena),    saturated(info.ordblks), saturated(info.smblks),
                           saturated(info.hblks),    saturated(info.hblkhd),  saturated(info.usmblks),
                           saturated(info.fsmblks),  saturated(info.uordblks), saturated(info.fordblks),
                           saturated(info.keepcost)};
}

HK_EXPORT void malloc_stats(void) { hakmem_malloc_stats(); }

HK_EXPORT int malloc_info(int options, FILE *stream) { return hakmem_malloc_info(options, stream); }

HK_EXPORT int mallopt(int param, int value) { return hakmem_mallopt(param, value); }

// glibc's internal entry points, which some programs and libraries call directly.
HK_EXPORT void *__libc_malloc(size_t size) { return hk_malloc_inline(size); }
HK_EXPORT void __libc_free(void *block) { hk_free_inline(block, "free"); }
HK_EXPORT void *__libc_calloc(size_t count, size_t size) { return hk_calloc_inline(count, size); }
HK_EXPORT void *__libc_realloc(void *block, size_t size) { return hk_realloc_inline(block, size); }
HK_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return hakmem_memalign(alignment, size); }
HK_EXPORT void *__libc_valloc(size_t size) { return hakmem_valloc(size); }
HK_EXPORT void *__libc_pvalloc(size_t size) { return hakmem_pvalloc(size); }
