// SuperSlabs and the registry that maps any address to the SuperSlab and slab owning it.
//
// A SuperSlab is a 2 MiB mapping aligned to 2 MiB, cut into 32 slabs of 64 KiB. Its first page
// (4 KiB) holds the header: a magic value, the SuperSlab's directory id, and one 64-byte metadata
// line per slab (ss_slab). Slab 0 therefore starts 4 KiB in and has 60 KiB of usable space; every
// other slab has 64 KiB. See docs/superslab.md for the layout and the reasons for the sizes.
//
// The registry is a bitmap with one bit per 2 MiB of the 47-bit user address space (8 MiB of BSS,
// touched only where SuperSlabs live): bit `address >> 21` is set while a SuperSlab is mapped
// there. ss_registry_lookup is a range check, one load and a bit test: no lock, no syscall, safe
// for any pointer value; the SuperSlab's address is the pointer's, masked.
//
// This layer also keeps the LRU cache of fully free SuperSlabs (bounded by HAKMEM_SS_CACHE_*,
// decommitted after HAKMEM_SS_DECOMMIT_DELAY_MS, unmapped past the bounds). The shared pool
// (shared_pool.h) is its user; block layers use the lookups and the slab metadata below.
//
// Never calls malloc or stdio.
#ifndef HAKMEM_ALLOCATOR_SUPERSLAB_REGISTRY_H_
#define HAKMEM_ALLOCATOR_SUPERSLAB_REGISTRY_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SS_SIZE_LOG2 21
#define SS_SIZE ((size_t)1 << SS_SIZE_LOG2)  // 2 MiB
#define SS_SLAB_SIZE_LOG2 16
#define SS_SLAB_SIZE ((size_t)1 << SS_SLAB_SIZE_LOG2)  // 64 KiB
#define SS_SLABS_PER_SUPERSLAB (1u << (SS_SIZE_LOG2 - SS_SLAB_SIZE_LOG2))  // 32
#define SS_HEADER_SIZE ((size_t)4096)  // header page at the start of slab 0
#define SS_MAGIC UINT64_C(0x48414b4d53535342)  // "HAKMSSSB"

// Registry geometry: 47-bit user addresses >> 21 = 26 bits of SuperSlab index, one bit each.
#define SS_REGISTRY_ADDRESS_BITS 47
#define SS_REGISTRY_INDEX_BITS (SS_REGISTRY_ADDRESS_BITS - SS_SIZE_LOG2)  // 26
#define SS_REGISTRY_WORDS ((size_t)1 << (SS_REGISTRY_INDEX_BITS - 6))      // 1 Mi words, 8 MiB

// The metadata of one slab: one cache line, so the owner's hot fields share a line and two slabs
// (possibly two owners) never share one. The pool writes `kind`, `span_slabs`, `span_head`,
// `zeroed` and resets the others on every acquisition; then the slab's user owns the fields.
typedef struct ss_slab {
  void *free_list;       // owner-only: local free list of blocks
  uint64_t remote_free;  // atomic: the blocks other threads freed, as a list and its length in one
                         // word (ss_remote_word). Pushers swap in a longer list with a release CAS;
                         // the owner takes the word with an acquire exchange, so it gets the length
                         // without walking the list; emptiness checks relaxed
  uint64_t owner;        // atomic: owner thread id, 0 when unowned (set by the user layer)
  uint32_t used;         // owner-only: blocks handed out
  uint32_t capacity;     // blocks the slab holds (set by the user layer)
  uint32_t carve;        // owner-only: offset of the first never-handed-out byte
  uint32_t block_size;   // set by the user layer
  uint64_t user;         // a spare word for the user layer
  uint16_t kind;         // the kind given to sp_acquire_slab; SS_KIND_SPAN for span slots
  uint8_t span_slabs;    // slots in the span this slab heads: 1 for a slab, n for a span head,
                         // 0 for a span's other slots
  uint8_t span_head;     // index of the slab heading this slab's span (its own index for a slab)
  uint8_t zeroed;        // 1 when the slab's (span's) pages were known zero at acquisition
  uint8_t index;         // this slab's index in its SuperSlab (constant)
  uint16_t trimmed_pages; // user layer, 0 at acquisition: pages malloc_trim decommitted while the
                         // slab stays in use (the slab engine: a mask of the slot's 4 KiB pages for
                         // parked pages, else the count of pages inside its free blocks)
  uint64_t user_tag;     // a second spare word for the user layer (0 at acquisition)
} __attribute__((aligned(64))) ss_slab;

#define SS_KIND_SPAN 0xFFFFu

// Kinds below this (the tiny front's classes) are flagged in the header's slab_heads bytes, so
// that free can route their blocks from the header line alone (see ss_superslab.slab_heads).
#define SS_SMALL_KINDS 20u
#define SS_HEAD_INDEX_MASK 0x1Fu   // slab_heads[i] & this: the index of the slot's span head
#define SS_HEAD_SMALL_KIND 0x80u   // slab_heads[i] & this: the slot's kind is below SS_SMALL_KINDS

