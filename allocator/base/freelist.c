#define _GNU_SOURCE
#include "allocator/base/freelist.h"

#include <string.h>
#include <sys/auxv.h>

uintptr_t hk_freelist_secret;

void hk_freelist_init(void) {
  if (__atomic_load_n(&hk_freelist_secret, __ATOMIC_ACQUIRE) != 0) return;
  uintptr_t secret = 0;
  const unsigned char *random_bytes = (const unsigned char *)getauxval(AT_RANDOM);
  if (random_bytes) memcpy(&secret, random_bytes + 8, sizeof secret);  // the first 8 seed the stack guard
  // Mix in an address (ASLR) so the secret differs even where AT_RANDOM is absent.
  secret ^= (uintptr_t)&hk_freelist_secret * UINT64_C(0x9e3779b97f4a7c15);
  secret |= 1;  // never 0: 0 means "not initialised"
  uintptr_t expected = 0;
  // Racing threads: the first store wins and everyone uses it; acquire/release publish it.
  __atomic_compare_exchange_n(&hk_freelist_secret, &expected, secret, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
