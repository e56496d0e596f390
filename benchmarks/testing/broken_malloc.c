// A deliberately broken allocator shim for the benchmarks' self-check test. It forwards malloc, free
// and realloc to the next allocator (dlsym RTLD_NEXT) but, after every Nth allocation, flips the first
// byte of that block at the thread's next allocator call: by then the benchmark has written its
// pattern, so live data is wrong and the benchmark must report check=FAILED.
// BROKEN_MALLOC_EVERY=N sets N (default 32).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_realloc)(void *, size_t);
static unsigned long corrupt_every = 32;

// dlsym may allocate while we resolve; those requests come from a small static buffer.
static char bootstrap_buffer[8192];
static size_t bootstrap_used;
static __thread int resolving;

// Per thread: the block to corrupt at the next call, and a count of allocations.
static __thread void *pending_victim;
static __thread unsigned long allocations;

static void resolve(void) {
  resolving = 1;
  real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  const char *every = getenv("BROKEN_MALLOC_EVERY");
  if (every && strtoul(every, NULL, 10) > 0) corrupt_every = strtoul(every, NULL, 10);
  resolving = 0;
}

__attribute__((constructor)) static void broken_malloc_init(void) {
  if (!real_malloc) resolve();
}

static int from_bootstrap(const void *p) {
  return (const char *)p >= bootstrap_buffer && (const char *)p < bootstrap_buffer + sizeof bootstrap_buffer;
}

// Corrupts the pending victim unless this call is about to release it.
static void corrupt_pending(const void *being_released) {
  if (pending_victim && pending_victim != being_released) ((volatile uint8_t *)pending_victim)[0] ^= 0x5A;
  pending_victim = NULL;
}

static void maybe_choose_victim(void *block) {
  if (block && ++allocations % corrupt_every == 0) pending_victim = block;
}

void *malloc(size_t size) {
  if (!real_malloc) {
    if (resolving) {
      size_t rounded = (size + 15) & ~(size_t)15;
      if (bootstrap_used + rounded > sizeof bootstrap_buffer) return NULL;
      void *p = bootstrap_buffer + bootstrap_used;
      bootstrap_used += rounded;
      return p;
    }
    resolve();
  }
  corrupt_pending(NULL);
  void *block = real_malloc(size);
  maybe_choose_victim(block);
  return block;
}

void free(void *p) {
  if (p == NULL || from_bootstrap(p)) return;
  if (!real_free) resolve();
  corrupt_pending(p);
  real_free(p);
}

void *realloc(void *p, size_t size) {
  if (!real_realloc) resolve();
  if (from_bootstrap(p)) p = NULL;  // never happens after start-up; keeps the shim total
  corrupt_pending(p);
  void *block = real_realloc(p, size);
  maybe_choose_victim(block);
  return block;
}
