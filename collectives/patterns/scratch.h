// Scratch memory for the algorithms (partials in flight, received halves), recycled across
// operations. A fresh allocation of a few MiB is fresh pages that the kernel clears on first
// touch: a 2 MiB scratch cost ~500 page faults on every operation, about a tenth of a 4 MiB
// all-reduce. Buffers come back to a process-wide pool when the operation ends.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loom::coll {

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

}  // namespace loom::coll
