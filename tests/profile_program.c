// The heap profiler's test program (tests/profile_test.sh runs it under LD_PRELOAD of libhakmem.so
// with HAKMEM_PROFILE set). Built with -fomit-frame-pointer (tests/BUILD): the profiler must name
// these functions without frame pointers. Each site is noinline and uses its block after malloc,
// so the call is no tail call and the site keeps a frame of its own.
//
//   profile_program sites      site_a keeps 64 MiB of 1 KiB blocks, site_b allocates and frees
//                              16 MiB of them; then calloc/realloc/malloc_usable_size/free on
//                              blocks of which many are sampled (contents checked)
//   profile_program signal     malloc and free from a SIGALRM handler firing every 200 us while
//                              the main thread allocates
//   profile_program fork PATH  a child allocates at site_c and exits; PATH (the parent's profile,
//                              written once by SIGUSR2 before the fork) must be left alone
//   profile_program usr2 PATH  SIGUSR2 writes PATH; the program then ends with _exit (no exit write)
//   profile_program interval PATH  allocates for 400 ms; PATH must be written before the exit
//   profile_program threads    four threads allocate at thread_site and keep 4 MiB each
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif

static void *checked(void *block) {
  if (!block) {
    fprintf(stderr, "allocation failed\n");
    exit(3);
  }
  return block;
}

NOINLINE void *site_a(size_t size) {
  char *block = checked(malloc(size));
  block[0] = 'a';
  return block;
}

NOINLINE void *site_b(size_t size) {
  char *block = checked(malloc(size));
  block[0] = 'b';
  return block;
}

NOINLINE void *site_c(size_t size) {
  char *block = checked(malloc(size));
  block[0] = 'c';
  return block;
}

NOINLINE void *thread_site(size_t size) {
  char *block = checked(malloc(size));
  block[0] = 't';
  return block;
}

static void fail(const char *what) {
  fprintf(stderr, "FAIL: %s\n", what);
  exit(1);
}

// calloc, realloc (growing and shrinking), malloc_usable_size and free of 64 KiB blocks: at the
// default rate about one in nine is sampled, so the profiler's own blocks go through every call.
static void api_checks(void) {
  enum { COUNT = 2000, SIZE = 64 << 10 };
  static unsigned char *blocks[COUNT];
  for (int i = 0; i < COUNT; i++) {
    blocks[i] = checked(calloc(1, SIZE));
    for (size_t k = 0; k < SIZE; k += 4096)
      if (blocks[i][k] != 0) fail("calloc returned non-zero bytes");
    if (malloc_usable_size(blocks[i]) < SIZE) fail("malloc_usable_size below the request");
    memset(blocks[i], i & 0xff, SIZE);
  }
  for (int i = 0; i < COUNT; i++) {
    blocks[i] = checked(realloc(blocks[i], 3 * SIZE));
    if (blocks[i][SIZE - 1] != (i & 0xff) || blocks[i][0] != (i & 0xff)) fail("realloc (grow) lost the contents");
    blocks[i] = checked(realloc(blocks[i], 100));
    if (blocks[i][99] != (i & 0xff)) fail("realloc (shrink) lost the contents");
    if (malloc_usable_size(blocks[i]) < 100) fail("malloc_usable_size below the request after realloc");
  }
  for (int i = 0; i < COUNT; i++) free(blocks[i]);
  printf("api ok\n");
}

static void sites(void) {
  enum { BLOCK = 1024 };
  static void *kept[(64 << 20) / BLOCK];
  for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) kept[i] = site_a(BLOCK);
  for (int i = 0; i < (16 << 20) / BLOCK; i++) free(site_b(BLOCK));
  api_checks();
  printf("sites done %p\n", kept[1]);
}

static volatile sig_atomic_t handler_calls;

static void on_alarm(int signal_number) {
  (void)signal_number;
  // Sizes of every kind: tiny, mid, huge; at the test's rate many are sampled.
  static const size_t sizes[] = {24, 700, 5000, 70000, 600000};
  size_t size = sizes[handler_calls % 5];
  char *block = malloc(size);
  if (block) {
    block[0] = 1;
    block[size - 1] = 2;
    free(block);
  }
  handler_calls++;
}

