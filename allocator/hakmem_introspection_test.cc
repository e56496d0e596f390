// The summary and glibc's introspection calls through the prefixed API (hakmem_mallinfo2,
// hakmem_malloc_stats, hakmem_malloc_info, hakmem_mallopt): figures checked against known
// allocations of a thread, the XML's shape, mallopt's answers. (This binary's own malloc is
// glibc's: only hakmem_* calls touch HAKMEM.)
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "allocator/base/config.h"
#include "allocator/hakmem.h"
#include "allocator/midlarge/ace.h"
#include "allocator/testing/fd_text.h"
#include "gtest/gtest.h"

namespace {

// A thread that allocates `count` blocks of `size` bytes, then waits; told to, frees them all,
// then waits again; told to, exits. The test reads the figures at each step (the handshakes
// order the thread's writes before the reads).
class BlockHolder {
 public:
  BlockHolder(size_t count, size_t size) : thread_([this, count, size] { Run(count, size); }) { WaitFor(1); }
  ~BlockHolder() {
    if (thread_.joinable()) Exit();
  }
  void Free() {
    Advance(2);
    WaitFor(3);
  }
  void Exit() {
    Advance(4);
    thread_.join();
  }

 private:
  void Run(size_t count, size_t size) {
    std::vector<void *> blocks;
    for (size_t i = 0; i < count; i++) {
      blocks.push_back(hakmem_malloc(size));
      memset(blocks.back(), 1, size);
    }
    Advance(1);
    WaitFor(2);
    for (void *block : blocks) hakmem_free(block);
    Advance(3);
    WaitFor(4);
  }
  void Advance(int stage) {
    std::lock_guard<std::mutex> lock(mutex_);
    stage_ = stage;
    changed_.notify_all();
  }
  void WaitFor(int stage) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return stage_ >= stage; });
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  int stage_ = 0;
  std::thread thread_;
};

std::string Summary() { return hakmem_testing::TextWrittenTo(hakmem_stats_summary_write); }

// The numbers of the class table's row for `name` ("tiny 112", "huge"): live blocks, in use (whole
// units), allocations, hit rate, refills, slabs; "n/c" and "-" read as -1, commas are dropped. The
// class table is the summary's last table.
std::vector<long long> Row(const std::string &summary, const std::string &name) {
  size_t at = summary.rfind("hakmem:   " + name + " ");
  if (at == std::string::npos) return {};
  std::string line = summary.substr(at + 10 + name.size(), summary.find('\n', at) - at - 10 - name.size());
  std::vector<long long> cells;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') i++;
    std::string word;
    while (i < line.size() && line[i] != ' ') word += line[i++];
    // "12.0 KiB", "98.0 %": the unit is its own word; keep numbers only.
    if (word.empty() || word == "B" || word == "KiB" || word == "MiB" || word == "GiB" || word == "%") continue;
    std::string digits;
    for (char c : word)
      if (c != ',') digits += c;
    cells.push_back(digits == "n/c" || digits == "-" ? -1 : atoll(digits.c_str()));
  }
  return cells;
}

TEST(Mallinfo2, InUseBytesFollowAThreadsTinyBlocks) {
  const size_t kBlocks = 6000, kSize = 100, kBlockSize = 112;  // class 112
  hakmem_mallinfo before = hakmem_mallinfo2();
  BlockHolder holder(kBlocks, kSize);
  hakmem_mallinfo held = hakmem_mallinfo2();
  EXPECT_GE(held.uordblks, before.uordblks + kBlocks * kBlockSize);
  EXPECT_EQ(held.arena, held.uordblks + held.fordblks);
  EXPECT_LE(held.keepcost, held.fordblks);
  std::vector<long long> row = Row(Summary(), "tiny 112");
  ASSERT_FALSE(row.empty()) << Summary();
  EXPECT_GE(row[0], static_cast<long long>(kBlocks)) << "live blocks of class 112";

  holder.Free();
  // The thread's own bin keeps some of the blocks it freed (at most 256 of this class): another
  // thread's cache counts as in use.
  hakmem_mallinfo freed = hakmem_mallinfo2();
  EXPECT_LE(freed.uordblks + (kBlocks - 256) * kBlockSize, held.uordblks);
  holder.Exit();
  // An exiting thread's bins go back to their slabs.
  hakmem_mallinfo gone = hakmem_mallinfo2();
  EXPECT_LE(gone.uordblks, before.uordblks + 64 * kBlockSize);
  row = Row(Summary(), "tiny 112");
  if (!row.empty()) {
    EXPECT_LT(row[0], 64);
  }
}

