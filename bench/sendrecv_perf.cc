// sendrecv_perf: nccl-tests' send/recv benchmark over Loom (flags and columns: bench/BENCH.md).
// A ring exchange: rank r sends its buffer to r+1 and receives r-1's.
#include "harness/harness.h"

namespace {

class SendRecv final : public loombench::Collective {
 public:
  const char* name() const override { return "sendrecv"; }
  // In place, the receive overwrites the buffer the send is still reading: no defined result.
  bool checksInPlace() const override { return false; }
  loombench::Counts counts(size_t count, int) const override { return {count, count, count, 0, 0}; }
  double busFactor(int) const override { return 1.0; }

  loomResult_t start(const loombench::Call& c, const char** api) const override {
    const int next = (c.rank + 1) % c.nranks, prev = (c.rank + c.nranks - 1) % c.nranks;
    if (c.blocking && c.nranks > 1) {
      // Even ranks send first and odd ranks receive first, so the ring of blocking calls always
      // has a matched pair to complete, for any number of ranks.
      const bool sendFirst = c.rank % 2 == 0;
      for (int step = 0; step < 2; ++step) {
        const bool sending = (step == 0) == sendFirst;
        *api = sending ? "loomSend" : "loomRecv";
        const loomResult_t r = sending ? loomSend(c.send, c.count, c.type, next, c.comm)
                                       : loomRecv(c.recv, c.count, c.type, prev, c.comm);
        if (r != loomSuccess) return r;
      }
      return loomSuccess;
    }
    // Asynchronous pair (also for one rank, where a blocking send to itself could never match).
    // Each message is tagged with its sender, so a rank's own send and receive never share a tag.
    loomRequest_t recvReq = nullptr, sendReq = nullptr;
    *api = "loomRecvAsync";
    loomResult_t r = loomRecvAsync(c.recv, c.count, c.type, prev, c.tag + prev, c.comm, &recvReq);
    if (r != loomSuccess) return r;
    c.requests->push_back(recvReq);
    *api = "loomSendAsync";
    r = loomSendAsync(c.send, c.count, c.type, next, c.tag + c.rank, c.comm, &sendReq);
    if (r == loomSuccess) c.requests->push_back(sendReq);
    return r;
  }

  void check(loombench::Checker& ck, const void* recv, const loombench::Counts& c, int rank, int n,
             int) const override {
    ck.copied(recv, c.param, (rank + n - 1) % n);
  }
};

}  // namespace

int main(int argc, char** argv) { return loombench::run(argc, argv, SendRecv()); }
