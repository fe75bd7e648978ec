// The coordinator's state, without I/O: which communicators exist, who is waiting to join each,
// who its members are, and when each was last heard from. The server feeds it events (a join, a
// heartbeat, a departure, the clock) and sends whatever frames the answers call for, so every
// rule here is unit-testable and the membership work (votes, failure verdicts, epoch changes)
// extends this file rather than the socket code.
#pragma once

#include "core/deadline.h"
#include "core/status.h"
#include "protocol/wire.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace loom::coord {

// Identifies one connection to the coordinator (assigned by the server, never reused).
using PeerId = uint64_t;

struct Member {
  PeerId peer = 0;
  std::string address;
  Clock::time_point lastSeen{};  // last frame from this rank (join or heartbeat)
  bool present = true;           // false once it left or its connection closed
};

struct Communicator {
  enum class Phase { Gathering, Active };
  // A member at its safe point, waiting for the next epoch.
  struct Ready {
    std::string address;  // its transport address in the next epoch
    bool leaving = false;
  };
  // A JoinRequest waiting for the world to complete; ranks are assigned only then, because a
  // later explicit request must win over an earlier "any".
  struct Pending {
    PeerId peer = 0;
    int requestedRank = -1;
    std::string address;
  };

  uint64_t commId = 0;
  uint32_t worldSize = 0;
  std::string firstJoiner;  // address of the peer that fixed worldSize, for error messages
  Phase phase = Phase::Gathering;
  uint64_t epoch = 0;  // 0 while gathering; 1 after rendezvous; bumped by later membership changes
  Clock::time_point created{};
  std::vector<Pending> pending;  // Gathering only, in arrival order
  std::vector<Member> members;   // Active only, index = rank
  uint32_t maxWorld = 0;         // 0: no limit (the founders' JoinRequest)
  std::vector<Pending> joiners;  // Active: waiting to be admitted at the next update, in arrival order
  // The update of the current epoch, once a member asked for it: who is ready, whom members
  // reported failed, since when, and how long members that have not asked are waited for.
  std::map<int, Ready> ready;
  std::map<int, std::set<int>> accusations;  // member -> the ranks it reported failed
  Clock::time_point updateStarted{};
  std::chrono::milliseconds updateTimeout{0};

  int presentCount() const;
  bool updating() const { return !ready.empty(); }
};

// What the server must send when a join completes a communicator: one JoinAccept per member.
struct Rendezvous {
  uint64_t commId = 0;
  uint64_t epoch = 0;
  std::vector<std::pair<PeerId, wire::JoinAccept>> accepts;
};

// A new epoch: EpochStart for every member that goes on, JoinAccept for every admitted joiner,
// and the members left behind (failed, silent or leaving), each with the reason.
struct EpochChange {
  uint64_t commId = 0;
  uint64_t epoch = 0;
  std::vector<std::pair<PeerId, wire::JoinAccept>> members;  // previously members
  std::vector<std::pair<PeerId, wire::JoinAccept>> joiners;
  std::vector<std::pair<PeerId, std::string>> removed;       // still connected: told why, then closed
};

// A connection that is gone (Leave or EOF): where it was, and whether that emptied its communicator.
struct Departure {
  uint64_t commId = 0;
  int rank = -1;  // -1: it was still waiting for the rendezvous (or, with joiner, to be admitted)
  std::string address;
  bool forgotten = false;  // the communicator is gone and its id reusable
  bool joiner = false;     // it was waiting to join a running communicator
};

// A gathering communicator that ran out of time; the server rejects every waiting peer.
struct ExpiredRendezvous {
  uint64_t commId = 0;
  uint32_t worldSize = 0;
  std::vector<PeerId> waiting;
};

class Registry {
 public:
  explicit Registry(uint32_t heartbeatMs) : heartbeatMs_(heartbeatMs) {}

