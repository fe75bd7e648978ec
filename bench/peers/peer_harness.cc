#include "peer_harness.h"

#include "harness/data.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace loompeer {

bool takeExtraFlags(int* argc, char** argv, const std::vector<ExtraFlag>& flags, const char* program) {
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const char* a = argv[i];
    const ExtraFlag* hit = nullptr;
    const char* inlineValue = nullptr;
    if (std::strcmp(a, "--") == 0) {  // the rest is the harness' (it will reject it)
      while (i < *argc) argv[out++] = argv[i++];
      break;
    }
    for (const ExtraFlag& f : flags) {
      if (f.shortName != 0 && a[0] == '-' && a[1] == f.shortName) {
        hit = &f;
        if (a[2] != '\0') inlineValue = a + 2;  // -Aring
        break;
      }
      if (f.longName != nullptr && a[0] == '-' && a[1] == '-') {
        const size_t n = std::strlen(f.longName);
        if (std::strncmp(a + 2, f.longName, n) == 0 && (a[2 + n] == '\0' || a[2 + n] == '=')) {
          hit = &f;
          if (a[2 + n] == '=') inlineValue = a + 3 + n;
          break;
        }
      }
    }
    if (hit == nullptr) {
      argv[out++] = argv[i];
      continue;
    }
    const char* value = inlineValue != nullptr ? inlineValue : i + 1 < *argc ? argv[i + 1] : nullptr;
    if (value != nullptr && hit->accepts != nullptr && !hit->accepts(value)) {
      argv[out++] = argv[i];  // the harness' flag of the same name
      continue;
    }
    if (value == nullptr) {
      std::fprintf(stderr, "%s: flag %s needs a value\n", program, a);
      return false;
    }
    if (inlineValue == nullptr) ++i;
    *hit->value = value;
  }
  argv[out] = nullptr;
  *argc = out;
  return true;
}

void requireFloatSum(const loombench::Options& o, bool reduces, const char* program) {
  if (o.types.size() != 1 || o.types[0] != loomFloat32) {
    std::fprintf(stderr, "%s: only -d float is measured on the peer libraries\n", program);
    std::exit(2);
  }
  if (reduces && (o.ops.size() != 1 || o.ops[0] != loomSum)) {
    std::fprintf(stderr, "%s: only -o sum is measured on the peer libraries\n", program);
    std::exit(2);
  }
}

loombench::RankInfo localRankInfo(int rank) {
  loombench::RankInfo r{};
  r.rank = rank;
  r.pid = static_cast<int32_t>(getpid());
  if (gethostname(r.host, sizeof r.host - 1) != 0) std::snprintf(r.host, sizeof r.host, "?");
  r.host[sizeof r.host - 1] = '\0';
  return r;
}

