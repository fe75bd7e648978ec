// The in-process transport: ranks of one process (threads) exchange messages by memcpy.
//
// Used by tests and by single-process programs (LOOM_TRANSPORT=local). Each transport owns an
// Endpoint that peers can reach through a process-global registry: listen() registers it under a
// unique id and returns "local:<id>"; connect() looks every peer's id up.
//
// Data path: isend copies straight into the destination's matching posted receive, or else into
// its unexpected-message queue, and completes at once (eager, like a socket buffer that never
// fills); irecv first looks in its own unexpected queue. Matching is by (source rank, Tag), FIFO
// among equals. A match whose byte count or signature differs fails the receive with
// loomInvalidUsage. Arrivals signal the destination's eventfd, so an event loop can sleep on it.
//
// Locking: a transport's own state is used only under its communicator's engine lock, but peers
// (other threads) write into its queues, so everything a peer touches lives in the Endpoint under
// Endpoint::mu. No code path holds two endpoint locks at once, so there is no lock order to get
// wrong. A receive buffer is only ever written under its owner's lock, which is what makes
// cancel() final: once it has removed the receive under that lock, nobody can write the buffer.
#include "transports/iface/registry.h"

#include <fmt/format.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace loom::transport {
namespace {

struct MatchKey {
  int source = -1;
  Tag tag;
  friend bool operator==(const MatchKey&, const MatchKey&) = default;
};
struct MatchKeyHash {
  size_t operator()(const MatchKey& k) const noexcept { return TagHash{}(k.tag) * 31 + static_cast<size_t>(k.source); }
};

struct PostedRecv {
  TransferPtr transfer;
  void* buf = nullptr;
  size_t bytes = 0;
  uint64_t signature = 0;
};

struct UnexpectedMessage {
  std::unique_ptr<uint8_t[]> data;
  size_t bytes = 0;
  uint64_t signature = 0;
};

void complete(const TransferPtr& t) { t->state.store(Transfer::Done, std::memory_order_release); }
void fail(const TransferPtr& t, Status why) {
  t->status = std::move(why);
  t->state.store(Transfer::Failed, std::memory_order_release);
}
TransferPtr failedTransfer(Status why) {
  auto t = std::make_shared<Transfer>();
  fail(t, std::move(why));
  return t;
}

Status peerLost(int rank, const std::string& why) {
  return makeError(loomPeerLost, "peer rank {} (local) left: {}", rank, why);
}

// What a peer may touch: queues, flags and the eventfd. Shared by the owning transport and every
// transport connected to it.
struct Endpoint {
  Endpoint() : eventFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Endpoint() {
    if (eventFd >= 0) ::close(eventFd);
  }
  void signal() const {
    const uint64_t one = 1;
    (void)!::write(eventFd, &one, sizeof(one));
  }

  uint64_t id = 0;
  const int eventFd;
  // Shut down: sends to it and receives from it fail. Set once, under mu, after goneWhy; read
  // without mu by irecv (which holds its own endpoint's lock and must not take a second one).
  std::atomic<bool> gone{false};
  std::string goneWhy;  // immutable once gone is set
  std::mutex mu;
  // ---- guarded by mu ----
  std::unordered_map<MatchKey, std::deque<PostedRecv>, MatchKeyHash> posted;
  std::unordered_map<const Transfer*, MatchKey> postedKey;  // for cancel()
  std::unordered_map<MatchKey, std::deque<UnexpectedMessage>, MatchKeyHash> unexpected;
  std::vector<transport::RemoteOpError> remoteErrors;
};

// Every endpoint of the process that has listened, by id.
struct Registry {
  std::mutex mu;
  std::condition_variable changed;
  uint64_t nextId = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Endpoint>> endpoints;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: transports may outlive static destructors
  return *r;
}

// Copies a message into a receive, or fails the receive if the two sides disagree. Called with the
// receiver's lock held.
void deliver(const PostedRecv& r, const void* data, size_t bytes, uint64_t signature, int source, const Tag& tag) {
  if (bytes != r.bytes) {
    fail(r.transfer, makeError(loomInvalidUsage,
                               "message from rank {} (tag op={} step={}) has {} bytes but this rank expected {} bytes: "
                               "count or datatype differs across ranks",
                               source, tag.op, tag.step, bytes, r.bytes));
  } else if (signature != r.signature) {
    fail(r.transfer, makeError(loomInvalidUsage,
                               "operation differs across ranks (signature {:#018x} from rank {}, {:#018x} here; tag op={} "
                               "step={}): every rank must call the same collective with the same count, datatype, "
                               "op and root",
                               signature, source, r.signature, tag.op, tag.step));
  } else {
    if (bytes > 0) std::memcpy(r.buf, data, bytes);
    complete(r.transfer);
  }
}

class LocalTransport final : public Transport {
 public:
  explicit LocalTransport(const TransportOptions& options) : self_(std::make_shared<Endpoint>()) {}
  ~LocalTransport() override {
    shutdown(Status(loomAborted, "transport closed"));
    if (self_->id != 0) {
      Registry& reg = registry();
      std::lock_guard<std::mutex> lock(reg.mu);
      reg.endpoints.erase(self_->id);
    }
  }

