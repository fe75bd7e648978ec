// Operation kinds, signatures and algorithm selection. The algorithms themselves live one per
// file under collectives/<kind>/; this file only decides which one runs.
#include "collectives/collective.h"

#include "collectives/algorithm.h"

namespace loom::coll {

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::AllReduce: return "allreduce";
    case Kind::Broadcast: return "broadcast";
    case Kind::Reduce: return "reduce";
    case Kind::AllGather: return "allgather";
    case Kind::ReduceScatter: return "reducescatter";
    case Kind::Send: return "send";
    case Kind::Recv: return "recv";
  }
  return "unknown";
}

namespace {

// splitmix64's finaliser: every input bit affects every output bit, so signatures of calls that
// differ in one field differ almost surely.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t combine(uint64_t h, uint64_t v) { return mix(h ^ mix(v)); }

bool reduces(Kind k) { return k == Kind::AllReduce || k == Kind::Reduce || k == Kind::ReduceScatter; }
bool hasRoot(Kind k) { return k == Kind::Broadcast || k == Kind::Reduce; }

}  // namespace

uint64_t signatureOf(const Args& args) {
  // Send and Recv are the two halves of one exchange: they hash as one kind, and the peer is left
  // out because the sender names the receiver and the receiver names the sender.
  const Kind kind = args.kind == Kind::Recv ? Kind::Send : args.kind;
  uint64_t h = mix(0x4C4F4F4D5349474Eull);  // "LOOMSIGN"
  h = combine(h, static_cast<uint64_t>(kind));
  h = combine(h, args.count);
  h = combine(h, static_cast<uint64_t>(args.dtype));
  // Fields an operation ignores are left out, so a caller passing a stale op to a broadcast (or
  // a root to an all-reduce) is not reported as a mismatch.
  if (reduces(args.kind)) h = combine(h, static_cast<uint64_t>(args.op));
  if (hasRoot(args.kind)) h = combine(h, static_cast<uint64_t>(static_cast<uint32_t>(args.root)));
  return h;
}

namespace {

// Forced choices win; anything else (Auto, or a broadcast-only value) selects by size: recursive
// doubling needs log2(n) rounds of the whole vector, the ring 2(n-1) rounds of 1/n of it, so the
// crossover is where bandwidth starts to dominate latency.
bool allReduceUsesRing(const Args& args, const Tuning& tuning) {
  if (tuning.allreduceAlgorithm == loomAlgoRing) return true;
  if (tuning.allreduceAlgorithm == loomAlgoRecursiveDoubling) return false;
  return args.count * dataTypeSize(args.dtype) > tuning.allreduceSmallBytes;
}

}  // namespace

bool keepsInputItself(const Args& args, const Tuning& tuning) {
  return args.kind == Kind::AllReduce && allReduceUsesRing(args, tuning);
}

std::unique_ptr<Operation> makeOperation(const Args& args, const Context& ctx) {
  const size_t bytes = args.count * dataTypeSize(args.dtype);
  switch (args.kind) {
    case Kind::AllReduce:
      return allReduceUsesRing(args, ctx.tuning) ? makeRingAllReduce(args, ctx)
                                                 : makeRecursiveDoublingAllReduce(args, ctx);
    case Kind::Broadcast: {
      const int forced = ctx.tuning.broadcastAlgorithm;
      if (forced == loomAlgoChain) return makeChainBroadcast(args, ctx);
      if (forced == loomAlgoTree) return makeTreeBroadcast(args, ctx);
      return bytes <= ctx.tuning.broadcastSmallBytes ? makeTreeBroadcast(args, ctx) : makeChainBroadcast(args, ctx);
    }
    case Kind::Reduce:
      // Reduce is broadcast run backwards (same tree/chain trade-off), so it follows the
      // broadcast threshold: the binomial tree for latency, the pipelined chain for bandwidth.
      return bytes <= ctx.tuning.broadcastSmallBytes ? makeTreeReduce(args, ctx) : makeChainReduce(args, ctx);
    case Kind::AllGather: return makeRingAllGather(args, ctx);
    case Kind::ReduceScatter: return makeRingReduceScatter(args, ctx);
    case Kind::Send:
    case Kind::Recv: return makeSendRecv(args, ctx);
  }
  return nullptr;
}

}  // namespace loom::coll
