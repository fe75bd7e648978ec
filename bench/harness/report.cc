#include "report.h"

#include "data.h"

#include <cerrno>
#include <cstring>

namespace loombench {
namespace {

// nccl-tests' time column: fewer decimals as the number grows, always 7 wide.
void formatTime(char* out, size_t n, double us) {
  if (us >= 10000.0)
    std::snprintf(out, n, "%7.0f", us);
  else if (us >= 100.0)
    std::snprintf(out, n, "%7.1f", us);
  else
    std::snprintf(out, n, "%7.2f", us);
}

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void jsonMeasurement(FILE* f, const char* key, const Measurement& m) {
  std::fprintf(f, "\"%s\": {\"time_us\": %.3f, \"algbw_gbps\": %.6f, \"busbw_gbps\": %.6f, \"wrong\": ", key,
               m.timeUs, m.algBw, m.busBw);
  if (m.wrong < 0)
    std::fprintf(f, "null}");
  else
    std::fprintf(f, "%lld}", static_cast<long long>(m.wrong));
}

}  // namespace

void printHeader(const RunInfo& info) {
  const Options& o = *info.options;
  const bool factor = o.stepFactor > 1;
  std::printf("# Collective test starting: %s\n", info.program.c_str());
  std::printf(
      "# nRanks %d minBytes %zu maxBytes %zu step: %zu(%s) warmup iters: %d iters: %d agg iters: 1 validation: %d "
      "blocking: %d average: %d(%s) timeout: %d\n",
      info.nranks, o.minBytes, o.maxBytes, factor ? o.stepFactor : o.stepBytes, factor ? "factor" : "bytes",
      o.warmupIters, o.iters, o.check, o.blocking, static_cast<int>(o.aggregation), aggregationName(o.aggregation),
      o.timeoutSec);
  std::printf("#\n# Loom %d.%d.%d, %s\n", info.version / 10000, info.version / 100 % 100, info.version % 100,
              o.blocking ? "blocking calls" : "asynchronous calls + loomWait");
  std::printf("# Using ranks\n");
  for (const RankInfo& r : info.ranks) std::printf("#  Rank %2d Pid %6d on %10s\n", r.rank, r.pid, r.host);
  std::printf("#\n");
  std::printf("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          \n", "", "",
              "", "", "");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s  %7s  %6s  %6s %6s\n", "size", "count", "type", "redop",
              "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s\n", "(B)", "(elements)", "", "",
              "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
  std::fflush(stdout);
}

void printRowStart(const Row& row) {
  std::printf("%12zu  %12zu  %8s  %6s  %6d", row.bytes, row.count, row.type, row.op, row.root);
  std::fflush(stdout);  // show progress on slow sizes
}

void printMeasurement(const Measurement& m) {
  char time[32], wrong[32];
  formatTime(time, sizeof time, m.timeUs);
  if (m.wrong < 0)
    std::snprintf(wrong, sizeof wrong, "%5s", "N/A");
  else
    std::snprintf(wrong, sizeof wrong, "%5g", static_cast<double>(m.wrong));
  std::printf("  %7s  %6.2f  %6.2f  %5s", time, m.algBw, m.busBw, wrong);
  std::fflush(stdout);
}

void printRowEnd() {
  std::printf("\n");
  std::fflush(stdout);
}

void printFooter(int64_t failedChecks, double avgBusBw) {
  std::printf("# Out of bounds values : %lld %s\n", static_cast<long long>(failedChecks), failedChecks ? "FAILED" : "OK");
  std::printf("# Avg bus bandwidth : %g\n", avgBusBw);
  std::printf("#\n");
  std::fflush(stdout);
}

bool writeJson(const std::string& path, const RunInfo& info, const std::vector<Row>& rows, int64_t failedChecks,
               double avgBusBw) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "%s: cannot write %s: %s\n", info.program.c_str(), path.c_str(), std::strerror(errno));
    return false;
  }
  const Options& o = *info.options;
  std::fprintf(f, "{\n  \"program\": %s,\n  \"nranks\": %d,\n", jsonString(info.program).c_str(), info.nranks);
  std::fprintf(f,
               "  \"config\": {\"minbytes\": %zu, \"maxbytes\": %zu, \"stepbytes\": %zu, \"stepfactor\": %zu, "
               "\"iters\": %d, \"warmup_iters\": %d, \"check\": %d, \"blocking\": %d, \"average\": %s},\n",
               o.minBytes, o.maxBytes, o.stepBytes, o.stepFactor, o.iters, o.warmupIters, o.check, o.blocking,
               jsonString(aggregationName(o.aggregation)).c_str());
  std::fprintf(f, "  \"ranks\": [");
  for (size_t i = 0; i < info.ranks.size(); ++i)
    std::fprintf(f, "%s{\"rank\": %d, \"pid\": %d, \"host\": %s}", i ? ", " : "", info.ranks[i].rank,
                 info.ranks[i].pid, jsonString(info.ranks[i].host).c_str());
  std::fprintf(f, "],\n  \"results\": [\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::fprintf(f, "    {\"size\": %zu, \"count\": %zu, \"type\": %s, \"redop\": %s, \"root\": %d, ", r.bytes, r.count,
                 jsonString(r.type).c_str(), jsonString(r.op).c_str(), r.root);
    jsonMeasurement(f, "out_of_place", r.outOfPlace);
    std::fprintf(f, ", ");
    jsonMeasurement(f, "in_place", r.inPlace);
    std::fprintf(f, "}%s\n", i + 1 < rows.size() ? "," : "");
  }
  std::fprintf(f, "  ],\n  \"out_of_bounds\": %lld,\n  \"avg_busbw_gbps\": %g\n}\n",
               static_cast<long long>(failedChecks), avgBusBw);
  const bool ok = std::fclose(f) == 0;
  if (!ok) std::fprintf(stderr, "%s: cannot write %s: %s\n", info.program.c_str(), path.c_str(), std::strerror(errno));
  return ok;
}

}  // namespace loombench
