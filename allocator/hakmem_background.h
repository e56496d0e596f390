// The background thread: gives back memory that has been idle past the delays while the program
// makes no allocator call (a server between requests, a tool waiting for input), collapses full
// SuperSlabs into huge pages when asked (HAKMEM_HUGEPAGE_COLLAPSE_MS), writes the memory timeline
// (HAKMEM_TIMELINE) and takes the compaction census (HAKMEM_CENSUS, hakmem_census.h). One thread
// per process at most, started lazily:
//   - for memory: at an allocation once HK_BACKGROUND_START_BYTES are committed (the end of a tiny
//     refill, a huge allocation), so a program that stays small never has one. Never from a free:
//     glibc frees memory while it holds its stack-cache lock (a thread's exit), which
//     pthread_create takes again (a free that started the thread there hung larson_t16);
//   - for the timeline and the census: at start-up, when HAKMEM_TIMELINE or HAKMEM_CENSUS names a
//     file.
// It runs the same aging pass as the maintenance tick (sp_trim(0), ace_trim(0)) every
// HAKMEM_BACKGROUND_MS; it owns no slab and no bin, so it never touches a thread's cache.
// Stopped and joined at exit; a forked child has none (hk_background_after_fork_child).
//
// Private to //allocator: hakmem.c and the tests include it.
#ifndef HAKMEM_ALLOCATOR_HAKMEM_BACKGROUND_H_
#define HAKMEM_ALLOCATOR_HAKMEM_BACKGROUND_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Committed bytes (os.bytes_committed) from which an allocation starts the thread.
#define HK_BACKGROUND_START_BYTES ((uint64_t)64 << 20)

// Called at points of an allocation where a nested malloc is safe (pthread_create allocates): starts
// the thread when it is enabled, not running, and HK_BACKGROUND_START_BYTES are committed. One load
// and a branch once it runs (or was refused).
void hk_background_consider(void);

// Process set-up (the library's constructor): registers the exit-time stop and starts the thread
// at once when HAKMEM_TIMELINE or HAKMEM_CENSUS names a file.
void hk_background_setup(void);

// Stops the thread and waits for it (exit; tests). Idempotent. The thread does not start again.
void hk_background_stop(void);

// fork(): the child has no background thread and does not write the parent's timeline. A child of
// a single-threaded process may start its own later; a child of a multi-threaded one (the thread
// itself makes it so) never does: until exec, POSIX allows it async-signal-safe calls only.
// before_fork notes which it is (called by the outermost fork's prepare handler, in the parent).
void hk_background_before_fork(void);
void hk_background_after_fork_child(void);

// True while the thread runs.
int hk_background_running(void);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_HAKMEM_BACKGROUND_H_