  // A JoinRequest from `peer`. Errors are what to Reject with. On success: nullopt while the
  // world is incomplete, else the accepts for every member (this peer included). With
  // `running` (wire::kJoinRunning) the peer joins an active communicator: it waits, nullopt, until
  // its members' next update admits it.
  Expected<std::optional<Rendezvous>> join(PeerId peer, uint64_t commId, const wire::JoinRequest& req,
                                           Clock::time_point now, bool running = false);
  // A member reconnecting after the coordinator restarted (wire::kRejoin): the communicator is
  // rebuilt at `epoch` with a place for every rank of the request's world, each waited for like a
  // silent member until it reconnects. Errors: another epoch, a rank already connected.
  Status rejoin(PeerId peer, uint64_t commId, uint64_t epoch, const wire::JoinRequest& req, Clock::time_point now);
  // An UpdateRequest from member `peer` at `epoch`. Errors are what to Reject with (not a member,
  // an epoch that is over). On success: the new epoch once every member still in the running has
  // asked (nullopt until then).
  Expected<std::optional<EpochChange>> requestUpdate(PeerId peer, uint64_t epoch, const wire::UpdateRequest& req,
                                                     Clock::time_point now);
  // Updates that can be decided now: every remaining member asked, or the rest departed, fell
  // silent (no heartbeat for silentAfter()) or ran out of the update's timeout.
  std::vector<EpochChange> settleUpdates(Clock::time_point now);
  // A member not heard from this long (4 heartbeat periods) is not waited for at an update.
  std::chrono::milliseconds silentAfter() const { return std::chrono::milliseconds(4 * heartbeatMs_); }
  // Joiners waiting for communicator `commId`'s next update, and the members to tell.
  std::pair<uint32_t, std::vector<PeerId>> pendingJoiners(uint64_t commId) const;
  // Records a heartbeat; false if `peer` is not an active member.
  bool heartbeat(PeerId peer, Clock::time_point now);
  // `peer` left or disconnected; nullopt if it had not joined anything (or already departed).
  std::optional<Departure> depart(PeerId peer);
  // Removes communicators still gathering after `timeout`.
  std::vector<ExpiredRendezvous> expireGathering(Clock::time_point now, std::chrono::milliseconds timeout);

  // Where a connection stands: its communicator (nullptr if none) and rank (-1 while gathering).
  const Communicator* communicatorOf(PeerId peer, int* rank = nullptr) const;
  const Communicator* find(uint64_t commId) const;
  size_t communicatorCount() const { return comms_.size(); }

 private:
  static constexpr int kGathering = -1;  // PeerRef::rank of a founder before the rendezvous
  static constexpr int kJoiner = -2;     // ... of a peer waiting to join a running communicator
  struct PeerRef {
    uint64_t commId = 0;
    int rank = kGathering;
  };
  Status checkNewPeer(PeerId peer, const wire::JoinRequest& req) const;
  Communicator& findOrCreate(uint64_t commId, const wire::JoinRequest& req, Clock::time_point now, bool& fresh);
  Status admit(Communicator& c, const wire::JoinRequest& req) const;
  Status admitRunning(const Communicator& c, const wire::JoinRequest& req) const;
  Rendezvous complete(Communicator& c, Clock::time_point now);
  // Whether member `rank` is still awaited by the update (present, not suspected, not silent).
  std::set<int> convicted(const Communicator& c) const;
  bool awaited(const Communicator& c, int rank, Clock::time_point now, const std::set<int>& convicts) const;
  std::optional<EpochChange> trySettle(Communicator& c, Clock::time_point now);
  EpochChange advance(Communicator& c, Clock::time_point now, const std::set<int>& convicts);
  void forgetIfEmpty(uint64_t commId);

  uint32_t heartbeatMs_;
  std::unordered_map<uint64_t, Communicator> comms_;
  std::unordered_map<PeerId, PeerRef> peers_;
};

}  // namespace loom::coord
