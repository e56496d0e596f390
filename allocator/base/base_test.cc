#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "allocator/base/bits.h"
#include "allocator/base/config.h"
#include "allocator/base/report.h"
#include "allocator/base/spinlock.h"
#include "allocator/base/stats.h"
#include "gtest/gtest.h"

namespace {

// Sixteen threads on two cores take the lock 20,000 times each; a few sections sleep, as a holder
// preempted mid-section would. The sections stay exclusive (a plain read-modify-write of a shared
// pair never tears), everyone finishes, and trylock fails while the lock is held.
TEST(SpinLock, ExclusiveWithMoreThreadsThanCores) {
  uint32_t lock = 0;
  uint64_t counter = 0, shadow = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; t++)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; i++) {
        hk_spin_lock(&lock);
        uint64_t seen = counter;
        if (i % 5000 == 0 && t % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        counter = seen + 1;
        shadow++;
        hk_spin_unlock(&lock);
      }
    });
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(counter, 16u * 20000u);
  EXPECT_EQ(shadow, counter);
  ASSERT_TRUE(hk_spin_trylock(&lock));
  EXPECT_FALSE(hk_spin_trylock(&lock));
  hk_spin_unlock(&lock);
  EXPECT_TRUE(hk_spin_trylock(&lock));
  hk_spin_unlock(&lock);
}

// A holder keeps the lock while another thread asks for it: that call counts one wait; an
// uncontended take counts none.
// fork's handlers read the calling thread's count of locks held (hakmem.c, before_fork).
TEST(SpinLock, CountsTheLocksTheThreadHolds) {
  uint32_t first = 0, second = 0;
  unsigned before = hk_locks_held;
  hk_spin_lock(&first);
  EXPECT_EQ(hk_locks_held, before + 1);
  ASSERT_TRUE(hk_spin_trylock(&second));
  EXPECT_EQ(hk_locks_held, before + 2);
  EXPECT_FALSE(hk_spin_trylock(&second)) << "held";
  EXPECT_EQ(hk_locks_held, before + 2) << "a failed trylock counts nothing";
  hk_spin_unlock(&second);
  hk_spin_unlock(&first);
  EXPECT_EQ(hk_locks_held, before);
}

TEST(SpinLock, WaitsAreCounted) {
  uint32_t lock = 0;
  uint64_t before = hk_stat_get(HK_STAT_LOCK_SPIN_WAITS);
  hk_spin_lock(&lock);
  hk_spin_unlock(&lock);
  EXPECT_EQ(hk_stat_get(HK_STAT_LOCK_SPIN_WAITS), before);
  hk_spin_lock(&lock);
  std::thread waiter([&lock] {
    hk_spin_lock(&lock);
    hk_spin_unlock(&lock);
  });
  while (hk_stat_get(HK_STAT_LOCK_SPIN_WAITS) == before) std::this_thread::yield();
  hk_spin_unlock(&lock);
  waiter.join();
  EXPECT_EQ(hk_stat_get(HK_STAT_LOCK_SPIN_WAITS), before + 1);
}

TEST(Stats, RaiseKeepsThePeak) {
  hk_stat_id peak = HK_STAT_OS_BYTES_COMMITTED_PEAK;
  uint64_t start = hk_stat_get(peak);
  hk_stat_raise(peak, start + 100);
  hk_stat_raise(peak, start + 50);
  EXPECT_EQ(hk_stat_get(peak), start + 100);
  hk_stat_sub(peak, 100);
}

TEST(Bits, PowerOfTwoArithmetic) {
  EXPECT_TRUE(hk_is_power_of_two(1));
  EXPECT_TRUE(hk_is_power_of_two(4096));
  EXPECT_FALSE(hk_is_power_of_two(0));
  EXPECT_FALSE(hk_is_power_of_two(12));
  EXPECT_EQ(hk_align_up(1, 4096), 4096u);
  EXPECT_EQ(hk_align_up(4096, 4096), 4096u);
  EXPECT_EQ(hk_align_down(4097, 4096), 4096u);
  EXPECT_TRUE(hk_align_up_overflows(UINTPTR_MAX - 10, 4096));
  EXPECT_FALSE(hk_align_up_overflows(1 << 20, 4096));
  EXPECT_EQ(hk_log2_floor(1), 0u);
  EXPECT_EQ(hk_log2_floor(4097), 12u);
  EXPECT_EQ(hk_log2_ceil(4097), 13u);
  EXPECT_EQ(hk_log2_ceil(4096), 12u);
  EXPECT_EQ(hk_log2_ceil(1), 0u);
}

TEST(Report, FormatsNumbers) {
  char buffer[32];
  EXPECT_EQ(hk_report_format_hex(buffer, 0), 3u);
  EXPECT_STREQ(buffer, "0x0");
  hk_report_format_hex(buffer, 0xdeadbeef12ull);
  EXPECT_STREQ(buffer, "0xdeadbeef12");
  hk_report_format_decimal(buffer, 0);
  EXPECT_STREQ(buffer, "0");
  hk_report_format_decimal(buffer, UINT64_MAX);
  EXPECT_STREQ(buffer, "18446744073709551615");
}

