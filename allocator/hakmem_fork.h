// HAKMEM's fork handlers: the one switch tests need. Private to //allocator:hakmem (tests list it
// as their own source). The handlers themselves are in hakmem.c; their counters are fork.locked and
// fork.unlocked (allocator/base/stats_table.h).
#ifndef HAKMEM_ALLOCATOR_HAKMEM_FORK_H_
#define HAKMEM_ALLOCATOR_HAKMEM_FORK_H_

#ifdef __cplusplus
extern "C" {
#endif

// on != 0: the fork handlers take every allocator lock as in a process that has had threads, even
// while glibc's __libc_single_threaded says one thread. For tests of a fork inside a fork with the
// locks taken: setting glibc's flag instead would also make glibc's own fork take its atfork lock,
// which a fork inside a fork then waits on forever, whatever the allocator. (A program built by
// GCC may not see that: its write can land in the executable's copy-relocated copy of the flag,
// which glibc's internal reads do not see; a Clang build writes glibc's own.)
void hk_fork_assume_threads(int on);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_HAKMEM_FORK_H_
