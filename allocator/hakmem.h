// HAKMEM's prefixed API: the whole malloc family under hakmem_* names, with glibc's semantics,
// for programs that embed HAKMEM beside the system allocator (//:hakmem). The preload library
// and //:hakmem_static export the same functions under the standard names.
#ifndef HAKMEM_ALLOCATOR_HAKMEM_H_
#define HAKMEM_ALLOCATOR_HAKMEM_H_

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// malloc: a block of at least `size` bytes, 16-byte aligned; NULL with errno ENOMEM.
void *hakmem_malloc(size_t size);
// free: NULL is ignored; a pointer that is not the start of a live HAKMEM block aborts with
// "hakmem: free(): invalid pointer 0x...".
void hakmem_free(void *block);
// calloc: count * size zeroed bytes; NULL with ENOMEM on overflow or exhaustion.
void *hakmem_calloc(size_t count, size_t size);
// realloc: resizes keeping the contents; NULL block means malloc; size 0 frees and returns NULL.
// On failure returns NULL with ENOMEM and leaves the block untouched.
void *hakmem_realloc(void *block, size_t size);
// reallocarray: realloc(block, count * size) with an overflow check (ENOMEM).
void *hakmem_reallocarray(void *block, size_t count, size_t size);
// posix_memalign: returns 0, EINVAL (alignment not a power of two multiple of sizeof(void *)) or
// ENOMEM; *result is set only on success.
int hakmem_posix_memalign(void **result, size_t alignment, size_t size);
// aligned_alloc: EINVAL with NULL for an alignment that is not a power of two.
void *hakmem_aligned_alloc(size_t alignment, size_t size);
// memalign: like glibc, a non-power-of-two alignment is rounded up to the next power of two.
void *hakmem_memalign(size_t alignment, size_t size);
// valloc: page-aligned.
void *hakmem_valloc(size_t size);
// pvalloc: page-aligned, size rounded up to whole pages (ENOMEM on overflow).
void *hakmem_pvalloc(size_t size);
// malloc_usable_size: the bytes the block can really hold (>= the request); 0 for NULL.
size_t hakmem_malloc_usable_size(void *block);
// malloc_trim: returns free memory to the OS now (caches, free slabs, cached SuperSlabs and huge
// mappings, and the free pages of slabs that still hold live blocks: the calling thread's and those
// of exited threads). Returns 1 when memory was released, else 0. `pad` is ignored.
int hakmem_malloc_trim(size_t pad);

// A few totals for programs and tests (HAKMEM_STATS=1 prints a summary at exit, =all every counter).
typedef struct {
  uint64_t os_mmap_calls;      // mmap calls so far
  uint64_t os_munmap_calls;    // munmap calls so far
  uint64_t os_madvise_calls;   // madvise calls so far
  uint64_t bytes_reserved;     // address space mapped now
  uint64_t bytes_committed;    // mapped and not decommitted now
  uint64_t background_starts;  // background threads started (HAKMEM_BACKGROUND_MS; one at a time)
  uint64_t background_bytes_returned;  // bytes the background thread's passes gave back
} hakmem_stats;

// Fills `out` with the current totals.
void hakmem_stats_get(hakmem_stats *out);

// Writes every counter to file descriptor `fd` as text (json = 0) or JSON (json = 1), using no
// malloc and no stdio. What HAKMEM_STATS=all / json:PATH does at exit.
void hakmem_stats_write(int fd, int json);

// The summary's first line starts "hakmem: " HAKMEM_SUMMARY_TITLE.
#define HAKMEM_SUMMARY_TITLE "HAKMEM memory summary"

// Writes the readable summary to `fd`, using no malloc and no stdio: RSS now and at the peak;
// bytes reserved, committed, in use and cached per layer; per size class the live blocks, the
// allocations and fast-path hit rate where counted, refills and slabs; slow paths, memory
// syscalls, lock waits and bytes given back. What HAKMEM_STATS=1 prints at exit and malloc_stats
// prints. README.md ("Statistics") says how each figure is derived.
void hakmem_stats_summary_write(int fd);

// ---- glibc's introspection calls (the preload library and //:hakmem_static export them under
// glibc's names; README.md, "glibc introspection calls", has the field mapping) ----------------

// glibc's struct mallinfo2, field for field.
typedef struct {
  size_t arena;     // committed bytes HAKMEM holds besides live huge blocks: uordblks + fordblks
  size_t ordblks;   // free units: free slabs, cached SuperSlabs and huge mappings, free arena spans
  size_t smblks;    // free blocks in the calling thread's caches (bins)
  size_t hblks;     // live huge blocks (> 512 KiB)
  size_t hblkhd;    // their bytes
  size_t usmblks;   // 0, as glibc
  size_t fsmblks;   // bytes of the smblks blocks
  size_t uordblks;  // bytes of live tiny and mid blocks (huge ones are in hblkhd, as glibc's mmaps)
  size_t fordblks;  // committed bytes not in use: free blocks and slabs, cached huge memory
  size_t keepcost;  // of those, what malloc_trim gives back whole: free slabs, cached huge memory
} hakmem_mallinfo;

// mallinfo2: the figures above, now (the pool's slabs are walked; about a millisecond per GiB).
hakmem_mallinfo hakmem_mallinfo2(void);

// malloc_stats: the summary (hakmem_stats_summary_write) on stderr.
void hakmem_malloc_stats(void);

// malloc_info: glibc's XML shape with HAKMEM's figures, written to `stream` with stdio (after the
// figures are taken, no lock of HAKMEM's is held). options != 0, or no stream: -1, errno EINVAL.
int hakmem_malloc_info(int options, FILE *stream);

// mallopt: M_TRIM_THRESHOLD sets HAKMEM_HUGE_CACHE_MAX_BYTES (the free memory kept for huge blocks
// before it goes back; negative: no bound) and returns 1; every other parameter has no HAKMEM
// counterpart and returns 0, changing nothing.
int hakmem_mallopt(int param, int value);

// True when `block` is a pointer HAKMEM handed out (a slab or huge block of ours).
int hakmem_owns(const void *block);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_HAKMEM_H_
