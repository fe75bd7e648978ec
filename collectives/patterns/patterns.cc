#include "collectives/patterns/patterns.h"

#include <algorithm>

namespace loom::coll::patterns {

Range blockRange(size_t total, size_t parts, size_t index) {
  if (parts == 0) return {};
  const size_t base = total / parts;
  const size_t extra = total % parts;
  // Blocks before `index`: min(index, extra) of them carry one extra element. No product here
  // can overflow: index * base <= total.
  const size_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

size_t largestBlock(size_t total, size_t parts) { return parts == 0 ? 0 : total / parts + (total % parts ? 1 : 0); }

size_t segmentElems(size_t segmentBytes, size_t elemSize) {
  if (elemSize == 0) return 1;
  return std::max<size_t>(1, segmentBytes / elemSize);
}

size_t segmentCount(size_t maxChunkElems, size_t segmentBytes, size_t elemSize, size_t phases) {
  const size_t per = segmentElems(segmentBytes, elemSize);
  size_t segments = maxChunkElems / per + (maxChunkElems % per ? 1 : 0);
  // Leave half the step space for algorithm-specific extra steps; 2^31 messages per pair is far
  // beyond any sensible configuration, so the cap only guards against absurd segment sizes.
  const size_t cap = std::max<size_t>(1, (size_t{1} << 31) / std::max<size_t>(1, phases));
  return std::clamp<size_t>(segments, 1, cap);
}

int wrapRank(int64_t rank, int size) {
  const int64_t r = rank % size;
  return static_cast<int>(r < 0 ? r + size : r);
}
int ringNext(int rank, int size) { return wrapRank(int64_t(rank) + 1, size); }
int ringPrev(int rank, int size) { return wrapRank(int64_t(rank) - 1, size); }

int largestPowerOfTwoAtMost(int n) {
  int p = 1;
  while (p <= n / 2) p *= 2;
  return p;
}

int toRelative(int rank, int root, int size) { return wrapRank(int64_t(rank) - root, size); }
int fromRelative(int vrank, int root, int size) { return wrapRank(int64_t(vrank) + root, size); }

int binomialParent(int vrank) { return vrank == 0 ? -1 : vrank & (vrank - 1); }

RankList binomialChildren(int vrank, int size) {
  // Masks strictly below the lowest set bit of vrank (all masks < size for the root).
  const int64_t limit = vrank == 0 ? int64_t(size) : int64_t(vrank & -vrank);
  RankList children;
  int64_t mask = 1;
  while (mask < limit) mask <<= 1;
  for (mask >>= 1; mask >= 1; mask >>= 1) {
    if (int64_t(vrank) + mask < size) children.push_back(static_cast<int>(vrank + mask));
  }
  return children;
}

}  // namespace loom::coll::patterns
