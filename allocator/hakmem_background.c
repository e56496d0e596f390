// The background thread (see hakmem_background.h): an aging pass every HAKMEM_BACKGROUND_MS and
// a timeline row every HAKMEM_TIMELINE_MS, sleeping on a futex in between so that the stop at exit
// wakes it at once. The thread allocates nothing: its stack holds the census and the row buffer.
#define _GNU_SOURCE
#include "allocator/hakmem_background.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/stats.h"
#include "allocator/hakmem_census.h"
#include "allocator/hakmem_usage.h"
#include "allocator/midlarge/ace.h"
#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"

// The thread's stack: the usage census (about 10 KiB), a compaction census (about 4 KiB) and a row
// buffer, with room for the sanitizers.
#define BACKGROUND_STACK_BYTES ((size_t)256 << 10)

// IDLE -> STARTING (the starter's CAS) -> RUNNING (thread created) -> STOPPING -> STOPPED.
// STOPPED is final (exit); a failed start goes back to IDLE; a forked child starts over at IDLE.
enum { BG_IDLE, BG_STARTING, BG_RUNNING, BG_STOPPING, BG_STOPPED };
static int background_state;
// The futex the thread sleeps on: 0 while it should run, 1 once asked to stop.
static uint32_t stop_requested;
static pthread_t background_thread;
// A report file of the thread (the timeline, the census): written by the thread only, through a
// descriptor of 100 or more (away from the numbers a program reuses), checked against the file's
// identity before each write.
typedef struct {
  int fd;
  dev_t device;
  ino_t inode;
} report_file;

static report_file timeline = {-1, 0, 0};
static uint64_t timeline_origin_ms;
// The compaction census (HAKMEM_CENSUS): the one taken at the largest RSS so far, and how many.
static report_file census_file = {-1, 0, 0};
static hk_census census_largest;
static uint64_t census_taken;

int hk_background_running(void) { return __atomic_load_n(&background_state, __ATOMIC_ACQUIRE) == BG_RUNNING; }

// ---- The timeline -------------------------------------------------------------------------------
static const char timeline_header[] =
    "ms,rss_kib,committed_kib,tiny_in_use_kib,tiny_cached_kib,mid_in_use_kib,mid_cached_kib,"
    "huge_in_use_kib,huge_cached_kib,pool_free_kib,metadata_kib,given_back_kib\n";

static void timeline_cell(hk_writer *writer, uint64_t bytes, const char *end) {
  hk_writer_decimal(writer, bytes >> 10);
  hk_writer_text(writer, end);
}

// True while `file` still names the file we created: a program that closes every descriptor (a
// daemon) and opens its own files could get the number back, and a row must never land in them.
static int report_file_still_ours(const report_file *file) {
  struct stat now;
  return file->fd >= 0 && fstat(file->fd, &now) == 0 && now.st_dev == file->device && now.st_ino == file->inode;
}

// The path `option` names with each "%p" replaced by the process id, in `out` (empty when the option
// is off or the path does not fit). Returns 1 when the path had a "%p".
static int report_file_path(hk_option_id option, char *out, size_t capacity) {
  const char *path = hk_config_string(option);
  out[0] = '\0';
  if (path[0] == '\0' || (path[0] == '0' && path[1] == '\0')) return 0;
  char pid[24];
  hk_report_format_decimal(pid, (uint64_t)getpid());
  size_t length = 0;
  int has_pid = 0;
  for (const char *c = path; *c; c++) {
    const char *piece = c[0] == '%' && c[1] == 'p' ? pid : NULL;
    size_t piece_length = piece ? strlen(piece) : 1;
    if (length + piece_length >= capacity) {
      out[0] = '\0';
      return 0;
    }
    memcpy(out + length, piece ? piece : c, piece_length);
    length += piece_length;
    if (piece) c++, has_pid = 1;
  }
  out[length] = '\0';
  return has_pid;
}

// Opens the file that `option` names for this process, or leaves `file` closed. O_EXCL: the first
// process of a command writes it, and the programs it starts (which inherit the environment) leave
// it alone, unless the path has "%p" (the process id): then every process writes its own, and a
// program that a process execs (the same id: `sh -c CMD` execs CMD) truncates what the image before
// it wrote.
static void report_file_open(report_file *file, hk_option_id option, const char *complaint) {
  char path[HK_CONFIG_STRING_MAX + 32];
  int per_process = report_file_path(option, path, sizeof path);
  if (path[0] == '\0') return;
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (per_process ? O_TRUNC : O_EXCL), 0644);
  if (fd < 0) {
    if (errno != EEXIST) hk_report_warning2(path, complaint);
    return;
  }
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  struct stat created;
  if (fstat(fd, &created) != 0) {
    close(fd);
    return;
  }
  file->device = created.st_dev;
  file->inode = created.st_ino;
  file->fd = fd;
}

