// reduce_scatter_perf: nccl-tests' reduce-scatter benchmark over Loom (flags: bench/BENCH.md).
// size is the input buffer; each rank receives floor(size / (ranks * element size)) elements.
#include "harness/harness.h"

namespace {

class ReduceScatter final : public loombench::Collective {
 public:
  const char* name() const override { return "reduce_scatter"; }
  bool usesOp() const override { return true; }
  // In place, each rank's output is its own block of the input.
  loombench::Counts counts(size_t count, int n) const override {
    const size_t base = count / n;
    return {base, base * n, base, 0, base};
  }
  double busFactor(int n) const override { return static_cast<double>(n - 1) / n; }

  loomResult_t start(const loombench::Call& c, const char** api) const override {
    if (c.blocking) {
      *api = "loomReduceScatter";
      return loomReduceScatter(c.send, c.recv, c.count, c.type, c.op, c.comm);
    }
    *api = "loomReduceScatterAsync";
    loomRequest_t req = nullptr;
    const loomResult_t r = loomReduceScatterAsync(c.send, c.recv, c.count, c.type, c.op, c.tag, c.comm, &req);
    if (r == loomSuccess) c.requests->push_back(req);
    return r;
  }

  // Rank k holds the reduction of block k of every rank's input.
  void check(loombench::Checker& ck, const void* recv, const loombench::Counts& c, int rank, int, int) const override {
    ck.reduced(recv, c.param, rank * c.param);
  }
};

}  // namespace

int main(int argc, char** argv) { return loombench::run(argc, argv, ReduceScatter()); }
