// The heap profiler in-process, through the prefixed API (so it also runs under the sanitizer
// configs, where no preload test can): its numbers (log, exp, weights, gaps), then, with the
// profiler started by the test itself, sampled blocks through every call of the API, the reports
// of a bad free, the file it writes, and threads. The whole-program test with google-pprof and a
// program built without frame pointers is //tests:profile_preload_test.
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "allocator/base/config.h"
#include "allocator/base/stats.h"
#include "allocator/hakmem.h"
#include "allocator/hakmem_profile.h"
#include "allocator/midlarge/ace.h"
#include "gtest/gtest.h"

namespace {

uint64_t SplitMix(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

TEST(ProfileMath, LogAndExpAgreeWithLibm) {
  for (double x = 1e-300; x < 1e300; x *= 1.37) {
    EXPECT_NEAR(hk_profile_log(x), std::log(x), 1e-12 * std::fmax(1.0, std::fabs(std::log(x)))) << x;
  }
  for (double x = -700; x <= 700; x += 0.37) {
    EXPECT_NEAR(hk_profile_exp(x) / std::exp(x), 1.0, 1e-12) << x;
  }
  EXPECT_EQ(hk_profile_exp(-800), 0.0);
}

TEST(ProfileMath, WeightIsOneOverTheChanceOfBeingSampled) {
  const uint64_t rate = 512 << 10;
  for (size_t size : {1ul, 16ul, 1024ul, 100000ul, 524288ul, 5ul << 20, 1ul << 30}) {
    double expected = 1 / -std::expm1(-static_cast<double>(size) / rate);
    EXPECT_NEAR(hk_profile_weight(size, rate) / expected, 1.0, 1e-9) << size;
  }
  EXPECT_NEAR(hk_profile_weight(1, rate), rate + 0.5, 0.01);  // a byte stands for ~rate of them
  EXPECT_NEAR(hk_profile_weight(1ul << 30, rate), 1.0, 1e-12);  // a huge block for itself
}

// 200,000 gaps: the mean within 1.5 % of the rate (the mean's sd is 0.22 %: 6.7 sd) and the share
// above the rate within 0.01 of 1/e (sd 0.0011: 9 sd).
TEST(ProfileMath, GapsAreExponentialWithTheRateAsMean) {
  const uint64_t rate = 512 << 10;
  const int draws = 200000;
  uint64_t state = 42;
  double sum = 0;
  int above = 0;
  for (int i = 0; i < draws; i++) {
    int64_t gap = hk_profile_gap(SplitMix(&state), rate);
    ASSERT_GE(gap, 1);
    ASSERT_LE(gap, static_cast<int64_t>(40 * rate));
    sum += static_cast<double>(gap);
    above += gap > static_cast<int64_t>(rate);
  }
  EXPECT_NEAR(sum / draws / rate, 1.0, 0.015);
  EXPECT_NEAR(static_cast<double>(above) / draws, std::exp(-1.0), 0.01);
}

std::string ProfilePath() {
  const char *dir = getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/hakmem_profile_test." + std::to_string(getpid());
}

std::string ReadFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts the profiler once for this process, at 4 KiB: a 3,000-byte block is sampled with
// probability 1 - exp(-3000/4096) = 0.52.
class Profiler : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (hk_profile_on()) return;
    static std::string path = "HAKMEM_PROFILE=" + ProfilePath();
    static std::string rate = "HAKMEM_PROFILE_RATE=4096";
    static char *env[] = {&path[0], &rate[0], nullptr};
    hk_config_load(env);
    hk_profile_setup();
  }

  // Allocates until one block is sampled (the samples counter moves); returns it.
  static void *SampledBlock(size_t size) {
    for (int i = 0; i < 10000; i++) {
      uint64_t before = hk_stat_get(HK_STAT_PROFILE_SAMPLES);
      void *block = hakmem_malloc(size);
      if (hk_stat_get(HK_STAT_PROFILE_SAMPLES) != before) return block;
      hakmem_free(block);
    }
    return nullptr;
  }
};

