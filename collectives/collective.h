// A collective operation as a resumable state machine (UCC's init / post / progress): progress()
// never blocks, so many operations can be in flight and an abort can stop any of them at once.
// Algorithms see only the transport contract and the reduction kernels.
#pragma once

#include "core/reduce.h"
#include "core/status.h"
#include "transports/iface/transport.h"

#include <loom/loom.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace loom::coll {

enum class Kind : uint8_t { AllReduce = 1, Broadcast, Reduce, AllGather, ReduceScatter, Send, Recv };
const char* kindName(Kind kind);

// What the caller asked for, exactly as the C API received it (counts in elements).
struct Args {
  Kind kind = Kind::AllReduce;
  const void* send = nullptr;
  void* recv = nullptr;
  size_t count = 0;  // allreduce/broadcast/reduce: elements; allgather: per-rank send count;
                     // reducescatter: per-rank recv count; send/recv: elements
  loomDataType_t dtype = loomFloat32;
  loomRedOp_t op = loomSum;
  int root = 0;  // broadcast/reduce root; send/recv peer
};

// Tuning chosen per communicator (config registry), read by algorithm selection.
struct Tuning {
  size_t segmentBytes = 1 << 20;
  // Segment floor of the chain broadcast in a world of 2 (broadcast/chain.cc says why).
  size_t singleLinkSegmentBytes = 4 << 20;
  size_t allreduceSmallBytes = 64 << 10;
  size_t broadcastSmallBytes = 64 << 10;
  int allreduceAlgorithm = loomAlgoAuto;
  int broadcastAlgorithm = loomAlgoAuto;
  // Kept input (Context::keepInput) copied ahead per call of an algorithm that finds nothing else
  // to do; 0 keeps only just before each write (tests use that to check the write points alone).
  size_t keepAheadBytes = 256 << 10;
};

struct Context {
  transport::Transport* transport = nullptr;
  int rank = 0;
  int size = 1;
  Tuning tuning;
  transport::Tag base;  // op and space identify the operation; algorithms pick `step`
  uint64_t signature = 0;  // see signatureOf(); passed with every transfer
  // In place, keep what the operation overwrites of the caller's input so that settleInput(true)
  // can put it back (LOOM_RESTORE_INPUT). Set only where keepsInputItself() says the chosen
  // algorithm does that; otherwise the communicator copies the whole input before it starts.
  bool keepInput = false;
};

// Hash of (kind, count, dtype, op, root): differs when ranks disagree on the call.
uint64_t signatureOf(const Args& args);

class Operation {
 public:
  virtual ~Operation() = default;
  // Advance without blocking. Returns loomInProgress while running, loomSuccess when done,
  // any other code on failure (after which the operation must not be progressed again).
  virtual Status progress() = 0;
  // Cancel every transfer still pending (after a failure or abort); never touches buffers after.
  virtual void cancel(const Status& why) = 0;
  // In its outcome vote (withOutcomeVote): it has its result and told every peer so; only the
  // peers' votes may fail it now.
  virtual bool voting() const { return false; }
  // Once the operation has finished (and, after a failure, been cancelled): with restore, put back
  // every byte of the caller's input it overwrote; then free what it kept. Only operations built
  // with ctx.keepInput keep anything.
  virtual void settleInput(bool restore) { (void)restore; }
};

// Picks the algorithm for args (by kind, size and tuning) and builds it. Args are validated by the
// caller (non-null buffers unless count == 0, valid dtype/op/root). In place follows NCCL:
// send == recv; for all-gather send == recv + rank*count*elemsize; for reduce-scatter
// recv == send + rank*count*elemsize. Send ignores recv; Recv ignores send.
std::unique_ptr<Operation> makeOperation(const Args& args, const Context& ctx);

// Whether the algorithm makeOperation picks for args keeps an in-place input itself when asked
// (ctx.keepInput): the ring all-reduce copies each piece just before it first overwrites it, and
// otherwise in moments it would spend waiting, instead of the whole vector before it starts.
bool keepsInputItself(const Args& args, const Tuning& tuning, int worldSize);

// Wraps a collective so that it succeeds on every surviving rank or on none (collectives/agreement):
// after `inner` finishes, an empty vote goes to every peer and one is awaited from every peer
// that is not lost. For worlds of three or more, where two survivors could otherwise disagree.
std::unique_ptr<Operation> withOutcomeVote(std::unique_ptr<Operation> inner, const Context& ctx);

}  // namespace loom::coll