TEST(Mallinfo2, MidBlocksAndTheirAllocationsAreCounted) {
  const size_t kBlocks = 300, kSize = 3000, kBlockSize = 3072;
  hakmem_mallinfo before = hakmem_mallinfo2();
  std::vector<long long> row_before = Row(Summary(), "mid 3072");
  long long allocations_before = row_before.empty() ? 0 : row_before[2];
  {
    BlockHolder holder(kBlocks, kSize);
    hakmem_mallinfo held = hakmem_mallinfo2();
    EXPECT_GE(held.uordblks, before.uordblks + kBlocks * kBlockSize);
    std::vector<long long> row = Row(Summary(), "mid 3072");
    ASSERT_FALSE(row.empty());
    EXPECT_GE(row[0], static_cast<long long>(kBlocks));
    holder.Free();
  }
  hakmem_mallinfo gone = hakmem_mallinfo2();
  EXPECT_LE(gone.uordblks, before.uordblks + 8 * kBlockSize);
  // The exited thread's bin hits were folded in: every allocation counts (HAKMEM_STATS is on).
  std::vector<long long> row = Row(Summary(), "mid 3072");
  ASSERT_FALSE(row.empty());
  EXPECT_GE(row[2] - allocations_before, static_cast<long long>(kBlocks));
}

TEST(Mallinfo2, HugeBlocksAreItsMmappedBlocks) {
  hakmem_mallinfo before = hakmem_mallinfo2();
  void *own = hakmem_malloc(40 << 20);   // past the huge arena: an own mapping
  void *arena = hakmem_malloc(4 << 20);  // from the huge arena
  hakmem_mallinfo held = hakmem_mallinfo2();
  EXPECT_EQ(held.hblks, before.hblks + 2);
  EXPECT_GE(held.hblkhd, before.hblkhd + (44u << 20));
  EXPECT_LT(held.uordblks, before.uordblks + (1u << 20)) << "huge bytes are not in uordblks, as glibc's mmaps";
  std::string summary = Summary();
  std::vector<long long> row = Row(summary, "huge");
  ASSERT_FALSE(row.empty()) << summary;
  EXPECT_GE(row[0], 2);
  EXPECT_NE(summary.find("peak "), std::string::npos);
  hakmem_free(own);
  hakmem_free(arena);
  hakmem_mallinfo after = hakmem_mallinfo2();
  EXPECT_EQ(after.hblks, before.hblks);
  EXPECT_EQ(after.hblkhd, before.hblkhd);
}

TEST(MallocStats, WritesTheSummaryToStderr) {
  void *block = hakmem_malloc(64);
  testing::internal::CaptureStderr();
  hakmem_malloc_stats();
  std::string text = testing::internal::GetCapturedStderr();
  hakmem_free(block);
  EXPECT_EQ(text.rfind(std::string("hakmem: ") + HAKMEM_SUMMARY_TITLE, 0), 0u) << text;
  for (const char *part : {"RSS ", "tiny (<= 1 KiB)", "mid (<= 512 KiB)", "huge", "free slabs", "total",
                           "live blocks", "memory syscalls: mmap ", "lock waits: ", "given back to the OS: "})
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
}

// A minimal XML reader: every element well nested, attributes name="value". Returns the
// elements as "parent/name" -> attributes of each occurrence, or fails the test.
using Elements = std::multimap<std::string, std::map<std::string, std::string>>;

Elements ParseXml(const std::string &text) {
  Elements elements;
  std::vector<std::string> open;
  size_t i = 0;
  while ((i = text.find('<', i)) != std::string::npos) {
    size_t end = text.find('>', i);
    EXPECT_NE(end, std::string::npos);
    if (end == std::string::npos) break;
    std::string tag = text.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag[0] == '/') {
      EXPECT_FALSE(open.empty()) << tag;
      if (open.empty()) break;
      EXPECT_EQ(open.back(), tag.substr(1));
      open.pop_back();
      continue;
    }
    bool empty = tag.back() == '/';
    if (empty) tag.pop_back();
    size_t space = tag.find(' ');
    std::string name = tag.substr(0, space);
    std::map<std::string, std::string> attributes;
    for (size_t at = space; at != std::string::npos && at < tag.size();) {
      size_t equals = tag.find("=\"", at);
      if (equals == std::string::npos) break;
      size_t close = tag.find('"', equals + 2);
      EXPECT_NE(close, std::string::npos) << tag;
      if (close == std::string::npos) break;
      std::string key = tag.substr(at + 1, equals - at - 1);
      attributes[key] = tag.substr(equals + 2, close - equals - 2);
      at = close + 1;
    }
    elements.emplace((open.empty() ? "" : open.back()) + "/" + name, attributes);
    if (!empty) open.push_back(name);
  }
  EXPECT_TRUE(open.empty()) << "unclosed: " << open.back();
  return elements;
}

