// The caller's in-place input, kept piece by piece as an algorithm is about to overwrite it, so a
// failed operation can hand the input back (LOOM_RESTORE_INPUT) without first copying the whole
// vector: at 256 MiB that up-front copy was a fifth of a 2-rank all-reduce, all of it before the
// first byte moved. Kept this way, the bytes an algorithm reduces are copied while they are in
// cache for the reduction anyway, and the rest in moments the rank would spend waiting.
//
// The vector is split into regions (an algorithm's chunks), each overwritten from its start on,
// in an order the algorithm names. What is kept of a region is a prefix; before writing a byte the
// algorithm calls keep() up to that byte; keepAhead() keeps the next piece in that order. So
// everything ever overwritten has been kept, and restore() copies back the kept prefixes only.
#pragma once

#include "core/scratch.h"
#include "core/stream_copy.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace loom::coll {

class KeptInput {
 public:
  struct Region {
    size_t begin = 0;  // bytes from the start of the vector
    size_t size = 0;
  };

  KeptInput() = default;
  // `order`: the regions in the order the algorithm first overwrites them.
  KeptInput(uint8_t* input, size_t bytes, std::vector<Region> order)
      : input_(input), copy_(bytes), order_(std::move(order)), kept_(order_.size(), 0) {}

  bool active() const { return input_ != nullptr; }

  // Keep region i (index into the order) up to byte `end` of the vector (not past the region).
  void keep(size_t i, size_t end) {
    const Region& r = order_[i];
    const size_t upTo = std::min(end, r.begin + r.size) - std::min(end, r.begin);
    if (kept_[i] >= upTo) return;
    copyStreaming(copy_.data() + r.begin + kept_[i], input_ + r.begin + kept_[i], upTo - kept_[i]);
    kept_[i] = upTo;
  }

  // Keep up to `maxBytes` more, first region first (nothing once everything is kept).
  void keepAhead(size_t maxBytes) {
    while (next_ < order_.size() && kept_[next_] == order_[next_].size) ++next_;
    if (next_ < order_.size()) keep(next_, order_[next_].begin + kept_[next_] + maxBytes);
  }

  void restore() const {
    for (size_t i = 0; i < order_.size(); ++i)
      if (kept_[i]) std::memcpy(input_ + order_[i].begin, copy_.data() + order_[i].begin, kept_[i]);
  }

  void release() { *this = KeptInput(); }

 private:
  uint8_t* input_ = nullptr;
  Scratch copy_;
  std::vector<Region> order_;
  std::vector<size_t> kept_;  // bytes kept of each region, from its start
  size_t next_ = 0;           // first region keepAhead() may still have to copy
};

}  // namespace loom::coll
