// Pipelined chain reduce toward the root, for large vectors: the mirror image of the chain
// broadcast. Relative ranks v = (rank - root) mod n; the partial result flows from v = n-1 down
// to v = 0 (the root), each rank adding its own input segment by segment.
//
// Why a chain for large vectors: every link carries the vector once and all links work at once
// when the pipeline is full, so the time is about (n - 2 + S) segment times, and no rank ever
// receives more than one vector (the root of a binomial tree receives log2(n) of them).
//
// Order (fixed, so the root's result does not depend on timing):
//   partial(n-1) = x(n-1);  partial(v) = x(v) OP partial(v+1);  result = partial(0).
// avg is finalised at the root only. Non-root ranks never write recv: a middle rank combines
// into the scratch slot the partial arrived in and forwards it from there.
//
// Tags: segment k uses step k on every link. A middle rank's slot for segment k (k mod depth)
// is reused for k + depth only after segment k has been forwarded (its send retired).
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"
#include "core/scratch.h"

#include <vector>

namespace loom::coll {
namespace {

using patterns::Range;

class ChainReduce final : public AlgorithmBase {
 public:
  ChainReduce(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    const int vrank = patterns::toRelative(rank_, args_.root, size_);
    isRoot_ = vrank == 0;
    upstream_ = vrank + 1 < size_ ? patterns::fromRelative(vrank + 1, args_.root, size_) : -1;
    downstream_ = isRoot_ ? -1 : patterns::fromRelative(vrank - 1, args_.root, size_);
    segments_ = patterns::segmentCount(args_.count, ctx_.tuning.segmentBytes, elemSize(), 1);
    slotElems_ = patterns::largestBlock(args_.count, segments_);
    if (upstream_ >= 0 && size_ > 1) scratch_ = Scratch(kPipelineDepth * bytesOf(slotElems_));
  }

 private:
  Status advance() override {
    if (reducedTrivially()) return Status::ok();
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      LOOM_RETURN_IF_ERROR(retireReceived(recvs_, moved, [this](size_t unit) { combine(unit); }));
      if (upstream_ >= 0) {
        // A slot is free once its previous segment was combined and (middle ranks) forwarded.
        while (recvs_.posted() < segments_ && recvs_.hasRoom() &&
               (isRoot_ || recvs_.posted() < kPipelineDepth || sends_.retired() > recvs_.posted() - kPipelineDepth)) {
          const size_t k = recvs_.posted();
          const Range r = segment(k);
          recvs_.push(postRecv(upstream_, slot(k), bytesOf(r.size()), static_cast<uint32_t>(k)));
          moved = true;
        }
      }
      if (downstream_ >= 0) {
        // The last rank sends its input as is; a middle rank forwards each slot once combined.
        while (sends_.posted() < segments_ && sends_.hasRoom() && (upstream_ < 0 || recvs_.retired() > sends_.posted())) {
          const size_t k = sends_.posted();
          const Range r = segment(k);
          const void* src = upstream_ < 0 ? static_cast<const void*>(sendBytes(r.begin)) : slot(k);
          sends_.push(postSend(downstream_, src, bytesOf(r.size()), static_cast<uint32_t>(k)));
          moved = true;
        }
      }
      const bool received = upstream_ < 0 || recvs_.retired() == segments_;
      const bool sent = downstream_ < 0 || sends_.retired() == segments_;
      if (received && sent) return Status::ok();
      if (!moved) return Status(loomInProgress, {});
    }
  }

  Range segment(size_t k) const { return patterns::blockRange(args_.count, segments_, k); }
  uint8_t* slot(size_t k) { return scratch_.data() + (k % kPipelineDepth) * bytesOf(slotElems_); }

  // partial(v) = x(v) OP partial(v+1), into recv at the root and in the slot elsewhere.
  void combine(size_t k) {
    const Range r = segment(k);
    if (r.size() == 0) return;
    void* out = isRoot_ ? static_cast<void*>(recvBytes(r.begin)) : slot(k);
    reduceInto(out, sendBytes(r.begin), slot(k), r.size(), args_.dtype, args_.op);
    if (isRoot_ && args_.op == loomAvg) reduceFinalizeAvg(out, r.size(), args_.dtype, size_);
  }

  bool isRoot_ = false;
  int upstream_ = -1;    // the rank we receive partials from (-1: the chain's far end)
  int downstream_ = -1;  // the rank we send to (-1: the root)
  size_t segments_ = 1;
  size_t slotElems_ = 0;
  Scratch scratch_;
  InFlightWindow sends_;
  InFlightWindow recvs_;
};

}  // namespace

std::unique_ptr<Operation> makeChainReduce(const Args& args, const Context& ctx) {
  return std::make_unique<ChainReduce>(args, ctx);
}

}  // namespace loom::coll
