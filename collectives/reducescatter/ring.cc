// Pipelined ring reduce-scatter: the first half of the ring all-reduce. send holds n blocks of
// `count` elements; rank r ends with block r reduced over all ranks, in recv.
//
// Schedule: n - 1 phases; in phase p rank r sends block (r - p - 1) mod n to its right neighbour
// and receives block (r - p - 2) mod n from its left one, combining it with its own input for
// that block. What is sent in phase p + 1 is what was combined in phase p; the last phase
// (p = n - 2) receives block r itself and combines straight into recv. Every rank sends and
// receives (n-1)/n of its input once. Block c is reduced along the ring c+1, c+2, ..., c in a
// fixed order, so the result never depends on timing. avg is finalised by the owner.
//
// Buffers: the input is never written, and recv holds only the final block (in place it is the
// rank's own input block, still needed by the last phase), so partials live in two block-sized
// accumulators used alternately by even and odd phases: phase p receives into acc[p % 2] while
// phase p's send forwards acc[(p - 1) % 2].
//
// Units and tags: unit u = p * S + k (segment k of phase p), message step u. Send u waits for
// receive u - S (the partial it forwards); receive u (p >= 2) overwrites what send u - S read,
// so it waits for that send to have completed. Both rules point at earlier units only.
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"

#include <vector>

namespace loom::coll {
namespace {

using patterns::Range;

class RingReduceScatter final : public AlgorithmBase {
 public:
  RingReduceScatter(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    if (size_ < 2 || args_.count == 0) return;
    const size_t phases = static_cast<size_t>(size_) - 1;
    segments_ = patterns::segmentCount(args_.count, ctx_.tuning.segmentBytes, elemSize(), phases);
    units_ = phases * segments_;
    next_ = patterns::ringNext(rank_, size_);
    prev_ = patterns::ringPrev(rank_, size_);
    acc_[0].resize(bytesOf(args_.count));
    if (phases > 1) acc_[1].resize(bytesOf(args_.count));
  }

 private:
  Status advance() override {
    if (reducedTrivially()) return Status::ok();
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      LOOM_RETURN_IF_ERROR(retireReceived(recvs_, moved, [this](size_t unit) { combine(unit); }));
      while (recvs_.posted() < units_ && recvs_.hasRoom() &&
             (recvs_.posted() < 2 * segments_ || sends_.retired() > recvs_.posted() - segments_)) {
        const size_t u = recvs_.posted();
        const Range s = segment(u % segments_);
        recvs_.push(postRecv(prev_, accumulator(u / segments_) + bytesOf(s.begin), bytesOf(s.size()),
                             static_cast<uint32_t>(u)));
        moved = true;
      }
      while (sends_.posted() < units_ && sends_.hasRoom() &&
             (sends_.posted() < segments_ || recvs_.retired() > sends_.posted() - segments_)) {
        const size_t u = sends_.posted();
        const size_t phase = u / segments_;
        const Range s = segment(u % segments_);
        const void* src = phase == 0 ? static_cast<const void*>(sendBytes(blockStart(sendBlock(0)) + s.begin))
                                     : accumulator(phase - 1) + bytesOf(s.begin);
        sends_.push(postSend(next_, src, bytesOf(s.size()), static_cast<uint32_t>(u)));
        moved = true;
      }
      if (sends_.retired() == units_ && recvs_.retired() == units_) return Status::ok();
      if (!moved) return Status(loomInProgress, {});
    }
  }

  size_t blockStart(int block) const { return static_cast<size_t>(block) * args_.count; }
  int sendBlock(size_t phase) const { return patterns::wrapRank(int64_t(rank_) - int64_t(phase) - 1, size_); }
  int recvBlock(size_t phase) const { return patterns::wrapRank(int64_t(rank_) - int64_t(phase) - 2, size_); }
  Range segment(size_t k) const { return patterns::blockRange(args_.count, segments_, k); }
  uint8_t* accumulator(size_t phase) { return acc_[phase % 2].data(); }

  void combine(size_t u) {
    const size_t phase = u / segments_;
    const Range s = segment(u % segments_);
    if (s.size() == 0) return;
    const uint8_t* own = sendBytes(blockStart(recvBlock(phase)) + s.begin);
    uint8_t* partial = accumulator(phase) + bytesOf(s.begin);
    if (phase + 2 < static_cast<size_t>(size_)) {
      reduceInto(partial, own, partial, s.size(), args_.dtype, args_.op);
      return;
    }
    // Last phase: block r itself. In place recv is `own`; out may alias a.
    reduceInto(recvBytes(s.begin), own, partial, s.size(), args_.dtype, args_.op);
    if (args_.op == loomAvg) reduceFinalizeAvg(recvBytes(s.begin), s.size(), args_.dtype, size_);
  }

  size_t segments_ = 1;
  size_t units_ = 0;
  int next_ = 0;
  int prev_ = 0;
  std::vector<uint8_t> acc_[2];
  InFlightWindow sends_;
  InFlightWindow recvs_;
};

}  // namespace

std::unique_ptr<Operation> makeRingReduceScatter(const Args& args, const Context& ctx) {
  return std::make_unique<RingReduceScatter>(args, ctx);
}

}  // namespace loom::coll
