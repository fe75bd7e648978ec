// Outcome agreement: an operation succeeds on one surviving rank only if it succeeds on all of
// them, so a failed collective can be retried among the survivors without any of them having
// moved on with a result the others do not have.
//
// Why it is needed: when a rank dies in the middle of a ring all-reduce, a survivor downstream of
// the chunks it already forwarded can finish while another survivor still waits for a chunk the
// dead rank never sent. Without agreement the first returns success and the second an error; the
// second retries the step among the survivors while the first has gone on with a sum that
// includes the dead rank. Their states differ for good.
//
// How: once the algorithm has everything it needs, this rank sends a zero-byte "done" vote to
// every peer and waits for one from every peer that is not lost. A rank that cannot finish sends
// OpError instead (the communicator does that for every failure), which fails the operation at
// every rank still voting. So for any two survivors, each hears the same verdict from every other
// survivor, and a lost rank's vote does not count: either all survivors succeed (every survivor
// had its data) or all fail. Cost: one hop of empty messages at the end of each collective; with
// two ranks there is nobody to disagree with, so the communicator does not add it there.
#include "collectives/algorithm.h"

namespace loom::coll {
namespace {

constexpr uint32_t kVoteStep = 0xFFFFFFFFu;  // no algorithm uses this step

class Vote final : public Operation {
 public:
  Vote(std::unique_ptr<Operation> inner, const Context& ctx) : inner_(std::move(inner)), ctx_(ctx) {}

  Status progress() override {
    if (finished_) return final_;
    if (!voted_) {
      Status s = inner_->progress();
      if (s.code() == loomInProgress) return s;
      if (!s.isOk()) return finish(s);
      castVotes();
    }
    Status s = tally();
    return s.code() == loomInProgress ? s : finish(s);
  }

  bool voting() const override { return voted_ && !finished_; }

  void cancel(const Status& why) override {
    inner_->cancel(why);
    for (auto& t : transfers_)
      if (t && !t->done()) ctx_.transport->cancel(t, why);
    if (!finished_) (void)finish(why);
  }

  // A vote lost after the inner operation succeeded fails it too: its input goes back all the same.
  void settleInput(bool restore) override { inner_->settleInput(restore); }

 private:
  void castVotes() {
    voted_ = true;
    transport::Tag tag = ctx_.base;
    tag.step = kVoteStep;
    for (int p = 0; p < ctx_.size; ++p) {
      if (p == ctx_.rank) continue;
      transfers_.push_back(ctx_.transport->irecv(p, &sink_, 0, tag, ctx_.signature));
      transfers_.push_back(ctx_.transport->isend(p, &sink_, 0, tag, ctx_.signature));
    }
  }

  // Every vote in and sent, except with peers that are lost (their vote does not count).
  Status tally() {
    bool pending = false;
    for (const auto& t : transfers_) {
      if (!t->done()) {
        pending = true;
        continue;
      }
      if (t->failed() && t->status.code() != loomPeerLost) return t->status;
    }
    return pending ? Status(loomInProgress, {}) : Status::ok();
  }

  Status finish(Status s) {
    finished_ = true;
    final_ = std::move(s);
    if (!final_.isOk())
      for (auto& t : transfers_)
        if (!t->done()) ctx_.transport->cancel(t, final_);
    transfers_.clear();
    return final_;
  }

  std::unique_ptr<Operation> inner_;
  Context ctx_;
  std::vector<transport::TransferPtr> transfers_;
  uint8_t sink_ = 0;  // zero-byte messages still want an address
  bool voted_ = false;
  bool finished_ = false;
  Status final_;
};

}  // namespace

std::unique_ptr<Operation> withOutcomeVote(std::unique_ptr<Operation> inner, const Context& ctx) {
  return std::make_unique<Vote>(std::move(inner), ctx);
}

}  // namespace loom::coll
