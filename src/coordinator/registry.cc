#include "coordinator/registry.h"

#include <algorithm>

namespace loom::coord {
namespace {

std::string versionText(uint32_t code) {
  return fmt::format("{}.{}.{}", code / 10000, code / 100 % 100, code % 100);
}

}  // namespace

int Communicator::presentCount() const {
  return static_cast<int>(std::count_if(members.begin(), members.end(), [](const Member& m) { return m.present; }));
}

Expected<std::optional<Rendezvous>> Registry::join(PeerId peer, uint64_t commId, const wire::JoinRequest& req,
                                                   Clock::time_point now) {
  // Patch releases interoperate; another major.minor may speak another protocol.
  if (req.libraryVersion / 100 != LOOM_VERSION_CODE / 100)
    return makeError(loomVersionMismatch,
                     "peer at '{}' runs Loom {}, the coordinator runs {}: major.minor versions must match",
                     req.address, versionText(req.libraryVersion), versionText(LOOM_VERSION_CODE));
  if (auto it = peers_.find(peer); it != peers_.end())
    return makeError(loomInvalidUsage, "this connection already joined communicator {:#x}; send JoinRequest once",
                     it->second.commId);

  auto [it, fresh] = comms_.try_emplace(commId);
  Communicator& c = it->second;
  if (fresh) {
    c.commId = commId;
    c.worldSize = req.worldSize;
    c.firstJoiner = req.address;
    c.created = now;
  }
  Status admitted = admit(c, req);
  if (!admitted) {
    if (fresh) comms_.erase(it);  // a refused first joiner leaves nothing behind
    return admitted;
  }
  c.pending.push_back({peer, req.requestedRank, req.address});
  peers_[peer] = PeerRef{commId, -1};
  if (c.pending.size() < c.worldSize) return std::optional<Rendezvous>();
  return std::optional<Rendezvous>(complete(c, now));
}

// The rules a JoinRequest must pass before it waits in `c`.
Status Registry::admit(Communicator& c, const wire::JoinRequest& req) const {
  if (c.phase == Communicator::Phase::Active)
    return makeError(loomInvalidUsage,
                     "communicator {:#x} already has all {} ranks (epoch {}, {} still connected); "
                     "use another LOOM_COMM_ID or wait until its ranks leave",
                     c.commId, c.worldSize, c.epoch, c.presentCount());
  if (req.worldSize != c.worldSize)
    return makeError(loomInvalidUsage,
                     "peer at '{}' joins communicator {:#x} with worldSize {}, but its first joiner ('{}') "
                     "said {}; every rank must pass the same size",
                     req.address, c.commId, req.worldSize, c.firstJoiner, c.worldSize);
  int r = req.requestedRank;
  if (r < -1 || r >= static_cast<int>(c.worldSize))
    return makeError(loomInvalidUsage,
                     "peer at '{}' requests rank {} of communicator {:#x}, outside 0..{} (or -1: any)", req.address,
                     r, c.commId, c.worldSize - 1);
  if (r >= 0) {
    for (const auto& p : c.pending)
      if (p.requestedRank == r)
        return makeError(loomInvalidUsage, "rank {} of communicator {:#x} is already taken by the peer at '{}'", r,
                         c.commId, p.address);
  }
  return Status::ok();
}

// Every rank has arrived: requested ranks first, then "any" in arrival order to the lowest free.
Rendezvous Registry::complete(Communicator& c, Clock::time_point now) {
  std::vector<const Communicator::Pending*> byRank(c.worldSize, nullptr);
  for (const auto& p : c.pending)
    if (p.requestedRank >= 0) byRank[p.requestedRank] = &p;
  size_t next = 0;
  for (const auto& p : c.pending) {
    if (p.requestedRank >= 0) continue;
    while (byRank[next] != nullptr) ++next;
    byRank[next] = &p;
  }

  c.members.clear();
  c.members.reserve(c.worldSize);
  wire::JoinAccept accept;
  accept.worldSize = c.worldSize;
  accept.heartbeatMs = heartbeatMs_;
  for (uint32_t rank = 0; rank < c.worldSize; ++rank) {
    c.members.push_back(Member{byRank[rank]->peer, byRank[rank]->address, now, true});
    accept.addresses.push_back(byRank[rank]->address);
    peers_[byRank[rank]->peer].rank = static_cast<int>(rank);
  }
  c.pending.clear();
  c.phase = Communicator::Phase::Active;
  c.epoch = 1;

  Rendezvous out{c.commId, c.epoch, {}};
  out.accepts.reserve(c.worldSize);
  for (uint32_t rank = 0; rank < c.worldSize; ++rank) {
    accept.rank = static_cast<int32_t>(rank);
    out.accepts.emplace_back(c.members[rank].peer, accept);
  }
  return out;
}

bool Registry::heartbeat(PeerId peer, Clock::time_point now) {
  auto pit = peers_.find(peer);
  if (pit == peers_.end() || pit->second.rank < 0) return false;
  auto cit = comms_.find(pit->second.commId);
  if (cit == comms_.end()) return false;
  cit->second.members[pit->second.rank].lastSeen = now;
  return true;
}

std::optional<Departure> Registry::depart(PeerId peer) {
  auto pit = peers_.find(peer);
  if (pit == peers_.end()) return std::nullopt;
  PeerRef ref = pit->second;
  peers_.erase(pit);
  auto cit = comms_.find(ref.commId);
  if (cit == comms_.end()) return std::nullopt;
  Communicator& c = cit->second;

  Departure d{c.commId, ref.rank, {}, false};
  if (ref.rank < 0) {
    // Still gathering: its place (and requested rank) is free again for a later joiner.
    auto p = std::find_if(c.pending.begin(), c.pending.end(), [&](const auto& x) { return x.peer == peer; });
    if (p != c.pending.end()) {
      d.address = p->address;
      c.pending.erase(p);
    }
    d.forgotten = c.pending.empty();
  } else {
    c.members[ref.rank].present = false;
    d.address = c.members[ref.rank].address;
    d.forgotten = c.presentCount() == 0;
  }
  if (d.forgotten) comms_.erase(cit);
  return d;
}

std::vector<ExpiredRendezvous> Registry::expireGathering(Clock::time_point now, std::chrono::milliseconds timeout) {
  std::vector<ExpiredRendezvous> out;
  for (auto it = comms_.begin(); it != comms_.end();) {
    Communicator& c = it->second;
    if (c.phase != Communicator::Phase::Gathering || now - c.created < timeout) {
      ++it;
      continue;
    }
    ExpiredRendezvous e{c.commId, c.worldSize, {}};
    for (const auto& p : c.pending) {
      e.waiting.push_back(p.peer);
      peers_.erase(p.peer);
    }
    out.push_back(std::move(e));
    it = comms_.erase(it);
  }
  return out;
}

const Communicator* Registry::communicatorOf(PeerId peer, int* rank) const {
  auto pit = peers_.find(peer);
  if (pit == peers_.end()) return nullptr;
  if (rank != nullptr) *rank = pit->second.rank;
  return find(pit->second.commId);
}

const Communicator* Registry::find(uint64_t commId) const {
  auto it = comms_.find(commId);
  return it == comms_.end() ? nullptr : &it->second;
}

}  // namespace loom::coord
