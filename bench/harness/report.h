// Output of the *_perf programs (rank 0 only): nccl-tests' header, rows and footer, and -J JSON.
#pragma once

#include "options.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace loombench {

struct RankInfo {  // sent as bytes with loomAllGather, so fixed size
  int32_t rank;
  int32_t pid;
  char host[56];
};

struct Measurement {
  double timeUs = 0;
  double algBw = 0;  // GB/s, 1e9 bytes/s
  double busBw = 0;
  int64_t wrong = -1;  // -1: not checked (N/A)
};

struct Row {
  size_t bytes = 0;
  size_t count = 0;
  const char* type = "";
  const char* op = "none";
  int root = -1;
  Measurement outOfPlace, inPlace;
};

struct RunInfo {
  std::string program;
  int nranks = 0;
  int version = 0;
  const Options* options = nullptr;
  std::vector<RankInfo> ranks;
};

void printHeader(const RunInfo& info);
void printRowStart(const Row& row);
void printMeasurement(const Measurement& m);
void printRowEnd();
void printFooter(int64_t failedChecks, double avgBusBw);
// Returns false (after saying why on stderr) if the file cannot be written.
bool writeJson(const std::string& path, const RunInfo& info, const std::vector<Row>& rows, int64_t failedChecks,
               double avgBusBw);

}  // namespace loombench
