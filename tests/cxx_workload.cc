// A deterministic C++ workload for the preload test: the standard containers, strings,
// shared_ptr graphs, aligned new (alignas(256)) and sized delete, from several threads. Prints
// digests of what it built; exits non-zero if an aligned allocation is misaligned.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

uint64_t MixString(uint64_t h, const std::string &s) {
  for (unsigned char c : s) h = Mix(h, c);
  return h;
}

struct Rng {
  uint64_t state;
  uint64_t Next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

struct alignas(256) Aligned {
  uint64_t values[40];
};

struct Node {
  int value;
  std::vector<std::shared_ptr<Node>> children;
  std::weak_ptr<Node> parent;
};

bool misaligned = false;

uint64_t Containers(uint64_t seed) {
  Rng rng{seed};
  uint64_t h = seed;
  std::vector<std::string> strings;
  for (int i = 0; i < 200000; ++i) {
    std::string s(rng.Next() % 60, static_cast<char>('a' + i % 26));
    s += std::to_string(rng.Next() % 100000);
    strings.push_back(std::move(s));
    if (i % 5 == 0) strings.erase(strings.begin() + static_cast<long>(rng.Next() % strings.size()));
  }
  std::map<std::string, int> ordered;
  std::unordered_map<uint64_t, std::vector<int>> buckets;
  for (size_t i = 0; i < strings.size(); ++i) {
    ordered[strings[i]] += static_cast<int>(i);
    buckets[rng.Next() % 5000].push_back(static_cast<int>(i));
    if (i % 7 == 0) ordered.erase(strings[rng.Next() % strings.size()]);
  }
  for (const auto &[key, value] : ordered) h = Mix(MixString(h, key), static_cast<uint64_t>(value));
  std::map<uint64_t, size_t> sizes;  // sorted view of the unordered map
  for (const auto &[key, list] : buckets) sizes[key] = list.size();
  for (const auto &[key, size] : sizes) h = Mix(Mix(h, key), size);
  return h;
}

uint64_t Graph(uint64_t seed) {
  Rng rng{seed};
  auto root = std::make_shared<Node>();
  std::vector<std::shared_ptr<Node>> all{root};
  for (int i = 1; i < 100000; ++i) {
    auto node = std::make_shared<Node>();
    node->value = i;
    auto &parent = all[rng.Next() % all.size()];
    node->parent = parent;
    parent->children.push_back(node);
    all.push_back(std::move(node));
  }
  uint64_t h = seed;
  for (size_t i = 0; i < all.size(); i += 37) {
    int depth = 0;
    for (auto p = all[i]->parent.lock(); p; p = p->parent.lock()) ++depth;
    h = Mix(h, static_cast<uint64_t>(depth));
  }
  all.clear();  // the tree frees itself through the root
  return h;
}

uint64_t AlignedAndSized(uint64_t seed) {
  Rng rng{seed};
  uint64_t h = seed;
  std::vector<std::unique_ptr<Aligned>> owned;
  for (int i = 0; i < 20000; ++i) {
    auto a = std::make_unique<Aligned>();
    if (reinterpret_cast<uintptr_t>(a.get()) % 256 != 0) misaligned = true;
    a->values[i % 40] = rng.Next();
    h = Mix(h, a->values[i % 40] % 1000);
    owned.push_back(std::move(a));
    if (i % 3 == 0) owned.erase(owned.begin() + static_cast<long>(rng.Next() % owned.size()));
  }
  for (int i = 0; i < 2000; ++i) {
    size_t n = 1 + rng.Next() % 64;
    Aligned *array = new Aligned[n];
    if (reinterpret_cast<uintptr_t>(array) % 256 != 0) misaligned = true;
    array[n - 1].values[0] = n;
    h = Mix(h, array[n - 1].values[0]);
    delete[] array;
  }
  for (int i = 0; i < 50000; ++i) {  // explicit sized and aligned operator new / delete
    size_t size = 1 + rng.Next() % 4096;
    void *p = ::operator new(size);
    static_cast<char *>(p)[size - 1] = 1;
    ::operator delete(p, size);
    std::align_val_t align{static_cast<size_t>(64) << (i % 4)};
    void *q = ::operator new(size, align);
    if (reinterpret_cast<uintptr_t>(q) % static_cast<size_t>(align) != 0) misaligned = true;
    ::operator delete(q, size, align);
  }
  return h;
}

}  // namespace

int main() {
  uint64_t results[4][3] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &results] {
      uint64_t seed = 0x1234567ULL * static_cast<uint64_t>(t + 1);
      results[t][0] = Containers(seed);
      results[t][1] = Graph(seed);
      results[t][2] = AlignedAndSized(seed);
    });
  }
  for (auto &thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) {
    std::printf("thread %d: containers %016llx graph %016llx aligned %016llx\n", t,
                static_cast<unsigned long long>(results[t][0]),
                static_cast<unsigned long long>(results[t][1]),
                static_cast<unsigned long long>(results[t][2]));
  }
  if (misaligned) {
    std::fprintf(stderr, "aligned new returned a misaligned pointer\n");
    return 1;
  }
  std::printf("aligned new: all 256-byte aligned\n");
  return 0;
}
