// Calls glibc's introspection functions the way a program does: mallinfo2 and mallinfo around 10 MiB
// of 100-byte blocks and a 40 MiB block, mallopt, malloc_info (to the file named by argv[1]) and
// malloc_stats (stderr). Prints one "name value" line per figure; introspection_test.sh runs it with
// glibc and under LD_PRELOAD of libhakmem.so and checks which allocator answered.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// mallinfo is deprecated in glibc's header (its int fields overflow); programs still call it.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define BLOCKS ((10 << 20) / 100)

static const char *yes(int condition) { return condition ? "yes" : "no"; }

// Where the 40 MiB block's address goes, so that no compiler elides its malloc (clang did under
// --config=strict: glibc's hblkhd then never grew).
char *volatile big_block_sink;

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: introspection_program INFO.xml\n");
    return 2;
  }
  struct mallinfo2 before = mallinfo2();
  void **blocks = malloc(BLOCKS * sizeof(void *));
  if (!blocks) return 1;
  for (size_t i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(100);
    if (!blocks[i]) return 1;
    memset(blocks[i], (int)i, 100);
  }
  char *big = malloc(40 << 20);
  if (!big) return 1;
  memset(big, 1, 40 << 20);
  big_block_sink = big;  // escapes: clang may otherwise drop a malloc whose memory nobody reads
  struct mallinfo2 held = mallinfo2();
  struct mallinfo held_int = mallinfo();
  printf("uordblks_grew_by_10MiB %s\n", yes(held.uordblks >= before.uordblks + BLOCKS * 100));
  printf("hblkhd_grew_by_40MiB %s\n", yes(held.hblkhd >= before.hblkhd + (40 << 20)));
  printf("hblks_grew %s\n", yes(held.hblks > before.hblks));
  printf("arena_holds_uordblks %s\n", yes(held.arena >= held.uordblks));
  printf("mallinfo_int_uordblks_grew %s\n", yes(held_int.uordblks >= (int)(BLOCKS * 100)));

  printf("mallopt_M_MMAP_THRESHOLD %d\n", mallopt(M_MMAP_THRESHOLD, 1 << 20));
  printf("mallopt_M_ARENA_MAX %d\n", mallopt(M_ARENA_MAX, 2));
  printf("mallopt_M_TRIM_THRESHOLD %d\n", mallopt(M_TRIM_THRESHOLD, 256 << 20));

  FILE *bad = fopen("/dev/null", "w");
  errno = 0;
  int refused = malloc_info(1, bad);
  printf("malloc_info_options_1 %d %s\n", refused, errno == EINVAL ? "EINVAL" : "other");
  fclose(bad);
  FILE *info = fopen(argv[1], "w");
  if (!info) return 1;
  printf("malloc_info %d\n", malloc_info(0, info));
  fclose(info);
  fflush(stdout);
  malloc_stats();

  for (size_t i = 0; i < BLOCKS; i++) free(blocks[i]);
  free(blocks);
  free(big);
  struct mallinfo2 after = mallinfo2();
  printf("uordblks_fell_by_10MiB %s\n", yes(after.uordblks + BLOCKS * 100 <= held.uordblks));
  printf("hblks_fell %s\n", yes(after.hblks < held.hblks));
  return 0;
}
