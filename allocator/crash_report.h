// Opt-in crash report (HAKMEM_CRASH_REPORT=1): on SIGSEGV, SIGBUS or SIGABRT, writes one report
// to stderr naming the faulting address and, when it lies in a SuperSlab, the slab, kind, block
// size, block index and start, and whether the block is known free (a use-after-free hint).
// Then restores the default action and re-raises, so the process dies as it would have.
//
// The handler uses async-signal-safe calls only (write, sigaction, raise): no malloc, no stdio,
// no locks; list walks are bounded. It reads only the registry and the slab metadata, so it works
// the same for the default and the hardened variants.
#ifndef HAKMEM_ALLOCATOR_CRASH_REPORT_H_
#define HAKMEM_ALLOCATOR_CRASH_REPORT_H_

#ifdef __cplusplus
extern "C" {
#endif

// Installs the handlers for SIGSEGV, SIGBUS and SIGABRT (on an alternate stack for the calling
// thread). Returns 0, or -1 with errno when sigaction fails.
int hk_crash_report_install(void);

// Installs them when HAKMEM_CRASH_REPORT is 1; does nothing otherwise (the default).
void hk_crash_report_install_if_enabled(void);

// Writes to `fd` what HAKMEM knows about `address` (the report's address lines). Async-signal-safe.
void hk_crash_report_describe(int fd, const void *address);

#ifdef __cplusplus
}
#endif

#endif  // HAKMEM_ALLOCATOR_CRASH_REPORT_H_