  const char* name() const override { return "local"; }

  Expected<std::string> listen() override {
    if (self_->eventFd < 0) return makeError(loomSystemError, "local transport: eventfd failed: {}", strerror(errno));
    if (self_->id == 0) {
      Registry& reg = registry();
      std::lock_guard<std::mutex> lock(reg.mu);
      self_->id = reg.nextId++;
      reg.endpoints.emplace(self_->id, self_);
      reg.changed.notify_all();
    }
    return fmt::format("local:{}", self_->id);
  }

  Status connect(int rank, const std::vector<std::string>& addresses, Deadline deadline) override {
    if (self_->id == 0) return makeError(loomInvalidUsage, "local transport: connect() before listen()");
    const int size = static_cast<int>(addresses.size());
    if (rank < 0 || rank >= size) {
      return makeError(loomInvalidArgument, "local transport: rank {} outside world of {}", rank, size);
    }
    if (addresses[rank] != fmt::format("local:{}", self_->id)) {
      return makeError(loomInvalidArgument, "local transport: address of rank {} is '{}', not this endpoint's 'local:{}'",
                       rank, addresses[rank], self_->id);
    }
    std::vector<uint64_t> ids(size);
    for (int i = 0; i < size; ++i) {
      const std::string& a = addresses[i];
      char* end = nullptr;
      if (a.rfind("local:", 0) != 0 || (ids[i] = std::strtoull(a.c_str() + 6, &end, 10)) == 0 || *end != '\0') {
        return makeError(loomInvalidArgument, "local transport: rank {} has address '{}', expected 'local:<id>' (is "
                         "every rank using the local transport?)", i, a);
      }
    }
    // Peers register in listen(); wait (bounded) for any that have not yet.
    std::vector<std::shared_ptr<Endpoint>> peers(size);
    Registry& reg = registry();
    std::unique_lock<std::mutex> lock(reg.mu);
    for (;;) {
      int missing = -1;
      for (int i = 0; i < size; ++i) {
        if (peers[i]) continue;
        auto it = reg.endpoints.find(ids[i]);
        if (it == reg.endpoints.end()) {
          missing = i;
        } else {
          peers[i] = it->second;
        }
      }
      if (missing < 0) break;
      if (deadline.expired()) {
        return makeError(loomTimeout, "local transport: rank {} (address '{}') did not appear before the connect "
                         "deadline", missing, addresses[missing]);
      }
      reg.changed.wait_for(lock, std::chrono::milliseconds(std::clamp(deadline.remainingMs(), 1, 100)));
    }
    lock.unlock();
    peers_ = std::move(peers);
    rank_ = rank;
    size_ = size;
    return Status::ok();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  TransferPtr isend(int peer, const void* buf, size_t bytes, Tag tag, uint64_t signature) override {
    if (!failure_.isOk()) return failedTransfer(failure_);
    if (peer < 0 || peer >= size_) return failedTransfer(badPeer(peer));
    Endpoint& dst = *peers_[peer];
    const MatchKey key{rank_, tag};
    {
      std::lock_guard<std::mutex> lock(dst.mu);
      if (dst.gone) return failedTransfer(peerLost(peer, dst.goneWhy));
      auto it = dst.posted.find(key);
      if (it != dst.posted.end()) {
        PostedRecv r = std::move(it->second.front());
        it->second.pop_front();
        if (it->second.empty()) dst.posted.erase(it);
        dst.postedKey.erase(r.transfer.get());
        deliver(r, buf, bytes, signature, rank_, tag);
      } else {
        UnexpectedMessage m;
        m.bytes = bytes;
        m.signature = signature;
        if (bytes > 0) {
          m.data = std::make_unique_for_overwrite<uint8_t[]>(bytes);
          std::memcpy(m.data.get(), buf, bytes);
        }
        dst.unexpected[key].push_back(std::move(m));
      }
    }
    dst.signal();
    auto t = std::make_shared<Transfer>();
    complete(t);  // the bytes have been copied: the caller may reuse its buffer
    return t;
  }

  TransferPtr irecv(int peer, void* buf, size_t bytes, Tag tag, uint64_t signature) override {
    if (!failure_.isOk()) return failedTransfer(failure_);
    if (peer < 0 || peer >= size_) return failedTransfer(badPeer(peer));
    auto t = std::make_shared<Transfer>();
    PostedRecv r{t, buf, bytes, signature};
    const MatchKey key{peer, tag};
    Endpoint& me = *self_;
    std::lock_guard<std::mutex> lock(me.mu);
    auto it = me.unexpected.find(key);
    if (it != me.unexpected.end()) {
      UnexpectedMessage m = std::move(it->second.front());
      it->second.pop_front();
      if (it->second.empty()) me.unexpected.erase(it);
      deliver(r, m.data.get(), m.bytes, m.signature, peer, tag);
      return t;
    }
    // Messages that arrived before the peer left are still delivered (above); nothing more will.
    // If the peer leaves after this check, its shutdown sweeps our posted receives (under our
    // lock, so after this one is queued) and fails it there.
    Endpoint& src = *peers_[peer];
    if (&src != &me && src.gone.load(std::memory_order_acquire)) {
      fail(t, peerLost(peer, src.goneWhy));
      return t;
    }
    me.posted[key].push_back(std::move(r));
    me.postedKey.emplace(t.get(), key);
    return t;
  }

  void cancel(const TransferPtr& t, const Status& why) override {
    if (!t || t->done()) return;
    Endpoint& me = *self_;
    std::lock_guard<std::mutex> lock(me.mu);
    auto k = me.postedKey.find(t.get());
    if (k == me.postedKey.end()) return;  // completed meanwhile
    auto it = me.posted.find(k->second);
    if (it != me.posted.end()) {
      auto& q = it->second;
      q.erase(std::remove_if(q.begin(), q.end(), [&](const PostedRecv& r) { return r.transfer == t; }), q.end());
      if (q.empty()) me.posted.erase(it);
    }
    me.postedKey.erase(k);
    fail(t, why);
  }

  void sendOpError(Tag tag, const Status& why) override {
    if (!failure_.isOk()) return;
    const Status remote = makeError(why.code() == loomPeerLost ? loomPeerLost : loomRemoteError,
                                    "rank {} failed this operation: {}", rank_, why.toString());
    for (int i = 0; i < size_; ++i) {
      if (i == rank_) continue;
      Endpoint& peer = *peers_[i];
      {
        std::lock_guard<std::mutex> lock(peer.mu);
        if (peer.gone) continue;
        peer.remoteErrors.push_back({tag, rank_, remote});
      }
      peer.signal();
    }
  }

  std::vector<transport::RemoteOpError> takeRemoteOpErrors() override {
    std::lock_guard<std::mutex> lock(self_->mu);
    return std::exchange(self_->remoteErrors, {});
  }

  bool poll() override {
    // Bytes move inside isend(); poll() only consumes the wake-up so the event loop can sleep.
    uint64_t value = 0;
    return ::read(self_->eventFd, &value, sizeof(value)) == sizeof(value) && value > 0;
  }

  int eventFd() const override { return self_->eventFd; }
  Status health() const override { return failure_; }

  void shutdown(const Status& why) override {
    if (!failure_.isOk()) return;
    failure_ = why.isOk() ? Status(loomAborted, "transport shut down") : why;
    std::vector<TransferPtr> own;
    {
      std::lock_guard<std::mutex> lock(self_->mu);
      self_->goneWhy = failure_.toString();
      self_->gone.store(true, std::memory_order_release);
      for (auto& [key, q] : self_->posted) {
        for (auto& r : q) own.push_back(std::move(r.transfer));
      }
      self_->posted.clear();
      self_->postedKey.clear();
      self_->unexpected.clear();
    }
    for (auto& t : own) fail(t, failure_);
    self_->signal();
    // Peers waiting for us would otherwise wait for their deadline: fail those receives now.
    const Status lost = peerLost(rank_, failure_.toString());
    for (int i = 0; i < size_; ++i) {
      if (i == rank_) continue;
      Endpoint& peer = *peers_[i];
      std::vector<TransferPtr> theirs;
      {
        std::lock_guard<std::mutex> lock(peer.mu);
        for (auto it = peer.posted.begin(); it != peer.posted.end();) {
          if (it->first.source != rank_) {
            ++it;
            continue;
          }
          for (auto& r : it->second) {
            peer.postedKey.erase(r.transfer.get());
            theirs.push_back(std::move(r.transfer));
          }
          it = peer.posted.erase(it);
        }
      }
      for (auto& t : theirs) fail(t, lost);
      if (!theirs.empty()) peer.signal();
    }
  }

 private:
  Status badPeer(int peer) const {
    return size_ == 0 ? makeError(loomInvalidUsage, "local transport: not connected")
                      : makeError(loomInvalidArgument, "local transport: peer {} outside world of {}", peer, size_);
  }

  std::shared_ptr<Endpoint> self_;
  std::vector<std::shared_ptr<Endpoint>> peers_;  // index = rank; peers_[rank_] == self_
  int rank_ = -1;
  int size_ = 0;
  Status failure_;  // sticky: set by shutdown()
};

}  // namespace

std::unique_ptr<Transport> makeLocalTransport(const TransportOptions& options) {
  return std::make_unique<LocalTransport>(options);
}

}  // namespace loom::transport
