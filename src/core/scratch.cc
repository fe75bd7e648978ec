#include "core/scratch.h"

#include <algorithm>
#include <bit>
#include <mutex>
#include <utility>
#include <vector>

namespace loom {
namespace {

// Power-of-two classes from 4 KiB; at most this many bytes wait unused in the pool, plus one
// buffer larger than that: an in-place 256 MiB all-reduce keeps a copy of its input every call,
// and a fresh 256 MiB is 65536 page faults (it more than doubled the call).
constexpr size_t kMinBytes = 4096;
constexpr size_t kMaxCachedBytes = 128 << 20;

struct Pool {
  std::mutex mu;
  std::vector<uint8_t*> free[64];
  size_t cached = 0;     // in buffers up to kMaxCachedBytes
  bool oversized = false;  // one larger buffer is cached
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: operations may end during static destruction
  return *p;
}

size_t classOf(size_t capacity) { return static_cast<size_t>(std::countr_zero(capacity)); }

}  // namespace

Scratch::Scratch(size_t bytes) {
  capacity_ = std::bit_ceil(std::max(bytes, kMinBytes));
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    auto& list = p.free[classOf(capacity_)];
    if (!list.empty()) {
      data_ = list.back();
      list.pop_back();
      if (capacity_ > kMaxCachedBytes)
        p.oversized = false;
      else
        p.cached -= capacity_;
      return;
    }
  }
  data_ = new uint8_t[capacity_];
}

Scratch::~Scratch() { release(); }

Scratch::Scratch(Scratch&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}

Scratch& Scratch::operator=(Scratch&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

void Scratch::release() {
  if (!data_) return;
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (capacity_ > kMaxCachedBytes && !p.oversized) {
      p.free[classOf(capacity_)].push_back(data_);
      p.oversized = true;
      data_ = nullptr;
      return;
    }
    if (capacity_ <= kMaxCachedBytes && p.cached + capacity_ <= kMaxCachedBytes) {
      p.free[classOf(capacity_)].push_back(data_);
      p.cached += capacity_;
      data_ = nullptr;
      return;
    }
  }
  delete[] data_;
  data_ = nullptr;
}

}  // namespace loom
