// Recursive-doubling all-reduce: log2(p) rounds in which partners r and r ^ 2^d swap their whole
// current vectors and both combine them. Latency-optimal for small vectors (ceil(log2 n) + 2
// message times instead of the ring's 2(n-1)); it moves log2(p) whole vectors per rank, which is
// why makeOperation() switches to the ring above tuning.allreduceSmallBytes. Messages are whole
// vectors, never segmented: every round needs the previous round's complete result from a
// different partner, so there is nothing to overlap within this algorithm.
//
// Non-powers of two (n = p + e, p the largest power of two <= n, e extra ranks):
//   fold    rank p + i (i < e) sends its input to rank i, which combines it with its own
//           (step 0) — ranks 0..p-1 now each stand for a group of one or two ranks;
//   rounds  d = 0..log2(p)-1 among ranks 0..p-1, partner r ^ 2^d (step 1 + d);
//   unfold  rank i < e sends the final result back to rank p + i (step 1 + log2(p)).
// Every pair exchanges at most one message per step, so steps are unique per pair and direction.
//
// Determinism: partners must compute the same bytes, so each combine is written as
// reduceInto(out, lowerRankGroupData, higherRankGroupData): rank r with partner q > r computes
// mine OP theirs, q computes theirs OP mine — the same operands in the same order. The kernels
// are element-wise and commutative ops are fine either way, but being explicit keeps it true for
// any future op. avg: ranks 0..p-1 finalise identically; extra ranks receive finalised bytes.
#include "collectives/algorithm.h"
#include "collectives/patterns/patterns.h"
#include "core/scratch.h"

#include <vector>

namespace loom::coll {
namespace {

class RecursiveDoublingAllReduce final : public AlgorithmBase {
 public:
  RecursiveDoublingAllReduce(const Args& args, const Context& ctx) : AlgorithmBase(args, ctx) {
    pow2_ = patterns::largestPowerOfTwoAtMost(size_);
    extras_ = size_ - pow2_;
    for (int m = 1; m < pow2_; m <<= 1) ++rounds_;
    isExtra_ = rank_ >= pow2_;
    absorbsExtra_ = rank_ < extras_;
    current_ = args_.send;
  }

 private:
  enum class Stage { Start, ExtraWaiting, Folding, Exchanging, Unfolding };

  uint32_t foldStep() const { return 0; }
  uint32_t roundStep(int round) const { return 1 + static_cast<uint32_t>(round); }
  uint32_t unfoldStep() const { return 1 + static_cast<uint32_t>(rounds_); }
  size_t bytes() const { return bytesOf(args_.count); }

  Status advance() override {
    if (reducedTrivially()) return Status::ok();
    for (;;) {
      Status s = step();
      if (s.code() != loomInProgress || !moved_) return s;
      moved_ = false;  // a stage changed: try the next one right away
    }
  }

  // One stage transition at most; sets moved_ when it made one.
  Status step() {
    switch (stage_) {
      case Stage::Start:
        if (isExtra_) {
          send_ = postSend(rank_ - pow2_, args_.send, bytes(), foldStep());
          // The result lands in recv; in place that is also the input being sent, so the receive
          // waits for the send. Out of place it can be posted at once.
          if (args_.send != args_.recv) recv_ = postRecv(rank_ - pow2_, args_.recv, bytes(), unfoldStep());
          return advanceTo(Stage::ExtraWaiting);
        }
        scratch_ = Scratch(bytes());
        if (absorbsExtra_) {
          recv_ = postRecv(rank_ + pow2_, scratch_.data(), bytes(), foldStep());
          return advanceTo(Stage::Folding);
        }
        startRound();
        return advanceTo(Stage::Exchanging);

      case Stage::ExtraWaiting:
        if (!finished(send_)) return pending();
        if (send_->failed()) return send_->status;
        if (!recv_) recv_ = postRecv(rank_ - pow2_, args_.recv, bytes(), unfoldStep());
        if (!finished(recv_)) return pending();
        return recv_->failed() ? recv_->status : Status::ok();

      case Stage::Folding:
        if (!finished(recv_)) return pending();
        if (recv_->failed()) return recv_->status;
        // This rank is the lower one of the pair (i, p + i).
        reduceInto(args_.recv, args_.send, scratch_.data(), args_.count, args_.dtype, args_.op);
        current_ = args_.recv;
        startRound();
        return advanceTo(Stage::Exchanging);

      case Stage::Exchanging: {
        if (!finished(send_) || !finished(recv_)) return pending();
        if (send_->failed()) return send_->status;
        if (recv_->failed()) return recv_->status;
        const int partner = rank_ ^ (1 << round_);
        if (rank_ < partner) {
          reduceInto(args_.recv, current_, scratch_.data(), args_.count, args_.dtype, args_.op);
        } else {
          reduceInto(args_.recv, scratch_.data(), current_, args_.count, args_.dtype, args_.op);
        }
        current_ = args_.recv;
        if (++round_ < rounds_) {
          startRound();
          moved_ = true;
          return pending();
        }
        if (args_.op == loomAvg) reduceFinalizeAvg(args_.recv, args_.count, args_.dtype, size_);
        if (!absorbsExtra_) return Status::ok();
        send_ = postSend(rank_ + pow2_, args_.recv, bytes(), unfoldStep());
        recv_.reset();
        return advanceTo(Stage::Unfolding);
      }

      case Stage::Unfolding:
        if (!finished(send_)) return pending();
        return send_->failed() ? send_->status : Status::ok();
    }
    return Status(loomInternalError, "recursive doubling: bad stage");
  }

  void startRound() {
    const int partner = rank_ ^ (1 << round_);
    recv_ = postRecv(partner, scratch_.data(), bytes(), roundStep(round_));
    // current_ is the input until the first combine, then the result buffer: the next combine
    // overwrites it only after this send has completed (Exchanging waits for both).
    send_ = postSend(partner, current_, bytes(), roundStep(round_));
  }

  static bool finished(const transport::TransferPtr& t) { return t && t->done(); }
  static Status pending() { return Status(loomInProgress, {}); }
  Status advanceTo(Stage next) {
    stage_ = next;
    moved_ = true;
    return pending();
  }

  int pow2_ = 1;
  int extras_ = 0;
  int rounds_ = 0;
  int round_ = 0;
  bool isExtra_ = false;
  bool absorbsExtra_ = false;
  bool moved_ = false;
  Stage stage_ = Stage::Start;
  const void* current_ = nullptr;  // this rank's group data: input at first, then recv
  Scratch scratch_;
  transport::TransferPtr send_;
  transport::TransferPtr recv_;
};

}  // namespace

std::unique_ptr<Operation> makeRecursiveDoublingAllReduce(const Args& args, const Context& ctx) {
  return std::make_unique<RecursiveDoublingAllReduce>(args, ctx);
}

}  // namespace loom::coll