// The remote-free word: the first block of the list (bits 0-47: user addresses have 47 bits) and
// the number of blocks on it (bits 48-63; a slab or span never holds 65,536 blocks). 0 is empty.
#define SS_REMOTE_COUNT_SHIFT 48
static inline uint64_t ss_remote_word(void *list, uint32_t count) {
  return (uint64_t)(uintptr_t)list | (uint64_t)count << SS_REMOTE_COUNT_SHIFT;
}
static inline void *ss_remote_list(uint64_t word) {
  return (void *)(uintptr_t)(word & (((uint64_t)1 << SS_REMOTE_COUNT_SHIFT) - 1));
}
static inline uint32_t ss_remote_count(uint64_t word) { return (uint32_t)(word >> SS_REMOTE_COUNT_SHIFT); }

// The SuperSlab header, at the SuperSlab's first byte.
typedef struct ss_superslab {
  uint64_t magic;    // SS_MAGIC while mapped
  uint32_t id;       // directory id (pool bookkeeping lives in a directory indexed by it)
  uint32_t reserved0;
  // slab_heads[i] == slabs[i].span_head | (SS_HEAD_SMALL_KIND if slabs[i].kind < SS_SMALL_KINDS),
  // written with the kind by the pool. On the header's first line, which all 32 slabs share and
  // so is usually cached, so that finding a block's head (ss_registry_lookup_head) reads no other
  // line than the head's own, and a small kind's slab (never a span) is known before its
  // metadata line arrives.
  uint8_t slab_heads[SS_SLABS_PER_SUPERSLAB];
  char padding[16];  // slabs[] starts on its own cache line
  ss_slab slabs[SS_SLABS_PER_SUPERSLAB];
} ss_superslab;

// The registry: bit i is set while the SuperSlab at address i << 21 is mapped and ours. 8 MiB of
// BSS, of which only the pages covering the SuperSlabs' addresses are ever touched (one 4 KiB page
// covers 64 GiB of address space). Bits are set with release RMWs once the header is initialised
// and cleared before the SuperSlab is unmapped; lookups read them with acquire loads. Use the
// functions below, not this.
extern uint64_t ss_registry_bits[SS_REGISTRY_WORDS];

// The SuperSlab containing `pointer` when it is one of ours and mapped, else NULL. Any value is
// safe (NULL, 1, UINTPTR_MAX, non-canonical addresses): it reads only the registry bits. The
// SuperSlab's address is the pointer's, masked, so a caller's load of its header does not wait
// for the bit's load (only a predicted branch does).
static inline ss_superslab *ss_registry_find(const void *pointer) {
  uintptr_t index = (uintptr_t)pointer >> SS_SIZE_LOG2;
  if (__builtin_expect(index >= ((uintptr_t)1 << SS_REGISTRY_INDEX_BITS), 0)) return NULL;
  // Acquire: pairs with the release that set the bit, so the caller sees the header initialised.
  uint64_t word = __atomic_load_n(&ss_registry_bits[index >> 6], __ATOMIC_ACQUIRE);
  if (!((word >> (index & 63)) & 1)) return NULL;
  // No SuperSlab lies at address 0 (the kernel never maps page 0): the caller's NULL test of the
  // result compiles away.
  if (index == 0) __builtin_unreachable();
  return (ss_superslab *)(index << SS_SIZE_LOG2);
}

// The index (0..31) of the slot holding `pointer` within its SuperSlab.
static inline unsigned ss_slot_index(const void *pointer) {
  return (unsigned)(((uintptr_t)pointer >> SS_SLAB_SIZE_LOG2) & (SS_SLABS_PER_SUPERSLAB - 1));
}

// The metadata of slot `index` (0..31) of `superslab`. Written as byte arithmetic, not
// &slabs[index]: with the latter gcc built free's metadata address twice, from index and from
// index + 1 (five instructions where one shift does).
static inline ss_slab *ss_slab_at(ss_superslab *superslab, unsigned index) {
  return (ss_slab *)((char *)superslab->slabs + (uintptr_t)index * sizeof(ss_slab));
}

// The metadata of the slab owning `pointer`, or NULL when the address is not in a mapped
// SuperSlab. An address in the header page gives slab 0 (callers that care compare with
// ss_slab_base). The SuperSlab is ss_from_pointer_unchecked(result).
static inline ss_slab *ss_registry_lookup(const void *pointer) {
  ss_superslab *superslab = ss_registry_find(pointer);
  if (!superslab) return NULL;
  return ss_slab_at(superslab, ss_slot_index(pointer));
}

