// The compaction census (HAKMEM_CENSUS=PATH): of the resident pages of the slabs in use, how many
// hold no live block (what giving back free pages inside slabs would return), and how many meshing
// would free (Mesh, PLDI 2019: pages of one size class whose live blocks do not overlap share one
// physical page, the other virtual pages mapped onto it). Measured on a program's real heap, it is
// the evidence behind the choice of a compaction design (docs/compaction.md); nothing in the
// allocator acts on it.
//
// Live: a block of the carved part of a slab that does not carry the free mark (base/freelist.h).
// Every block a program freed has the mark until it is handed out again; blocks carved into a bin
// and not handed out yet carry none and count as live (a bin's worth per class and thread at most).
// Pages are looked at in 16-byte granules (every block size is a multiple of 16). Two pages can
// mesh when their blocks lie on the same grid (the same block size at the same offset from the
// page's start) and no live granule of one is a live granule of the other. The meshing estimate is
// greedy, like Mesh's: pages of a grid in order of falling occupancy, each tried against the last
// HK_CENSUS_PROBES candidates; a page that fits none starts a physical page of its own.
//
// Private to //allocator: the background thread takes censuses; tests call hk_census_take.
#ifndef HAKMEM_ALLOCATOR_HAKMEM_CENSUS_H_
#define HAKMEM_ALLOCATOR_HAKMEM_CENSUS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Candidates a page is tried against (Mesh's SplitMesher tries 64).
#define HK_CENSUS_PROBES 64
// Block sizes reported one by one (the tiny and ACE classes together are 68; hakmem_census.c
// checks that every engine class has a place).
#define HK_CENSUS_SIZES 96

// Resident pages of slabs of one block size, and what each design would leave of them.
typedef struct {
  uint64_t pages;              // resident pages holding blocks of this size (the carved part)
  uint64_t pages_free;         // of those, pages with no live granule: page release gives them back
  uint64_t pages_after_pairs;  // pages left when free pages go back and the rest mesh in pairs
  uint64_t pages_after_mesh;   // pages left when any number of pages may share one (at most
                               // pages_after_pairs: the better of the two greedy passes)
  uint64_t live_bytes;         // bytes of live blocks on those pages (16-byte granules)
} hk_census_figures;

typedef struct {
  uint32_t block_size;
  hk_census_figures figures;
} hk_census_size;

typedef struct {
  uint64_t at_ms;                      // ss_clock_ms when taken
  uint64_t committed_bytes;            // os.bytes_committed when taken
  uint64_t rss_kib;                    // the process's VmRSS when taken
  uint64_t pool_free_committed_bytes;  // the pool's free slots not decommitted (not in `total`)
  uint64_t pool_free_resident_bytes;   // of those (and of cached SuperSlabs), pages resident
  uint64_t pages_skipped;              // resident pages not examined (slabs that appeared mid-walk)
  hk_census_figures total;
  uint32_t sizes;                       // entries of by_size, most pages first
  hk_census_size by_size[HK_CENSUS_SIZES];
} hk_census;

// Takes a census of the whole heap now. Reads the slabs of running threads without stopping them
// (their figures are approximate); maps and unmaps its own scratch memory (no malloc). 0, or -1 with
// errno (ENOMEM for the scratch, ENOTSUP where pages are not 4 KiB).
int hk_census_take(hk_census *out);

// Writes `census` to `fd` as text: a line of totals, then one line per block size (key=value
// fields; sizes in KiB). `taken` is how many censuses the run had taken when it wrote this one (the
// one taken at the largest RSS so far).
void hk_census_write(int fd, const hk_census *census, uint64_t taken);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_HAKMEM_CENSUS_H_
