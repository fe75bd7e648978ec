// reduce_perf: nccl-tests' reduce benchmark over Loom (flags and columns: bench/BENCH.md).
#include "harness/harness.h"

namespace {

class Reduce final : public loombench::Collective {
 public:
  const char* name() const override { return "reduce"; }
  bool usesOp() const override { return true; }
  bool usesRoot() const override { return true; }
  loombench::Counts counts(size_t count, int) const override { return {count, count, count, 0, 0}; }
  double busFactor(int) const override { return 1.0; }

  loomResult_t start(const loombench::Call& c, const char** api) const override {
    if (c.blocking) {
      *api = "loomReduce";
      return loomReduce(c.send, c.recv, c.count, c.type, c.op, c.root, c.comm);
    }
    *api = "loomReduceAsync";
    loomRequest_t req = nullptr;
    const loomResult_t r = loomReduceAsync(c.send, c.recv, c.count, c.type, c.op, c.root, c.tag, c.comm, &req);
    if (r == loomSuccess) c.requests->push_back(req);
    return r;
  }

  // Only the root's output is defined.
  void check(loombench::Checker& ck, const void* recv, const loombench::Counts& c, int rank, int,
             int root) const override {
    if (rank == root) ck.reduced(recv, c.param);
  }
};

}  // namespace

int main(int argc, char** argv) { return loombench::run(argc, argv, Reduce()); }