// The slab or span head that a slab_heads byte of `superslab` names (the flag bits masked off).
static inline ss_slab *ss_head_from_byte(ss_superslab *superslab, unsigned head_byte) {
  return ss_slab_at(superslab, head_byte & SS_HEAD_INDEX_MASK);
}

// The metadata of the slab, or the head of the span, that holds `pointer`; NULL like
// ss_registry_lookup. Equal to ss_registry_lookup(pointer) except inside a span's later slots.
static inline ss_slab *ss_registry_lookup_head(const void *pointer) {
  ss_superslab *superslab = ss_registry_find(pointer);
  if (!superslab) return NULL;
  return ss_head_from_byte(superslab, superslab->slab_heads[ss_slot_index(pointer)]);
}

// The SuperSlab of a pointer known to be ours (a mask; no check at all).
static inline ss_superslab *ss_from_pointer_unchecked(const void *pointer) {
  return (ss_superslab *)((uintptr_t)pointer & ~(uintptr_t)(SS_SIZE - 1));
}

// The slab metadata of a pointer known to be ours (a mask and a shift; no check at all).
static inline ss_slab *ss_slab_from_pointer_unchecked(const void *pointer) {
  return &ss_from_pointer_unchecked(pointer)->slabs[ss_slot_index(pointer)];
}

// The SuperSlab a slab's metadata belongs to.
static inline ss_superslab *ss_slab_superslab(const ss_slab *slab) { return ss_from_pointer_unchecked(slab); }

// The metadata that carries a block's state: the slab itself, or the head of its span. A slab's
// span_head is its own index, so this needs no branch.
static inline ss_slab *ss_slab_head(ss_slab *slab) { return &ss_slab_superslab(slab)->slabs[slab->span_head]; }

// The first usable byte of a slab (slab 0 starts after the header page).
static inline void *ss_slab_base(const ss_slab *slab) {
  uintptr_t start = (uintptr_t)ss_slab_superslab(slab) + ((uintptr_t)slab->index << SS_SLAB_SIZE_LOG2);
  return (void *)(slab->index == 0 ? start + SS_HEADER_SIZE : start);
}

// Usable bytes of `slabs` slots starting at this slab (60 KiB for slab 0 alone, else 64 KiB each).
static inline size_t ss_slab_usable_size_n(const ss_slab *slab, unsigned slabs) {
  return ((size_t)slabs << SS_SLAB_SIZE_LOG2) - (slab->index == 0 ? SS_HEADER_SIZE : 0);
}

// Usable bytes of this slab, or of the whole span when `slab` heads one.
static inline size_t ss_slab_usable_size(const ss_slab *slab) {
  return ss_slab_usable_size_n(slab, slab->span_slabs ? slab->span_slabs : 1);
}

// Withdraws `superslab`'s transparent huge-page hint (once): what a layer calls before it
// decommits pages inside a slab that stays in use (malloc_trim), so khugepaged does not collapse
// the range back into a resident huge page.
void ss_withdraw_hugepage(ss_superslab *superslab);

// Maps a new SuperSlab (2 MiB aligned, through hk_os), initialises its header, gives it a
// directory id and registers it. Its slots are all held by the caller (state CACHED) until the
// shared pool puts them in service. NULL with errno (ENOMEM) on failure. Lock-free; thread-safe.
ss_superslab *ss_superslab_map(void);

// Deregisters and unmaps a SuperSlab whose slots are all held by the caller (state CACHED), as
// ss_superslab_map returned it or as ss_cache_pop gives it. Its directory id becomes reusable.
void ss_superslab_unmap(ss_superslab *superslab);

// Puts a fully free SuperSlab whose slots the caller holds (CACHED) into the LRU cache, stamped
// `now_ms`; trims the cache at once when this exceeds its count or byte bound. Returns the bytes
// that trim gave back (ss_cache_trim), 0 when there was none.
size_t ss_cache_push(ss_superslab *superslab, uint64_t now_ms);

// Takes the most recently cached SuperSlab (its slots stay CACHED, held by the caller), or NULL.
ss_superslab *ss_cache_pop(void);

// Milliseconds of CLOCK_MONOTONIC (a vDSO read, no syscall on Linux).
uint64_t ss_clock_ms(void);

// Applies the LRU cache's policy at time `now_ms`: cached SuperSlabs idle past
// HAKMEM_SS_DECOMMIT_DELAY_MS are decommitted; those beyond HAKMEM_SS_CACHE_MAX_COUNT /
// _MAX_BYTES (oldest first) or idle past HAKMEM_SS_CACHE_TTL_MS are unmapped. With `force`,
// decommits and unmaps every cached SuperSlab. Returns the bytes decommitted plus unmapped.
size_t ss_cache_trim(uint64_t now_ms, int force);

// Fully free SuperSlabs in the LRU cache now.
size_t ss_cache_count(void);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_SUPERSLAB_REGISTRY_H_
