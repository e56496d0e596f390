#define _GNU_SOURCE
#include "allocator/os/os.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/stats.h"

#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static size_t cached_page_size;

size_t hk_os_page_size(void) {
  // Racing first calls store the same value; relaxed is enough.
  size_t page = __atomic_load_n(&cached_page_size, __ATOMIC_RELAXED);
  if (HK_UNLIKELY(page == 0)) {
    long value = sysconf(_SC_PAGESIZE);
    page = value > 0 ? (size_t)value : 4096;
    __atomic_store_n(&cached_page_size, page, __ATOMIC_RELAXED);
  }
  return page;
}

static void *map_anonymous(size_t size) {
  hk_stat_add(HK_STAT_OS_MMAP_CALLS, 1);
  void *address = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return address == MAP_FAILED ? NULL : address;
}

static void unmap_quietly(void *address, size_t size) {
  // Used for trims and failure clean-up: errno must stay as the caller's failure left it.
  int saved_errno = errno;
  hk_stat_add(HK_STAT_OS_MUNMAP_CALLS, 1);
  munmap(address, size);
  errno = saved_errno;
}

// Counts `size` more bytes committed, and the peak.
static void count_committed(size_t size) {
  hk_stat_add(HK_STAT_OS_BYTES_COMMITTED, size);
  hk_stat_raise(HK_STAT_OS_BYTES_COMMITTED_PEAK, hk_stat_get(HK_STAT_OS_BYTES_COMMITTED));
}

static void count_mapped(size_t size) {
  hk_stat_add(HK_STAT_OS_BYTES_RESERVED, size);
  count_committed(size);
}

// Counts `size` bytes unmapped: out of both gauges, into the total given back.
static void count_unmapped(size_t size) {
  hk_stat_sub(HK_STAT_OS_BYTES_RESERVED, size);
  hk_stat_sub(HK_STAT_OS_BYTES_COMMITTED, size);
  hk_stat_add(HK_STAT_OS_BYTES_UNMAPPED_TOTAL, size);
}

void *hk_os_reserve_aligned(size_t size, size_t alignment, unsigned flags) {
  size_t page = hk_os_page_size();
  if (size == 0 || (alignment != 0 && !hk_is_power_of_two(alignment))) {
    errno = EINVAL;
    return NULL;
  }
  if (alignment < page) alignment = page;
  if (hk_align_up_overflows(size, page)) {
    errno = ENOMEM;
    return NULL;
  }
  size = hk_align_up(size, page);
  if (size > SIZE_MAX - alignment) {
    errno = ENOMEM;
    return NULL;
  }

  void *result;
  if (alignment == page) {
    result = map_anonymous(size);
    if (!result) return NULL;
  } else {
    // Over-map by (alignment - page) so an aligned start surely fits, then unmap the excess.
    size_t padded = size + alignment - page;
    char *raw = map_anonymous(padded);
    if (!raw) return NULL;
    char *aligned = (char *)hk_align_up((uintptr_t)raw, alignment);
    size_t head = (size_t)(aligned - raw);
    size_t tail = padded - head - size;
    if (head) unmap_quietly(raw, head);
    if (tail) unmap_quietly(aligned + size, tail);
    result = aligned;
  }
  if (flags & HK_OS_RESERVE_UNCOMMITTED) {
    hk_stat_add(HK_STAT_OS_BYTES_RESERVED, size);
  } else {
    count_mapped(size);
  }
  if (flags & HK_OS_RESERVE_HUGEPAGE) hk_os_hugepage_hint(result, size);
  return result;
}

int hk_os_release(void *address, size_t size) {
  size = hk_align_up(size, hk_os_page_size());
  hk_stat_add(HK_STAT_OS_MUNMAP_CALLS, 1);
  if (munmap(address, size) != 0) return -1;
  // Releasing a range counts it out of both gauges: callers release only committed ranges or
  // commit their bookkeeping first (see hk_os_commit), so the gauges stay exact.
  count_unmapped(size);
  return 0;
}

static int decommit_advice(hk_os_decommit_kind kind) {
  if (kind == HK_OS_DECOMMIT_CONFIGURED) {
    kind = strcmp(hk_config_string(HK_OPT_OS_DECOMMIT), "free") == 0 ? HK_OS_DECOMMIT_FREE
                                                                      : HK_OS_DECOMMIT_DONTNEED;
  }
  return kind == HK_OS_DECOMMIT_FREE ? MADV_FREE : MADV_DONTNEED;
}

int hk_os_decommit_zeroes(hk_os_decommit_kind kind) { return decommit_advice(kind) == MADV_DONTNEED; }

