#define _GNU_SOURCE
#include "benchmarks/bench_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *current_bench_name = "unknown";
static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t bench_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void bench_rng_seed(bench_rng *rng, uint64_t seed, uint64_t stream) {
  uint64_t mixer = seed ^ (stream * 0xD1B54A32D192ED03ULL);
  rng->state = bench_splitmix64(&mixer);
  if (rng->state == 0) rng->state = 1;  // xorshift must never be all zeros
}

uint64_t bench_rng_log_range(bench_rng *rng, uint64_t lo, uint64_t hi) {
  double unit = (double)(bench_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
  double value = exp(log((double)lo) + unit * (log((double)hi) - log((double)lo)));
  uint64_t rounded = (uint64_t)value;
  if (rounded < lo) rounded = lo;
  if (rounded > hi) rounded = hi;
  return rounded;
}

double bench_now_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

// ---- Pattern.

uint64_t bench_block_tag(uint64_t seed, uint64_t slot, const void *address) {
  uint64_t state = seed ^ (slot * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)(uintptr_t)address << 1);
  return bench_splitmix64(&state);
}

static inline uint64_t pattern_word(uint64_t tag, size_t offset) {
  return tag ^ ((uint64_t)offset * 0x9E3779B97F4A7C15ULL);
}

static inline uint8_t pattern_byte(uint64_t tag, size_t offset) {
  return (uint8_t)((tag >> ((offset & 7) * 8)) ^ (offset * 0x5B));
}

static inline void store_word(void *p, size_t offset, uint64_t value) {
  memcpy((char *)p + offset, &value, sizeof value);
}

static inline uint64_t load_word(const void *p, size_t offset) {
  uint64_t value;
  memcpy(&value, (const char *)p + offset, sizeof value);
  return value;
}

// One word per page at most, eight per block at least: cheap for small blocks, touches every page of
// a big one.
static inline size_t pattern_stride(size_t n) {
  size_t stride = (n / 8) & ~(size_t)7;
  if (stride < 8) stride = 8;
  if (stride > 4096) stride = 4096;
  return stride;
}

void bench_fill(void *p, size_t n, uint64_t tag) {
  if (n < 16) {
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = pattern_byte(tag, i);
    return;
  }
  size_t tail = n - 8;
  size_t stride = pattern_stride(n);
  // Interior words stop before the tail word so no two words overlap.
  for (size_t offset = 0; offset + 8 <= tail; offset += stride) store_word(p, offset, pattern_word(tag, offset));
  store_word(p, tail, pattern_word(tag, tail));
}

bool bench_verify(const void *p, size_t n, uint64_t tag) {
  if (n < 16) {
    for (size_t i = 0; i < n; i++) {
      if (((const uint8_t *)p)[i] != pattern_byte(tag, i)) return false;
    }
    return true;
  }
  size_t tail = n - 8;
  size_t stride = pattern_stride(n);
  for (size_t offset = 0; offset + 8 <= tail; offset += stride) {
    if (load_word(p, offset) != pattern_word(tag, offset)) return false;
  }
  return load_word(p, tail) == pattern_word(tag, tail);
}

void bench_verify_or_die(const void *p, size_t n, uint64_t tag, const char *what) {
  if (!bench_verify(p, n, tag)) bench_fail_check("%s: block %p of %zu bytes lost its contents", what, p, n);
}

void bench_fill_range(void *p, size_t from, size_t to, uint64_t tag, size_t stride) {
  size_t offset = (from + stride - 1) / stride * stride;
  for (; offset + 8 <= to; offset += stride) store_word(p, offset, pattern_word(tag, offset));
}

bool bench_verify_range(const void *p, size_t from, size_t to, uint64_t tag, size_t stride) {
  size_t offset = (from + stride - 1) / stride * stride;
  for (; offset + 8 <= to; offset += stride) {
    if (load_word(p, offset) != pattern_word(tag, offset)) return false;
  }
  return true;
}

// ---- Failures.

