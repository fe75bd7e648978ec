// Halving-doubling all-reduce (Rabenseifner): a reduce-scatter by recursive halving, then an
// all-gather by recursive doubling, for a power-of-two world of p ranks. Each rank sends and
// receives 2(p-1)/p of the vector, as in the ring, but in 2 log2(p) steps instead of 2(p-1):
// fewer hand-offs between ranks, which is what a mid-size vector pays for when ranks outnumber
// cores (4 ranks on 2 cores: 4 steps instead of 6). makeOperation() uses it only for a power of
// two; a forced choice on any other world runs the ring.
//
// The vector is split into p blocks (patterns::blockRange). Reduce-scatter, mask m = p/2 .. 1:
// the rank's current range of 2m blocks starting at `lo` is halved; it keeps the half its bit m
// selects (upper if set), sends the other half to partner rank ^ m and combines the partner's
// copy of the kept half into the result buffer. After log2(p) steps rank r owns block r, fully
// reduced. All-gather, m = 1 .. p/2: partners swap their current ranges (m blocks each), which
// doubles them, until every rank holds all p blocks.
//
// Determinism: every block is reduced at one rank only and copied from there, so all ranks end
// with identical bytes. Each combine puts the lower rank's data first, as recursive doubling does.
// avg is finalised by the block's owner before the all-gather.
//
// Steps: reduce-scatter step s uses tag step s, all-gather step s uses log2(p) + s; a pair meets
// in one step of each half, one message per direction.
//
// Messages are whole half-ranges, not segmented: a step's combine needs the partner's complete
// half, and the next step needs that combine. Out of place, step 0 reads the input and every
// later step the result buffer. In place the input is overwritten from the first combine on; it is
// kept by the caller's up-front copy (keepsInputItself() is false for this algorithm).
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"
#include "core/scratch.h"

#include <algorithm>

namespace loom::coll {
namespace {

using patterns::Range;

class HalvingDoublingAllReduce final : public AlgorithmBase {
 public:
  HalvingDoublingAllReduce(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    for (int m = 1; m < size_; m <<= 1) ++steps_;
    mask_ = size_ / 2;
  }

 private:
  Status advance() override {
    if (reducedTrivially()) return Status::ok();
    for (;;) {
      if (!send_) {
        if (step_ == 2 * steps_) return Status::ok();
        post();
      }
      if (!send_->done() || !recv_->done()) return Status(loomInProgress, {});
      if (send_->failed()) return send_->status;
      if (recv_->failed()) return recv_->status;
      finishStep();
      send_.reset();
      recv_.reset();
    }
  }

  bool reducing() const { return step_ < steps_; }
  int partner() const { return rank_ ^ mask_; }

  // Elements of blocks [first, first + blocks).
  Range blocks(int first, int blocks) const {
    const size_t p = static_cast<size_t>(size_);
    return {patterns::blockRange(args_.count, p, static_cast<size_t>(first)).begin,
            patterns::blockRange(args_.count, p, static_cast<size_t>(first + blocks - 1)).end};
  }

  void post() {
    const uint32_t tag = static_cast<uint32_t>(step_);
    if (reducing()) {
      // Halve [lo_, lo_ + 2m): keep the half this rank's bit m selects, send the other.
      const bool upper = (rank_ & mask_) != 0;
      const int keepLo = upper ? lo_ + mask_ : lo_;
      const int giveLo = upper ? lo_ : lo_ + mask_;
      kept_ = blocks(keepLo, mask_);
      const Range give = blocks(giveLo, mask_);
      if (!scratch_.data()) scratch_ = Scratch(bytesOf(blocks(0, mask_).size()));  // the largest half
      const void* src = step_ == 0 ? static_cast<const void*>(sendBytes(give.begin)) : recvBytes(give.begin);
      recv_ = postRecv(partner(), scratch_.data(), bytesOf(kept_.size()), tag);
      send_ = postSend(partner(), src, bytesOf(give.size()), tag);
      lo_ = keepLo;
    } else {
      // Swap [lo_, lo_ + m) with the partner's range, which differs in bit m.
      const int theirLo = lo_ ^ mask_;
      const Range mine = blocks(lo_, mask_);
      const Range theirs = blocks(theirLo, mask_);
      recv_ = postRecv(partner(), recvBytes(theirs.begin), bytesOf(theirs.size()), tag);
      send_ = postSend(partner(), recvBytes(mine.begin), bytesOf(mine.size()), tag);
      lo_ = std::min(lo_, theirLo);
    }
  }

  void finishStep() {
    if (reducing()) {
      const void* own = step_ == 0 ? static_cast<const void*>(sendBytes(kept_.begin)) : recvBytes(kept_.begin);
      const void* lower = rank_ < partner() ? own : scratch_.data();
      const void* higher = rank_ < partner() ? scratch_.data() : own;
      reduceInto(recvBytes(kept_.begin), lower, higher, kept_.size(), args_.dtype, args_.op);
    }
    ++step_;
    if (step_ < steps_) {
      mask_ >>= 1;
    } else if (step_ == steps_) {
      // Reduce-scatter done: this rank owns block `rank_` (== lo_), and the all-gather starts
      // with mask 1.
      if (args_.op == loomAvg) reduceFinalizeAvg(recvBytes(kept_.begin), kept_.size(), args_.dtype, size_);
      mask_ = 1;
    } else {
      mask_ <<= 1;
    }
  }

  int steps_ = 0;   // log2(p)
  int step_ = 0;    // 0 .. 2 log2(p)
  int mask_ = 0;    // the bit this step's partner differs in
  int lo_ = 0;      // first block of this rank's current range
  Range kept_;      // reduce-scatter: the half being combined this step
  Scratch scratch_;
  transport::TransferPtr send_;
  transport::TransferPtr recv_;
};

}  // namespace

std::unique_ptr<Operation> makeHalvingDoublingAllReduce(const Args& args, const Context& ctx) {
  return std::make_unique<HalvingDoublingAllReduce>(args, ctx);
}

}  // namespace loom::coll
