#include "collectives/algorithm.h"

#include <algorithm>
#include <cstring>

namespace loom::coll {

AlgorithmBase::AlgorithmBase(const Args& args, const Context& ctx)
    : args_(args), ctx_(ctx), rank_(ctx.rank), size_(ctx.size), elemSize_(dataTypeSize(args.dtype)) {}

Status AlgorithmBase::progress() {
  if (finished_) return final_;
  Status s = advance();
  if (s.code() == loomInProgress) {
    // Keep `live_` proportional to what is really in flight; amortised O(1) per post.
    if (live_.size() >= pruneAt_) {
      live_.erase(std::remove_if(live_.begin(), live_.end(), [](const transport::TransferPtr& t) { return t->done(); }),
                  live_.end());
      pruneAt_ = std::max<size_t>(64, 2 * live_.size());
    }
    return s;
  }
  finished_ = true;
  final_ = s;
  // On failure nothing posted may keep writing into the caller's buffers after we return.
  if (!s.isOk()) cancelLive(s);
  live_.clear();
  return final_;
}

void AlgorithmBase::cancel(const Status& why) {
  cancelLive(why);
  live_.clear();
  if (!finished_) {
    finished_ = true;
    final_ = why;
  }
}

void AlgorithmBase::cancelLive(const Status& why) {
  for (const auto& t : live_) {
    if (!t->done()) ctx_.transport->cancel(t, why);
  }
}

transport::TransferPtr AlgorithmBase::postSend(int peer, const void* buf, size_t bytes, uint32_t step) {
  transport::Tag tag = ctx_.base;
  tag.step = step;
  auto t = ctx_.transport->isend(peer, buf, bytes, tag, ctx_.signature);
  live_.push_back(t);
  return t;
}

transport::TransferPtr AlgorithmBase::postRecv(int peer, void* buf, size_t bytes, uint32_t step) {
  transport::Tag tag = ctx_.base;
  tag.step = step;
  auto t = ctx_.transport->irecv(peer, buf, bytes, tag, ctx_.signature);
  live_.push_back(t);
  return t;
}

void AlgorithmBase::copyIfDistinct(void* dst, const void* src, size_t elems) const {
  if (dst != src && elems > 0) std::memmove(dst, src, bytesOf(elems));
}

bool AlgorithmBase::reducedTrivially() const {
  if (args_.count == 0) return true;
  if (size_ != 1) return false;
  // A world of one: the result is the input (avg divides by 1).
  copyIfDistinct(args_.recv, args_.send, args_.count);
  if (args_.op == loomAvg) reduceFinalizeAvg(args_.recv, args_.count, args_.dtype, 1);
  return true;
}

Status retireFinished(InFlightWindow& window, bool& moved) {
  while (const transport::Transfer* t = window.oldestFinished()) {
    if (t->failed()) return t->status;
    window.retireOldest();
    moved = true;
  }
  return Status::ok();
}

}  // namespace loom::coll
