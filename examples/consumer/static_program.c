// Links @hakmem//:hakmem_static: malloc, calloc, realloc and free are HAKMEM's.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator/hakmem.h"

int main(void) {
  size_t sizes[] = {1, 100, 1000, 5000, 100000, 1 << 20, 8 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    char *p = malloc(sizes[i]);
    if (p == NULL || !hakmem_owns(p)) {
      fprintf(stderr, "malloc(%zu) is not HAKMEM's\n", sizes[i]);
      return 1;
    }
    memset(p, 'x', sizes[i]);
    p = realloc(p, sizes[i] * 2);
    if (p == NULL || !hakmem_owns(p) || p[sizes[i] - 1] != 'x') {
      fprintf(stderr, "realloc to %zu lost the block or its contents\n", sizes[i] * 2);
      return 1;
    }
    free(p);
  }
  int *zeros = calloc(1000, sizeof *zeros);
  for (int i = 0; i < 1000; ++i) {
    if (zeros[i] != 0) return 1;
  }
  free(zeros);
  printf("static_program: malloc is HAKMEM's\n");
  return 0;
}
