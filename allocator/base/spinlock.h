// The allocator's one lock for short critical sections off the fast paths (a class's abandoned
// slabs, the huge-block table): a word, 0 free and 1 held.
//
// Programs run more threads than cores. A waiter that only spins burns its whole time slice when the
// holder has been preempted inside the section, and the holder cannot finish until the waiter's slice
// ends. So a waiter spins a little (a holder that is running finishes within a few hundred
// nanoseconds: the sections are short) and then yields its slice on every further check, which lets a
// preempted holder run. No futex: the sections never block, so a waiter never waits long once the
// holder runs.
//
// Memory order: the acquire exchange that takes the lock pairs with the release store that gave it
// back, so the new holder sees everything the previous holder wrote inside the section.
#ifndef HAKMEM_ALLOCATOR_BASE_SPINLOCK_H_
#define HAKMEM_ALLOCATOR_BASE_SPINLOCK_H_

#include <sched.h>
#include <stdint.h>

#include "allocator/base/bits.h"
#include "allocator/base/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

// Allocator locks the calling thread holds now (spin locks, and the pool's mapping mutex, which
// counts itself). fork's handlers read it: a fork from a signal handler that interrupted this
// thread inside a locked section must not wait on that lock (it would wait forever).
extern __thread unsigned hk_locks_held __attribute__((tls_model("initial-exec")));

// Spins of a waiter before it starts yielding (each one a pause instruction, tens of cycles).
#define HK_SPIN_BEFORE_YIELD 128

// One step of a wait for another thread (a lock's holder, or a flag it will set): a pause for the
// first HK_SPIN_BEFORE_YIELD steps, counted in *spins, then a yield of the time slice each time.
static inline void hk_spin_backoff(unsigned *spins) {
  if (*spins < HK_SPIN_BEFORE_YIELD) {
    ++*spins;
    hk_cpu_relax();
  } else {
    sched_yield();
  }
}

// Takes the lock: 1 when it was free, 0 when another holder has it (nothing done then).
static inline int hk_spin_trylock(uint32_t *word) {
  if (__atomic_load_n(word, __ATOMIC_RELAXED) != 0 || __atomic_exchange_n(word, 1, __ATOMIC_ACQUIRE) != 0) return 0;
  hk_locks_held++;
  return 1;
}

// Takes the lock, waiting as described above. The waiter reads the word (relaxed) until it looks
// free and only then tries the exchange, so waiters do not steal the line from the holder. A call
// that has to wait counts one lock.spin_waits.
static inline void hk_spin_lock(uint32_t *word) {
  if (__builtin_expect(__atomic_exchange_n(word, 1, __ATOMIC_ACQUIRE) != 0, 0)) {
    hk_stat_add(HK_STAT_LOCK_SPIN_WAITS, 1);
    unsigned spins = 0;
    do {
      while (__atomic_load_n(word, __ATOMIC_RELAXED) != 0) hk_spin_backoff(&spins);
    } while (__atomic_exchange_n(word, 1, __ATOMIC_ACQUIRE) != 0);
  }
  hk_locks_held++;
}

// Gives the lock back.
static inline void hk_spin_unlock(uint32_t *word) {
  hk_locks_held--;
  __atomic_store_n(word, 0, __ATOMIC_RELEASE);
}

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_BASE_SPINLOCK_H_
