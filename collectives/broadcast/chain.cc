// Pipelined chain broadcast: root -> root+1 -> ... -> root+n-1, the vector cut into segments of
// tuning.segmentBytes (at least tuning.singleLinkSegmentBytes with 2 ranks) with up to
// kPipelineDepth of them in flight per link.
//
// Bandwidth-optimal for large vectors: every link carries the vector exactly once and, once the
// pipeline is full, all n-1 links are busy at the same time, so the time is about
// (n - 2 + S) segment times for S segments instead of the tree's log2(n) whole-vector times.
// That start-up cost of n - 2 segment hops is why small vectors use the binomial tree instead.
//
// Tags: segment k travels with step k on every link (one message per segment per pair).
// Dependencies: a middle rank forwards segment k once it has received it; receives go straight
// into recv (each segment is written exactly once, so they can all be posted ahead).
// The root copies its input into its own recv (NCCL semantics) and sends from its input.
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"
#include "core/stream_copy.h"

#include <algorithm>
#include <cstring>

namespace loom::coll {
namespace {

using patterns::Range;

// From this size the root writes its own copy with streaming stores: a vector this large does not
// stay in cache anyway, and a plain copy first reads every destination line it then overwrites.
constexpr size_t kStreamOwnCopyBytes = 16 << 20;

class ChainBroadcast final : public AlgorithmBase {
 public:
  ChainBroadcast(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    const int vrank = patterns::toRelative(rank_, args_.root, size_);
    isRoot_ = vrank == 0;
    prev_ = isRoot_ ? -1 : patterns::fromRelative(vrank - 1, args_.root, size_);
    next_ = vrank + 1 < size_ ? patterns::fromRelative(vrank + 1, args_.root, size_) : -1;
    // A chain of one link (2 ranks) has no rank to pipeline through: there a segment only costs
    // a message, and on loopback a larger send moves more bytes a second. Its segments are at
    // least tuning.singleLinkSegmentBytes (4 MiB), still cut so that the root's own copy (out of
    // place) runs behind its sends. 2 ranks, 4 MiB, medians of 7 alternating runs against 512 KiB
    // segments: in place 756 -> 638 µs, out of place 956 -> 742 µs (bench/RESULTS.md, session 14).
    const size_t segmentBytes =
        size_ == 2 ? std::max(ctx_.tuning.segmentBytes, ctx_.tuning.singleLinkSegmentBytes) : ctx_.tuning.segmentBytes;
    segments_ = patterns::segmentCount(args_.count, segmentBytes, elemSize(), 1);
    streamOwnCopy_ = bytesOf(args_.count) >= kStreamOwnCopyBytes;
  }

 private:
  Status advance() override {
    if (args_.count == 0) return Status::ok();
    if (size_ == 1) {
      copyIfDistinct(args_.recv, args_.send, args_.count);
      return Status::ok();
    }
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      LOOM_RETURN_IF_ERROR(retireFinished(recvs_, moved));
      if (!isRoot_) {
        while (recvs_.posted() < segments_ && recvs_.hasRoom()) {
          const size_t k = recvs_.posted();
          const Range r = patterns::blockRange(args_.count, segments_, k);
          recvs_.push(postRecv(prev_, recvBytes(r.begin), bytesOf(r.size()), static_cast<uint32_t>(k)));
          moved = true;
        }
      }
      if (next_ >= 0) {
        // Forward segment k only once it is here (the root has everything from the start).
        while (sends_.posted() < segments_ && sends_.hasRoom() && (isRoot_ || recvs_.retired() > sends_.posted())) {
          const size_t k = sends_.posted();
          const Range r = patterns::blockRange(args_.count, segments_, k);
          const void* src = isRoot_ ? static_cast<const void*>(sendBytes(r.begin)) : recvBytes(r.begin);
          sends_.push(postSend(next_, src, bytesOf(r.size()), static_cast<uint32_t>(k)));
          // The root's own copy goes segment by segment, behind the sends, not before them all.
          if (isRoot_ && args_.send != args_.recv) {
            if (streamOwnCopy_)
              copyStreaming(recvBytes(r.begin), sendBytes(r.begin), bytesOf(r.size()));
            else
              std::memcpy(recvBytes(r.begin), sendBytes(r.begin), bytesOf(r.size()));
          }
          moved = true;
        }
      }
      const bool received = isRoot_ || recvs_.retired() == segments_;
      const bool sent = next_ < 0 || sends_.retired() == segments_;
      if (received && sent) return Status::ok();
      if (!moved) return Status(loomInProgress, {});
    }
  }

  bool isRoot_ = false;
  bool streamOwnCopy_ = false;
  int prev_ = -1;
  int next_ = -1;
  size_t segments_ = 1;
  InFlightWindow sends_;
  InFlightWindow recvs_{kReceiveWindow};
};

}  // namespace

std::unique_ptr<Operation> makeChainBroadcast(const Args& args, const Context& ctx) {
  return std::make_unique<ChainBroadcast>(args, ctx);
}

}  // namespace loom::coll
