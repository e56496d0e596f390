// Preload shim that puts glibc's own malloc back in front of a program linked against another
// allocator. Built and used by benchmarks/programs/redis_service.py for the "glibc" column.
//
// Why: Debian links redis-server against libjemalloc.so.2, which is loaded before libc and so
// provides malloc, free and friends. Running redis-server with no preload therefore measures
// jemalloc, not glibc. This shim, preloaded, is found first and forwards every call to glibc's
// exported __libc_* entry points, so the glibc column is glibc's allocator like everywhere else.
// (jemalloc's own extension calls, mallctl and nallocx, still go to jemalloc: redis only queries
// statistics and size classes with them.)
//
// Build: cc -O2 -shared -fPIC -o libc_malloc_shim.so libc_malloc_shim.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

__attribute__((visibility("default"))) void *malloc(size_t size) { return __libc_malloc(size); }
__attribute__((visibility("default"))) void free(void *ptr) { __libc_free(ptr); }
__attribute__((visibility("default"))) void *calloc(size_t count, size_t size) { return __libc_calloc(count, size); }
__attribute__((visibility("default"))) void *realloc(void *ptr, size_t size) { return __libc_realloc(ptr, size); }
__attribute__((visibility("default"))) void *memalign(size_t alignment, size_t size) {
  return __libc_memalign(alignment, size);
}
__attribute__((visibility("default"))) void *aligned_alloc(size_t alignment, size_t size) {
  return __libc_memalign(alignment, size);
}
__attribute__((visibility("default"))) void *valloc(size_t size) {
  return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

__attribute__((visibility("default"))) int posix_memalign(void **out, size_t alignment, size_t size) {
  // POSIX: a power of two that is a multiple of sizeof(void *).
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void *p = __libc_memalign(alignment, size);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

// glibc exports no __libc_ name for malloc_usable_size, and the next definition in the lookup
// order is jemalloc's. Ask libc.so.6 itself (already loaded: RTLD_NOLOAD) for its own.
__attribute__((visibility("default"))) size_t malloc_usable_size(void *ptr) {
  static size_t (*libc_usable_size)(void *);
  if (libc_usable_size == NULL) {
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (libc != NULL) libc_usable_size = (size_t (*)(void *))dlsym(libc, "malloc_usable_size");
    if (libc_usable_size == NULL) return 0;  // cannot happen with glibc; 0 is the safe answer
  }
  return libc_usable_size(ptr);
}
