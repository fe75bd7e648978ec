// The shared harness of the *_perf benchmarks, a clone of nccl-tests' interface (bench/BENCH.md):
// each program describes one collective - its buffer sizes, how to start it, what a correct
// result is, its bus-bandwidth factor - and calls run(), which parses the flags, sweeps sizes,
// datatypes and ops, times out-of-place then in-place, checks, and prints nccl-tests' table.
#pragma once

#include "data.h"

#include <loom/loom.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace loombench {

// Element counts for one size, as nccl-tests' getCollByteCount.
struct Counts {
  size_t param = 0;        // the count passed to the API
  size_t send = 0;         // elements of this rank's send buffer
  size_t recv = 0;         // elements of this rank's receive buffer
  size_t sendInPlace = 0;  // in place, send = buffer + sendInPlace * rank
  size_t recvInPlace = 0;  // in place, recv = buffer + recvInPlace * rank
};

// One operation to start.
struct Call {
  const void* send;
  void* recv;
  size_t count;
  loomDataType_t type;
  loomRedOp_t op;
  int root;
  int rank;
  int nranks;
  loomComm_t comm;
  bool blocking;    // -z 1: run it with the blocking API
  uint64_t tag;     // -z 0: tags tag .. tag + 65535 are this operation's alone
  std::vector<loomRequest_t>* requests;  // -z 0: append the requests to wait for
};

class Collective {
 public:
  virtual ~Collective() = default;
  virtual const char* name() const = 0;  // "all_reduce": the program is <name>_perf
  virtual bool usesOp() const { return false; }
  virtual bool usesRoot() const { return false; }
  // False where in place has no defined result (send/recv on one buffer): printed N/A.
  virtual bool checksInPlace() const { return true; }
  // count = the size in bytes / element size, before the collective divides it among ranks.
  virtual Counts counts(size_t count, int nranks) const = 0;
  virtual double busFactor(int nranks) const = 0;
  // Bytes that algbw divides by time: the whole buffer, as nccl-tests.
  virtual size_t algBytes(const Counts& c, size_t elemSize, int /*nranks*/) const {
    return (c.send > c.recv ? c.send : c.recv) * elemSize;
  }
  // Starts the operation; on failure returns the result and names the failing call in *api.
  virtual loomResult_t start(const Call& call, const char** api) const = 0;
  // Checks this rank's output of a run whose inputs were input(r, j) for j < counts.send on
  // every rank r (see Checker).
  virtual void check(Checker& checker, const void* recv, const Counts& c, int rank, int nranks, int root) const = 0;
};

// The program's main: returns the exit status (0 only if every check passed).
int run(int argc, char** argv, const Collective& collective);

}  // namespace loombench
