// The opt-in crash report: a forked child installs it, frees a tiny block and faults on its page
// (made PROT_NONE), or aborts; the parent checks the child died of that signal and that stderr
// names the fault address, the slab, the class, the block and its state.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "allocator/crash_report.h"
#include "allocator/hakmem.h"

namespace {

int g_failures = 0;

void Expect(bool ok, const char *what, const std::string &report) {
  if (ok) return;
  printf("crash_report_test: FAIL: %s\n--- child stderr ---\n%s--------------------\n", what, report.c_str());
  g_failures++;
}

// Runs `body` in a child with stderr on a pipe; returns the child's stderr and wait status.
std::string RunChild(void (*body)(), int *status) {
  int fds[2];
  if (pipe(fds) != 0) abort();
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    body();
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, (size_t)n);
  close(fds[0]);
  waitpid(pid, status, 0);
  return text;
}


// A 48-byte tiny block is allocated (its slab then holds carved blocks), the next block freed
// back is kept by the thread cache; then the first block's page is made inaccessible and read.
void FaultOnTinyBlock() {
  if (hk_crash_report_install() != 0) _exit(3);
  char *blocks[64];
  for (char *&block : blocks) block = (char *)hakmem_malloc(48);
  char *target = blocks[10];
  // Tell the parent which address must be reported (stderr is the pipe it reads).
  char line[64];
  int length = snprintf(line, sizeof line, "expected fault address %p\n", (void *)(target + 5));
  (void)!write(2, line, (size_t)length);
  uintptr_t page = (uintptr_t)target & ~(uintptr_t)4095;
  if (mprotect((void *)page, 4096, PROT_NONE) != 0) _exit(4);
  *(volatile char *)(target + 5) = 1;  // faults
  _exit(5);
}

void Abort() {
  if (hk_crash_report_install() != 0) _exit(3);
  abort();
}

void FaultOutsideHakmem() {
  if (hk_crash_report_install() != 0) _exit(3);
  volatile uintptr_t wild = 16;  // volatile: the compiler must not see a constant null-page store
  *(volatile int *)wild = 1;
  _exit(5);
}

}  // namespace

int main() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  printf("crash_report_test: SKIPPED: the sanitizer runtime owns SIGSEGV/SIGABRT handling\n");
  return 0;
#endif
  int status = 0;
  std::string report = RunChild(FaultOnTinyBlock, &status);
  // The child printed the address it faults on; the report must name exactly that one.
  size_t at = report.find("expected fault address ");
  std::string expected = at == std::string::npos ? "?" : report.substr(at + 23, report.find('\n', at) - at - 23);
  Expect(report.find("fault address " + expected + "\n") != std::string::npos &&
             report.find("address " + expected + " is in SuperSlab") != std::string::npos,
         "the report does not name the faulting address", report);
  Expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the tiny-block child did not die of SIGSEGV", report);
  Expect(report.find("crash report: SIGSEGV") != std::string::npos, "no SIGSEGV line", report);
  Expect(report.find("fault address 0x") != std::string::npos, "no fault address", report);
  Expect(report.find("is in SuperSlab 0x") != std::string::npos, "the address is not placed in a SuperSlab", report);
  Expect(report.find("(tiny class ") != std::string::npos, "no tiny class", report);
  Expect(report.find("block size 48") != std::string::npos, "no block size 48", report);
  Expect(report.find("block index ") != std::string::npos, "no block index", report);
  Expect(report.find(", offset 5\n") != std::string::npos, "the offset in the block is not 5", report);
  Expect(report.find("block state: not on the slab's free lists") != std::string::npos, "no live-block state",
         report);
  printf("--- tiny-block fault report ---\n%s", report.c_str());

  report = RunChild(Abort, &status);
  Expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "the abort child did not die of SIGABRT", report);
  Expect(report.find("crash report: SIGABRT") != std::string::npos, "no SIGABRT line", report);
  Expect(report.find("no fault address") != std::string::npos, "SIGABRT reported an address", report);

  report = RunChild(FaultOutsideHakmem, &status);
  Expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the wild-pointer child did not die of SIGSEGV", report);
  Expect(report.find("is not in a HAKMEM SuperSlab") != std::string::npos, "a wild address was placed in HAKMEM",
         report);

  // Opt-in: without HAKMEM_CRASH_REPORT=1 nothing is installed in this process.
  struct sigaction current;
  sigaction(SIGSEGV, nullptr, &current);
  bool installed = (current.sa_flags & SA_SIGINFO) != 0 && current.sa_handler != SIG_DFL;
  const char *env = getenv("HAKMEM_CRASH_REPORT");
  bool asked = env && strcmp(env, "1") == 0;
  void *warm = hakmem_malloc(1);  // the constructor has run; configuration is read
  hakmem_free(warm);
  Expect(installed == asked, "the handler's presence does not match HAKMEM_CRASH_REPORT", "");
  if (g_failures == 0) printf("crash_report_test: PASS (HAKMEM_CRASH_REPORT %s)\n", asked ? "=1" : "unset");
  return g_failures == 0 ? 0 : 1;
}
