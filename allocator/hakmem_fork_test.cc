// fork() from any context leaves a working allocator and never hangs: a fork inside a fork (a
// signal handler forking while the main thread is in fork()), both when the allocator's fork
// handlers take its locks (a process that has had threads) and when they need not (one thread).
// Each scenario runs in a child process under a deadline, so a hang fails the test instead of
// blocking the suite. (Fork while other threads allocate: hakmem_test's Fork tests. A nested fork
// in a process that really has threads cannot be tested: glibc's own fork then holds its atfork
// lock across the fork, and the inner fork waits on it, whichever allocator the program uses.)
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "allocator/base/stats.h"
#include "allocator/hakmem.h"
#include "allocator/hakmem_fork.h"
#include "gtest/gtest.h"

namespace {

constexpr int kForks = 1000;
constexpr int kDeadlineSeconds = 120;

std::atomic<int> handler_forks{0};

// SIGALRM: fork, and let the child exit at once (it must not wait on anything). Keeps errno.
void ForkingHandler(int) {
  int saved = errno;
  pid_t child = fork();
  if (child == 0) _exit(0);
  if (child > 0) {
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    handler_forks.fetch_add(1, std::memory_order_relaxed);
  }
  errno = saved;
}

// The median of a few fork-and-wait round trips, in microseconds.
long ForkRoundTripMicros() {
  long micros[9];
  for (long &each : micros) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t child = fork();
    if (child == 0) _exit(0);
    if (child > 0) {
      while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    each = (end.tv_sec - start.tv_sec) * 1000000L + (end.tv_nsec - start.tv_nsec) / 1000;
  }
  std::sort(micros, micros + 9);
  return micros[4];
}

// Forks kForks times while a fast timer makes the signal handler fork too, often in the middle of
// the main thread's fork. Each child of the main thread allocates before it exits. Returns the
// exit status for the watchdog: 0 when every child succeeded, the handler forked at all and the
// handlers took the locks (fork.locked) exactly when `locks_taken` says they should.
int ForkLoop(bool locks_taken) {
  uint64_t locked_before = hk_stat_get(HK_STAT_FORK_LOCKED);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = ForkingHandler;
  action.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &action, nullptr);
  // The timer fires every two fork round trips (at least 500 us): many of the main thread's forks
  // are interrupted, while the handler's own forks leave the main thread half the time. A fixed
  // 500 us, tuned where a fork and wait took a few hundred us, starved the main thread on a machine
  // where they take a millisecond: the signal was pending again each time the handler returned.
  long period_us = 2 * ForkRoundTripMicros();
  if (period_us < 500) period_us = 500;
  struct itimerval timer = {{period_us / 1000000, period_us % 1000000}, {period_us / 1000000, period_us % 1000000}};
  setitimer(ITIMER_REAL, &timer, nullptr);
  int failures = 0;
  for (int i = 0; i < kForks; i++) {
    void *kept = hakmem_malloc(64 + i % 900);
    pid_t child = fork();
    if (child == 0) {
      // The child's allocator works: every range, and the block the parent held.
      for (size_t size : {(size_t)24, (size_t)700, (size_t)3000, (size_t)70000, (size_t)(1 << 20)}) {
        void *block = hakmem_malloc(size);
        if (!block) _exit(2);
        memset(block, 7, size);
        hakmem_free(block);
      }
      hakmem_free(kept);
      _exit(0);
    }
    if (child < 0) {
      failures++;
      continue;
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
    hakmem_free(kept);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, nullptr);
  fprintf(stderr, "fork loop: %d forks, %d forks from the signal handler (timer %ld us), %d failures\n", kForks,
          handler_forks.load(), period_us, failures);
  if (handler_forks.load() == 0) return 3;  // the timer never fired: nothing was tested
  // Every fork of the main thread is an outermost one, outside any locked section: with the locks
  // taken each of them took them (the handler's non-nested forks too); with one thread none did.
  uint64_t locked = hk_stat_get(HK_STAT_FORK_LOCKED) - locked_before;
  fprintf(stderr, "fork.locked: %llu\n", (unsigned long long)locked);
  if (locks_taken ? locked < (uint64_t)kForks : locked != 0) return 4;
  return failures == 0 ? 0 : 1;
}

// Runs ForkLoop in a child process; fails when it does not finish within the deadline (a hang).
// `as_if_threaded`: the child makes HAKMEM's fork handlers take the locks as in a threaded program
// (hk_fork_assume_threads) while glibc's fork still sees one thread. (Clearing glibc's
// __libc_single_threaded instead makes glibc's fork hold its own atfork lock across the fork, so a
// fork inside it waits forever with any allocator: seen in every Clang build of this test.)
void ExpectForkLoopFinishes(bool as_if_threaded) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Their runtimes' fork interceptors take the sanitizer's own locks, so a fork inside a fork waits
  // on them whichever allocator runs (seen: every run hung under ASan).
  GTEST_SKIP() << "ASan and TSan cannot fork inside fork (their fork interceptors lock)";
#endif
  ASSERT_TRUE(__libc_single_threaded) << "the test must start single-threaded";
  pid_t runner = fork();
  ASSERT_GE(runner, 0);
  if (runner == 0) {
    if (as_if_threaded) hk_fork_assume_threads(1);
    _exit(ForkLoop(as_if_threaded));
  }
  int status = 0;
  time_t start = time(nullptr);
  for (;;) {
    pid_t done = waitpid(runner, &status, WNOHANG);
    if (done == runner) break;
    if (time(nullptr) - start > kDeadlineSeconds) {
      kill(runner, SIGKILL);
      waitpid(runner, &status, 0);
      FAIL() << "the fork loop hung (no progress in " << kDeadlineSeconds << " s)";
    }
    usleep(10000);
  }
  ASSERT_TRUE(WIFEXITED(status)) << "the fork loop died: signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: a child could not allocate; 3: the handler never forked; 4: fork.locked wrong";
}

TEST(Fork, NestedForksFromASignalHandlerInASingleThreadedProgram) { ExpectForkLoopFinishes(false); }

TEST(Fork, NestedForksFromASignalHandlerWhenTheLocksAreTaken) { ExpectForkLoopFinishes(true); }

}  // namespace