int hk_os_decommit(void *address, size_t size, hk_os_decommit_kind kind) {
  size_t page = hk_os_page_size();
  if (((uintptr_t)address & (page - 1)) != 0) {
    errno = EINVAL;
    return -1;
  }
  size = hk_align_up(size, page);
  int advice = decommit_advice(kind);
  hk_stat_add(HK_STAT_OS_MADVISE_CALLS, 1);
  int result = madvise(address, size, advice);
  if (result != 0 && advice == MADV_FREE && errno == EINVAL) {
    // Kernels before 4.5 lack MADV_FREE: fall back to the advice every kernel has.
    hk_stat_add(HK_STAT_OS_MADVISE_CALLS, 1);
    result = madvise(address, size, MADV_DONTNEED);
  }
  if (result != 0) return -1;
  hk_stat_sub(HK_STAT_OS_BYTES_COMMITTED, size);
  hk_stat_add(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL, size);
  return 0;
}

void hk_os_commit(void *address, size_t size) {
  (void)address;
  count_committed(hk_align_up(size, hk_os_page_size()));
}

// madvise(advice) on the page-rounded range, or EINVAL where the advice does not exist (-1).
static int hugepage_advise(void *address, size_t size, int advice) {
  if (advice < 0) {
    errno = EINVAL;
    return -1;
  }
  hk_stat_add(HK_STAT_OS_MADVISE_CALLS, 1);
  return madvise(address, hk_align_up(size, hk_os_page_size()), advice);
}

int hk_os_hugepage_hint(void *address, size_t size) {
#ifdef MADV_HUGEPAGE
  return hugepage_advise(address, size, MADV_HUGEPAGE);
#else
  return hugepage_advise(address, size, -1);
#endif
}

int hk_os_hugepage_withdraw(void *address, size_t size) {
#ifdef MADV_NOHUGEPAGE
  return hugepage_advise(address, size, MADV_NOHUGEPAGE);
#else
  return hugepage_advise(address, size, -1);
#endif
}

int hk_os_resident_map(void *address, size_t size, unsigned char *out) {
  size_t page = hk_os_page_size();
  size_t pages = hk_align_up(size, page) / page;
  if (pages && mincore(address, pages * page, out) != 0) return -1;
  for (size_t i = 0; i < pages; i++) out[i] &= 1;  // the other bits are reserved
  return 0;
}

long hk_os_resident_pages(void *address, size_t size) {
  size_t page = hk_os_page_size();
  size_t pages = hk_align_up(size, page) / page;
  unsigned char vector[512];
  long resident = 0;
  for (size_t done = 0; done < pages;) {
    size_t chunk = pages - done < sizeof vector ? pages - done : sizeof vector;
    if (hk_os_resident_map((char *)address + done * page, chunk * page, vector) != 0) return -1;
    for (size_t i = 0; i < chunk; i++) resident += vector[i];
    done += chunk;
  }
  return resident;
}

// MADV_COLLAPSE's value (Linux 6.1); older headers lack the name.
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

int hk_os_hugepage_collapse(void *address, size_t size) {
  if (hk_os_hugepage_hint(address, size) != 0) return -1;
  hk_stat_add(HK_STAT_OS_MADVISE_CALLS, 1);
  if (madvise(address, size, MADV_COLLAPSE) == 0) {
    hk_stat_add(HK_STAT_OS_HUGEPAGE_COLLAPSES, size >> 21);
    return 0;
  }
  int error = errno;
  hk_stat_add(HK_STAT_OS_HUGEPAGE_COLLAPSE_FAILURES, 1);
  hk_os_hugepage_withdraw(address, size);
  errno = error;
  return -1;
}

void *hk_os_remap(void *address, size_t old_size, size_t new_size, int may_move) {
  size_t page = hk_os_page_size();
  if (new_size == 0 || hk_align_up_overflows(new_size, page)) {
    errno = new_size == 0 ? EINVAL : ENOMEM;
    return NULL;
  }
  old_size = hk_align_up(old_size, page);
  new_size = hk_align_up(new_size, page);
  hk_stat_add(HK_STAT_OS_MREMAP_CALLS, 1);
  void *result = mremap(address, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
  if (result == MAP_FAILED) return NULL;
  if (new_size > old_size) {
    count_mapped(new_size - old_size);
  } else {
    count_unmapped(old_size - new_size);
  }
  return result;
}

void *hk_os_move_pages(void *address, size_t size, void *destination) {
  size = hk_align_up(size, hk_os_page_size());
  int flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP | (destination ? MREMAP_FIXED : 0);
  hk_stat_add(HK_STAT_OS_MREMAP_CALLS, 1);
  void *result = mremap(address, size, size, flags, destination);
  if (result == MAP_FAILED) return NULL;
  // Committed bytes move with the pages (the old range decommitted, the destination committed),
  // so that gauge does not change; a new mapping adds reserved bytes.
  if (!destination) hk_stat_add(HK_STAT_OS_BYTES_RESERVED, size);
  return result;
}
