#include "harness.h"

#include "options.h"
#include "report.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace loombench {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<unsigned char, FreeDeleter>;

Buffer allocate(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096;  // page-aligned, as device buffers
  void* p = std::aligned_alloc(4096, rounded);
  if (p == nullptr) {
    std::fprintf(stderr, "cannot allocate %zu bytes\n", rounded);
    std::exit(1);
  }
  return Buffer(static_cast<unsigned char*>(p));
}

class Bench {
 public:
  Bench(const Collective& coll, std::string program, Options options)
      : coll_(coll), program_(std::move(program)), o_(std::move(options)) {}

  int main() {
    init();
    allocateBuffers();
    RunInfo info{program_, nranks_, 0, &o_, gatherRankInfo()};
    if (loomGetVersion(&info.version) != loomSuccess) info.version = LOOM_VERSION_CODE;
    if (rank_ == 0) printHeader(info);

    std::vector<loomRedOp_t> ops = coll_.usesOp() ? o_.ops : std::vector<loomRedOp_t>{loomSum};
    for (loomDataType_t type : o_.types)
      for (loomRedOp_t op : ops)
        for (size_t size : o_.sizes()) runRow(type, op, size);

    const double avgBusBw = busBwCount_ ? busBwSum_ / busBwCount_ : 0.0;
    bool outputFailed = false;
    if (rank_ == 0) {
      printFooter(failedChecks_, avgBusBw);
      if (!o_.jsonPath.empty() && !writeJson(o_.jsonPath, info, rows_, failedChecks_, avgBusBw)) outputFailed = true;
      std::fflush(stdout);
    }
    // A rank with wrong values exits non-zero, and its launcher then stops the others: not before
    // rank 0 has written the footer that says so.
    barrier();
    check(loomCommDestroy(comm_), "loomCommDestroy");
    comm_ = nullptr;
    return failedChecks_ > 0 || outputFailed ? 1 : 0;
  }

 private:
  [[noreturn]] void fatal(const char* api, loomResult_t r) {
    std::fflush(stdout);
    const char* code = loomGetErrorString(r);
    const char* detail = loomGetLastError(comm_);
    std::string why = detail && *detail ? detail : code;
    if (why.compare(0, std::strlen(code), code) != 0) why = std::string(code) + ": " + why;  // say the code once
    std::fprintf(stderr, "%s: rank %d: %s failed: %s\n", program_.c_str(), rank_, api, why.c_str());
    if (comm_ != nullptr) loomCommAbort(comm_);  // peers see us gone at once, not after their timeout
    std::exit(1);
  }
  // Test hook: LOOM_BENCH_CORRUPT_RANK=R flips a bit of rank R's result before it is checked, so a
  // test can prove that a wrong value is reported and makes the program exit non-zero.
  void corruptForTest(void* recv, size_t bytes) {
    static const int corruptRank = [] {
      const char* v = std::getenv("LOOM_BENCH_CORRUPT_RANK");
      return v ? std::atoi(v) : -1;
    }();
    if (corruptRank == rank_ && bytes > 0) static_cast<unsigned char*>(recv)[bytes / 2] ^= 0x10;
  }

  void check(loomResult_t r, const char* api) {
    if (r != loomSuccess) fatal(api, r);
  }

  void init() {
    loomConfig_t config = LOOM_CONFIG_INITIALIZER;
    if (o_.timeoutSec > 0) config.timeoutMs = o_.timeoutSec * 1000;
    check(loomCommInitFromEnv(&comm_, &config), "loomCommInitFromEnv");
    check(loomCommRank(comm_, &rank_), "loomCommRank");
    check(loomCommSize(comm_, &nranks_), "loomCommSize");
    if (coll_.usesRoot() && o_.root >= nranks_) {
      if (rank_ == 0) std::fprintf(stderr, "%s: -r %d: root must be below the %d ranks\n", program_.c_str(), o_.root, nranks_);
      loomCommDestroy(comm_);
      std::exit(2);
    }
  }

