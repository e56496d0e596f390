// The standard names: malloc, free and the rest of the family, plus glibc's __libc_* aliases,
// for the preload library (//:hakmem_preload) and the link-time override (//:hakmem_static).
// Each body is the front door's inline code (hakmem_inline.h), so the fast paths make no call.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
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

// glibc's internal entry points, which some programs and libraries call directly.
HK_EXPORT void *__libc_malloc(size_t size) { return hk_malloc_inline(size); }
HK_EXPORT void __libc_free(void *block) { hk_free_inline(block, "free"); }
HK_EXPORT void *__libc_calloc(size_t count, size_t size) { return hk_calloc_inline(count, size); }
HK_EXPORT void *__libc_realloc(void *block, size_t size) { return hk_realloc_inline(block, size); }
HK_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return hakmem_memalign(alignment, size); }
HK_EXPORT void *__libc_valloc(size_t size) { return hakmem_valloc(size); }
HK_EXPORT void *__libc_pvalloc(size_t size) { return hakmem_pvalloc(size); }
