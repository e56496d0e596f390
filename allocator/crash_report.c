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
#include "allocator/base/report.h"
#include "allocator/superslab/registry.h"

// Kind ranges as the block layers assign them (allocator/tiny/tiny.h: kinds 0..19 are the tiny
// classes; allocator/midlarge/ace.h: ACE_KIND_BASE = 20, 48 classes). Not included from those
// layers: the report must serve both the default and the hardened variants of them.
#define CRASH_TINY_KINDS 20u
#define CRASH_ACE_KIND_BASE 20u
#define CRASH_ACE_KINDS 48u
// Most free-list nodes examined per list: bounds the handler's time on a corrupt list.
#define CRASH_LIST_WALK_LIMIT 4096u

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
  char text[1024];  // async-signal-safe output (hk_writer): on the handler's stack
  hk_writer out = hk_writer_to(fd, text, sizeof text);
  uintptr_t addr = (uintptr_t)address;
  ss_superslab *superslab = ss_registry_find(address);
  if (!superslab) {
    hk_writer_text(&out, "hakmem: crash report: address ");
    hk_writer_hex(&out, addr);
    hk_writer_text(&out, " is not in a HAKMEM SuperSlab (huge blocks are not looked up here)\n");
    hk_writer_flush(&out);
    return;
  }
  hk_writer_text(&out, "hakmem: crash report: address ");
  hk_writer_hex(&out, addr);
  hk_writer_text(&out, " is in SuperSlab ");
  hk_writer_hex(&out, (uintptr_t)superslab);
  unsigned index = ss_slot_index((const void *)addr);
  hk_writer_text(&out, ", slab ");
  hk_writer_decimal(&out, index);
  if (addr - (uintptr_t)superslab < SS_HEADER_SIZE) {
    hk_writer_text(&out, ": the SuperSlab header page (metadata, not a block)\n");
    hk_writer_flush(&out);
    return;
  }
  const ss_slab *slab = &superslab->slabs[index];
  if (slab->kind == SS_KIND_SPAN) {
    hk_writer_text(&out, " (a span slot; span head slab ");
    hk_writer_decimal(&out, slab->span_head);
    hk_writer_text(&out, ")");
    slab = &superslab->slabs[slab->span_head % SS_SLABS_PER_SUPERSLAB];
  }
  unsigned kind = slab->kind;
  hk_writer_text(&out, "\nhakmem: crash report: kind ");
  hk_writer_decimal(&out, kind);
  if (kind < CRASH_TINY_KINDS) {
    hk_writer_text(&out, " (tiny class ");
    hk_writer_decimal(&out, kind);
    hk_writer_text(&out, ")");
  } else if (kind >= CRASH_ACE_KIND_BASE && kind < CRASH_ACE_KIND_BASE + CRASH_ACE_KINDS) {
    hk_writer_text(&out, " (mid/large class ");
    hk_writer_decimal(&out, kind - CRASH_ACE_KIND_BASE);
    hk_writer_text(&out, ")");
  } else {
    hk_writer_text(&out, " (not a block kind: the slab is free or being set up)");
  }
  uint32_t block_size = slab->block_size, capacity = slab->capacity, carve = slab->carve;
  hk_writer_text(&out, ", block size ");
  hk_writer_decimal(&out, block_size);
  hk_writer_text(&out, ", capacity ");
  hk_writer_decimal(&out, capacity);
  hk_writer_text(&out, ", used ");
  hk_writer_decimal(&out, slab->used);
  hk_writer_text(&out, "\n");
  uintptr_t data_start = (uintptr_t)ss_slab_base(slab);
  uintptr_t data_end = data_start + (uintptr_t)capacity * block_size;
  if (block_size == 0 || addr < data_start || addr >= data_end) {
    hk_writer_text(&out, "hakmem: crash report: the address is outside the slab's blocks (slab released, or tail)\n");
    hk_writer_flush(&out);
    return;
  }
  uintptr_t block_index = (addr - data_start) / block_size;
  uintptr_t block = data_start + block_index * block_size;
  hk_writer_text(&out, "hakmem: crash report: block index ");
  hk_writer_decimal(&out, block_index);
  hk_writer_text(&out, ", block start ");
  hk_writer_hex(&out, block);
  hk_writer_text(&out, ", offset ");
  hk_writer_decimal(&out, addr - block);
  hk_writer_text(&out, "\nhakmem: crash report: block state: ");
  if (block - data_start >= carve) {
    hk_writer_text(&out, "never handed out (beyond the carve position): a wild or stale pointer\n");
  } else {
    // (The block's free mark is not read: the block lies on the page that faulted.)
    int local = list_contains(slab, slab->free_list, data_start, data_end, block);
    int remote = list_contains(slab, ss_remote_list(__atomic_load_n(&slab->remote_free, __ATOMIC_ACQUIRE)), data_start,
                               data_end, block);
    if (local == 1 || remote == 1) {
      hk_writer_text(&out, local == 1 ? "FREE (on the slab's free list)" : "FREE (on the slab's remote-free list)");
      hk_writer_text(&out, ": likely a use after free\n");
    } else if (local < 0 || remote < 0) {
      hk_writer_text(&out, "unknown (a free list could not be walked safely)\n");
    } else {
      hk_writer_text(&out, "not on the slab's free lists: live, or in a thread's cache (not searched)\n");
    }
  }
  hk_writer_flush(&out);
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
  char text[1024];
  hk_writer out = hk_writer_to(2, text, sizeof text);
  hk_writer_text(&out, "hakmem: crash report: ");
  hk_writer_text(&out, signal_name(signo));
  hk_writer_text(&out, " in process ");
  hk_writer_decimal(&out, (uint64_t)getpid());
  if (signo == SIGSEGV || signo == SIGBUS) {
    hk_writer_text(&out, ", fault address ");
    hk_writer_hex(&out, (uintptr_t)info->si_addr);
    hk_writer_text(&out, "\n");
    hk_writer_flush(&out);
    hk_crash_report_describe(2, info->si_addr);
  } else {
    // For SIGABRT si_addr means nothing: there is no address to look up.
    hk_writer_text(&out, " (no fault address for this signal)\n");
    hk_writer_flush(&out);
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
