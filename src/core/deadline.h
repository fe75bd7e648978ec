// Deadlines: every blocking call in Loom takes one, so nothing waits forever.
#pragma once

#include <chrono>
#include <cstdint>

namespace loom {

using Clock = std::chrono::steady_clock;

class Deadline {
 public:
  static Deadline never() { return Deadline(Clock::time_point::max()); }
  static Deadline afterMs(int64_t ms) {
    return ms < 0 ? never() : Deadline(Clock::now() + std::chrono::milliseconds(ms));
  }
  explicit Deadline(Clock::time_point at) : at_(at) {}
  bool expired() const { return Clock::now() >= at_; }
  bool isNever() const { return at_ == Clock::time_point::max(); }
  Clock::time_point at() const { return at_; }
  // Milliseconds left, clamped to [0, INT32_MAX]; for poll()-style timeouts.
  int remainingMs() const {
    if (isNever()) return INT32_MAX;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at_ - Clock::now()).count();
    return left <= 0 ? 0 : (left > INT32_MAX ? INT32_MAX : static_cast<int>(left));
  }
  Deadline earlier(const Deadline& o) const { return at_ < o.at_ ? *this : o; }

 private:
  Clock::time_point at_;
};

}  // namespace loom
