// Binomial-tree broadcast for small vectors: ceil(log2 n) hops from the root to the farthest
// rank, against the chain's n - 1, so it wins whenever latency dominates. Interior ranks send the
// whole vector to up to log2(n) children, which is why large vectors use the chain instead.
//
// Tree over relative ranks v = (rank - root) mod n (patterns::binomialChildren): v's parent is v
// with its lowest set bit cleared. Children are served largest subtree first so the deepest path
// starts earliest.
//
// The vector is still cut into segments (tuning.segmentBytes): when someone forces the tree for a
// large vector, a rank forwards segment k while segment k+1 is arriving, instead of holding the
// whole vector back. For the usual small vectors that is a single segment.
//
// Tags: segment k uses step k on every edge (one message per segment per pair). Sends are units
// j = k * children + i (segment k to child i), retired in order; a non-root forwards segment k
// once it has received it. The root copies its input into its own recv and sends from its input.
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"

#include <vector>

namespace loom::coll {
namespace {

using patterns::Range;

class TreeBroadcast final : public AlgorithmBase {
 public:
  TreeBroadcast(const Args& args, const Context& ctx)
      : AlgorithmBase(args, ctx), sends_(kPipelineDepth * maxChildren(ctx.size)) {
    const int vrank = patterns::toRelative(rank_, args_.root, size_);
    isRoot_ = vrank == 0;
    parent_ = isRoot_ ? -1 : patterns::fromRelative(patterns::binomialParent(vrank), args_.root, size_);
    children_ = patterns::binomialChildren(vrank, size_);
    for (int& child : children_) child = patterns::fromRelative(child, args_.root, size_);
    segments_ = patterns::segmentCount(args_.count, ctx_.tuning.segmentBytes, elemSize(), 1);
    sendUnits_ = segments_ * children_.size();
  }

 private:
  static size_t maxChildren(int size) {
    size_t c = 1;
    while ((size_t{1} << c) < static_cast<size_t>(size)) ++c;
    return c;
  }

  Status advance() override {
    if (args_.count == 0) return Status::ok();
    if (!started_) {
      started_ = true;
      if (isRoot_) copyIfDistinct(args_.recv, args_.send, args_.count);
    }
    if (size_ == 1) return Status::ok();
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      LOOM_RETURN_IF_ERROR(retireFinished(recvs_, moved));
      if (!isRoot_) {
        while (recvs_.posted() < segments_ && recvs_.hasRoom()) {
          const size_t k = recvs_.posted();
          const Range r = patterns::blockRange(args_.count, segments_, k);
          recvs_.push(postRecv(parent_, recvBytes(r.begin), bytesOf(r.size()), static_cast<uint32_t>(k)));
          moved = true;
        }
      }
      while (sends_.posted() < sendUnits_ && sends_.hasRoom()) {
        const size_t unit = sends_.posted();
        const size_t k = unit / children_.size();
        if (!isRoot_ && recvs_.retired() <= k) break;  // segment k not here yet
        const Range r = patterns::blockRange(args_.count, segments_, k);
        const void* src = isRoot_ ? static_cast<const void*>(sendBytes(r.begin)) : recvBytes(r.begin);
        sends_.push(postSend(children_[unit % children_.size()], src, bytesOf(r.size()), static_cast<uint32_t>(k)));
        moved = true;
      }
      const bool received = isRoot_ || recvs_.retired() == segments_;
      if (received && sends_.retired() == sendUnits_) return Status::ok();
      if (!moved) return Status(loomInProgress, {});
    }
  }

  bool isRoot_ = false;
  bool started_ = false;
  int parent_ = -1;
  patterns::RankList children_;  // real ranks, largest subtree first
  size_t segments_ = 1;
  size_t sendUnits_ = 0;
  InFlightWindow sends_;
  InFlightWindow recvs_;
};

}  // namespace

std::unique_ptr<Operation> makeTreeBroadcast(const Args& args, const Context& ctx) {
  return std::make_unique<TreeBroadcast>(args, ctx);
}

}  // namespace loom::coll
