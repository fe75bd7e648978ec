// Scratch memory recycled through a process-wide pool: the algorithms' partials in flight and the
// TCP transport's stash of messages that arrived before their receive. A fresh allocation of a few
// MiB is fresh pages that the kernel clears on first touch: a 2 MiB scratch cost ~500 page faults
// on every operation (a tenth of a 4 MiB all-reduce), and stashing into fresh memory kept a
// broadcast receiver one operation behind its root for good (0.4 GB/s instead of 2.5). A buffer
// goes back to the pool when its Scratch is destroyed or replaced.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loom {

class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(size_t bytes);  // at least `bytes`, uninitialised
  ~Scratch();
  Scratch(Scratch&& other) noexcept;
  Scratch& operator=(Scratch&& other) noexcept;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  uint8_t* data() const { return data_; }

 private:
  void release();
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace loom