  // Buffers for the largest size of any datatype. In place uses the receive buffer, sized for
  // whichever of send and receive is larger, as nccl-tests.
  void allocateBuffers() {
    for (loomDataType_t t : o_.types) {
      const size_t es = typeInfo(t).size;
      for (size_t size : o_.sizes()) {
        const Counts c = coll_.counts(size / es, nranks_);
        sendBytes_ = std::max(sendBytes_, c.send * es);
        recvBytes_ = std::max(recvBytes_, std::max(c.send, c.recv) * es);
      }
    }
    send_ = allocate(sendBytes_);
    recv_ = allocate(recvBytes_);
  }

  std::vector<RankInfo> gatherRankInfo() {
    RankInfo mine{};
    mine.rank = rank_;
    mine.pid = static_cast<int32_t>(getpid());
    gethostname(mine.host, sizeof mine.host - 1);
    std::vector<RankInfo> all(nranks_);
    check(loomAllGather(&mine, all.data(), sizeof mine, loomUint8, comm_), "loomAllGather");
    return all;
  }

  // A one-element all-reduce: nobody leaves it before everybody entered it.
  void barrier() {
    int32_t one = 1, sum = 0;
    check(loomAllReduce(&one, &sum, 1, loomInt32, loomSum, comm_), "loomAllReduce (barrier)");
  }

  double aggregateTime(double seconds) {
    const Aggregation a = o_.aggregation;
    if (a == Aggregation::Rank0) return seconds;  // only rank 0 prints, so its own time is the answer
    const loomRedOp_t op = a == Aggregation::Min ? loomMin : a == Aggregation::Max ? loomMax : loomSum;
    double out = 0;
    check(loomAllReduce(&seconds, &out, 1, loomFloat64, op, comm_), "loomAllReduce (time)");
    return a == Aggregation::Avg ? out / nranks_ : out;
  }

  int64_t sumOverRanks(int64_t v) {
    int64_t out = 0;
    check(loomAllReduce(&v, &out, 1, loomInt64, loomSum, comm_), "loomAllReduce (wrong count)");
    return out;
  }

  void runOnce(const void* send, void* recv, const Counts& c, loomDataType_t type, loomRedOp_t op) {
    requests_.clear();
    const Call call{send, recv, c.param, type, op, o_.root, rank_, nranks_, comm_, o_.blocking != 0, nextTag_,
                    &requests_};
    // Every rank issues the same sequence, so tags agree without talking. The calls are waited one
    // by one, so a few tags cycled suffice, as loom.h advises: a new tag per call would grow the
    // communicator's per-tag generation map by one entry a call, a cost no real caller pays.
    nextTag_ = kFirstTag + (nextTag_ - kFirstTag + kTagStride) % (kTagStride * kTagsCycled);
    const char* api = "start";
    if (loomResult_t r = coll_.start(call, &api); r != loomSuccess) fatal(api, r);
    const int waitMs = o_.timeoutSec > 0 ? o_.timeoutSec * 1000 : LOOM_WAIT_FOREVER;
    for (loomRequest_t req : requests_) {
      check(loomWait(req, waitMs), "loomWait");
      check(loomRequestFree(req), "loomRequestFree");
    }
  }

  // Fills this rank's input from the pattern's seed and poisons the output.
  void prepare(const Pattern& p, void* send, void* recv, const Counts& c, bool inPlace) {
    const size_t es = typeInfo(p.type).size;
    if (inPlace)
      poison(recv_.get(), std::max(c.send, c.recv) * es);
    else
      poison(recv, c.recv * es);
    fillInput(p, send, c.send, rank_);
  }

