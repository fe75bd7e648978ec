// Pipelined ring all-reduce: reduce-scatter, then all-gather, over n chunks of the vector.
//
// Bandwidth-optimal for large vectors: every rank sends and receives 2(n-1)/n of the data, and
// each chunk is cut into segments so that a segment can travel on while the next is reduced.
//
// Schedule. Rank r runs 2(n-1) phases; in phase p it sends chunk (r - p) mod n to its right
// neighbour and receives chunk (r - p - 1) mod n from its left one. Phases 0..n-2 are the
// reduce-scatter (the received partial is combined with this rank's input), phases n-1..2n-3 the
// all-gather (the received bytes are final). What a rank sends in phase p+1 is exactly what it
// received in phase p, so both halves are one loop. After phase n-2 rank r owns the fully
// reduced chunk (r + 1) mod n.
//
// Determinism. Chunk c is reduced once, along the ring c, c+1, ..., in that fixed order, by the
// ranks the partial passes through; the all-gather copies the owner's bytes. Every rank therefore
// ends with identical bytes, whatever the datatype. avg is finalised by the owner only.
//
// Units and tags. Unit u = p * S + k is segment k (of S per chunk) of phase p; the message for
// unit u uses step u. Between a pair only the left->right direction is used, so steps are unique.
//
// Dependencies (all on strictly earlier units, so the pipeline cannot deadlock even if a send
// completes only once its receive is posted):
//  - send u (phase >= 1) after receive u - S has been processed (that is the data it forwards);
//  - in place, reduce-scatter receives land in one of kInPlaceSlots scratch slots (unit % slots),
//    so a receive is posted only once the unit that used its slot before has been reduced;
//  - an all-gather receive writes the result buffer directly, into the region that send
//    u - (n-1)S read from, so it waits until that send has completed (matters in place).
//
// Keeping the input (in place, ctx.keepInput): chunk c is first overwritten by the reduction of
// its first received segment, chunk r (sent as it is in phase 0) by its first all-gather receive,
// so the chunks are kept in the order recvChunk(0), ..., recvChunk(n-1): each segment just before
// its reduction (its bytes are then in cache for it), chunk r's just before its phase-0 send (in
// cache for the kernel's copy), and more whenever a call to advance() finds nothing else to do.
#include "collectives/algorithm.h"
#include "collectives/kept_input.h"
#include "collectives/patterns/patterns.h"
#include "core/scratch.h"

#include <memory>
#include <vector>

namespace loom::coll {
namespace {

using patterns::Range;

// In place, partials are received into scratch slots: as many as this can be posted ahead (out of
// place they land in the result buffer and kReceiveWindow of them are). Deep enough that data
// finds its receive posted instead of going through the transport's stash; 16 x 512 KiB segments
// is 8 MiB of (recycled) scratch.
constexpr size_t kInPlaceSlots = 16;

class RingAllReduce final : public AlgorithmBase {
 public:
  RingAllReduce(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    if (size_ < 2 || args_.count == 0) return;
    const size_t n = static_cast<size_t>(size_);
    phases_ = 2 * (n - 1);
    segments_ = patterns::segmentCount(patterns::largestBlock(args_.count, n), ctx_.tuning.segmentBytes,
                                       elemSize(), phases_);
    units_ = phases_ * segments_;
    slotElems_ = patterns::largestBlock(patterns::largestBlock(args_.count, n), segments_);
    // Out of place, a partial lands straight in the result buffer (that region is not read before);
    // in place it is this rank's input, so partials need scratch slots, which bound the depth.
    inPlace_ = args_.send == args_.recv;
    if (inPlace_) scratch_ = Scratch(kInPlaceSlots * bytesOf(slotElems_));
    next_ = patterns::ringNext(rank_, size_);
    prev_ = patterns::ringPrev(rank_, size_);
    if (inPlace_ && ctx.keepInput) keepInputInWriteOrder();
  }

  void settleInput(bool restore) override {
    if (restore) kept_.restore();
    kept_.release();
  }

 private:
  Status advance() override {
    if (reducedTrivially()) return Status::ok();
    for (;;) {
      bool moved = false;
      LOOM_RETURN_IF_ERROR(retireFinished(sends_, moved));
      LOOM_RETURN_IF_ERROR(retireReceived(recvs_, moved, [this](size_t unit) { onReceived(unit); }));
      while (sends_.posted() < units_ && sends_.hasRoom() && sendReady(sends_.posted())) {
        postSendUnit(sends_.posted());
        moved = true;
      }
      while (recvs_.posted() < units_ && recvs_.hasRoom() && recvReady(recvs_.posted())) {
        postRecvUnit(recvs_.posted());
        moved = true;
      }
      if (sends_.retired() == units_ && recvs_.retired() == units_) return Status::ok();
      if (!moved) {
        // A moment that would be spent waiting. Small pieces (tuning: 256 KiB, ~20 us): data
        // that arrives meanwhile waits for one piece at most.
        if (kept_.active() && ctx_.tuning.keepAheadBytes) kept_.keepAhead(ctx_.tuning.keepAheadBytes);
        return Status(loomInProgress, {});
      }
    }
  }

  // Region p of the kept input is chunk recvChunk(p): the order in which the chunks are first
  // overwritten.
  void keepInputInWriteOrder() {
    const size_t n = static_cast<size_t>(size_);
    std::vector<KeptInput::Region> order;
    for (size_t p = 0; p < n; ++p) {
      const Range r = patterns::blockRange(args_.count, n, static_cast<size_t>(recvChunk(p)));
      order.push_back({bytesOf(r.begin), bytesOf(r.size())});
    }
    kept_ = KeptInput(recvBytes(), bytesOf(args_.count), std::move(order));
  }

