// The sampling heap profiler (HAKMEM_PROFILE=PATH; README "Heap profiler", docs/ARCHITECTURE.md).
//
// Off, it costs malloc nothing: the front door's two size checks compare against the thresholds in
// hk_profile_gate instead of constants (the same instructions: a compare with a memory operand),
// and that is all. On, the profiler sets both thresholds to 0, so every allocation of one byte or
// more leaves the inline path for hk_malloc_outside (hakmem.c), which counts its bytes down
// (hk_profile_count_down) and calls the profiler when the count crosses 0 (hk_profile_crossed).
// About one allocation per HAKMEM_PROFILE_RATE bytes is sampled. A sampled block of a size class
// gets a page-granular mapping of its own, outside every SuperSlab, so free, realloc and
// malloc_usable_size reach the out-of-line "not in a SuperSlab" branches, where the profiler's table
// is asked before the huge-block table (the fast free path gains nothing). A sampled block above
// ACE_ARENA_MIN_SIZE (128 KiB) is the huge layer's (a huge block, or a block of its arena), outside
// the SuperSlabs too, and only recorded. Aligned allocations above 16 bytes of alignment
// (posix_memalign, aligned_alloc, memalign, valloc, C++'s aligned new) are never sampled.
//
// Private to //allocator: hakmem.c, hakmem_inline.h and the tests include it.
#ifndef HAKMEM_ALLOCATOR_HAKMEM_PROFILE_H_
#define HAKMEM_ALLOCATOR_HAKMEM_PROFILE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The size thresholds of the front door's inline paths: a request of at most tiny_max bytes is a
// tiny allocation; above mid_max it goes out of line (huge sizes; every size while profiling).
// Written once, by hk_profile_setup in the library's constructor, before the program's threads
// exist; read with plain loads (an atomic load would not fold into the compare). Hidden, so that
// the preload library reaches it PC-relative rather than through the GOT; alone on its cache
// line, so that no write elsewhere disturbs the fast path's read.
typedef struct {
  size_t tiny_max;  // TINY_MAX_SIZE, 0 while profiling
  size_t mid_max;   // ACE_HUGE_THRESHOLD, 0 while profiling
} __attribute__((aligned(64))) hk_profile_gate_t;
extern hk_profile_gate_t hk_profile_gate __attribute__((visibility("hidden")));

// True while the profiler samples (both thresholds are 0 then).
static inline int hk_profile_on(void) { return hk_profile_gate.mid_max == 0; }

// Set (once, before the gate opens) when the profiler started: sampled blocks may exist. The
// out-of-line paths of free, realloc and malloc_usable_size for blocks in no SuperSlab ask the
// profiler's table only then.
extern int hk_profile_started __attribute__((visibility("hidden")));

// Functions that run between the program's call and the stack capture carry this: the capture
// drops the innermost frames whose code lies in this section, so a profile's stacks start at the
// program's call site (or at malloc, calloc, ..., which google-pprof drops by name).
#define HK_PROFILE_FRAME __attribute__((section("hk_profile_text"), noinline))

// The calling thread's sampler. `busy` counts the thread's entries into the sampling path and its
// holds of the profiler's lock: a malloc made meanwhile (by the unwinder, or by a signal handler
// that interrupted it) is not sampled, and never waits for the lock the thread holds. In the header
// so that hk_malloc_outside counts down inline; initial-exec: one %fs-relative access.
typedef struct {
  int64_t bytes_left;  // the countdown to the next sample
  uint64_t random;     // xorshift state
  uint8_t ready;       // bytes_left was drawn (a new thread's first crossing only draws it)
  uint8_t busy;
} hk_profile_sampler;
extern __thread hk_profile_sampler hk_profile_thread
    __attribute__((tls_model("initial-exec"), visibility("hidden")));

// Counts an allocation of `size` bytes down: 1 when the countdown crosses 0 (the caller then calls
// hk_profile_crossed). Unsigned arithmetic: a size past INT64_MAX must not overflow.
static inline int hk_profile_count_down(size_t size) {
  int64_t left = (int64_t)((uint64_t)hk_profile_thread.bytes_left - size);
  hk_profile_thread.bytes_left = left;
  return left < 0;
}

// The crossing: a sampled block of `size` bytes (zero-filled with `zero`), or NULL (not sampled
// after all: allocate normally).
void *hk_profile_crossed(size_t size, int zero);

// Reads HAKMEM_PROFILE and, when it names a file, starts the profiler: loads the unwinder, claims
// the output file, installs the SIGUSR2 handler and the exit-time write, opens the gate. Called
// once, from the library's constructor. Allocations before it are not sampled.
void hk_profile_setup(void);

// The countdown alone, for an allocation the caller makes its own way when not sampled (realloc's
// move into the huge arena): a sampled block of `size` (> 0) bytes, or NULL.
void *hk_profile_sample(size_t size);

// The usable size of `block` when it is a live sampled block in a mapping of the profiler's, else 0
// (also for a sampled block of the huge layer's). Takes the profiler's lock.
size_t hk_profile_block_size(const void *block);

// Frees `block` when it is a live sampled block in a mapping of the profiler's: 1. A sampled block
// of the huge layer's is removed from the profile and left to the caller: 0, as for any block that
// was not sampled. Takes the profiler's lock.
int hk_profile_free(void *block);

// realloc's question about a block in no SuperSlab, under one hold of the lock: the usable size of
// `block` when it is a live sampled block in a mapping of the profiler's (the caller moves it),
// else 0; a sampled block of the huge layer's is removed from the profile first (the caller resizes
// it as a huge block, and a realloc counts as a free).
size_t hk_profile_resizing(void *block);

// True when `block` is one of the last 64 sampled blocks freed and no sampled block has begun there
// since (the caller has found no live block there: a double free, or a use after free).
int hk_profile_was_freed(const void *block);

// Writes the profile now (what SIGUSR2 and exit do). 0, or -1 when the profiler is off or the
// file cannot be written.
int hk_profile_write(void);

// fork(): hold the profiler's lock across it (when fork's handler takes the allocator's locks),
// so the child inherits whole tables. Every child (`locked` says whether the lock was taken) keeps
// profiling, drops its copy of the parent's claim on PATH and writes PATH.<pid>, never PATH.
void hk_profile_prefork(void);
void hk_profile_postfork_parent(void);
void hk_profile_postfork_child(int locked);

// ---- Internals, exposed for hakmem_profile_test ---------------------------------------------
// ln(x) for x > 0 and exp(x), to ~1e-12 relative: the library does not link libm (every process
// that preloads it would load libm too).
double hk_profile_log(double x);
double hk_profile_exp(double x);
// What one sample of `size` bytes stands for at mean gap `rate`: 1 / (1 - exp(-size/rate))
// allocations (its bytes are size times that).
double hk_profile_weight(size_t size, uint64_t rate);
// An exponentially distributed gap of mean `rate` bytes, from a 64-bit random `bits`.
int64_t hk_profile_gap(uint64_t bits, uint64_t rate);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_HAKMEM_PROFILE_H_
