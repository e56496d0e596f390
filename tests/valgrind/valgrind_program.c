// A small program with plain malloc usage for tests/valgrind/run.sh: every family member, a
// realloc chain across size ranges, and a deliberate bug when asked (argv[1] == "bug": one byte
// written past a 40-byte block, and a read of a freed block) to show what memcheck detects.
#define _POSIX_C_SOURCE 200809L
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  int planted = argc > 1 && strcmp(argv[1], "bug") == 0;
  unsigned long sum = 0;
  for (int round = 0; round < 200; round++) {
    size_t size = (size_t)(round * 997) % 70000 + 1;
    char *block = malloc(size);
    memset(block, round, size);
    block = realloc(block, size * 3);
    sum += (unsigned char)block[size - 1];
    free(block);
    int *zeroed = calloc(100, sizeof *zeroed);
    sum += (unsigned long)zeroed[99];
    free(zeroed);
    void *aligned = NULL;
    if (posix_memalign(&aligned, 4096, 5000) == 0) free(aligned);
  }
  char *huge = malloc(3 << 20);
  memset(huge, 1, 3 << 20);
  free(huge);
  if (planted) {
    // volatile: the compiler must neither warn about nor remove the deliberate bugs.
    char *volatile small = malloc(40);
    volatile size_t past_end = 40;
    small[past_end] = 'x';  // heap overflow by one byte
    free(small);
    sum += (unsigned char)small[0];  // read after free
  }
  printf("valgrind_program: done (%lu)\n", sum);
  return 0;
}