  // Before overwriting elements [.., r.end) of chunk c: keep its input up to there. Chunk c is
  // recvChunk(p) for p = (rank - 1 - c) mod n.
  void keepUpTo(int chunk, const Range& r) {
    if (!kept_.active()) return;
    kept_.keep(static_cast<size_t>(patterns::wrapRank(int64_t(rank_) - 1 - chunk, size_)), bytesOf(r.end));
  }

  size_t phaseOf(size_t unit) const { return unit / segments_; }
  size_t segmentOfUnit(size_t unit) const { return unit % segments_; }
  bool inReduceScatter(size_t phase) const { return phase + 1 < static_cast<size_t>(size_); }
  int sendChunk(size_t phase) const { return patterns::wrapRank(int64_t(rank_) - int64_t(phase), size_); }
  int recvChunk(size_t phase) const { return patterns::wrapRank(int64_t(rank_) - int64_t(phase) - 1, size_); }

  // Elements of segment k of chunk c, as a range of the whole vector.
  Range segmentRange(int chunk, size_t segment) const {
    const Range c = patterns::blockRange(args_.count, static_cast<size_t>(size_), static_cast<size_t>(chunk));
    const Range s = patterns::blockRange(c.size(), segments_, segment);
    return {c.begin + s.begin, c.begin + s.end};
  }
  uint8_t* slot(size_t unit) { return scratch_.data() + (unit % kInPlaceSlots) * bytesOf(slotElems_); }
  // Where the partial of a reduce-scatter unit is received.
  uint8_t* partial(size_t unit, const Range& r) {
    return inPlace_ ? slot(unit) : static_cast<uint8_t*>(recvBytes(r.begin));
  }

  bool sendReady(size_t unit) const {
    if (unit >= segments_) return recvs_.retired() > unit - segments_;
    // Phase 0 forwards nothing, so nothing else paces it: keep it within one window of what this
    // rank has received. The ring is symmetric, so the right neighbour has then posted the receive
    // when the data arrives, and it lands in place instead of in the transport's stash.
    return unit < recvs_.retired() + kPipelineDepth;
  }
  bool recvReady(size_t unit) const {
    if (inReduceScatter(phaseOf(unit))) return !inPlace_ || unit < recvs_.retired() + kInPlaceSlots;
    return sends_.retired() > unit - (static_cast<size_t>(size_) - 1) * segments_;
  }

  void postSendUnit(size_t unit) {
    const size_t phase = phaseOf(unit);
    const Range r = segmentRange(sendChunk(phase), segmentOfUnit(unit));
    // Phase 0 sends this rank's own input; later phases forward what was received before. In
    // place, keep that input now: the kernel's copy into the socket then reads it from cache (kept
    // only before the all-gather overwrites it, it was read from memory a second time).
    if (phase == 0) keepUpTo(sendChunk(0), r);
    const void* src = phase == 0 ? static_cast<const void*>(sendBytes(r.begin)) : recvBytes(r.begin);
    sends_.push(postSend(next_, src, bytesOf(r.size()), static_cast<uint32_t>(unit)));
  }

  void postRecvUnit(size_t unit) {
    const size_t phase = phaseOf(unit);
    const Range r = segmentRange(recvChunk(phase), segmentOfUnit(unit));
    // An all-gather receive needs no keep of its own: the only chunk it overwrites first is this
    // rank's own, whose segment was kept when its phase-0 send was posted (recvReady waits for it).
    void* dst = inReduceScatter(phase) ? static_cast<void*>(partial(unit, r)) : recvBytes(r.begin);
    recvs_.push(postRecv(prev_, dst, bytesOf(r.size()), static_cast<uint32_t>(unit)));
  }

  void onReceived(size_t unit) {
    const size_t phase = phaseOf(unit);
    if (!inReduceScatter(phase)) return;  // all-gather: the bytes already are the result
    const Range r = segmentRange(recvChunk(phase), segmentOfUnit(unit));
    if (r.size() == 0) return;
    keepUpTo(recvChunk(phase), r);
    // result = own input OP partial of the ranks before us on the ring (fixed order).
    reduceInto(recvBytes(r.begin), sendBytes(r.begin), partial(unit, r), r.size(), args_.dtype, args_.op);
    if (args_.op == loomAvg && phase + 2 == static_cast<size_t>(size_)) {
      reduceFinalizeAvg(recvBytes(r.begin), r.size(), args_.dtype, size_);  // owner finalises once
    }
  }

  size_t phases_ = 0;
  size_t segments_ = 1;
  size_t units_ = 0;
  size_t slotElems_ = 0;
  int next_ = 0;
  int prev_ = 0;
  bool inPlace_ = false;
  Scratch scratch_;
  KeptInput kept_;
  InFlightWindow sends_;
  // Receives are posted far ahead (cheap), so data finds its receive posted and lands in place
  // rather than in the transport's stash for unexpected messages.
  InFlightWindow recvs_{kReceiveWindow};
};

}  // namespace

std::unique_ptr<Operation> makeRingAllReduce(const Args& args, const Context& ctx) {
  return std::make_unique<RingAllReduce>(args, ctx);
}

}  // namespace loom::coll
