// broadcast_perf: nccl-tests' broadcast benchmark over Loom (flags and columns: bench/BENCH.md).
#include "harness/harness.h"

namespace {

class Broadcast final : public loombench::Collective {
 public:
  const char* name() const override { return "broadcast"; }
  bool usesRoot() const override { return true; }
  loombench::Counts counts(size_t count, int) const override { return {count, count, count, 0, 0}; }
  double busFactor(int) const override { return 1.0; }

  loomResult_t start(const loombench::Call& c, const char** api) const override {
    if (c.blocking) {
      *api = "loomBroadcast";
      return loomBroadcast(c.send, c.recv, c.count, c.type, c.root, c.comm);
    }
    *api = "loomBroadcastAsync";
    loomRequest_t req = nullptr;
    const loomResult_t r = loomBroadcastAsync(c.send, c.recv, c.count, c.type, c.root, c.tag, c.comm, &req);
    if (r == loomSuccess) c.requests->push_back(req);
    return r;
  }

  // Every rank, the root included, must hold the root's input.
  void check(loombench::Checker& ck, const void* recv, const loombench::Counts& c, int, int, int root) const override {
    ck.copied(recv, c.param, root);
  }
};

}  // namespace

int main(int argc, char** argv) { return loombench::run(argc, argv, Broadcast()); }