static void report_file_close(report_file *file) {
  if (file->fd < 0) return;
  if (report_file_still_ours(file)) close(file->fd);  // else the number is the program's now
  file->fd = -1;
}

static void timeline_write_row(void) {
  if (!report_file_still_ours(&timeline)) return;
  hk_usage usage;
  hk_usage_take(&usage);
  char buffer[512];
  hk_writer writer = hk_writer_to(timeline.fd, buffer, sizeof buffer);
  hk_writer_decimal(&writer, ss_clock_ms() - timeline_origin_ms);
  hk_writer_text(&writer, ",");
  hk_writer_decimal(&writer, hk_status_kib("VmRSS:"));
  hk_writer_text(&writer, ",");
  timeline_cell(&writer, usage.total.committed, ",");
  timeline_cell(&writer, usage.tiny.in_use, ",");
  timeline_cell(&writer, usage.tiny.cached, ",");
  timeline_cell(&writer, usage.mid.in_use, ",");
  timeline_cell(&writer, usage.mid.cached, ",");
  timeline_cell(&writer, usage.huge.in_use, ",");
  timeline_cell(&writer, usage.huge.cached, ",");
  timeline_cell(&writer, usage.free.committed, ",");
  timeline_cell(&writer, usage.metadata.committed, ",");
  timeline_cell(&writer, hk_stat_get(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL) + hk_stat_get(HK_STAT_OS_BYTES_UNMAPPED_TOTAL),
                "\n");
  hk_writer_flush(&writer);
  hk_stat_add(HK_STAT_BG_TIMELINE_ROWS, 1);
}

static void timeline_open(void) {
  report_file_open(&timeline, HK_OPT_TIMELINE, ": HAKMEM_TIMELINE file cannot be created");
  if (timeline.fd < 0) return;
  timeline_origin_ms = ss_clock_ms();
  char buffer[sizeof timeline_header];
  hk_writer writer = hk_writer_to(timeline.fd, buffer, sizeof buffer);
  hk_writer_text(&writer, timeline_header);
  hk_writer_flush(&writer);
}

// ---- The census ---------------------------------------------------------------------------------
// Takes a census when the process's RSS has grown by a sixteenth since the largest one, so that the
// one kept is near the peak RSS (a look every HAKMEM_TIMELINE_MS), and rewrites the file with the
// largest at once: a program that ends with _exit (a shell) still leaves one.
static void census_consider(void) {
  uint64_t rss_kib = hk_status_kib("VmRSS:");
  if (census_taken && rss_kib <= census_largest.rss_kib + census_largest.rss_kib / 16) return;
  hk_census census;
  if (hk_census_take(&census) != 0) return;
  census_taken++;
  if (census_taken > 1 && census.rss_kib < census_largest.rss_kib) return;
  census_largest = census;
  if (!report_file_still_ours(&census_file) || lseek(census_file.fd, 0, SEEK_SET) != 0 ||
      ftruncate(census_file.fd, 0) != 0)
    return;
  hk_census_write(census_file.fd, &census_largest, census_taken);
}

// ---- The thread ---------------------------------------------------------------------------------
// Sleeps until `deadline_ms` or the stop request.
static void sleep_until(uint64_t deadline_ms) {
  uint64_t now = ss_clock_ms();
  if (deadline_ms <= now) return;
  uint64_t wait = deadline_ms - now;
  struct timespec timeout = {(time_t)(wait / 1000u), (long)(wait % 1000u) * 1000000L};
  // Returns at the timeout, at a wake, or at once when the stop was requested before the wait.
  syscall(SYS_futex, &stop_requested, FUTEX_WAIT_PRIVATE, 0u, &timeout, NULL, 0);
}

