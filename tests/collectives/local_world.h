// Test harness for collectives: N ranks of one process, one thread each, connected through the
// in-process transport, and a driver that runs operations the way a communicator would.
// Catch2 assertions are not thread-safe, so rank threads only record results; the test thread
// checks them after run() has joined every rank.
#pragma once

#include "collectives/collective.h"
#include "transports/iface/registry.h"

#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace loom::test {

// The transport the worlds use: "local", or LOOM_TEST_TRANSPORT (e.g. "tcp", to run the same
// cases over loopback sockets).
inline std::string worldTransport() {
  const char* env = std::getenv("LOOM_TEST_TRANSPORT");
  return env && *env ? env : "local";
}

class LocalWorld {
 public:
  explicit LocalWorld(int size, const std::string& transportName = worldTransport()) {
    std::vector<std::string> addresses;
    for (int r = 0; r < size; ++r) {
      auto created = transport::createTransport(transportName, transport::TransportOptions{});
      if (!created || !created.value()) throw std::runtime_error("cannot create transport " + transportName);
      transports_.push_back(std::move(created.value()));
      auto address = transports_.back()->listen();
      if (!address) throw std::runtime_error(address.error().toString());
      addresses.push_back(address.value());
    }
    std::vector<Status> results(size);
    run([&](int r) { results[r] = transports_[r]->connect(r, addresses, Deadline::afterMs(20000)); });
    for (auto& s : results) {
      if (!s.isOk()) throw std::runtime_error("connect: " + s.toString());
    }
  }

  int size() const { return static_cast<int>(transports_.size()); }
  transport::Transport& transport(int rank) { return *transports_.at(rank); }

  // Runs fn(rank) on one thread per rank and joins them all.
  void run(const std::function<void(int)>& fn) {
    std::vector<std::thread> threads;
    for (int r = 0; r < size(); ++r) threads.emplace_back(fn, r);
    for (auto& t : threads) t.join();
  }

 private:
  std::vector<std::unique_ptr<transport::Transport>> transports_;
};

// One operation being driven, and how it ended.
struct Running {
  coll::Operation* op = nullptr;
  transport::Tag tag;
  bool finished = false;
  Status result;
};

// Drives operations on one rank to completion like a communicator's engine: progress each in the
// given order, poll the transport, sleep on its eventfd when nothing moved. A local failure is
// announced to the peers (sendOpError); a peer's announcement fails the matching operation here
// with loomRemoteError; the deadline fails whatever is left with loomTimeout. Remote errors for
// operations not started yet are kept, so one rank running ahead loses nothing.
class RankDriver {
 public:
  explicit RankDriver(transport::Transport& t) : t_(t) {}

  void run(std::vector<Running*> ops, Deadline deadline) {
    for (;;) {
      t_.poll();
      for (auto& e : t_.takeRemoteOpErrors()) remote_.push_back(std::move(e));
      bool allFinished = true;
      for (Running* r : ops) {
        if (r->finished) continue;
        if (takeRemote(r->tag, r->result)) {
          r->op->cancel(r->result);
          r->finished = true;
          continue;
        }
        Status s = r->op->progress();
        if (s.code() == loomInProgress) {
          allFinished = false;
          continue;
        }
        r->finished = true;
        r->result = s;
        if (!s.isOk()) t_.sendOpError(r->tag, s);
      }
      if (allFinished) return;
      if (deadline.expired()) {
        for (Running* r : ops) {
          if (r->finished) continue;
          r->result = Status(loomTimeout, "operation did not finish before the test deadline");
          r->op->cancel(r->result);
          r->finished = true;
          t_.sendOpError(r->tag, r->result);
        }
        return;
      }
      pollfd p{t_.eventFd(), POLLIN, 0};
      ::poll(&p, 1, std::clamp(deadline.remainingMs(), 0, 20));
    }
  }

  Status runOne(coll::Operation& op, transport::Tag tag, Deadline deadline) {
    Running r;
    r.op = &op;
    r.tag = tag;
    run({&r}, deadline);
    return r.result;
  }

 private:
  bool takeRemote(const transport::Tag& tag, Status& out) {
    for (auto it = remote_.begin(); it != remote_.end(); ++it) {
      if (it->tag.op == tag.op && it->tag.space == tag.space) {
        out = Status(loomRemoteError, it->status.message());
        remote_.erase(it);
        return true;
      }
    }
    return false;
  }

  transport::Transport& t_;
  std::vector<transport::RemoteOpError> remote_;
};

// Context for `rank` of `world` running an operation with user tag `op`.
inline coll::Context contextFor(LocalWorld& world, int rank, const coll::Args& args, uint64_t op,
                                const coll::Tuning& tuning = {}) {
  coll::Context ctx;
  ctx.transport = &world.transport(rank);
  ctx.rank = rank;
  ctx.size = world.size();
  ctx.tuning = tuning;
  ctx.base.op = op;
  ctx.base.space = 1;
  ctx.signature = coll::signatureOf(args);
  return ctx;
}

}  // namespace loom::test
