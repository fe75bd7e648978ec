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

// What every JoinRequest must pass: a compatible version, and a connection that has not joined yet.
Status Registry::checkNewPeer(PeerId peer, const wire::JoinRequest& req) const {
  // Patch releases interoperate; another major.minor may speak another protocol.
  if (req.libraryVersion / 100 != LOOM_VERSION_CODE / 100)
    return makeError(loomVersionMismatch,
                     "peer at '{}' runs Loom {}, the coordinator runs {}: major.minor versions must match",
                     req.address, versionText(req.libraryVersion), versionText(LOOM_VERSION_CODE));
  if (auto it = peers_.find(peer); it != peers_.end())
    return makeError(loomInvalidUsage, "this connection already joined communicator {:#x}; send JoinRequest once",
                     it->second.commId);
  return Status::ok();
}

// The communicator `commId`, created from its first JoinRequest if it does not exist (fresh).
Communicator& Registry::findOrCreate(uint64_t commId, const wire::JoinRequest& req, Clock::time_point now,
                                     bool& fresh) {
  auto [it, created] = comms_.try_emplace(commId);
  fresh = created;
  Communicator& c = it->second;
  if (fresh) {
    c.commId = commId;
    c.worldSize = req.worldSize;
    c.maxWorld = req.maxWorld;
    c.firstJoiner = req.address;
    c.created = now;
  }
  return c;
}

