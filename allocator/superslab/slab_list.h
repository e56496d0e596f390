// Lists of slabs threaded through the slab metadata's spare `user` word, for the block layers
// (tiny, ACE): a thread's slabs of a class, a class's abandoned slabs. No memory of their own.
//
// A slab is named in 32 bits: (SuperSlab address >> 21) << 5 | slab index, 0 meaning none (no
// SuperSlab lives at address 0). `user` holds the previous and next slab of the list the slab is
// on, so push and unlink are O(1). A slab is on at most one list at a time. Not thread-safe: a
// list belongs to one thread or is guarded by its owner's lock.
#ifndef HAKMEM_ALLOCATOR_SUPERSLAB_SLAB_LIST_H_
#define HAKMEM_ALLOCATOR_SUPERSLAB_SLAB_LIST_H_

#include <stdint.h>

#include "allocator/superslab/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_SLAB_REF_INDEX_BITS (SS_SIZE_LOG2 - SS_SLAB_SIZE_LOG2)

typedef struct {
  uint32_t head, tail;  // slab references, 0 when empty
  uint32_t count;       // written by the list's owner or lock holder; read relaxed as a hint
} ss_slab_list;

// The 32-bit reference of a slab, and back.
static inline uint32_t ss_slab_ref(const ss_slab *slab) {
  return (uint32_t)((((uintptr_t)ss_slab_superslab(slab)) >> SS_SIZE_LOG2) << SS_SLAB_REF_INDEX_BITS | slab->index);
}
static inline ss_slab *ss_slab_from_ref(uint32_t ref) {
  ss_superslab *superslab = (ss_superslab *)((uintptr_t)(ref >> SS_SLAB_REF_INDEX_BITS) << SS_SIZE_LOG2);
  return &superslab->slabs[ref & ((1u << SS_SLAB_REF_INDEX_BITS) - 1)];
}

// The neighbours of a listed slab (references, 0 at the ends).
static inline uint32_t ss_slab_list_next(const ss_slab *slab) { return (uint32_t)slab->user; }
static inline uint32_t ss_slab_list_prev(const ss_slab *slab) { return (uint32_t)(slab->user >> 32); }
static inline void ss_slab_list_set_links(ss_slab *slab, uint32_t prev, uint32_t next) {
  slab->user = (uint64_t)prev << 32 | next;
}

// Takes `slab` off `list`.
static inline void ss_slab_list_unlink(ss_slab_list *list, ss_slab *slab) {
  uint32_t prev = ss_slab_list_prev(slab), next = ss_slab_list_next(slab);
  if (prev) {
    ss_slab *before = ss_slab_from_ref(prev);
    ss_slab_list_set_links(before, ss_slab_list_prev(before), next);
  } else {
    list->head = next;
  }
  if (next) {
    ss_slab *after = ss_slab_from_ref(next);
    ss_slab_list_set_links(after, prev, ss_slab_list_next(after));
  } else {
    list->tail = prev;
  }
  ss_slab_list_set_links(slab, 0, 0);
  __atomic_store_n(&list->count, list->count - 1, __ATOMIC_RELAXED);  // relaxed: a hint for readers
}

// Puts `slab` first on `list`.
static inline void ss_slab_list_push_front(ss_slab_list *list, ss_slab *slab) {
  uint32_t ref = ss_slab_ref(slab);
  ss_slab_list_set_links(slab, 0, list->head);
  if (list->head) {
    ss_slab *first = ss_slab_from_ref(list->head);
    ss_slab_list_set_links(first, ref, ss_slab_list_next(first));
  } else {
    list->tail = ref;
  }
  list->head = ref;
  __atomic_store_n(&list->count, list->count + 1, __ATOMIC_RELAXED);
}

// Puts `slab` last on `list`.
static inline void ss_slab_list_push_back(ss_slab_list *list, ss_slab *slab) {
  uint32_t ref = ss_slab_ref(slab);
  ss_slab_list_set_links(slab, list->tail, 0);
  if (list->tail) {
    ss_slab *last = ss_slab_from_ref(list->tail);
    ss_slab_list_set_links(last, ss_slab_list_prev(last), ref);
  } else {
    list->head = ref;
  }
  list->tail = ref;
  __atomic_store_n(&list->count, list->count + 1, __ATOMIC_RELAXED);
}

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_SUPERSLAB_SLAB_LIST_H_
