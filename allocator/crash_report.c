// The opt-in crash report. See crash_report.h.
#define _GNU_SOURCE
#include "allocator/crash_report.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "allocator/base/config.h"
#include "allocator/base/freelist.h"
#include "allocator/superslab/registry.h"

// Kind ranges as the block layers assign them (allocator/tiny/tiny.h: kinds 0..19 are the tiny
// classes; allocator/midlarge/ace.h: ACE_KIND_BASE = 20, 36 classes). Not included from those
// layers: the report must serve both the default and the hardened variants of them.
#define CRASH_TINY_KINDS 20u
#define CRASH_ACE_KIND_BASE 20u
#define CRASH_ACE_KINDS 36u
// Most free-list nodes examined per list: bounds the handler's time on a corrupt list.
#define CRASH_LIST_WALK_LIMIT 4096u

// ---- Async-signal-safe output: a fixed buffer flushed with write(2) --------------------------
typedef struct {
  int fd;
  size_t used;
  char text[1024];
} line_buffer;

static void out_flush(line_buffer *out) {
  size_t done = 0;
  while (done < out->used) {
    ssize_t n = write(out->fd, out->text + done, out->used - done);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    done += (size_t)n;
  }
  out->used = 0;
}

static void out_text(line_buffer *out, const char *text) {
  for (; *text; text++) {
    if (out->used == sizeof out->text) out_flush(out);
    out->text[out->used++] = *text;
  }
}

static void out_decimal(line_buffer *out, uint64_t value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value);
  char text[24];
  for (int i = 0; i < n; i++) text[i] = digits[n - 1 - i];
  text[n] = 0;
  out_text(out, text);
}

static void out_hex(line_buffer *out, uint64_t value) {
  char text[19] = "0x";
  int n = 0;
  char digits[16];
  do {
    digits[n++] = "0123456789abcdef"[value & 15];
    value >>= 4;
  } while (value);
  for (int i = 0; i < n; i++) text[2 + i] = digits[n - 1 - i];
  text[2 + n] = 0;
  out_text(out, text);
}

// ---- What HAKMEM knows about an address --------------------------------------------------------
// Looks for `block` on a list of free blocks threaded through their first word (decoded), following
// only links that are block starts of `slab` (anything else ends the walk: a corrupt link).
// Returns 1 found, 0 not found, -1 walk ended early (link invalid or limit reached).
static int list_contains(const ss_slab *slab, void *head, uintptr_t data_start, uintptr_t data_end,
                         uintptr_t block) {
  uintptr_t node = (uintptr_t)head;
  for (unsigned steps = 0; node; steps++) {
    if (steps == CRASH_LIST_WALK_LIMIT) return -1;
    if (node < data_start || node >= data_end || (node - data_start) % slab->block_size != 0) return -1;
    if (node == block) return 1;
    node = (uintptr_t)hk_link_get((const void *)node);
  }
  return 0;
}

