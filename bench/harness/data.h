// Benchmark data: datatype and op names, inputs built from a seed, and bit-exact checking.
//
// Inputs are small integers chosen per datatype and op so that the exact result is representable
// and the same in any reduction order (no rounding, no overflow): then every correct algorithm -
// ring, tree, recursive doubling - must produce the expected bytes exactly. Only float `avg` (a
// division) gets a tolerance.
#pragma once

#include <loom/loom.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loombench {

struct TypeInfo {
  loomDataType_t type;
  const char* name;  // nccl-tests' spelling: "float", "half", "bfloat16", ...
  size_t size;
};

// Every datatype, in nccl-tests' `-d all` order.
const std::vector<TypeInfo>& allTypes();
const TypeInfo& typeInfo(loomDataType_t type);
// Every op, in nccl-tests' `-o all` order.
const std::vector<loomRedOp_t>& allOps();
const char* opName(loomRedOp_t op);

// Accepts one name (with aliases such as float32, fp16, bf16) or "all"; false if unknown.
bool parseTypes(const std::string& text, std::vector<loomDataType_t>* out);
bool parseOps(const std::string& text, std::vector<loomRedOp_t>* out);

// What the inputs of one run are built for.
struct Pattern {
  loomDataType_t type = loomFloat32;
  bool reduces = false;  // false: a copy collective (broadcast, all-gather, send/recv)
  loomRedOp_t op = loomSum;
  int nranks = 1;
  uint64_t seed = 0;
};

// Writes input(rank, offset + j) for j < count into buf (datatype pattern.type).
void fillInput(const Pattern& pattern, void* buf, size_t count, int rank, size_t offset = 0);
// Overwrites bytes with a value no correct result has, so an unwritten output is caught.
void poison(void* buf, size_t bytes);

// Compares outputs with their closed-form expectation, counting wrong elements.
class Checker {
 public:
  explicit Checker(const Pattern& pattern);
  size_t elemSize() const { return elemSize_; }
  // got[i] must equal the reduction over every rank of input(rank, offset + i).
  void reduced(const void* got, size_t count, size_t offset = 0);
  // got[i] must equal input(srcRank, offset + i).
  void copied(const void* got, size_t count, int srcRank, size_t offset = 0);

  int64_t wrong() const { return wrong_; }
  int64_t checked() const { return checked_; }
  // The first mismatch, for the error message.
  std::string firstMismatch() const { return first_; }

 private:
  template <typename Tr>
  void compare(const void* got, size_t count, size_t base, int srcRank);

  Pattern pattern_;
  size_t elemSize_;
  std::vector<uint64_t> rankSeeds_;
  int64_t wrong_ = 0;
  int64_t checked_ = 0;
  std::string first_;
};

}  // namespace loombench
