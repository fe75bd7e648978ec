// Binomial-tree reduce toward the root, for small vectors: ceil(log2 n) hops against the chain's
// n - 1, the mirror image of the tree broadcast (relative ranks v = (rank - root) mod n, parent
// = v with its lowest set bit cleared). The root receives log2(n) whole vectors, which is why
// large vectors use the pipelined chain instead.
//
// Order (fixed): a rank combines its own input with its children's partials in the order
// patterns::binomialChildren gives them: acc = ((x OP child0) OP child1) ... . The root
// accumulates into recv and finalises avg; other ranks accumulate in scratch and never write recv.
//
// Segmented like the other algorithms (segment k uses step k on every edge), so a forced tree on
// a large vector still pipelines. Receives are units j = k * children + i (segment k from child
// i), retired and combined strictly in that order, each into its own slot (window of depth x
// children). A non-root's accumulator slot for segment k (k mod depth) is reused for k + depth
// only after segment k went to the parent.
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"

#include <algorithm>
#include <vector>

namespace loom::coll {
namespace {

using patterns::Range;

class TreeReduce final : public AlgorithmBase {
 public:
  TreeReduce(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    const int vrank = patterns::toRelative(rank_, args_.root, size_);
    isRoot_ = vrank == 0;
    parent_ = isRoot_ ? -1 : patterns::fromRelative(patterns::binomialParent(vrank), args_.root, size_);
    for (int child : patterns::binomialChildren(vrank, size_)) {
      children_.push_back(patterns::fromRelative(child, args_.root, size_));
    }
    segments_ = patterns::segmentCount(args_.count, ctx_.tuning.segmentBytes, elemSize(), 1);
    slotElems_ = patterns::largestBlock(args_.count, segments_);
    recvUnits_ = segments_ * children_.size();
    recvs_ = InFlightWindow(kPipelineDepth * std::max<size_t>(1, children_.size()));
    if (size_ > 1 && !children_.empty()) {
      inbox_.resize(kPipelineDepth * children_.size() * bytesOf(slotElems_));
      if (!isRoot_) acc_.resize(kPipelineDepth * bytesOf(slotElems_));
    }
  }

 private:
  Status advance() override {
    if (reducedTrivially()) return Status::ok();
    const size_t nchildren = children_.size();
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      while (const transport::Transfer* t = recvs_.oldestFinished()) {
        if (t->failed()) return t->status;
        const size_t j = recvs_.retired();
        const size_t k = j / nchildren;
        // The first combine of segment k overwrites its accumulator slot: wait until the slot's
        // previous segment (k - depth) has gone to the parent.
        if (!isRoot_ && j % nchildren == 0 && k >= kPipelineDepth && sends_.retired() <= k - kPipelineDepth) break;
        combine(j);
        recvs_.retireOldest();
        moved = true;
      }
      while (recvs_.posted() < recvUnits_ && recvs_.hasRoom()) {
        const size_t j = recvs_.posted();
        const size_t k = j / nchildren;
        recvs_.push(postRecv(children_[j % nchildren], inbox(j), bytesOf(segment(k).size()), static_cast<uint32_t>(k)));
        moved = true;
      }
      if (!isRoot_) {
        // Segment k goes up once every child's part of it has been combined (leaves: at once).
        while (sends_.posted() < segments_ && sends_.hasRoom() &&
               (nchildren == 0 || recvs_.retired() >= (sends_.posted() + 1) * nchildren)) {
          const size_t k = sends_.posted();
          const Range r = segment(k);
          const void* src = nchildren == 0 ? static_cast<const void*>(sendBytes(r.begin)) : accumulator(k);
          sends_.push(postSend(parent_, src, bytesOf(r.size()), static_cast<uint32_t>(k)));
          moved = true;
        }
      }
      const bool received = recvs_.retired() == recvUnits_;
      const bool sent = isRoot_ || sends_.retired() == segments_;
      if (received && sent) return Status::ok();
      if (!moved) return Status(loomInProgress, {});
    }
  }

  Range segment(size_t k) const { return patterns::blockRange(args_.count, segments_, k); }
  uint8_t* inbox(size_t j) { return inbox_.data() + (j % (kPipelineDepth * children_.size())) * bytesOf(slotElems_); }
  void* accumulator(size_t k) {
    if (isRoot_) return recvBytes(segment(k).begin);
    return acc_.data() + (k % kPipelineDepth) * bytesOf(slotElems_);
  }

  // Receive unit j = segment k from child i: acc = x OP child0 for i == 0, acc OP= child_i after.
  void combine(size_t j) {
    const size_t nchildren = children_.size();
    const size_t k = j / nchildren;
    const size_t i = j % nchildren;
    const Range r = segment(k);
    if (r.size() == 0) return;
    void* acc = accumulator(k);
    if (i == 0) {
      reduceInto(acc, sendBytes(r.begin), inbox(j), r.size(), args_.dtype, args_.op);
    } else {
      reduceInPlace(acc, inbox(j), r.size(), args_.dtype, args_.op);
    }
    if (isRoot_ && i + 1 == nchildren && args_.op == loomAvg) {
      reduceFinalizeAvg(acc, r.size(), args_.dtype, size_);
    }
  }

  bool isRoot_ = false;
  int parent_ = -1;
  std::vector<int> children_;  // real ranks, in combining order
  size_t segments_ = 1;
  size_t slotElems_ = 0;
  size_t recvUnits_ = 0;
  std::vector<uint8_t> inbox_;  // depth x children receive slots
  std::vector<uint8_t> acc_;    // depth accumulator slots (non-root interior ranks)
  InFlightWindow sends_;
  InFlightWindow recvs_;
};

}  // namespace

std::unique_ptr<Operation> makeTreeReduce(const Args& args, const Context& ctx) {
  return std::make_unique<TreeReduce>(args, ctx);
}

}  // namespace loom::coll
