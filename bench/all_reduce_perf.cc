// all_reduce_perf: nccl-tests' all-reduce benchmark over Loom (flags and columns: bench/BENCH.md).
#include "harness/harness.h"

namespace {

class AllReduce final : public loombench::Collective {
 public:
  const char* name() const override { return "all_reduce"; }
  bool usesOp() const override { return true; }
  loombench::Counts counts(size_t count, int) const override { return {count, count, count, 0, 0}; }
  // Each rank sends and receives 2(n-1)/n of the buffer in a bandwidth-optimal all-reduce.
  double busFactor(int n) const override { return 2.0 * (n - 1) / n; }

  loomResult_t start(const loombench::Call& c, const char** api) const override {
    if (c.blocking) {
      *api = "loomAllReduce";
      return loomAllReduce(c.send, c.recv, c.count, c.type, c.op, c.comm);
    }
    *api = "loomAllReduceAsync";
    loomRequest_t req = nullptr;
    const loomResult_t r = loomAllReduceAsync(c.send, c.recv, c.count, c.type, c.op, c.tag, c.comm, &req);
    if (r == loomSuccess) c.requests->push_back(req);
    return r;
  }

  void check(loombench::Checker& ck, const void* recv, const loombench::Counts& c, int, int, int) const override {
    ck.reduced(recv, c.param);
  }
};

}  // namespace

int main(int argc, char** argv) { return loombench::run(argc, argv, AllReduce()); }