Expected<std::optional<Rendezvous>> Registry::join(PeerId peer, uint64_t commId, const wire::JoinRequest& req,
                                                   Clock::time_point now, bool running) {
  LOOM_RETURN_IF_ERROR(checkNewPeer(peer, req));

  if (running) {
    auto it = comms_.find(commId);
    if (it == comms_.end())
      return makeError(loomInvalidUsage,
                       "communicator {:#x} is not running at this coordinator: nothing to join (check LOOM_COMM_ID, "
                       "or start it with loomCommInitRank)",
                       commId);
    LOOM_RETURN_IF_ERROR(admitRunning(it->second, req));
    it->second.joiners.push_back({peer, -1, req.address});
    peers_[peer] = PeerRef{commId, kJoiner};
    return std::optional<Rendezvous>();
  }
  bool fresh = false;
  Communicator& c = findOrCreate(commId, req, now, fresh);
  Status admitted = admit(c, req);
  if (!admitted) {
    if (fresh) comms_.erase(commId);  // a refused first joiner leaves nothing behind
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
  if (req.maxWorld != c.maxWorld)
    return makeError(loomInvalidUsage,
                     "peer at '{}' joins communicator {:#x} with maxWorld {}, but its first joiner ('{}') said {}; "
                     "every founder must pass the same LOOM_MAX_WORLD",
                     req.address, c.commId, req.maxWorld, c.firstJoiner, c.maxWorld);
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

// The rules a joiner of a running communicator must pass before it waits for the next update.
Status Registry::admitRunning(const Communicator& c, const wire::JoinRequest& req) const {
  (void)req;  // a communicator still forming takes joiners too: they wait for its first update
  const size_t members = static_cast<size_t>(c.presentCount()) + c.pending.size();
  if (c.maxWorld > 0 && members + c.joiners.size() >= c.maxWorld)
    return makeError(loomInvalidUsage,
                     "communicator {:#x} is full: {} members and {} joiners waiting, at most {} (LOOM_MAX_WORLD)",
                     c.commId, members, c.joiners.size(), c.maxWorld);
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

Status Registry::rejoin(PeerId peer, uint64_t commId, uint64_t epoch, const wire::JoinRequest& req,
                        Clock::time_point now) {
  LOOM_RETURN_IF_ERROR(checkNewPeer(peer, req));
  const int rank = req.requestedRank;
  if (rank < 0 || rank >= static_cast<int>(req.worldSize))
    return makeError(loomInvalidUsage, "rejoining rank {} is outside 0..{}", rank, req.worldSize - 1);
  bool fresh = false;
  Communicator& c = findOrCreate(commId, req, now, fresh);
  if (fresh) {
    // The coordinator restarted: every rank gets a place, kept while it may still reconnect.
    c.phase = Communicator::Phase::Active;
    c.epoch = epoch;
    c.members.assign(req.worldSize, Member{0, "", now, true});
  }
  if (c.phase != Communicator::Phase::Active || epoch != c.epoch || req.worldSize != c.worldSize)
    return makeError(loomInvalidUsage,
                     "rank {} rejoins communicator {:#x} at epoch {} with {} members, but it is at epoch {} with {}: "
                     "it was removed meanwhile",
                     rank, commId, epoch, req.worldSize, c.epoch, c.worldSize);
  Member& m = c.members[rank];
  if (m.peer != 0 && m.present)
    return makeError(loomInvalidUsage, "rank {} of communicator {:#x} is connected already", rank, commId);
  m = Member{peer, req.address, now, true};
  peers_[peer] = PeerRef{commId, rank};
  return Status::ok();
}

Expected<std::optional<EpochChange>> Registry::requestUpdate(PeerId peer, uint64_t epoch,
                                                             const wire::UpdateRequest& req, Clock::time_point now) {
  auto pit = peers_.find(peer);
  if (pit == peers_.end() || pit->second.rank < 0)
    return makeError(loomInvalidUsage, "UpdateRequest from a connection that is not a member of any communicator");
  Communicator& c = comms_.at(pit->second.commId);
  const int rank = pit->second.rank;
  if (epoch != c.epoch)
    return makeError(loomInvalidUsage, "rank {} asks to leave epoch {} of communicator {:#x}, which is at epoch {}",
                     rank, epoch, c.commId, c.epoch);
  if (!c.updating()) {
    c.updateStarted = now;
    c.updateTimeout = std::chrono::milliseconds(req.timeoutMs);
  }
  c.ready[rank] = Communicator::Ready{req.address, (req.flags & wire::kUpdateLeaving) != 0};
  c.members[rank].lastSeen = now;
  for (int32_t s : req.suspects)
    if (s >= 0 && s < static_cast<int>(c.members.size()) && s != rank) c.accusations[rank].insert(s);
  auto change = trySettle(c, now);
  forgetIfEmpty(c.commId);
  return change;
}

// Who is dropped on the members' word. Only members that came to the update can be convicted:
// an accused member that did not come is waited for like any other while its coordinator
// connection is open and it heartbeats (a crashed one's connection closes at once, a frozen one
// falls silent), because an accusation may be an artefact: a peer that failed an epoch's mesh or
// moved on closed a connection under the accuser. Two that came and accuse each other had the link
// between them fail, and the mesh needs every pair: the higher rank goes. A one-sided accusation
// against a member that came is ignored; the next epoch's mesh is built afresh.
std::set<int> Registry::convicted(const Communicator& c) const {
  std::set<int> out;
  auto came = [&](int r) {
    auto ready = c.ready.find(r);
    return ready != c.ready.end() && !ready->second.leaving;
  };
  for (const auto& [accuser, accused] : c.accusations) {
    if (out.contains(accuser) || !came(accuser)) continue;
    for (int s : accused) {
      if (out.contains(s) || !came(s)) continue;
      auto back = c.accusations.find(s);
      if (back == c.accusations.end() || !back->second.contains(accuser)) continue;  // one-sided
      const int loser = std::max(accuser, s);
      out.insert(loser);
      if (loser == accuser) break;
    }
  }
  return out;
}

bool Registry::awaited(const Communicator& c, int rank, Clock::time_point now, const std::set<int>& convicts) const {
  const Member& m = c.members[rank];
  return m.present && !convicts.contains(rank) && now - m.lastSeen <= silentAfter();
}

std::optional<EpochChange> Registry::trySettle(Communicator& c, Clock::time_point now) {
  if (!c.updating()) return std::nullopt;
  const bool timedOut = now - c.updateStarted >= c.updateTimeout;
  const std::set<int> convicts = convicted(c);
  for (int r = 0; r < static_cast<int>(c.members.size()); ++r)
    if (!c.ready.contains(r) && awaited(c, r, now, convicts) && !timedOut) return std::nullopt;
  return advance(c, now, convicts);
}

std::vector<EpochChange> Registry::settleUpdates(Clock::time_point now) {
  std::vector<EpochChange> out;
  std::vector<uint64_t> settled;
  for (auto& [id, c] : comms_)
    if (auto change = trySettle(c, now)) {
      out.push_back(std::move(*change));
      settled.push_back(id);
    }
  for (uint64_t id : settled) forgetIfEmpty(id);
  return out;
}

// A communicator whose last members left at an update (and that nobody waits to join) is gone,
// and its id free again.
void Registry::forgetIfEmpty(uint64_t commId) {
  auto it = comms_.find(commId);
  if (it != comms_.end() && it->second.phase == Communicator::Phase::Active && it->second.presentCount() == 0 &&
      it->second.joiners.empty())
    comms_.erase(it);
}

// The next epoch: the members that asked (in rank order, not leaving, not suspected by another,
// still connected), then the joiners in arrival order. Everyone else is left behind.
EpochChange Registry::advance(Communicator& c, Clock::time_point now, const std::set<int>& convicts) {
  EpochChange out;
  out.commId = c.commId;
  out.epoch = ++c.epoch;
  std::vector<Member> next;
  wire::JoinAccept accept;
  accept.heartbeatMs = heartbeatMs_;
  for (int r = 0; r < static_cast<int>(c.members.size()); ++r) {
    const Member& m = c.members[r];
    auto ready = c.ready.find(r);
    const bool goesOn = m.present && ready != c.ready.end() && !ready->second.leaving && !convicts.contains(r);
    if (goesOn) {
      next.push_back(Member{m.peer, ready->second.address, now, true});
      accept.addresses.push_back(ready->second.address);
      accept.previousRanks.push_back(r);
      continue;
    }
    if (!m.present) continue;  // its connection is gone already
    peers_.erase(m.peer);
    if (ready != c.ready.end() && ready->second.leaving) continue;  // it closes by itself
    const auto silentMs = std::chrono::duration_cast<std::chrono::milliseconds>(now - m.lastSeen).count();
    std::string why = convicts.contains(r) ? "the link between it and another member failed (each reported the other)"
                      : ready != c.ready.end()      ? "it was removed"
                      : silentMs > silentAfter().count()
                          ? fmt::format("the coordinator heard nothing from it for {} ms", silentMs)
                          : fmt::format("it did not come to the update within {} ms", c.updateTimeout.count());
    out.removed.emplace_back(m.peer, fmt::format("rank {} of communicator {:#x} was removed at epoch {}: {}", r,
                                                 c.commId, out.epoch, why));
  }
  const size_t survivors = next.size();
  for (const auto& j : c.joiners) {
    next.push_back(Member{j.peer, j.address, now, true});
    accept.addresses.push_back(j.address);
    accept.previousRanks.push_back(-1);
  }
  accept.worldSize = static_cast<uint32_t>(next.size());
  for (size_t r = 0; r < next.size(); ++r) {
    peers_[next[r].peer] = PeerRef{c.commId, static_cast<int>(r)};
    accept.rank = static_cast<int32_t>(r);
    (r < survivors ? out.members : out.joiners).emplace_back(next[r].peer, accept);
  }
  c.members = std::move(next);
  c.worldSize = accept.worldSize;
  c.joiners.clear();
  c.ready.clear();
  c.accusations.clear();
  return out;
}

std::pair<uint32_t, std::vector<PeerId>> Registry::pendingJoiners(uint64_t commId) const {
  std::pair<uint32_t, std::vector<PeerId>> out{0, {}};
  const Communicator* c = find(commId);
  if (c == nullptr) return out;
  out.first = static_cast<uint32_t>(c->joiners.size());
  for (const auto& m : c->members)
    if (m.present) out.second.push_back(m.peer);
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
  if (ref.rank == kJoiner) {
    auto j = std::find_if(c.joiners.begin(), c.joiners.end(), [&](const auto& x) { return x.peer == peer; });
    if (j != c.joiners.end()) {
      d.address = j->address;
      c.joiners.erase(j);
    }
    d.rank = -1;
    d.joiner = true;
    d.forgotten = c.presentCount() == 0 && c.joiners.empty();
  } else if (ref.rank < 0) {
    // Still gathering: its place (and requested rank) is free again for a later joiner.
    auto p = std::find_if(c.pending.begin(), c.pending.end(), [&](const auto& x) { return x.peer == peer; });
    if (p != c.pending.end()) {
      d.address = p->address;
      c.pending.erase(p);
    }
    d.forgotten = c.pending.empty() && c.joiners.empty();
  } else {
    c.members[ref.rank].present = false;
    d.address = c.members[ref.rank].address;
    d.forgotten = c.presentCount() == 0 && c.joiners.empty();
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
    for (const auto* list : {&c.pending, &c.joiners})
      for (const auto& p : *list) {
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
