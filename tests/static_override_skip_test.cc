// What //tests:static_override_test compiles to under asan/tsan: prints why it cannot run and
// reports a skip.
#include <cstdio>

#include "gtest/gtest.h"

constexpr char kReason[] =
    "a sanitized binary linked with //:hakmem_static fights the sanitizer's own malloc";

TEST(StaticOverrideTest, SkippedUnderSanitizer) {
  std::printf("SKIPPED: %s\n", kReason);
  GTEST_SKIP() << kReason;
}
