// Command-line options of the *_perf programs: nccl-tests' flags, names and defaults.
#pragma once

#include <loom/loom.h>

#include <cstddef>
#include <string>
#include <vector>

namespace loombench {

// How the per-rank times are combined into the reported one (nccl-tests' -a values).
enum class Aggregation { Rank0 = 0, Avg = 1, Min = 2, Max = 3, Sum = 4 };
const char* aggregationName(Aggregation a);

struct Options {
  size_t minBytes = 32u << 20;
  size_t maxBytes = 32u << 20;
  size_t stepBytes = 1u << 20;
  size_t stepFactor = 1;  // > 1: multiply the size by it; otherwise add stepBytes
  int iters = 20;
  int warmupIters = 1;
  int check = 1;
  std::vector<loomRedOp_t> ops{loomSum};
  std::vector<loomDataType_t> types{loomFloat32};
  int root = 0;
  int blocking = 0;
  Aggregation aggregation = Aggregation::Avg;
  int timeoutSec = 0;  // 0: none
  std::string jsonPath;

  // The sizes in order: min, then *factor or +step, while <= max.
  std::vector<size_t> sizes() const;
};

// Parses argv. On -h prints usage and exits 0; on a bad flag prints why and exits 2.
Options parseOptions(int argc, char** argv, const char* program);

}  // namespace loombench
