// The driver of the peer benchmarks (gloo_perf, mpi_perf): the loop of Loom's harness
// (bench/harness/harness.cc) - sizes, warm-up, timed iterations, time aggregated across ranks,
// a check with fresh integer-valued inputs, nccl-tests' table - over another library.
//
// Only float32 is measured (all-reduce: sum); inputs come from the harness' patterns
// (bench/harness/data.h), small integers whose sum is exact in any order, so the check is bit
// for bit. A program supplies the library's control operations (Control) and the collective
// (Collective); the driver does the rest and returns the exit status.
#pragma once

#include "harness/options.h"
#include "harness/report.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace loompeer {

// The collective ops the driver needs besides the measured one, on the peer library itself.
struct Control {
  int rank = 0;
  int nranks = 1;
  // Combines the per-rank seconds: (rank 0: own), min, max or sum over ranks.
  std::function<double(double seconds, loombench::Aggregation)> reduceTime;
  std::function<int64_t(int64_t)> sumOverRanks;
  std::function<void()> barrier;
  // Every rank's RankInfo, in rank order (needed on rank 0 only).
  std::function<std::vector<loombench::RankInfo>(const loombench::RankInfo&)> gatherRankInfo;
};

// One prepared operation over fixed buffers; called for every iteration.
using Operation = std::function<void()>;

struct Collective {
  std::string program;                  // "gloo_perf"
  std::string description;              // JSON "program" and the header's first line
  std::vector<std::string> headerLines;  // extra "# ..." lines describing the library and setup
  bool reduces = true;                  // all-reduce (sum); false: broadcast from the root
  int root = -1;                        // broadcast root; -1 where it does not apply
  double busFactor = 1.0;
  // Broadcast out of place: the root sends from its send buffer and leaves its receive buffer
  // unwritten (MPI_Bcast has one buffer); the check then verifies the root's input is unchanged.
  bool rootRecvUnwritten = false;
  // Prepares the operation on count floats: out of place from send into recv, or in place on
  // send == recv. Returns an empty Operation where the library has no such variant (printed N/A).
  std::function<Operation(float* send, float* recv, size_t count, bool inPlace)> prepare;
};

// Strips the program's own flags from argv before the harness parses the rest: for each
// "-X VALUE" / "-XVALUE" / "--long VALUE" / "--long=VALUE" whose X or long name is listed, stores
// VALUE. Where accepts is given and rejects the value, the flag is left to the harness (mpi_perf's
// -c allreduce beside the harness' -c 0/1). Returns false (after printing why) when a flag lacks
// its value.
struct ExtraFlag {
  char shortName;         // 0: none
  const char* longName;   // nullptr: none
  std::string* value;
  bool (*accepts)(const char* value) = nullptr;
};
bool takeExtraFlags(int* argc, char** argv, const std::vector<ExtraFlag>& flags, const char* program);

// Rejects what the peer programs do not measure (other datatypes or ops); exits 2.
void requireFloatSum(const loombench::Options& o, bool reduces, const char* program);

// This rank's RankInfo (pid, host name).
loombench::RankInfo localRankInfo(int rank);

// Runs every size and returns the exit status (0 only if every check passed).
int run(const loombench::Options& o, const Collective& coll, const Control& ctl);

}  // namespace loompeer
