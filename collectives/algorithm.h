// What every algorithm file shares: the factories that makeOperation() picks from, a base class
// that owns the bookkeeping no algorithm should have to repeat (posting with the operation's tag
// and signature, remembering what is in flight so cancel() can withdraw it, turning the first
// failure into the operation's final status), and a small window of in-flight transfers.
#pragma once

#include "collectives/collective.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/container/small_vector.hpp>

namespace loom::coll {

// Segments kept in flight per direction by the pipelined algorithms: enough to keep a link busy
// while the previous segment is being reduced, few enough to bound scratch memory at
// kPipelineDepth * segmentBytes.
inline constexpr size_t kPipelineDepth = 4;
// Receives that land straight in the result buffer are posted this far ahead: posting is cheap, and
// data that finds its receive posted is read in place instead of into the transport's stash.
inline constexpr size_t kReceiveWindow = 64;

std::unique_ptr<Operation> makeRingAllReduce(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeRecursiveDoublingAllReduce(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeHalvingDoublingAllReduce(const Args& args, const Context& ctx);  // p = 2^k
std::unique_ptr<Operation> makeChainBroadcast(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeTreeBroadcast(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeChainReduce(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeTreeReduce(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeRingAllGather(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeRingReduceScatter(const Args& args, const Context& ctx);
std::unique_ptr<Operation> makeSendRecv(const Args& args, const Context& ctx);

class AlgorithmBase : public Operation {
 public:
  AlgorithmBase(const Args& args, const Context& ctx);
  // Runs advance() once the operation is live; after it finishes (success or failure) keeps
  // returning the same final status without touching anything.
  Status progress() final;
  void cancel(const Status& why) final;

 protected:
  // Do everything possible right now without blocking: loomInProgress, loomSuccess or a failure.
  virtual Status advance() = 0;

  // Post with the operation's tag (step chosen by the algorithm) and signature; remembered so
  // cancel() can withdraw them.
  transport::TransferPtr postSend(int peer, const void* buf, size_t bytes, uint32_t step);
  transport::TransferPtr postRecv(int peer, void* buf, size_t bytes, uint32_t step);

  size_t elemSize() const { return elemSize_; }
  size_t bytesOf(size_t elems) const { return elems * elemSize_; }
  const uint8_t* sendBytes(size_t elemOffset = 0) const {
    return static_cast<const uint8_t*>(args_.send) + bytesOf(elemOffset);
  }
  uint8_t* recvBytes(size_t elemOffset = 0) const { return static_cast<uint8_t*>(args_.recv) + bytesOf(elemOffset); }
  // world == 1 (and the root's own copy in broadcast): recv = send unless they are the same buffer.
  void copyIfDistinct(void* dst, const void* src, size_t elems) const;
  // A reduction with nothing to exchange: an empty vector, or a world of one (the result is then
  // the input). True when it is complete.
  bool reducedTrivially() const;

  Args args_;
  Context ctx_;
  int rank_;
  int size_;

 private:
  void cancelLive(const Status& why);

  size_t elemSize_;
  // Posted and possibly pending; pruned as they finish. Inline room for a small operation's
  // transfers: no allocation per operation for the usual few.
  boost::container::small_vector<transport::TransferPtr, 4> live_;
  size_t pruneAt_ = 64;
  bool finished_ = false;
  Status final_;
};

// Transfers of consecutive units (segments, or segment x peer), at most `capacity` in flight,
// retired strictly in posting order. In-order retirement keeps the bookkeeping to two counters,
// and the dependency rules of every pipelined algorithm are phrased in these counters
// ("send u may go once receive u - segments has been retired").
class InFlightWindow {
 public:
  explicit InFlightWindow(size_t capacity = kPipelineDepth) : capacity_(capacity ? capacity : 1) {}
  size_t posted() const { return posted_; }
  size_t retired() const { return retired_; }
  bool hasRoom() const { return posted_ - retired_ < capacity_; }
  void push(transport::TransferPtr t) {
    if (slots_.empty()) slots_.resize(capacity_);  // on first use: many windows never hold anything;
                                                   // a small one needs no allocation at all
    slots_[posted_++ % capacity_] = std::move(t);
  }
  // The oldest in-flight transfer, if it has finished (successfully or not); nullptr otherwise.
  const transport::Transfer* oldestFinished() const {
    if (retired_ == posted_) return nullptr;
    const auto& t = slots_[retired_ % capacity_];
    return t->done() ? t.get() : nullptr;
  }
  void retireOldest() { slots_[retired_++ % capacity_].reset(); }

 private:
  size_t capacity_;
  boost::container::small_vector<transport::TransferPtr, 4> slots_;
  size_t posted_ = 0;
  size_t retired_ = 0;
};

// Retires every finished transfer at the front of `window`; the first failure is returned (the
// operation then fails with it). `moved` is set when anything was retired.
Status retireFinished(InFlightWindow& window, bool& moved);

// The same for receives, calling onReceived(unit) for each before it is retired (in order).
template <typename OnReceived>
Status retireReceived(InFlightWindow& window, bool& moved, OnReceived&& onReceived) {
  while (const transport::Transfer* t = window.oldestFinished()) {
    if (t->failed()) return t->status;
    onReceived(window.retired());
    window.retireOldest();
    moved = true;
  }
  return Status::ok();
}

}  // namespace loom::coll
