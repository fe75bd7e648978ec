// Index math shared by every algorithm, in one place so that sender and receiver always agree on
// boundaries: they compute them independently, and any disagreement would show up as a byte-count
// mismatch on the wire. Pure functions, no allocation, no transport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <boost/container/small_vector.hpp>

namespace loom::coll::patterns {

// Half-open range of elements [begin, end).
struct Range {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};

// Block `index` of `total` elements split into `parts` blocks: the first total % parts blocks get
// one element more, so sizes differ by at most one and no block is empty while total >= parts.
Range blockRange(size_t total, size_t parts, size_t index);
// Size of the largest block (block 0).
size_t largestBlock(size_t total, size_t parts);

// Elements per pipelining segment for `segmentBytes`: at least one element, so a segment size
// smaller than the datatype (or zero) still makes progress.
size_t segmentElems(size_t segmentBytes, size_t elemSize);

// Segments that a chunk of `maxChunkElems` elements is cut into: ceil(maxChunk / segElems), at
// least 1. Every chunk of an operation is cut into this same number of segments (segment k of a
// shorter chunk is blockRange(chunkLen, segments, k)), so segment k exists on every rank even
// when chunks differ by one element or are empty. Capped so that `phases * segments` step
// numbers fit comfortably in Tag::step (uint32); past the cap segments just get larger.
size_t segmentCount(size_t maxChunkElems, size_t segmentBytes, size_t elemSize, size_t phases);

// Ring neighbours and rank arithmetic modulo the world size (works for negative offsets).
int ringNext(int rank, int size);
int ringPrev(int rank, int size);
int wrapRank(int64_t rank, int size);

// Largest power of two <= n (n >= 1).
int largestPowerOfTwoAtMost(int n);

// Binomial tree rooted at `root`, over "relative" ranks vrank = (rank - root) mod size.
// Node v's parent is v with its lowest set bit cleared; its children are v + 2^j for every
// 2^j below v's lowest set bit (every 2^j < size for the root) with v + 2^j < size.
int toRelative(int rank, int root, int size);
int fromRelative(int vrank, int root, int size);
int binomialParent(int vrank);  // -1 for the root (vrank 0)
// Children as relative ranks, largest subtree first: a broadcast sends to them in this order so
// the deepest subtree starts earliest; a reduce combines them in this (fixed) order. Held inline
// up to 256 ranks: a small collective makes no allocation for its tree.
using RankList = boost::container::small_vector<int, 8>;
RankList binomialChildren(int vrank, int size);

}  // namespace loom::coll::patterns
