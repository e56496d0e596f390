// The OS layer: every mmap, munmap, madvise and mremap HAKMEM makes goes through here.
//
// Never calls malloc or stdio and never aborts: a failure returns NULL (or -1) with errno as the
// failing syscall left it. Every call is counted in allocator/base/stats (os.* counters):
// syscalls by kind, bytes reserved now, bytes committed now and at the peak, bytes ever
// decommitted and ever unmapped.
//
// Vocabulary: *reserve* maps address space (readable and writable, MAP_NORESERVE: pages cost
// memory only once touched); *decommit* gives a range's pages back to the OS while keeping the
// addresses; *commit* declares a decommitted range in use again (Linux faults pages back in on
// touch, so this is bookkeeping, no syscall); *release* unmaps.
#ifndef HAKMEM_ALLOCATOR_OS_OS_H_
#define HAKMEM_ALLOCATOR_OS_OS_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// The largest alignment hk_os_reserve_aligned promises (any power of two up to this works;
// larger ones work too while the over-mapped size fits the address space).
#define HK_OS_MAX_PROMISED_ALIGNMENT ((size_t)64 << 20)

// Flags for hk_os_reserve_aligned.
enum {
  HK_OS_RESERVE_DEFAULT = 0,
  HK_OS_RESERVE_HUGEPAGE = 1,  // ask for transparent huge pages on this mapping (a hint)
  HK_OS_RESERVE_UNCOMMITTED = 2,  // count the range as decommitted (the caller commits parts of it)
};

// How hk_os_decommit returns pages.
typedef enum {
  HK_OS_DECOMMIT_CONFIGURED = 0,  // what HAKMEM_OS_DECOMMIT says (dontneed by default)
  HK_OS_DECOMMIT_DONTNEED = 1,    // MADV_DONTNEED: RSS drops now, pages read back as zero
  HK_OS_DECOMMIT_FREE = 2,        // MADV_FREE: the kernel takes pages when it needs them
} hk_os_decommit_kind;

// The system page size (cached after the first call).
size_t hk_os_page_size(void);

// Maps `size` bytes (rounded up to the page size) at an address that is a multiple of
// `alignment` (a power of two; values below the page size mean the page size). Over-maps by the
// alignment and unmaps the excess head and tail. NULL with errno = ENOMEM when it cannot
// (EINVAL for a zero size or an alignment that is not a power of two).
void *hk_os_reserve_aligned(size_t size, size_t alignment, unsigned flags);

// Unmaps [address, address + size) (size rounded up to the page size). 0, or -1 with errno.
// The os.bytes_committed gauge assumes the range is committed: for a range that is partly
// decommitted, call hk_os_commit on that part first so the gauge stays exact.
int hk_os_release(void *address, size_t size);

// Gives the pages of [address, address + size) back to the OS, keeping the range mapped.
// The range must be page-aligned. 0, or -1 with errno.
int hk_os_decommit(void *address, size_t size, hk_os_decommit_kind kind);

// True when pages decommitted with `kind` read back as zero (MADV_DONTNEED), false when they may
// keep old contents until the kernel takes them (MADV_FREE).
int hk_os_decommit_zeroes(hk_os_decommit_kind kind);

// Marks a decommitted page-aligned range as in use again (counter bookkeeping only).
void hk_os_commit(void *address, size_t size);

// Asks for transparent huge pages on this range only (never process-wide). 0, or -1 with errno.
int hk_os_hugepage_hint(void *address, size_t size);

// Withdraws that request (MADV_NOHUGEPAGE): huge pages already there stay until split, and
// khugepaged no longer refills the range. 0, or -1 with errno.
int hk_os_hugepage_withdraw(void *address, size_t size);

// Pages of [address, address + size) (page-aligned) resident now (mincore), or -1 with errno.
long hk_os_resident_pages(void *address, size_t size);

// Which pages of [address, address + size) (page-aligned) are resident now: out[i] is 1 or 0 for
// the i-th page (one byte per page, the caller's buffer). 0, or -1 with errno (mincore's).
int hk_os_resident_map(void *address, size_t size, unsigned char *out);

// Turns the resident range into transparent huge pages now (MADV_HUGEPAGE, then MADV_COLLAPSE,
// Linux 6.1+: the kernel copies the small pages into huge ones; pages not resident are filled
// with zeros). Synchronous and costly (a 2 MiB copy each): for a background thread. On failure
// the hint is withdrawn again. 0, or -1 with errno (EINVAL where the kernel lacks it).
int hk_os_hugepage_collapse(void *address, size_t size);

// Resizes the mapping at `address` from old_size to new_size (page-rounded), moving it if
// `may_move`; the contents are kept without copying. The new address, or NULL with errno.
void *hk_os_remap(void *address, size_t old_size, size_t new_size, int may_move);

// Moves the pages of [address, address + size) (page-aligned, within one mapping) without copying
// (mremap with MREMAP_DONTUNMAP): to [destination, destination + size), a range the caller owns
// and whose pages this replaces, or with a NULL destination to a new mapping the kernel places.
// The old range stays mapped and now reads as zero; the gauges count it decommitted and the
// destination committed. The new address, or NULL with errno (EINVAL on kernels before 5.7).
void *hk_os_move_pages(void *address, size_t size, void *destination);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_OS_OS_H_