  Measurement measure(loomDataType_t type, loomRedOp_t op, const Counts& c, bool inPlace, const char* what) {
    const size_t es = typeInfo(type).size;
    unsigned char* base = recv_.get();
    void* send = inPlace ? base + c.sendInPlace * rank_ * es : send_.get();
    void* recv = inPlace ? base + c.recvInPlace * rank_ * es : recv_.get();
    Pattern p{type, coll_.usesOp(), op, nranks_, /*seed=*/99};

    prepare(p, send, recv, c, inPlace);
    for (int i = 0; i < o_.warmupIters; ++i) runOnce(send, recv, c, type, op);
    barrier();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o_.iters; ++i) runOnce(send, recv, c, type, op);
    const double local = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o_.iters;
    const double seconds = aggregateTime(local);

    Measurement m;
    m.timeUs = seconds * 1e6;
    m.algBw = seconds > 0 ? static_cast<double>(coll_.algBytes(c, es, nranks_)) / 1e9 / seconds : 0.0;
    m.busBw = m.algBw * coll_.busFactor(nranks_);
    busBwSum_ += m.busBw;
    ++busBwCount_;

    if (o_.check > 0 && (!inPlace || coll_.checksInPlace())) {
      m.wrong = 0;
      for (int k = 0; k < o_.check && m.wrong == 0; ++k) {
        p.seed = ++checkRun_;  // fresh inputs: a stale result from the timed runs cannot pass
        prepare(p, send, recv, c, inPlace);
        runOnce(send, recv, c, type, op);
        corruptForTest(recv, c.recv * es);
        Checker checker(p);
        coll_.check(checker, recv, c, rank_, nranks_, o_.root);
        if (checker.wrong() > 0)
          std::fprintf(stderr, "%s: rank %d: %s: %lld of %lld values wrong; first: %s\n", program_.c_str(), rank_,
                       what, static_cast<long long>(checker.wrong()), static_cast<long long>(checker.checked()),
                       checker.firstMismatch().c_str());
        m.wrong = sumOverRanks(checker.wrong());
      }
      if (m.wrong > 0) ++failedChecks_;
    }
    return m;
  }

  void runRow(loomDataType_t type, loomRedOp_t op, size_t size) {
    const TypeInfo& ti = typeInfo(type);
    const Counts c = coll_.counts(size / ti.size, nranks_);
    Row row;
    row.bytes = std::max(c.send, c.recv) * ti.size;
    row.count = c.param;
    row.type = ti.name;
    row.op = coll_.usesOp() ? opName(op) : "none";
    row.root = coll_.usesRoot() ? o_.root : -1;
    if (rank_ == 0) printRowStart(row);
    char what[160];
    for (int inPlace = 0; inPlace < 2; ++inPlace) {
      std::snprintf(what, sizeof what, "%s %s size %zu %s", row.type, row.op, row.bytes,
                    inPlace ? "in-place" : "out-of-place");
      Measurement& m = inPlace ? row.inPlace : row.outOfPlace;
      m = measure(type, op, c, inPlace != 0, what);
      if (rank_ == 0) printMeasurement(m);
    }
    if (rank_ == 0) printRowEnd();
    rows_.push_back(row);
  }

  const Collective& coll_;
  std::string program_;
  Options o_;
  loomComm_t comm_ = nullptr;
  int rank_ = 0;
  int nranks_ = 1;
  size_t sendBytes_ = 0, recvBytes_ = 0;
  Buffer send_, recv_;
  std::vector<loomRequest_t> requests_;
  static constexpr uint64_t kFirstTag = 1u << 16, kTagStride = 1u << 16, kTagsCycled = 8;
  uint64_t nextTag_ = kFirstTag;
  uint64_t checkRun_ = 0;
  int64_t failedChecks_ = 0;
  double busBwSum_ = 0;
  int64_t busBwCount_ = 0;
  std::vector<Row> rows_;
};

}  // namespace

int run(int argc, char** argv, const Collective& collective) {
  std::string program = std::string(collective.name()) + "_perf";
  Options options = parseOptions(argc, argv, program.c_str());
  return Bench(collective, program, std::move(options)).main();
}

}  // namespace loombench
