// The per-thread count of allocator locks held (spinlock.h).
#include "allocator/base/spinlock.h"

__thread unsigned hk_locks_held __attribute__((tls_model("initial-exec")));
