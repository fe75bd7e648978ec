// Pipelined ring all-gather: n - 1 phases; in phase p rank r sends block (r - p) mod n to its
// right neighbour and receives block (r - p - 1) mod n from its left one, each block cut into
// segments of tuning.segmentBytes. Every rank sends and receives (n-1)/n of the result once, the
// bandwidth optimum; segments let a block travel on while its tail is still arriving.
//
// Bit-identical by construction: every block is the owner's bytes, copied, never recomputed.
//
// Units and tags: unit u = p * S + k (segment k of phase p), message step u; only the
// left->right direction of each pair is used. A rank forwards in phase p + 1 what it received in
// phase p, so send u waits for receive u - S. Receives go straight into their final place in
// recv; every region is written exactly once, so receives can be posted ahead freely.
// Out of place, the rank's own block is first copied into recv (in place it already is there:
// send == recv + rank * count elements).
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"

namespace loom::coll {
namespace {

using patterns::Range;

class RingAllGather final : public AlgorithmBase {
 public:
  RingAllGather(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    if (size_ < 2 || args_.count == 0) return;
    const size_t phases = static_cast<size_t>(size_) - 1;
    segments_ = patterns::segmentCount(args_.count, ctx_.tuning.segmentBytes, elemSize(), phases);
    units_ = phases * segments_;
    next_ = patterns::ringNext(rank_, size_);
    prev_ = patterns::ringPrev(rank_, size_);
  }

 private:
  Status advance() override {
    if (args_.count == 0) return Status::ok();
    if (!started_) {
      started_ = true;
      copyIfDistinct(recvBytes(blockStart(rank_)), args_.send, args_.count);
    }
    if (size_ == 1) return Status::ok();
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      LOOM_RETURN_IF_ERROR(retireFinished(recvs_, moved));
      while (recvs_.posted() < units_ && recvs_.hasRoom()) {
        const size_t u = recvs_.posted();
        const Range r = segmentRange(recvBlock(u / segments_), u % segments_);
        recvs_.push(postRecv(prev_, recvBytes(r.begin), bytesOf(r.size()), static_cast<uint32_t>(u)));
        moved = true;
      }
      while (sends_.posted() < units_ && sends_.hasRoom() &&
             (sends_.posted() < segments_ || recvs_.retired() > sends_.posted() - segments_)) {
        const size_t u = sends_.posted();
        const size_t phase = u / segments_;
        const Range r = segmentRange(sendBlock(phase), u % segments_);
        // Phase 0 sends the own block from the input (identical to its copy in recv).
        const void* src = phase == 0 ? static_cast<const void*>(sendBytes(r.begin - blockStart(rank_)))
                                     : recvBytes(r.begin);
        sends_.push(postSend(next_, src, bytesOf(r.size()), static_cast<uint32_t>(u)));
        moved = true;
      }
      if (sends_.retired() == units_ && recvs_.retired() == units_) return Status::ok();
      if (!moved) return Status(loomInProgress, {});
    }
  }

  size_t blockStart(int block) const { return static_cast<size_t>(block) * args_.count; }
  int sendBlock(size_t phase) const { return patterns::wrapRank(int64_t(rank_) - int64_t(phase), size_); }
  int recvBlock(size_t phase) const { return patterns::wrapRank(int64_t(rank_) - int64_t(phase) - 1, size_); }
  // Segment k of block b, as element offsets into recv.
  Range segmentRange(int block, size_t k) const {
    const Range s = patterns::blockRange(args_.count, segments_, k);
    return {blockStart(block) + s.begin, blockStart(block) + s.end};
  }

  bool started_ = false;
  size_t segments_ = 1;
  size_t units_ = 0;
  int next_ = 0;
  int prev_ = 0;
  InFlightWindow sends_;
  InFlightWindow recvs_{kReceiveWindow};
};

}  // namespace

std::unique_ptr<Operation> makeRingAllGather(const Args& args, const Context& ctx) {
  return std::make_unique<RingAllGather>(args, ctx);
}

}  // namespace loom::coll
