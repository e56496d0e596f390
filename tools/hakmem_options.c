// Prints every HAKMEM_* option with its kind, default and meaning, from the one table in
// allocator/base/config.h. `tools/hakmem options` runs this.
#include <stdio.h>

#include "allocator/base/config.h"

int main(void) {
  size_t count = 0;
  const hk_option_info *table = hk_config_table(&count);
  int width = 0;
  for (size_t i = 0; i < count; ++i) {
    int n = 0;
    while (table[i].name[n] != '\0') ++n;
    if (n > width) width = n;
  }
  printf("%-*s  %-6s  %-9s  %s\n", width, "option", "kind", "default", "meaning");
  for (size_t i = 0; i < count; ++i) {
    printf("%-*s  %-6s  %-9s  %s\n", width, table[i].name,
           table[i].kind == HK_OPTION_INT ? "int" : "string", table[i].default_value,
           table[i].meaning);
  }
  return 0;
}
