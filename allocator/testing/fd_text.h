// What a function writes to a file descriptor, as a string: for tests of output that bypasses
// stdio (the statistics). For the unit tests.
#ifndef HAKMEM_ALLOCATOR_TESTING_FD_TEXT_H_
#define HAKMEM_ALLOCATOR_TESTING_FD_TEXT_H_

#include <unistd.h>

#include <string>

namespace hakmem_testing {

// Calls write_to(fd) with the writing end of a pipe and returns what it wrote (at most the pipe's
// buffer, 64 KiB: the writer runs before anything is read). Empty when no pipe can be made.
template <typename WriteTo>
std::string TextWrittenTo(WriteTo write_to) {
  int ends[2];
  if (pipe(ends) != 0) return std::string();
  write_to(ends[1]);
  close(ends[1]);
  std::string text;
  char buffer[4096];
  ssize_t got;
  while ((got = read(ends[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(got));
  close(ends[0]);
  return text;
}

}  // namespace hakmem_testing

#endif  // HAKMEM_ALLOCATOR_TESTING_FD_TEXT_H_