TEST(ReportDeathTest, InvalidPointerNamesCallAndPointer) {
  EXPECT_DEATH(hk_report_invalid_pointer("free", "invalid pointer", (void *)0x1234),
               "hakmem: free\\(\\): invalid pointer 0x1234");
  EXPECT_DEATH(hk_report_fatal("out of luck"), "hakmem: out of luck");
  EXPECT_DEATH(hk_report_invalid_pointer_detail("free", "invalid pointer", (void *)0xabc, "not the start of a block"),
               "hakmem: free\\(\\): invalid pointer 0xabc \\(not the start of a block\\)");
}

TEST(Config, DefaultsThenEnvironmentValues) {
  char *empty[] = {nullptr};
  hk_config_load(empty);
  EXPECT_STREQ(hk_config_string(HK_OPT_STATS), "0");
  EXPECT_STREQ(hk_config_string(HK_OPT_OS_DECOMMIT), "dontneed");
  EXPECT_EQ(hk_config_int(HK_OPT_OS_HUGEPAGES), 0);

  char stats[] = "HAKMEM_STATS=json:/tmp/x.json";
  char huge[] = "HAKMEM_OS_HUGEPAGES=1";
  char other[] = "PATH=/bin";
  char *env[] = {other, stats, huge, nullptr};
  hk_config_load(env);
  EXPECT_STREQ(hk_config_string(HK_OPT_STATS), "json:/tmp/x.json");
  EXPECT_EQ(hk_config_int(HK_OPT_OS_HUGEPAGES), 1);
  hk_config_load(empty);
}

// mallopt's way in: an INT option set at run time (the environment is read first, so the first
// load cannot undo it); STRING options are left alone.
TEST(Config, SetIntChangesOneIntOption) {
  char *empty[] = {nullptr};
  hk_config_load(empty);
  hk_config_set_int(HK_OPT_HUGE_CACHE_MAX_BYTES, 12345);
  EXPECT_EQ(hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES), 12345);
  EXPECT_EQ(hk_config_int(HK_OPT_HUGE_CACHE_MAX_COUNT), 16);
  hk_config_set_int(HK_OPT_STATS, 7);
  EXPECT_EQ(hk_config_int(HK_OPT_STATS), 0);
  EXPECT_STREQ(hk_config_string(HK_OPT_STATS), "0");
  hk_config_load(empty);
  EXPECT_EQ(hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES), 256 << 20);
}

TEST(Config, BadValuesKeepDefaultsAndSuffixesScale) {
  // An option whose default is not 0, so a bad value parsed as 0 would show.
  char bad[] = "HAKMEM_SS_CACHE_MAX_COUNT=lots";
  char unknown[] = "HAKMEM_NO_SUCH_OPTION=1";
  char *env[] = {bad, unknown, nullptr};
  testing::internal::CaptureStderr();
  hk_config_load(env);
  std::string warnings = testing::internal::GetCapturedStderr();
  EXPECT_EQ(hk_config_int(HK_OPT_SS_CACHE_MAX_COUNT), 64);
  EXPECT_NE(warnings.find("HAKMEM_SS_CACHE_MAX_COUNT: not a number"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("HAKMEM_NO_SUCH_OPTION"), std::string::npos) << warnings;

  char scaled[] = "HAKMEM_OS_HUGEPAGES=2K";
  char *env2[] = {scaled, nullptr};
  hk_config_load(env2);
  EXPECT_EQ(hk_config_int(HK_OPT_OS_HUGEPAGES), 2048);
  char *empty[] = {nullptr};
  hk_config_load(empty);
}

// The README's option table must name every option of the table, with its default.
TEST(Config, ReadmeListsEveryOption) {
  std::ifstream readme("README.md");
  ASSERT_TRUE(readme.good()) << "README.md not found in runfiles";
  std::stringstream text;
  text << readme.rdbuf();
  size_t count = 0;
  const hk_option_info *table = hk_config_table(&count);
  ASSERT_EQ(count, static_cast<size_t>(HK_OPT_COUNT));
  for (size_t i = 0; i < count; i++) {
    std::string row = std::string("| `") + table[i].name + "` | `" + table[i].default_value + "` |";
    EXPECT_NE(text.str().find(row), std::string::npos) << "README.md lacks the row starting: " << row;
  }
}

TEST(Stats, CountersAddUpAcrossThreads) {
  uint64_t before = hk_stat_get(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++)
    threads.emplace_back([] {
      for (int i = 0; i < 100000; i++) hk_stat_add(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL, 3);
    });
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(hk_stat_get(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL) - before, 8u * 100000u * 3u);
  hk_stat_sub(HK_STAT_OS_BYTES_DECOMMITTED_TOTAL, 8u * 100000u * 3u);
  hk_stats_snapshot snapshot;
  hk_stats_take_snapshot(&snapshot);
  EXPECT_EQ(snapshot.values[HK_STAT_OS_BYTES_DECOMMITTED_TOTAL], before);
  EXPECT_STREQ(hk_stat_name(HK_STAT_OS_MMAP_CALLS), "os.mmap_calls");
  EXPECT_NE(std::string(hk_stat_meaning(HK_STAT_OS_MMAP_CALLS)), "");
}

}  // namespace