TEST_F(Profiler, IsOn) {
  ASSERT_TRUE(hk_profile_on());
  ASSERT_TRUE(hk_profile_started);
}

TEST_F(Profiler, SampledBlocksGoThroughEveryCall) {
  const int count = 2000;
  const size_t size = 3000;
  uint64_t samples = hk_stat_get(HK_STAT_PROFILE_SAMPLES);
  uint64_t live = hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES);
  std::vector<unsigned char *> blocks;
  for (int i = 0; i < count; i++) {
    auto *block = static_cast<unsigned char *>(i % 2 ? hakmem_malloc(size) : hakmem_calloc(1, size));
    ASSERT_NE(block, nullptr);
    if (i % 2 == 0) {
      for (size_t k = 0; k < size; k++) ASSERT_EQ(block[k], 0) << "calloc, block " << i;
    }
    ASSERT_TRUE(hakmem_owns(block));
    ASSERT_GE(hakmem_malloc_usable_size(block), size);
    memset(block, i & 0xff, size);
    blocks.push_back(block);
  }
  // About 1,040 sampled (0.52 each); at least 500 is 34 sd below.
  EXPECT_GE(hk_stat_get(HK_STAT_PROFILE_SAMPLES) - samples, 500u);
  EXPECT_GT(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live);
  for (int i = 0; i < count; i++) {
    blocks[i] = static_cast<unsigned char *>(hakmem_realloc(blocks[i], 3 * size));
    ASSERT_NE(blocks[i], nullptr);
    ASSERT_EQ(blocks[i][size - 1], i & 0xff);
    blocks[i] = static_cast<unsigned char *>(hakmem_realloc(blocks[i], 50));
    ASSERT_NE(blocks[i], nullptr);
    ASSERT_EQ(blocks[i][49], i & 0xff);
  }
  for (unsigned char *block : blocks) hakmem_free(block);
  EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live);
}

TEST_F(Profiler, ASampledBlockFreedTwiceIsADoubleFree) {
  void *block = SampledBlock(2000);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(hk_profile_block_size(block), 4096u);
  hakmem_free(block);
  EXPECT_EQ(hk_profile_block_size(block), 0u);
  EXPECT_DEATH(hakmem_free(block), "hakmem: free\\(\\): double free 0x");
  EXPECT_DEATH(hakmem_malloc_usable_size(block), "hakmem: malloc_usable_size\\(\\): use after free 0x");
  EXPECT_DEATH(hakmem_realloc(block, 10), "hakmem: realloc\\(\\): use after free 0x");
}

uint64_t LiveHugeBlocks() {
  ace_stats stats;
  ace_stats_get(&stats);
  return stats.huge_live;
}

// A sampled block above 128 KiB is the huge layer's, only recorded: no mapping of the profiler's
// (big_blocks ran 100x slower when every one faulted in a fresh mapping and unmapped it again).
// 1 MiB: a huge block; 200 KiB: a block of the huge arena (a class would hold it unsampled).
class ProfilerHuge : public Profiler, public ::testing::WithParamInterface<size_t> {};

TEST_P(ProfilerHuge, SampledBlocksAbove128KiBAreTheHugeLayers) {
  const size_t size = GetParam();
  uint64_t live = hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES);
  uint64_t huge_before = LiveHugeBlocks();
  auto *block = static_cast<unsigned char *>(SampledBlock(size));
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live + size);
  EXPECT_EQ(hk_profile_block_size(block), 0u) << "a mapping of the profiler's";
  EXPECT_EQ(LiveHugeBlocks(), huge_before + 1);
  EXPECT_GE(hakmem_malloc_usable_size(block), size);
  memset(block, 0x5a, size);
  // Resized as a huge block, and out of the profile (a realloc counts as a free).
  block = static_cast<unsigned char *>(hakmem_realloc(block, 3 * size));
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block[size - 1], 0x5a);
  EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live);
  EXPECT_EQ(LiveHugeBlocks(), huge_before + 1);
  hakmem_free(block);
  EXPECT_EQ(LiveHugeBlocks(), huge_before);
  EXPECT_DEATH(hakmem_free(block), "hakmem: free\\(\\): double free 0x");
  // Freed while sampled: out of the profile and of the huge table; calloc's is zero-filled.
  for (int i = 0; i < 20; i++) {
    uint64_t samples = hk_stat_get(HK_STAT_PROFILE_SAMPLES);
    auto *zeroed = static_cast<unsigned char *>(hakmem_calloc(1, size));
    ASSERT_NE(zeroed, nullptr);
    for (size_t k = 0; k < size; k += 4096) ASSERT_EQ(zeroed[k], 0) << k;
    ASSERT_EQ(zeroed[size - 1], 0);
    bool sampled = hk_stat_get(HK_STAT_PROFILE_SAMPLES) != samples;
    EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live + (sampled ? size : 0));
    memset(zeroed, 0xff, size);
    hakmem_free(zeroed);
  }
  EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live);
  EXPECT_EQ(LiveHugeBlocks(), huge_before);
}

