// Chunk and segment math, ring and binomial-tree index math (collectives/patterns).
#include "collectives/patterns/patterns.h"

#include <catch2/catch.hpp>

#include <set>

using namespace loom::coll::patterns;

TEST_CASE("blocks cover the total exactly, in order, sizes differing by at most one", "[patterns]") {
  for (size_t total : {0, 1, 7, 8, 1031, 100000})
    for (size_t parts : {1, 2, 3, 5, 8, 11}) {
      size_t next = 0, minSize = SIZE_MAX, maxSize = 0;
      for (size_t i = 0; i < parts; ++i) {
        Range r = blockRange(total, parts, i);
        CHECK(r.begin == next);
        next = r.end;
        minSize = std::min(minSize, r.size());
        maxSize = std::max(maxSize, r.size());
      }
      CHECK(next == total);
      CHECK(maxSize - minSize <= 1);
      CHECK(largestBlock(total, parts) == maxSize);
    }
}

TEST_CASE("segments hold at least one element and every chunk has the same number of them", "[patterns]") {
  CHECK(segmentElems(0, 4) == 1);
  CHECK(segmentElems(3, 4) == 1);
  CHECK(segmentElems(4096, 4) == 1024);
  CHECK(segmentCount(0, 4096, 4, 2) == 1);
  CHECK(segmentCount(1024, 4096, 4, 2) == 1);
  CHECK(segmentCount(1025, 4096, 4, 2) == 2);
  size_t many = segmentCount(size_t(1) << 40, 1, 1, 2);
  CHECK(many * 2 < (size_t(1) << 32));  // step numbers fit in a uint32 tag step
}

TEST_CASE("ring neighbours wrap around", "[patterns]") {
  CHECK(ringNext(4, 5) == 0);
  CHECK(ringPrev(0, 5) == 4);
  CHECK(wrapRank(-7, 5) == 3);
  CHECK(ringNext(0, 1) == 0);
}

TEST_CASE("largest power of two at most n", "[patterns]") {
  CHECK(largestPowerOfTwoAtMost(1) == 1);
  CHECK(largestPowerOfTwoAtMost(5) == 4);
  CHECK(largestPowerOfTwoAtMost(8) == 8);
  CHECK(largestPowerOfTwoAtMost(11) == 8);
}

TEST_CASE("binomial tree: every non-root has one parent that lists it as a child", "[patterns]") {
  for (int size : {1, 2, 3, 5, 8, 11})
    for (int root = 0; root < size; ++root) {
      std::set<int> reached{0};
      for (int v = 0; v < size; ++v) {
        for (int c : binomialChildren(v, size)) {
          CHECK(binomialParent(c) == v);
          CHECK(reached.insert(c).second);
        }
        CHECK(fromRelative(toRelative((v + root) % size, root, size), root, size) == (v + root) % size);
      }
      CHECK(static_cast<int>(reached.size()) == size);
    }
  CHECK(binomialParent(0) == -1);
}
