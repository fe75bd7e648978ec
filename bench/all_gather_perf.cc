// all_gather_perf: nccl-tests' all-gather benchmark over Loom (flags and columns: bench/BENCH.md).
// size is the gathered buffer; each rank contributes floor(size / (ranks * element size)) elements.
#include "harness/harness.h"

namespace {

class AllGather final : public loombench::Collective {
 public:
  const char* name() const override { return "all_gather"; }
  // In place, each rank's input already sits at its own block of the output.
  loombench::Counts counts(size_t count, int n) const override {
    const size_t base = count / n;
    return {base, base, base * n, base, 0};
  }
  // Each rank receives the (n-1)/n of the buffer it did not hold.
  double busFactor(int n) const override { return static_cast<double>(n - 1) / n; }

  loomResult_t start(const loombench::Call& c, const char** api) const override {
    if (c.blocking) {
      *api = "loomAllGather";
      return loomAllGather(c.send, c.recv, c.count, c.type, c.comm);
    }
    *api = "loomAllGatherAsync";
    loomRequest_t req = nullptr;
    const loomResult_t r = loomAllGatherAsync(c.send, c.recv, c.count, c.type, c.tag, c.comm, &req);
    if (r == loomSuccess) c.requests->push_back(req);
    return r;
  }

  void check(loombench::Checker& ck, const void* recv, const loombench::Counts& c, int, int n, int) const override {
    const auto* out = static_cast<const unsigned char*>(recv);
    for (int r = 0; r < n; ++r) ck.copied(out + r * c.param * ck.elemSize(), c.param, r);
  }
};

}  // namespace

int main(int argc, char** argv) { return loombench::run(argc, argv, AllGather()); }