std::map<std::string, std::string> Find(const Elements &elements, const std::string &path, const std::string &type) {
  auto range = elements.equal_range(path);
  for (auto it = range.first; it != range.second; ++it)
    if (it->second.count("type") ? it->second.at("type") == type : type.empty()) return it->second;
  ADD_FAILURE() << "no " << path << " of type '" << type << "'";
  return {};
}

TEST(MallocInfo, WritesGlibcsXmlShapeWithHakmemsFigures) {
  void *huge = hakmem_malloc(3 << 20);
  void *small = hakmem_malloc(200);
  char *text = nullptr;
  size_t length = 0;
  FILE *stream = open_memstream(&text, &length);
  ASSERT_NE(stream, nullptr);
  ASSERT_EQ(hakmem_malloc_info(0, stream), 0);
  fclose(stream);
  std::string xml(text, length);
  free(text);
  Elements elements = ParseXml(xml);
  ASSERT_EQ(elements.count("/malloc"), 1u) << xml;
  EXPECT_EQ(elements.find("/malloc")->second.at("version"), "1");
  ASSERT_EQ(elements.count("malloc/heap"), 1u) << xml;
  EXPECT_EQ(elements.find("malloc/heap")->second.at("nr"), "0");
  EXPECT_EQ(elements.count("heap/sizes"), 1u);
  EXPECT_GE(elements.count("sizes/size"), 1u) << "the 224 B class at least";
  for (auto range = elements.equal_range("sizes/size"); range.first != range.second; ++range.first)
    for (const char *key : {"from", "to", "total", "count"}) EXPECT_EQ(range.first->second.count(key), 1u) << key;
  for (const char *parent : {"heap", "malloc"}) {
    for (const char *type : {"fast", "rest"}) Find(elements, std::string(parent) + "/total", type);
    for (const char *type : {"current", "max"}) Find(elements, std::string(parent) + "/system", type);
    for (const char *type : {"total", "mprotect"}) Find(elements, std::string(parent) + "/aspace", type);
  }
  std::map<std::string, std::string> mmap = Find(elements, "malloc/total", "mmap");
  hakmem_mallinfo info = hakmem_mallinfo2();
  EXPECT_EQ(std::stoull(mmap["count"]), info.hblks);
  EXPECT_EQ(std::stoull(mmap["size"]), info.hblkhd);
  EXPECT_GE(info.hblks, 1u);
  hakmem_free(huge);
  hakmem_free(small);
}

TEST(MallocInfo, OptionsOtherThanZeroAreInvalid) {
  FILE *stream = tmpfile();
  ASSERT_NE(stream, nullptr);
  errno = 0;
  EXPECT_EQ(hakmem_malloc_info(1, stream), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(ftell(stream), 0) << "nothing written";
  fclose(stream);
  errno = 0;
  EXPECT_EQ(hakmem_malloc_info(0, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Mallopt, ParametersWithoutACounterpartReturnZeroAndChangeNothing) {
  size_t count = 0;
  hk_config_table(&count);
  std::vector<int64_t> options;
  for (size_t i = 0; i < count; i++) options.push_back(hk_config_int(static_cast<hk_option_id>(i)));
  for (int param : {M_MXFAST, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_CHECK_ACTION, M_PERTURB, M_ARENA_TEST,
                    M_ARENA_MAX, 12345})
    EXPECT_EQ(hakmem_mallopt(param, 1 << 20), 0) << param;
  for (size_t i = 0; i < count; i++) EXPECT_EQ(hk_config_int(static_cast<hk_option_id>(i)), options[i]) << i;
}

TEST(Mallopt, TrimThresholdBoundsTheFreeMemoryKeptForHugeBlocks) {
  int64_t kept = hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES);
  EXPECT_EQ(hakmem_mallopt(M_TRIM_THRESHOLD, 0), 1);
  EXPECT_EQ(hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES), 0);
  void *block = hakmem_malloc(40 << 20);
  memset(block, 1, 40 << 20);
  hakmem_free(block);
  ace_stats stats;
  ace_stats_get(&stats);
  EXPECT_EQ(stats.huge_cache_bytes, 0u) << "nothing kept: unmapped at once, as glibc trims at once";
  EXPECT_EQ(hakmem_mallopt(M_TRIM_THRESHOLD, -1), 1);
  EXPECT_EQ(hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES), INT64_MAX) << "-1: no bound, as glibc's 'never trim'";
  EXPECT_EQ(hakmem_mallopt(M_TRIM_THRESHOLD, static_cast<int>(kept)), 1);
  EXPECT_EQ(hk_config_int(HK_OPT_HUGE_CACHE_MAX_BYTES), kept);
}

}  // namespace
