// The process's memory footprint, two ways, for the memory-return tests: the resident set
// (/proc/self/statm) and the OS layer's bytes_committed gauge (hakmem_stats_get). Under ASan and
// TSan the resident set includes shadow memory and says nothing about the allocator, so those
// builds check the gauge only (kRssMeaningful).
#ifndef HAKMEM_TESTS_MEMORY_RETURN_FOOTPRINT_H_
#define HAKMEM_TESTS_MEMORY_RETURN_FOOTPRINT_H_

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "allocator/hakmem.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kRssMeaningful = false;
#else
constexpr bool kRssMeaningful = true;
#endif

constexpr double kMiB = 1024.0 * 1024.0;

// Resident bytes of the process, or -1 when /proc cannot be read.
inline int64_t ResidentBytes() {
  FILE *file = fopen("/proc/self/statm", "r");
  if (!file) return -1;
  long size = 0, resident = 0;
  int fields = fscanf(file, "%ld %ld", &size, &resident);
  fclose(file);
  if (fields != 2) return -1;
  return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

// HAKMEM's mapped, not decommitted bytes (the OS layer's gauge).
inline int64_t CommittedBytes() {
  hakmem_stats stats;
  hakmem_stats_get(&stats);
  return (int64_t)stats.bytes_committed;
}

#endif  // HAKMEM_TESTS_MEMORY_RETURN_FOOTPRINT_H_
