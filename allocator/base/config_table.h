// The one table of HAKMEM's environment options. Every HAKMEM_* option is declared here, once,
// with its default and its meaning; README.md lists the same table (a test checks they agree).
//
// X(id, name, kind, default, meaning)
//   kind is INT (a decimal number, optional K/M/G suffix for sizes) or STRING.
// Defaults are the fast configuration: options exist for experiments and diagnosis.
#ifndef HAKMEM_ALLOCATOR_BASE_CONFIG_TABLE_H_
#define HAKMEM_ALLOCATOR_BASE_CONFIG_TABLE_H_

#define HK_CONFIG_TABLE(X)                                                                        \
  X(STATS, "HAKMEM_STATS", STRING, "0",                                                           \
    "1 prints counters at exit; json:PATH writes them as JSON; 0 is off")                         \
  X(OS_DECOMMIT, "HAKMEM_OS_DECOMMIT", STRING, "dontneed",                                        \
    "how unused pages go back to the OS: dontneed (RSS drops at once) or free (MADV_FREE, lazy)") \
  X(OS_HUGEPAGES, "HAKMEM_OS_HUGEPAGES", INT, "0",                                                \
    "1 asks for transparent huge pages on SuperSlab mappings (a per-mapping hint)")

#endif  // HAKMEM_ALLOCATOR_BASE_CONFIG_TABLE_H_