INSTANTIATE_TEST_SUITE_P(Sizes, ProfilerHuge, ::testing::Values(size_t{1} << 20, size_t{200} << 10));

TEST_F(Profiler, OtherBadPointersAreReportedAsBefore) {
  static char not_ours[64];
  EXPECT_DEATH(hakmem_free(not_ours + 16), "hakmem: free\\(\\): invalid pointer 0x");
  EXPECT_DEATH(hakmem_realloc(not_ours + 16, 10), "hakmem: realloc\\(\\): invalid pointer 0x");
}

TEST_F(Profiler, WritesTheLegacyHeapProfile) {
  std::vector<void *> kept;
  for (int i = 0; i < 200; i++) kept.push_back(hakmem_malloc(3000));
  uint64_t writes = hk_stat_get(HK_STAT_PROFILE_WRITES);
  ASSERT_EQ(hk_profile_write(), 0);
  EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_WRITES), writes + 1);
  std::string text = ReadFile(ProfilePath());
  ASSERT_EQ(text.rfind("heap profile: ", 0), 0u) << text.substr(0, 200);
  std::istringstream lines(text);
  std::string header, first;
  std::getline(lines, header);
  std::getline(lines, first);
  unsigned long long n1, s1, n2, s2;
  ASSERT_EQ(sscanf(header.c_str(), "heap profile: %llu: %llu [%llu: %llu] @ heapprofile", &n1, &s1, &n2, &s2), 4) << header;
  // The 200 blocks kept (600,000 bytes) are in use: the weighted live bytes are near them (about
  // 104 samples, sd 7 %; 50 % is 7 sd), and never above what was ever allocated.
  EXPECT_GT(s1, 300000u);
  EXPECT_LE(s1, s2);
  EXPECT_LE(n1, n2);
  ASSERT_EQ(sscanf(first.c_str(), "%llu: %llu [%llu: %llu] @ 0x", &n1, &s1, &n2, &s2), 4) << first;
  EXPECT_NE(text.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
  EXPECT_NE(text.find("[stack]"), std::string::npos);  // /proc/self/maps follows
  for (void *block : kept) hakmem_free(block);
}

TEST_F(Profiler, ThreadsSampleAndFreeEachOthersBlocks) {
  uint64_t live = hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES);
  const int threads = 4, per_thread = 20000;
  std::vector<std::vector<void *>> blocks(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&blocks, t] {
      uint64_t state = t;
      for (int i = 0; i < per_thread; i++) {
        void *block = hakmem_malloc(SplitMix(&state) % 9000 + 1);
        ASSERT_NE(block, nullptr);
        if (i % 2) {
          hakmem_free(block);
        } else {
          blocks[t].push_back(block);
        }
      }
    });
  }
  for (auto &worker : workers) worker.join();
  workers.clear();
  // Each thread frees another's blocks (sampled ones among them).
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&blocks, t] {
      for (void *block : blocks[(t + 1) % threads]) hakmem_free(block);
    });
  }
  for (auto &worker : workers) worker.join();
  EXPECT_EQ(hk_stat_get(HK_STAT_PROFILE_LIVE_BYTES), live);
}

}  // namespace