void bench_set_name(const char *name) { current_bench_name = name; }
const char *bench_name(void) { return current_bench_name; }

__attribute__((noreturn)) static void report_and_exit(int status, const char *label, const char *detail) {
  // One thread reports; others that fail at the same moment wait here until the process exits.
  pthread_mutex_lock(&failure_lock);
  printf("RESULT bench=%s %s detail=\"%s\"\n", current_bench_name, label, detail);
  fflush(stdout);
  fprintf(stderr, "%s: %s: %s\n", current_bench_name, label, detail);
  fflush(stderr);
  _exit(status);
}

void bench_fail_check(const char *fmt, ...) {
  char detail[512];
  va_list args;
  va_start(args, fmt);
  vsnprintf(detail, sizeof detail, fmt, args);
  va_end(args);
  report_and_exit(BENCH_EXIT_CHECK_FAILED, "check=FAILED", detail);
}

void bench_fail_usage(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char detail[512];
  vsnprintf(detail, sizeof detail, fmt, args);
  va_end(args);
  fprintf(stderr, "%s: %s (try --help)\n", current_bench_name, detail);
  exit(BENCH_EXIT_USAGE);
}

void *bench_check_alloc(void *p, size_t n) {
  if (p == NULL) {
    fprintf(stderr, "%s: allocation of %zu bytes returned NULL (errno %d)\n", current_bench_name, n, errno);
    printf("RESULT bench=%s check=OOM bytes=%zu\n", current_bench_name, n);
    fflush(stdout);
    _exit(BENCH_EXIT_OUT_OF_MEMORY);
  }
  return p;
}

// ---- Arguments.

bool bench_has_flag(int argc, char **argv, const char *flag) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], flag) == 0) return true;
  }
  return false;
}

static void print_help(const bench_arg *args, size_t count, const char *summary) {
  printf("%s: %s\n\noptions:\n", current_bench_name, summary);
  for (size_t i = 0; i < count; i++) {
    const bench_arg *arg = &args[i];
    char shown[64];
    switch (arg->kind) {
      case BENCH_ARG_U64: snprintf(shown, sizeof shown, "%llu", (unsigned long long)*(uint64_t *)arg->value); break;
      case BENCH_ARG_DOUBLE: snprintf(shown, sizeof shown, "%g", *(double *)arg->value); break;
      case BENCH_ARG_STRING: snprintf(shown, sizeof shown, "%s", *(const char **)arg->value); break;
      case BENCH_ARG_FLAG: snprintf(shown, sizeof shown, "%s", *(bool *)arg->value ? "on" : "off"); break;
    }
    printf("  --%-14s %s (default %s)\n", arg->name, arg->help, shown);
  }
}

void bench_parse_args(int argc, char **argv, const bench_arg *args, size_t count, const char *summary) {
  for (int i = 1; i < argc; i++) {
    const char *text = argv[i];
    if (strcmp(text, "--help") == 0 || strcmp(text, "-h") == 0) {
      print_help(args, count, summary);
      exit(0);
    }
    if (strncmp(text, "--", 2) != 0) bench_fail_usage("unexpected argument '%s'", text);
    text += 2;
    const char *equals = strchr(text, '=');
    size_t key_length = equals ? (size_t)(equals - text) : strlen(text);
    const bench_arg *match = NULL;
    for (size_t j = 0; j < count; j++) {
      if (strlen(args[j].name) == key_length && strncmp(args[j].name, text, key_length) == 0) match = &args[j];
    }
    if (match == NULL) bench_fail_usage("unknown option '%s'", argv[i]);
    if (match->kind == BENCH_ARG_FLAG) {
      if (equals) bench_fail_usage("option --%s takes no value", match->name);
      *(bool *)match->value = true;
      continue;
    }
    if (!equals || equals[1] == '\0') bench_fail_usage("option --%s needs a value (--%s=...)", match->name, match->name);
    const char *value = equals + 1;
    char *end = NULL;
    errno = 0;
    switch (match->kind) {
      case BENCH_ARG_U64: {
        // Accepts plain integers and forms like 2e6.
        double parsed = strtod(value, &end);
        if (errno || *end || parsed < 0 || parsed > 1.8e19) bench_fail_usage("bad number '%s' for --%s", value, match->name);
        *(uint64_t *)match->value = (uint64_t)parsed;
        break;
      }
      case BENCH_ARG_DOUBLE:
        *(double *)match->value = strtod(value, &end);
        if (errno || *end) bench_fail_usage("bad number '%s' for --%s", value, match->name);
        break;
      case BENCH_ARG_STRING: *(const char **)match->value = value; break;
      case BENCH_ARG_FLAG: break;
    }
  }
}

