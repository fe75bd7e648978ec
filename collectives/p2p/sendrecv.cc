// Point-to-point send and receive: one message each way, step 0 of the operation's tag.
//
// Kept as an Operation like the collectives so the communicator treats every request the same
// (progress, cancel, deadline, remote errors). The signature leaves the peer out (the sender names
// the receiver, the receiver names the sender), so a count or datatype disagreement still fails
// the receive with loomInvalidUsage. count == 0 exchanges nothing on either side.
// Whole messages, not segments: there is nothing to pipeline with a single hop, and transports
// stripe large messages themselves.
#include "collectives/algorithm.h"

namespace loom::coll {
namespace {

class SendRecv final : public AlgorithmBase {
 public:
  using AlgorithmBase::AlgorithmBase;

 private:
  Status advance() override {
    if (args_.count == 0) return Status::ok();
    if (!transfer_) {
      const int peer = args_.root;
      transfer_ = args_.kind == Kind::Send ? postSend(peer, args_.send, bytesOf(args_.count), 0)
                                           : postRecv(peer, args_.recv, bytesOf(args_.count), 0);
    }
    if (!transfer_->done()) return Status(loomInProgress, {});
    return transfer_->failed() ? transfer_->status : Status::ok();
  }

  transport::TransferPtr transfer_;
};

}  // namespace

std::unique_ptr<Operation> makeSendRecv(const Args& args, const Context& ctx) {
  return std::make_unique<SendRecv>(args, ctx);
}

}  // namespace loom::coll
