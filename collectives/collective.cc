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

enum class AllReduceAlgorithm { Ring, RecursiveDoubling, HalvingDoubling };

// Halving-doubling between these sizes, in worlds of 4, 8, 16, ... ranks: 2 log2(p) steps instead
// of the ring's 2(p-1) pay off where a vector is too large for recursive doubling and too small
// for the ring's segments to overlap much. Measured with 4 ranks on 2 cores (bench/RESULTS.md,
// session 7): 1 MiB 1.10 against 0.98 GB/s out of place, 2 MiB 0.82 against 0.74, level at
// 512 KiB and 4 MiB; from 16 MiB the ring's pipelining wins (0.64 against 0.49).
constexpr size_t kHalvingDoublingAboveBytes = 512 << 10;
constexpr size_t kHalvingDoublingUpToBytes = 4 << 20;

// Forced choices win; anything else (Auto, or a broadcast-only value) selects by size: recursive
// doubling needs log2(n) rounds of the whole vector, the ring 2(n-1) rounds of 1/n of it, so the
// crossover is where bandwidth starts to dominate latency; halving-doubling sits between them
// (above). It needs a power of two: forced on another world, the ring runs.
AllReduceAlgorithm allReduceAlgorithm(const Args& args, const Tuning& tuning, int worldSize) {
  const bool powerOfTwo = (worldSize & (worldSize - 1)) == 0;
  switch (tuning.allreduceAlgorithm) {
    case loomAlgoRing: return AllReduceAlgorithm::Ring;
    case loomAlgoRecursiveDoubling: return AllReduceAlgorithm::RecursiveDoubling;
    case loomAlgoHalvingDoubling: return powerOfTwo ? AllReduceAlgorithm::HalvingDoubling : AllReduceAlgorithm::Ring;
    default: break;
  }
  const size_t bytes = args.count * dataTypeSize(args.dtype);
  if (bytes <= tuning.allreduceSmallBytes) return AllReduceAlgorithm::RecursiveDoubling;
  if (powerOfTwo && worldSize >= 4 && bytes > kHalvingDoublingAboveBytes && bytes <= kHalvingDoublingUpToBytes)
    return AllReduceAlgorithm::HalvingDoubling;
  return AllReduceAlgorithm::Ring;
}

}  // namespace

bool keepsInputItself(const Args& args, const Tuning& tuning, int worldSize) {
  return args.kind == Kind::AllReduce && allReduceAlgorithm(args, tuning, worldSize) == AllReduceAlgorithm::Ring;
}

std::unique_ptr<Operation> makeOperation(const Args& args, const Context& ctx) {
  const size_t bytes = args.count * dataTypeSize(args.dtype);
  switch (args.kind) {
    case Kind::AllReduce:
      switch (allReduceAlgorithm(args, ctx.tuning, ctx.size)) {
        case AllReduceAlgorithm::Ring: return makeRingAllReduce(args, ctx);
        case AllReduceAlgorithm::RecursiveDoubling: return makeRecursiveDoublingAllReduce(args, ctx);
        case AllReduceAlgorithm::HalvingDoubling: return makeHalvingDoublingAllReduce(args, ctx);
      }
      return nullptr;
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
