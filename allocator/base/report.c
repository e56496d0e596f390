#include "allocator/base/report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void hk_write_all(int fd, const char *text, size_t length) {
  int saved_errno = errno;
  while (length > 0) {
    ssize_t written = write(fd, text, length);
    if (written < 0) {
      if (errno == EINTR) continue;
      break;
    }
    text += written;
    length -= (size_t)written;
  }
  errno = saved_errno;
}

static void write_all(const char *text, size_t length) { hk_write_all(2, text, length); }

void hk_report_write(const char *text) { write_all(text, strlen(text)); }

size_t hk_report_format_hex(char *buffer, uintptr_t value) {
  static const char digits[] = "0123456789abcdef";
  char reversed[16];
  size_t count = 0;
  do {
    reversed[count++] = digits[value & 15];
    value >>= 4;
  } while (value != 0);
  buffer[0] = '0';
  buffer[1] = 'x';
  for (size_t i = 0; i < count; i++) buffer[2 + i] = reversed[count - 1 - i];
  buffer[2 + count] = '\0';
  return 2 + count;
}

size_t hk_report_format_decimal(char *buffer, uint64_t value) {
  char reversed[20];
  size_t count = 0;
  do {
    reversed[count++] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (size_t i = 0; i < count; i++) buffer[i] = reversed[count - 1 - i];
  buffer[count] = '\0';
  return count;
}

// Appends `text` to `line` (capacity `capacity`, current length `*length`), cutting if needed.
static void append(char *line, size_t capacity, size_t *length, const char *text) {
  size_t add = strlen(text);
  if (*length + add >= capacity) add = capacity - 1 - *length;
  memcpy(line + *length, text, add);
  *length += add;
  line[*length] = '\0';
}

void hk_report_warning2(const char *first, const char *second) {
  char line[512];
  size_t length = 0;
  line[0] = '\0';
  append(line, sizeof line - 1, &length, "hakmem: warning: ");
  append(line, sizeof line - 1, &length, first);
  append(line, sizeof line - 1, &length, second);
  line[length++] = '\n';
  write_all(line, length);
}

void hk_report_fatal(const char *message) {
  char line[512];
  size_t length = 0;
  line[0] = '\0';
  append(line, sizeof line - 1, &length, "hakmem: ");
  append(line, sizeof line - 1, &length, message);
  line[length++] = '\n';
  write_all(line, length);
  abort();
}

void hk_report_invalid_pointer(const char *call, const char *reason, const void *pointer) {
  hk_report_invalid_pointer_detail(call, reason, pointer, NULL);
}

void hk_report_invalid_pointer_detail(const char *call, const char *reason, const void *pointer, const char *detail) {
  char line[320];
  char hex[24];
  size_t length = 0;
  line[0] = '\0';
  hk_report_format_hex(hex, (uintptr_t)pointer);
  append(line, sizeof line - 1, &length, "hakmem: ");
  append(line, sizeof line - 1, &length, call);
  append(line, sizeof line - 1, &length, "(): ");
  append(line, sizeof line - 1, &length, reason);
  append(line, sizeof line - 1, &length, " ");
  append(line, sizeof line - 1, &length, hex);
  if (detail) {
    append(line, sizeof line - 1, &length, " (");
    append(line, sizeof line - 1, &length, detail);
    append(line, sizeof line - 1, &length, ")");
  }
  line[length++] = '\n';
  write_all(line, length);
  abort();
}

// ---- The buffered writer ------------------------------------------------------------------------
void hk_writer_flush(hk_writer *writer) {
  hk_write_all(writer->fd, writer->buffer, writer->length);
  writer->length = 0;
}

void hk_writer_text(hk_writer *writer, const char *text) {
  for (; *text; text++) {
    if (writer->length == writer->capacity) hk_writer_flush(writer);
    writer->buffer[writer->length++] = *text;
  }
}

void hk_writer_decimal(hk_writer *writer, uint64_t value) {
  char digits[24];
  hk_report_format_decimal(digits, value);
  hk_writer_text(writer, digits);
}

void hk_writer_hex(hk_writer *writer, uint64_t value) {
  char digits[24];
  hk_report_format_hex(digits, (uintptr_t)value);
  hk_writer_text(writer, digits);
}
