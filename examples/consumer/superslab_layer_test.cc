// The SuperSlab layer on its own, from another workspace: acquire a slab and a span from the
// shared pool, look them up through the registry, release them.
#include <cstdint>
#include <cstring>

#include "allocator/superslab/registry.h"
#include "allocator/superslab/shared_pool.h"
#include "gtest/gtest.h"

TEST(SuperslabLayerTest, AcquireLookUpRelease) {
  ss_slab *slab = sp_acquire_slab(1);
  ASSERT_NE(slab, nullptr);
  char *base = static_cast<char *>(sp_slab_base(slab));
  size_t size = sp_slab_usable_size(slab);
  ASSERT_GE(size, size_t{60} << 10);
  memset(base, 0x5a, size);
  EXPECT_EQ(ss_registry_lookup(base), slab);
  EXPECT_EQ(ss_registry_lookup(base + size - 1), slab);
  EXPECT_NE(ss_registry_find(base), nullptr);
  int on_stack = 0;
  EXPECT_EQ(ss_registry_find(&on_stack), nullptr);

  ss_slab *span = sp_acquire_span(4);
  ASSERT_NE(span, nullptr);
  EXPECT_EQ(sp_slab_usable_size(span), size_t{4} * (64 << 10));
  EXPECT_EQ(ss_registry_lookup(sp_slab_base(span)), span);
  sp_release_span(span);
  sp_release_slab(slab);
}