static void *background_main(void *unused) {
  (void)unused;
  uint64_t pass_period = (uint64_t)hk_config_int(HK_OPT_BACKGROUND_MS);
  int sampling = timeline.fd >= 0 || census_file.fd >= 0;
  uint64_t row_period = sampling ? (uint64_t)hk_config_int(HK_OPT_TIMELINE_MS) : 0;
  if (row_period == 0 && sampling) row_period = 100;
  uint64_t now = ss_clock_ms();
  uint64_t next_pass = pass_period ? now + pass_period : UINT64_MAX;
  uint64_t next_row = row_period ? now : UINT64_MAX;
  // Acquire: pairs with the release store of the stop request.
  while (!__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE)) {
    now = ss_clock_ms();
    if (now >= next_row) {
      if (timeline.fd >= 0) timeline_write_row();
      if (census_file.fd >= 0) census_consider();
      next_row += row_period;
      if (next_row <= now) next_row = now + row_period;  // fell behind (a slow census): skip rows
    }
    if (now >= next_pass) {
      // The maintenance tick's pass, for a program that makes no call: slabs and SuperSlabs idle
      // past HAKMEM_SS_DECOMMIT_DELAY_MS, huge mappings and arena spans past their TTL.
      size_t bytes = sp_trim(0) + ace_trim(0);
      hk_stat_add(HK_STAT_BG_PASSES, 1);
      hk_stat_add(HK_STAT_BG_BYTES_RETURNED, bytes);
      // Huge pages where they pay: SuperSlabs that stay full. The program's own faults stay on
      // small pages (a fault-time huge page can wait on compaction: docs/superslab.md).
      uint64_t collapse_ms = (uint64_t)hk_config_int(HK_OPT_HUGEPAGE_COLLAPSE_MS);
      if (collapse_ms) sp_collapse_dense(collapse_ms);
      next_pass = now + pass_period;
    }
    sleep_until(next_row < next_pass ? next_row : next_pass);
  }
  if (timeline.fd >= 0) timeline_write_row();  // the last moment, at exit
  if (census_file.fd >= 0) census_consider();
  return NULL;
}

// IDLE -> STARTING was won by the caller. Every signal is blocked in the thread, so that the
// program's handlers run on its own threads only.
static void background_start(void) {
  pthread_attr_t attributes;
  int created = -1;
  if (pthread_attr_init(&attributes) == 0) {
    sigset_t all;
    sigfillset(&all);
    pthread_attr_setstacksize(&attributes, BACKGROUND_STACK_BYTES);
    pthread_attr_setsigmask_np(&attributes, &all);
    created = pthread_create(&background_thread, &attributes, background_main, NULL);
    pthread_attr_destroy(&attributes);
  }
  if (created != 0) {  // no thread (EAGAIN: a thread limit): the ticks go on aging; try later
    __atomic_store_n(&background_state, BG_IDLE, __ATOMIC_RELEASE);
    return;
  }
  pthread_setname_np(background_thread, "hakmem-bg");
  hk_stat_add(HK_STAT_BG_STARTS, 1);
  __atomic_store_n(&background_state, BG_RUNNING, __ATOMIC_RELEASE);
}

static int try_claim_start(void) {
  int idle = BG_IDLE;
  return __atomic_compare_exchange_n(&background_state, &idle, BG_STARTING, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void hk_background_consider(void) {
  if (HK_LIKELY(__atomic_load_n(&background_state, __ATOMIC_RELAXED) != BG_IDLE)) return;
  if (hk_stat_get(HK_STAT_OS_BYTES_COMMITTED) < HK_BACKGROUND_START_BYTES) return;
  if (hk_config_int(HK_OPT_BACKGROUND_MS) <= 0) return;
  if (try_claim_start()) background_start();
}

void hk_background_setup(void) {
  atexit(hk_background_stop);
  timeline_open();
  report_file_open(&census_file, HK_OPT_CENSUS, ": HAKMEM_CENSUS file cannot be created");
  if ((timeline.fd >= 0 || census_file.fd >= 0) && try_claim_start()) background_start();
}

void hk_background_stop(void) {
  for (;;) {
    int state = __atomic_load_n(&background_state, __ATOMIC_ACQUIRE);
    if (state == BG_STOPPED || state == BG_STOPPING) return;
    if (state == BG_STARTING) {  // another thread is creating it: wait for the outcome
      sched_yield();
      continue;
    }
    int next = state == BG_RUNNING ? BG_STOPPING : BG_STOPPED;
    if (!__atomic_compare_exchange_n(&background_state, &state, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      continue;
    if (next == BG_STOPPED) return;
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &stop_requested, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(background_thread, NULL);
    report_file_close(&timeline);
    report_file_close(&census_file);
    __atomic_store_n(&background_state, BG_STOPPED, __ATOMIC_RELEASE);
    return;
  }
}

// Whether the process that forked had more than one thread (hk_background_before_fork).
static int forked_from_threads;

void hk_background_before_fork(void) { forked_from_threads = !__libc_single_threaded; }

void hk_background_after_fork_child(void) {
  // The child is single-threaded: plain resets. Its copies of the report files' descriptors share
  // the parent's file offsets; the parent's thread writes them, not the child.
  report_file_close(&timeline);
  report_file_close(&census_file);
  census_taken = 0;
  stop_requested = 0;
  // The child of a multi-threaded process (ours counts, when it runs) may call only
  // async-signal-safe functions until it execs (pthread_create is not one; ThreadSanitizer refuses
  // it outright), so it never starts a thread. Its own slow paths still age its memory.
  if (background_state != BG_IDLE || forked_from_threads) background_state = BG_STOPPED;
}
