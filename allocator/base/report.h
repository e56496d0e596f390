// Error reporting that never allocates and never uses stdio: safe on the allocator's own paths,
// inside fork handlers and in signal handlers (everything here is async-signal-safe).
#ifndef HAKMEM_ALLOCATOR_BASE_REPORT_H_
#define HAKMEM_ALLOCATOR_BASE_REPORT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Writes `text` to stderr (fd 2), retrying short writes; errno is preserved.
void hk_report_write(const char *text);

// Formats `value` as "0x..." hex into `buffer` (at least 19 bytes); returns the length.
size_t hk_report_format_hex(char *buffer, uintptr_t value);

// Formats `value` in decimal into `buffer` (at least 21 bytes); returns the length.
size_t hk_report_format_decimal(char *buffer, uint64_t value);

// Writes "hakmem: warning: <first><second>\n" to stderr as one write.
void hk_report_warning2(const char *first, const char *second);

// Writes "hakmem: <message>\n" and aborts.
__attribute__((noreturn, cold)) void hk_report_fatal(const char *message);

// Writes "hakmem: <call>(): <reason> <pointer>\n" and aborts, e.g.
// "hakmem: free(): invalid pointer 0x7f12345678" (the shape of glibc's message).
__attribute__((noreturn, cold)) void hk_report_invalid_pointer(const char *call, const char *reason,
                                                               const void *pointer);

// The same with a detail after the pointer: "hakmem: <call>(): <reason> <pointer> (<detail>)\n",
// e.g. "hakmem: free(): invalid pointer 0x7f12345678 (not the start of a block)".
__attribute__((noreturn, cold)) void hk_report_invalid_pointer_detail(const char *call, const char *reason,
                                                                      const void *pointer, const char *detail);

// Writes all `length` bytes of `text` to `fd`, retrying short and interrupted writes; gives up on
// another error. errno is preserved. No malloc, no stdio: async-signal-safe.
void hk_write_all(int fd, const char *text, size_t length);

// A buffered writer for reports of many lines (the statistics, the crash report): text goes into
// the caller's buffer and out with write(2) when the buffer fills and at hk_writer_flush, retrying
// short and interrupted writes; errno is preserved. No malloc, no stdio: async-signal-safe.
typedef struct {
  int fd;
  char *buffer;
  size_t capacity;
  size_t length;
} hk_writer;

// A writer to `fd` over the caller's `buffer` of `capacity` (> 0) bytes.
static inline hk_writer hk_writer_to(int fd, char *buffer, size_t capacity) {
  hk_writer writer = {fd, buffer, capacity, 0};
  return writer;
}

// Appends `text`.
void hk_writer_text(hk_writer *writer, const char *text);
// Appends `value` in decimal.
void hk_writer_decimal(hk_writer *writer, uint64_t value);
// Appends `value` as "0x..." hex.
void hk_writer_hex(hk_writer *writer, uint64_t value);
// Writes out what the buffer holds.
void hk_writer_flush(hk_writer *writer);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_BASE_REPORT_H_
