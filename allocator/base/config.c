#include "allocator/base/config.h"

#include <string.h>

#include "allocator/base/bits.h"
#include "allocator/base/report.h"
#include "allocator/base/spinlock.h"

extern char **environ;

int64_t hk_config_int_values[HK_OPT_COUNT];
char hk_config_string_values[HK_OPT_COUNT][HK_CONFIG_STRING_MAX];
int hk_config_ready;

static const hk_option_info option_table[HK_OPT_COUNT] = {
#define HK_CONFIG_ROW(id, name, kind, dflt, meaning) {name, HK_OPTION_##kind, dflt, meaning},
    HK_CONFIG_TABLE(HK_CONFIG_ROW)
#undef HK_CONFIG_ROW
};

const hk_option_info *hk_config_table(size_t *count) {
  *count = HK_OPT_COUNT;
  return option_table;
}

// Parses "123", "64K", "2M", "1G" (binary multiples). Returns 0 on success.
static int parse_int(const char *text, int64_t *out) {
  if (*text == '\0') return -1;
  int negative = 0;
  if (*text == '-') {
    negative = 1;
    text++;
  }
  uint64_t value = 0;
  int digits = 0;
  while (*text >= '0' && *text <= '9') {
    uint64_t next = value * 10 + (uint64_t)(*text - '0');
    if (next / 10 != value) return -1;  // overflow
    value = next;
    digits++;
    text++;
  }
  if (digits == 0) return -1;
  unsigned shift = 0;
  switch (*text) {
    case 'k': case 'K': shift = 10; text++; break;
    case 'm': case 'M': shift = 20; text++; break;
    case 'g': case 'G': shift = 30; text++; break;
    default: break;
  }
  if (*text != '\0') return -1;
  if (shift && value > (UINT64_MAX >> shift)) return -1;
  value <<= shift;
  if (value > (uint64_t)INT64_MAX) return -1;
  *out = negative ? -(int64_t)value : (int64_t)value;
  return 0;
}

static void set_option(hk_option_id id, const char *text, int from_env) {
  size_t length = strlen(text);
  if (length >= HK_CONFIG_STRING_MAX) {
    hk_report_warning2(option_table[id].name, ": value too long, default kept");
    text = option_table[id].default_value;
    length = strlen(text);
  }
  int64_t value;
  if (option_table[id].kind == HK_OPTION_INT) {
    if (parse_int(text, &value) != 0) {
      if (from_env) hk_report_warning2(option_table[id].name, ": not a number, default kept");
      text = option_table[id].default_value;
      length = strlen(text);
      if (parse_int(text, &value) != 0) value = 0;
    }
  } else {
    value = 0;
  }
  __atomic_store_n(&hk_config_int_values[id], value, __ATOMIC_RELAXED);
  memcpy(hk_config_string_values[id], text, length + 1);
}

void hk_config_load(char *const *env) {
  for (int id = 0; id < HK_OPT_COUNT; id++) set_option((hk_option_id)id, option_table[id].default_value, 0);
  for (char *const *entry = env; entry && *entry; entry++) {
    const char *text = *entry;
    if (strncmp(text, "HAKMEM_", 7) != 0) continue;
    const char *equals = strchr(text, '=');
    if (!equals) continue;
    size_t name_length = (size_t)(equals - text);
    int known = 0;
    for (int id = 0; id < HK_OPT_COUNT; id++) {
      const char *name = option_table[id].name;
      if (strlen(name) == name_length && memcmp(name, text, name_length) == 0) {
        set_option((hk_option_id)id, equals + 1, 1);
        known = 1;
        break;
      }
    }
    if (!known) hk_report_warning2(text, ": unknown HAKMEM_ option, ignored");
  }
  // Release: a reader that sees ready == 1 sees every value written above.
  __atomic_store_n(&hk_config_ready, 1, __ATOMIC_RELEASE);
}

void hk_config_init(void) {
  // Racing first calls each compute the same values from the same environment, so a plain
  // claim flag is enough; losers wait for the winner so no caller reads half-written values.
  static int claimed;
  if (__atomic_load_n(&hk_config_ready, __ATOMIC_ACQUIRE)) return;
  if (__atomic_exchange_n(&claimed, 1, __ATOMIC_ACQ_REL) == 0) {
    hk_config_load(environ);
    return;
  }
  // The winner may be preempted mid-load while its losers outnumber the cores: after a short spin
  // they yield their time slices to it.
  unsigned spins = 0;
  while (!__atomic_load_n(&hk_config_ready, __ATOMIC_ACQUIRE)) hk_spin_backoff(&spins);
}

void hk_config_set_int(hk_option_id id, int64_t value) {
  hk_config_init();
  if (option_table[id].kind == HK_OPTION_INT) __atomic_store_n(&hk_config_int_values[id], value, __ATOMIC_RELAXED);
}
