// Configuration from HAKMEM_* environment variables (the table is config_table.h).
//
// Reading happens once, lazily, by walking `environ`: no malloc, no stdio, no getenv. After that,
// reading an option is a load from a global array.
#ifndef HAKMEM_ALLOCATOR_BASE_CONFIG_H_
#define HAKMEM_ALLOCATOR_BASE_CONFIG_H_

#include <stddef.h>
#include <stdint.h>

#include "allocator/base/config_table.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
#define HK_CONFIG_ENUM(id, name, kind, dflt, meaning) HK_OPT_##id,
  HK_CONFIG_TABLE(HK_CONFIG_ENUM)
#undef HK_CONFIG_ENUM
  HK_OPT_COUNT
} hk_option_id;

typedef enum { HK_OPTION_INT, HK_OPTION_STRING } hk_option_kind;

// One row of the table, for tools that list the options.
typedef struct {
  const char *name;           // "HAKMEM_STATS"
  hk_option_kind kind;        // how the value is parsed
  const char *default_value;  // as written in the table
  const char *meaning;        // one line for humans
} hk_option_info;

// Longest string value kept for a STRING option (longer values are cut and warned about).
#define HK_CONFIG_STRING_MAX 256

// Internal state read by the inline accessors below; use the functions, not these. The INT values
// are read and written with relaxed __atomic builtins (hk_config_set_int may change one at run time).
extern int64_t hk_config_int_values[HK_OPT_COUNT];
extern char hk_config_string_values[HK_OPT_COUNT][HK_CONFIG_STRING_MAX];
extern int hk_config_ready;  // 0 until loaded; __atomic builtins only

// Reads the options from `environ` once; later calls return at once. Thread-safe.
void hk_config_init(void);

// Re-reads every option from `env` (a NULL-terminated array of "NAME=value"). For tests and
// tools; not thread-safe against concurrent readers. An invalid value warns once on stderr and
// keeps the default.
void hk_config_load(char *const *env);

// The table rows, `*count` set to the number of options.
const hk_option_info *hk_config_table(size_t *count);

// Sets INT option `id` to `value` from now on (mallopt): after the environment was read, so that
// the first load cannot overwrite it. Relaxed: an option orders nothing; its users read it again
// at their next decision. The option's string (hk_config_string) keeps the environment's text.
void hk_config_set_int(hk_option_id id, int64_t value);

// The value of an INT option (0 for a STRING option). Initialises on first use.
static inline int64_t hk_config_int(hk_option_id id) {
  // Acquire pairs with the release store at the end of hk_config_load: values are complete.
  if (__builtin_expect(!__atomic_load_n(&hk_config_ready, __ATOMIC_ACQUIRE), 0))
    hk_config_init();
  return __atomic_load_n(&hk_config_int_values[id], __ATOMIC_RELAXED);
}

// The value of an option as a string (a STRING option's value, or an INT option's text).
static inline const char *hk_config_string(hk_option_id id) {
  if (__builtin_expect(!__atomic_load_n(&hk_config_ready, __ATOMIC_ACQUIRE), 0))
    hk_config_init();
  return hk_config_string_values[id];
}

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_BASE_CONFIG_H_