void hk_crash_report_describe(int fd, const void *address) {
  line_buffer out = {.fd = fd, .used = 0};
  uintptr_t addr = (uintptr_t)address;
  ss_superslab *superslab = ss_registry_find(address);
  if (!superslab) {
    out_text(&out, "hakmem: crash report: address ");
    out_hex(&out, addr);
    out_text(&out, " is not in a HAKMEM SuperSlab (huge blocks are not looked up here)\n");
    out_flush(&out);
    return;
  }
  out_text(&out, "hakmem: crash report: address ");
  out_hex(&out, addr);
  out_text(&out, " is in SuperSlab ");
  out_hex(&out, (uintptr_t)superslab);
  unsigned index = ss_slot_index((const void *)addr);
  out_text(&out, ", slab ");
  out_decimal(&out, index);
  if (addr - (uintptr_t)superslab < SS_HEADER_SIZE) {
    out_text(&out, ": the SuperSlab header page (metadata, not a block)\n");
    out_flush(&out);
    return;
  }
  const ss_slab *slab = &superslab->slabs[index];
  if (slab->kind == SS_KIND_SPAN) {
    out_text(&out, " (a span slot; span head slab ");
    out_decimal(&out, slab->span_head);
    out_text(&out, ")");
    slab = &superslab->slabs[slab->span_head % SS_SLABS_PER_SUPERSLAB];
  }
  unsigned kind = slab->kind;
  out_text(&out, "\nhakmem: crash report: kind ");
  out_decimal(&out, kind);
  if (kind < CRASH_TINY_KINDS) {
    out_text(&out, " (tiny class ");
    out_decimal(&out, kind);
    out_text(&out, ")");
  } else if (kind >= CRASH_ACE_KIND_BASE && kind < CRASH_ACE_KIND_BASE + CRASH_ACE_KINDS) {
    out_text(&out, " (mid/large class ");
    out_decimal(&out, kind - CRASH_ACE_KIND_BASE);
    out_text(&out, ")");
  } else {
    out_text(&out, " (not a block kind: the slab is free or being set up)");
  }
  uint32_t block_size = slab->block_size, capacity = slab->capacity, carve = slab->carve;
  out_text(&out, ", block size ");
  out_decimal(&out, block_size);
  out_text(&out, ", capacity ");
  out_decimal(&out, capacity);
  out_text(&out, ", used ");
  out_decimal(&out, slab->used);
  out_text(&out, "\n");
  uintptr_t data_start = (uintptr_t)ss_slab_base(slab);
  uintptr_t data_end = data_start + (uintptr_t)capacity * block_size;
  if (block_size == 0 || addr < data_start || addr >= data_end) {
    out_text(&out, "hakmem: crash report: the address is outside the slab's blocks (slab released, or tail)\n");
    out_flush(&out);
    return;
  }
  uintptr_t block_index = (addr - data_start) / block_size;
  uintptr_t block = data_start + block_index * block_size;
  out_text(&out, "hakmem: crash report: block index ");
  out_decimal(&out, block_index);
  out_text(&out, ", block start ");
  out_hex(&out, block);
  out_text(&out, ", offset ");
  out_decimal(&out, addr - block);
  out_text(&out, "\nhakmem: crash report: block state: ");
  if (block - data_start >= carve) {
    out_text(&out, "never handed out (beyond the carve position): a wild or stale pointer\n");
  } else {
    // (The block's free mark is not read: the block lies on the page that faulted.)
    int local = list_contains(slab, slab->free_list, data_start, data_end, block);
    int remote = list_contains(slab, ss_remote_list(__atomic_load_n(&slab->remote_free, __ATOMIC_ACQUIRE)), data_start,
                               data_end, block);
    if (local == 1 || remote == 1) {
      out_text(&out, local == 1 ? "FREE (on the slab's free list)" : "FREE (on the slab's remote-free list)");
      out_text(&out, ": likely a use after free\n");
    } else if (local < 0 || remote < 0) {
      out_text(&out, "unknown (a free list could not be walked safely)\n");
    } else {
      out_text(&out, "not on the slab's free lists: live, or in a thread's cache (not searched)\n");
    }
  }
  out_flush(&out);
}

// ---- The handler --------------------------------------------------------------------------------
static const char *signal_name(int signo) {
  switch (signo) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

static void crash_handler(int signo, siginfo_t *info, void *context) {
  (void)context;
  int saved_errno = errno;
  line_buffer out = {.fd = 2, .used = 0};
  out_text(&out, "hakmem: crash report: ");
  out_text(&out, signal_name(signo));
  out_text(&out, " in process ");
  out_decimal(&out, (uint64_t)getpid());
  if (signo == SIGSEGV || signo == SIGBUS) {
    out_text(&out, ", fault address ");
    out_hex(&out, (uintptr_t)info->si_addr);
    out_text(&out, "\n");
    out_flush(&out);
    hk_crash_report_describe(2, info->si_addr);
  } else {
    // For SIGABRT si_addr means nothing: there is no address to look up.
    out_text(&out, " (no fault address for this signal)\n");
    out_flush(&out);
  }
  // Default action, then re-raise: the process ends as it would have without the report. For
  // a fault the signal is blocked in the handler, so it is delivered when the handler returns
  // (a SIGSEGV also simply recurs when the faulting instruction re-executes).
  struct sigaction default_action;
  memset(&default_action, 0, sizeof default_action);
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  sigaction(signo, &default_action, NULL);
  raise(signo);
  errno = saved_errno;
}

// An alternate stack for the installing thread, so a fault from a stack overflow there can still
// be reported (other threads run the handler on their own stacks).
static char crash_alternate_stack[64 * 1024];

int hk_crash_report_install(void) {
  stack_t stack;
  memset(&stack, 0, sizeof stack);
  stack.ss_sp = crash_alternate_stack;
  stack.ss_size = sizeof crash_alternate_stack;
  sigaltstack(&stack, NULL);  // best effort: the report works without it
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = crash_handler;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  const int signals[] = {SIGSEGV, SIGBUS, SIGABRT};
  for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    if (sigaction(signals[i], &action, NULL) != 0) return -1;
  }
  return 0;
}

void hk_crash_report_install_if_enabled(void) {
  if (hk_config_int(HK_OPT_CRASH_REPORT) == 1) hk_crash_report_install();
}