static void signal_mode(void) {
  // Run with HAKMEM_PROFILE_RATE=1: every allocation of this thread is sampled, so the handler
  // interrupts it inside the profiler (unwinding, holding its lock, mapping or unmapping a sampled
  // block) most of the time. A malloc from a handler that interrupts the allocator's own code is
  // unsafe with any allocator (glibc's aborts at once); this thread never runs that code here
  // (sampled blocks are the profiler's mappings), so what is tested is the profiler's part.
  free(site_a(100));  // the thread's first allocation only starts its sampler (not sampled)
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_alarm;
  action.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &action, NULL);
  struct itimerval timer = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &timer, NULL);
  static void *ring[256];
  for (long i = 0; i < 50000; i++) {
    size_t slot = (size_t)i & 255;
    free(ring[slot]);
    ring[slot] = site_a((size_t)(i * 7919 % 3000) + 1);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  for (int i = 0; i < 256; i++) free(ring[i]);
  printf("signal handler calls %s\n", handler_calls > 100 ? "many" : "few");
  printf("signal done\n");
}

static size_t read_file(const char *path, char *buffer, size_t capacity) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return 0;
  size_t length = 0;
  ssize_t got;
  while (length < capacity && (got = read(fd, buffer + length, capacity - length)) > 0) length += (size_t)got;
  close(fd);
  return length;
}

static char before[1 << 20], after[1 << 20];

static void fork_mode(const char *path) {
  static void *kept[1024];
  for (int i = 0; i < 1024; i++) kept[i] = site_a(1024);
  raise(SIGUSR2);
  size_t before_length = read_file(path, before, sizeof before);
  if (before_length == 0) fail("SIGUSR2 wrote nothing before the fork");
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    static void *child_kept[8192];
    for (int i = 0; i < 8192; i++) child_kept[i] = site_c(1024);
    exit(child_kept[0] ? 0 : 1);  // exit: the atexit write (PATH.<pid>)
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("the child failed");
  size_t after_length = read_file(path, after, sizeof after);
  int same = before_length == after_length && memcmp(before, after, before_length) == 0;
  printf("parent_file_untouched %s\n", same ? "yes" : "no");
  printf("child_pid %d\n", (int)child);
  printf("fork done %p\n", kept[0]);
}

static void usr2_mode(const char *path) {
  static void *kept[4096];
  for (int i = 0; i < 4096; i++) kept[i] = site_a(1024);
  raise(SIGUSR2);
  size_t length = read_file(path, before, sizeof before);
  printf("usr2_written %s\n", length > 14 && memcmp(before, "heap profile: ", 14) == 0 ? "yes" : "no");
  printf("usr2 done %p\n", kept[0]);
  fflush(stdout);
  _exit(0);
}

static void interval_mode(const char *path) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  static void *ring[64];
  long i = 0;
  do {
    free(ring[i & 63]);
    ring[i & 63] = site_a(50000);
    i++;
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 400);
  size_t length = read_file(path, before, sizeof before);
  printf("interval_written %s\n", length > 14 && memcmp(before, "heap profile: ", 14) == 0 ? "yes" : "no");
  fflush(stdout);
  _exit(0);
}

static void *thread_main(void *arg) {
  void **kept = arg;
  for (int i = 0; i < 4096; i++) kept[i] = thread_site(1024);
  for (int i = 0; i < 100000; i++) free(thread_site((size_t)(i % 3000) + 1));
  return NULL;
}

static void threads_mode(void) {
  static void *kept[4][4096];
  pthread_t threads[4];
  for (int t = 0; t < 4; t++) pthread_create(&threads[t], NULL, thread_main, kept[t]);
  for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
  printf("threads done %p\n", kept[3][7]);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *mode = argv[1];
  if (strcmp(mode, "sites") == 0) sites();
  else if (strcmp(mode, "signal") == 0) signal_mode();
  else if (strcmp(mode, "fork") == 0 && argc == 3) fork_mode(argv[2]);
  else if (strcmp(mode, "usr2") == 0 && argc == 3) usr2_mode(argv[2]);
  else if (strcmp(mode, "interval") == 0 && argc == 3) interval_mode(argv[2]);
  else if (strcmp(mode, "threads") == 0) threads_mode();
  else return 2;
  return 0;
}
