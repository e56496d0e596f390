// Shared helpers for the HAKMEM benchmarks: a seeded PRNG, a monotonic clock, a memory pattern that
// every benchmark writes into its blocks and verifies before freeing, --key=value argument parsing,
// and the single machine-readable RESULT line each benchmark prints.
#ifndef HAKMEM_BENCHMARKS_BENCH_COMMON_H_
#define HAKMEM_BENCHMARKS_BENCH_COMMON_H_

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Exit status of a benchmark whose self-check found wrong data (the compare tool shows it as FAILED).
#define BENCH_EXIT_CHECK_FAILED 3
// Exit status for bad arguments or an allocation that returned NULL.
#define BENCH_EXIT_USAGE 2
#define BENCH_EXIT_OUT_OF_MEMORY 4

// ---- PRNG: splitmix64 for seeding, xorshift64* for the stream. Deterministic for a given seed.
typedef struct {
  uint64_t state;
} bench_rng;

uint64_t bench_splitmix64(uint64_t *state);
void bench_rng_seed(bench_rng *rng, uint64_t seed, uint64_t stream);

static inline uint64_t bench_rng_next(bench_rng *rng) {
  uint64_t x = rng->state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng->state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

// Uniform in [lo, hi] (inclusive). The modulo bias is irrelevant at these ranges.
static inline uint64_t bench_rng_range(bench_rng *rng, uint64_t lo, uint64_t hi) {
  return lo + bench_rng_next(rng) % (hi - lo + 1);
}

// Log-uniform in [lo, hi]: as many blocks per size octave, like real programs' size mixes.
uint64_t bench_rng_log_range(bench_rng *rng, uint64_t lo, uint64_t hi);

// ---- Time.
double bench_now_seconds(void);

// ---- Memory pattern. A block of n bytes gets words at its head, its tail and at a stride inside
// (at most one per 4 KiB page, at least 8 per block), each derived from `tag` and the offset, so a
// freelist pointer written over a live block, a tail overrun, a block handed out twice, or a page
// that lost its contents all show up on verification. Blocks under 16 bytes are written byte-wise.
uint64_t bench_block_tag(uint64_t seed, uint64_t slot, const void *address);
void bench_fill(void *p, size_t n, uint64_t tag);
// Returns true when the pattern is intact.
bool bench_verify(const void *p, size_t n, uint64_t tag);
// Verifies and, on a mismatch, reports check=FAILED and exits with BENCH_EXIT_CHECK_FAILED.
void bench_verify_or_die(const void *p, size_t n, uint64_t tag, const char *what);

// Offset-only pattern for buffers that move (realloc): the word at offset `off` depends on the tag and
// `off` only, so the prefix preserved by realloc verifies whatever the new size or address.
void bench_fill_range(void *p, size_t from, size_t to, uint64_t tag, size_t stride);
bool bench_verify_range(const void *p, size_t from, size_t to, uint64_t tag, size_t stride);

// ---- Failure reporting (thread-safe; prints to stdout and stderr, then exits).
void bench_set_name(const char *name);
const char *bench_name(void);
void bench_fail_check(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void bench_fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
// Exits with BENCH_EXIT_OUT_OF_MEMORY when p is NULL.
void *bench_check_alloc(void *p, size_t n);

// ---- Arguments: --key=value for integers/doubles/strings, --flag for booleans, --help.
typedef enum { BENCH_ARG_U64, BENCH_ARG_DOUBLE, BENCH_ARG_STRING, BENCH_ARG_FLAG } bench_arg_kind;

typedef struct {
  const char *name;  // without the leading "--"
  bench_arg_kind kind;
  void *value;       // uint64_t*, double*, const char**, bool*
  const char *help;
} bench_arg;

// True when `--flag` appears in argv (used to pick --quick defaults before the full parse).
bool bench_has_flag(int argc, char **argv, const char *flag);
// Parses argv against the table; unknown or malformed arguments exit with BENCH_EXIT_USAGE.
void bench_parse_args(int argc, char **argv, const bench_arg *args, size_t count, const char *summary);

// ---- Process facts.
// Peak resident set size (VmHWM) of this process in KiB, or 0 when /proc is unavailable.
uint64_t bench_peak_rss_kib(void);
uint64_t bench_current_rss_kib(void);

// ---- The RESULT line: "RESULT bench=<name> key=value ... check=ok".
typedef struct {
  char text[1024];
  size_t length;
} bench_result;

void bench_result_init(bench_result *result);
void bench_result_u64(bench_result *result, const char *key, uint64_t value);
void bench_result_double(bench_result *result, const char *key, double value);
void bench_result_string(bench_result *result, const char *key, const char *value);
// Adds ops, seconds, ops_per_sec and maxrss_kib, appends check=ok and prints the line.
void bench_result_finish(bench_result *result, uint64_t ops, double seconds);

// ---- Threads: pthread_create that exits with a clear message on failure.
void bench_thread_start(pthread_t *thread, void *(*body)(void *), void *argument);
// Same, but the thread is detached (nobody joins it).
void bench_thread_start_detached(void *(*body)(void *), void *argument);
// Runs `count` threads of `body`, thread i with argument (char *)arguments + i * stride (an array of
// per-thread records), and joins them all. Returns the seconds from the first start to the last join.
double bench_run_threads(uint64_t count, void *(*body)(void *), void *arguments, size_t stride);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_BENCHMARKS_BENCH_COMMON_H_