namespace {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float, FreeDeleter>;

Buffer allocate(size_t count) {
  const size_t bytes = std::max<size_t>(64, (count * sizeof(float) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) {
    std::fprintf(stderr, "peer bench: cannot allocate %zu bytes\n", bytes);
    std::exit(1);
  }
  return Buffer(static_cast<float*>(p));
}

// nccl-tests' header, as bench/harness/report.cc prints it, with the peer's own lines.
void printHeader(const loombench::Options& o, const Collective& coll, int nranks,
                 const std::vector<loombench::RankInfo>& ranks) {
  const bool factor = o.stepFactor > 1;
  std::printf("# Collective test starting: %s\n", coll.description.c_str());
  std::printf(
      "# nRanks %d minBytes %zu maxBytes %zu step: %zu(%s) warmup iters: %d iters: %d agg iters: 1 validation: %d "
      "blocking: 1 average: %d(%s) timeout: %d\n",
      nranks, o.minBytes, o.maxBytes, factor ? o.stepFactor : o.stepBytes, factor ? "factor" : "bytes", o.warmupIters,
      o.iters, o.check, static_cast<int>(o.aggregation), loombench::aggregationName(o.aggregation), o.timeoutSec);
  std::printf("#\n");
  for (const std::string& line : coll.headerLines) std::printf("# %s\n", line.c_str());
  std::printf("# Using ranks\n");
  for (const loombench::RankInfo& r : ranks) std::printf("#  Rank %2d Pid %6d on %10s\n", r.rank, r.pid, r.host);
  std::printf("#\n");
  std::printf("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          \n", "", "",
              "", "", "");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s  %7s  %6s  %6s %6s\n", "size", "count", "type", "redop",
              "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s\n", "(B)", "(elements)", "", "",
              "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
  std::fflush(stdout);
}

void printNotAvailable() {
  std::printf("  %7s  %6s  %6s  %5s", "N/A", "N/A", "N/A", "N/A");
  std::fflush(stdout);
}

class Driver {
 public:
  Driver(const loombench::Options& o, const Collective& coll, const Control& ctl) : o_(o), coll_(coll), ctl_(ctl) {}

  int main() {
    const std::vector<size_t> sizes = o_.sizes();
    const size_t maxCount = sizes.empty() ? 0 : sizes.back() / sizeof(float);
    send_ = allocate(maxCount);
    recv_ = allocate(maxCount);
    const std::vector<loombench::RankInfo> ranks = ctl_.gatherRankInfo(localRankInfo(ctl_.rank));
    if (ctl_.rank == 0) printHeader(o_, coll_, ctl_.nranks, ranks);
    for (size_t size : sizes) runRow(size);
    const double avgBusBw = busBwCount_ ? busBwSum_ / busBwCount_ : 0.0;
    bool outputFailed = false;
    if (ctl_.rank == 0) {
      loombench::printFooter(failedChecks_, avgBusBw);
      if (!o_.jsonPath.empty()) {
        loombench::RunInfo info{coll_.description, ctl_.nranks, 0, &o_, ranks};
        if (!loombench::writeJson(o_.jsonPath, info, rows_, failedChecks_, avgBusBw)) outputFailed = true;
      }
    }
    ctl_.barrier();
    return failedChecks_ > 0 || outputFailed ? 1 : 0;
  }

 private:
  loombench::Pattern pattern(uint64_t seed) const {
    return loombench::Pattern{loomFloat32, coll_.reduces, loomSum, ctl_.nranks, seed};
  }

  // This rank's input in send and a poisoned output (in place: the one buffer holds the input).
  void prepareData(const loombench::Pattern& p, float* send, float* recv, size_t count, bool inPlace) {
    if (!inPlace) loombench::poison(recv, count * sizeof(float));
    loombench::fillInput(p, send, count, ctl_.rank);
  }

  loombench::Measurement measure(size_t count, bool inPlace, bool* available, const char* what) {
    float* send = send_.get();
    float* recv = inPlace ? send : recv_.get();
    prepareData(pattern(/*seed=*/99), send, recv, count, inPlace);
    Operation op = coll_.prepare(send, recv, count, inPlace);
    loombench::Measurement m;
    *available = static_cast<bool>(op);
    if (!*available) return m;

    for (int i = 0; i < o_.warmupIters; ++i) op();
    ctl_.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o_.iters; ++i) op();
    const double local = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o_.iters;
    const loombench::Aggregation a = o_.aggregation;
    double seconds = a == loombench::Aggregation::Rank0 ? local : ctl_.reduceTime(local, a);
    if (a == loombench::Aggregation::Avg) seconds /= ctl_.nranks;

    m.timeUs = seconds * 1e6;
    m.algBw = seconds > 0 ? static_cast<double>(count * sizeof(float)) / 1e9 / seconds : 0.0;
    m.busBw = m.algBw * coll_.busFactor;
    busBwSum_ += m.busBw;
    ++busBwCount_;

    if (o_.check > 0) {
      m.wrong = 0;
      for (int k = 0; k < o_.check && m.wrong == 0; ++k) {
        const loombench::Pattern p = pattern(++checkRun_);  // fresh inputs: a stale result cannot pass
        prepareData(p, send, recv, count, inPlace);
        op();
        corruptForTest(inPlace ? send : recv, count * sizeof(float));
        loombench::Checker checker(p);
        checkResult(checker, send, recv, count, inPlace);
        if (checker.wrong() > 0)
          std::fprintf(stderr, "%s: rank %d: %s: %lld of %lld values wrong; first: %s\n", coll_.program.c_str(),
                       ctl_.rank, what, static_cast<long long>(checker.wrong()),
                       static_cast<long long>(checker.checked()), checker.firstMismatch().c_str());
        m.wrong = ctl_.sumOverRanks(checker.wrong());
      }
      if (m.wrong > 0) ++failedChecks_;
    }
    return m;
  }

  // Test hook, as Loom's harness: LOOM_BENCH_CORRUPT_RANK=R flips a bit of rank R's result before
  // it is checked, to prove that a wrong value is reported and makes the program exit non-zero.
  void corruptForTest(float* result, size_t bytes) {
    static const int corruptRank = [] {
      const char* v = std::getenv("LOOM_BENCH_CORRUPT_RANK");
      return v ? std::atoi(v) : -1;
    }();
    if (corruptRank == ctl_.rank && bytes > 0) reinterpret_cast<unsigned char*>(result)[bytes / 2] ^= 0x10;
  }

  void checkResult(loombench::Checker& checker, const float* send, const float* recv, size_t count, bool inPlace) {
    if (coll_.reduces) {
      checker.reduced(recv, count);
    } else if (!inPlace && ctl_.rank == coll_.root && coll_.rootRecvUnwritten) {
      checker.copied(send, count, coll_.root);  // the root's input must be left as it was
    } else {
      checker.copied(recv, count, coll_.root);
    }
  }

  void runRow(size_t size) {
    const size_t count = size / sizeof(float);
    loombench::Row row;
    row.bytes = count * sizeof(float);
    row.count = count;
    row.type = "float";
    row.op = coll_.reduces ? "sum" : "none";
    row.root = coll_.root;
    if (ctl_.rank == 0) loombench::printRowStart(row);
    char what[160];
    for (int inPlace = 0; inPlace < 2; ++inPlace) {
      std::snprintf(what, sizeof what, "float %s size %zu %s", row.op, row.bytes,
                    inPlace ? "in-place" : "out-of-place");
      bool available = false;
      loombench::Measurement& m = inPlace ? row.inPlace : row.outOfPlace;
      m = measure(count, inPlace != 0, &available, what);
      if (ctl_.rank == 0) {
        if (available)
          loombench::printMeasurement(m);
        else
          printNotAvailable();
      }
    }
    if (ctl_.rank == 0) loombench::printRowEnd();
    rows_.push_back(row);
  }

  const loombench::Options& o_;
  const Collective& coll_;
  const Control& ctl_;
  Buffer send_, recv_;
  uint64_t checkRun_ = 0;
  int64_t failedChecks_ = 0;
  double busBwSum_ = 0;
  int64_t busBwCount_ = 0;
  std::vector<loombench::Row> rows_;
};

}  // namespace

int run(const loombench::Options& o, const Collective& coll, const Control& ctl) {
  Driver d(o, coll, ctl);
  return d.main();
}

}  // namespace loompeer