// ---- Process facts.

static uint64_t read_status_kib(const char *field) {
  FILE *status = fopen("/proc/self/status", "r");
  if (status == NULL) return 0;
  char line[256];
  uint64_t value = 0;
  size_t field_length = strlen(field);
  while (fgets(line, sizeof line, status)) {
    if (strncmp(line, field, field_length) == 0 && line[field_length] == ':') {
      value = strtoull(line + field_length + 1, NULL, 10);
      break;
    }
  }
  fclose(status);
  return value;
}

uint64_t bench_peak_rss_kib(void) { return read_status_kib("VmHWM"); }
uint64_t bench_current_rss_kib(void) { return read_status_kib("VmRSS"); }

// ---- Result line.

void bench_result_init(bench_result *result) {
  result->length = 0;
  result->text[0] = '\0';
  bench_result_string(result, "bench", current_bench_name);
}

static void result_append(bench_result *result, const char *key, const char *value) {
  int written = snprintf(result->text + result->length, sizeof result->text - result->length, "%s%s=%s",
                         result->length ? " " : "", key, value);
  if (written > 0 && result->length + (size_t)written < sizeof result->text) result->length += (size_t)written;
}

void bench_result_u64(bench_result *result, const char *key, uint64_t value) {
  char text[32];
  snprintf(text, sizeof text, "%llu", (unsigned long long)value);
  result_append(result, key, text);
}

void bench_result_double(bench_result *result, const char *key, double value) {
  char text[32];
  snprintf(text, sizeof text, "%.6g", value);
  result_append(result, key, text);
}

void bench_result_string(bench_result *result, const char *key, const char *value) {
  result_append(result, key, value);
}

void bench_result_finish(bench_result *result, uint64_t ops, double seconds) {
  bench_result_u64(result, "ops", ops);
  bench_result_double(result, "seconds", seconds);
  bench_result_double(result, "ops_per_sec", seconds > 0 ? (double)ops / seconds : 0.0);
  bench_result_u64(result, "maxrss_kib", bench_peak_rss_kib());
  bench_result_string(result, "check", "ok");
  printf("RESULT %s\n", result->text);
  fflush(stdout);
}

// ---- Threads.

void bench_thread_start(pthread_t *thread, void *(*body)(void *), void *argument) {
  int error = pthread_create(thread, NULL, body, argument);
  if (error != 0) {
    fprintf(stderr, "%s: pthread_create failed: %s\n", current_bench_name, strerror(error));
    exit(BENCH_EXIT_OUT_OF_MEMORY);
  }
}

void bench_thread_start_detached(void *(*body)(void *), void *argument) {
  pthread_t thread;
  bench_thread_start(&thread, body, argument);
  pthread_detach(thread);
}

double bench_run_threads(uint64_t count, void *(*body)(void *), void *arguments, size_t stride) {
  pthread_t *handles = bench_check_alloc(calloc(count, sizeof(pthread_t)), count * sizeof(pthread_t));
  double start = bench_now_seconds();
  for (uint64_t t = 0; t < count; t++) bench_thread_start(&handles[t], body, (char *)arguments + t * stride);
  for (uint64_t t = 0; t < count; t++) pthread_join(handles[t], NULL);
  double seconds = bench_now_seconds() - start;
  free(handles);
  return seconds;
}
