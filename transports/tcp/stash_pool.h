// Buffers for messages that arrive before their receive is posted, recycled.
//
// Why a pool: a stash of a large message freshly allocated is fresh pages, and the kernel clears
// every page on first touch, inside recv(). When a sender keeps one operation ahead of its
// receiver (back-to-back broadcasts do), every message is stashed, and those page faults made the
// receiver slower than the sender, so it never caught up: 0.4 GB/s instead of 2.5. Recycled
// buffers keep their pages; what is cached is bounded, so a burst does not pin memory forever.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace loom::tcp {

struct StashBuffer {
  std::unique_ptr<uint8_t[]> bytes;
  size_t capacity = 0;
  uint8_t* data() const { return bytes.get(); }
};

class StashPool {
 public:
  // Buffers are kept in power-of-two classes from this size up (smaller requests round up to it).
  static constexpr size_t kMinPooledBytes = 256;
  // At most this many bytes sit unused in the pool.
  static constexpr size_t kMaxCachedBytes = 64 << 20;

  StashBuffer take(size_t bytes) {
    const size_t capacity = std::bit_ceil(std::max(bytes, kMinPooledBytes));
    auto& list = free_[classOf(capacity)];
    if (!list.empty()) {
      StashBuffer b = std::move(list.back());
      list.pop_back();
      cached_ -= b.capacity;
      return b;
    }
    // Uninitialised: every byte will be written by the arriving message.
    return StashBuffer{std::unique_ptr<uint8_t[]>(new uint8_t[capacity]), capacity};
  }

  void give(StashBuffer&& b) {
    if (!b.bytes || cached_ + b.capacity > kMaxCachedBytes) return;  // freed
    cached_ += b.capacity;
    free_[classOf(b.capacity)].push_back(std::move(b));
  }

 private:
  static size_t classOf(size_t powerOfTwo) { return static_cast<size_t>(std::countr_zero(powerOfTwo)); }

  std::vector<StashBuffer> free_[64];
  size_t cached_ = 0;
};

}  // namespace loom::tcp
