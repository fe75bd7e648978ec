// The coordinator's membership rules, without sockets: joins, rank assignment, departures,
// heartbeats and rendezvous expiry.
#include "coordinator/registry.h"

#include <catch2/catch.hpp>

using namespace loom;
using namespace loom::coord;
using namespace std::chrono_literals;

namespace {

wire::JoinRequest req(uint32_t world, int rank, std::string address, uint32_t version = LOOM_VERSION_CODE) {
  return wire::JoinRequest{version, world, rank, std::move(address)};
}

const Clock::time_point t0 = Clock::now();

}  // namespace

TEST_CASE("registry: the world completes on its last joiner, requested ranks first", "[registry]") {
  Registry reg(250);
  CHECK_FALSE(reg.join(1, 7, req(4, -1, "a"), t0).value().has_value());
  CHECK_FALSE(reg.join(2, 7, req(4, 0, "b"), t0).value().has_value());
  CHECK_FALSE(reg.join(3, 7, req(4, -1, "c"), t0).value().has_value());
  auto done = reg.join(4, 7, req(4, 3, "d"), t0);
  REQUIRE(done);
  REQUIRE(done->has_value());
  const Rendezvous& rv = **done;
  CHECK(rv.commId == 7);
  CHECK(rv.epoch == 1);
  REQUIRE(rv.accepts.size() == 4);
  // b asked for 0, d for 3; a and c (any) take 1 and 2 in arrival order.
  const std::vector<std::string> want{"b", "a", "c", "d"};
  const std::vector<PeerId> peers{2, 1, 3, 4};
  for (int r = 0; r < 4; ++r) {
    CHECK(rv.accepts[r].first == peers[r]);
    CHECK(rv.accepts[r].second.rank == r);
    CHECK(rv.accepts[r].second.worldSize == 4);
    CHECK(rv.accepts[r].second.heartbeatMs == 250);
    CHECK(rv.accepts[r].second.addresses == want);
  }
  int rank = -2;
  REQUIRE(reg.communicatorOf(3, &rank) != nullptr);
  CHECK(rank == 2);
  CHECK(reg.find(7)->phase == Communicator::Phase::Active);
}

TEST_CASE("registry: refusals leave no state behind", "[registry]") {
  Registry reg(1000);
  auto old = reg.join(1, 1, req(2, -1, "old", LOOM_VERSION_CODE + 100), t0);
  REQUIRE_FALSE(old);
  CHECK(old.error().code() == loomVersionMismatch);
  CHECK(reg.communicatorCount() == 0);
  REQUIRE(reg.join(2, 1, req(2, 1, "first", LOOM_VERSION_CODE + 1), t0));  // a patch release is fine

  auto size = reg.join(3, 1, req(5, -1, "second"), t0);
  REQUIRE_FALSE(size);
  CHECK(size.error().code() == loomInvalidUsage);
  CHECK(size.error().message().find("worldSize 5") != std::string::npos);
  CHECK(size.error().message().find("('first') said 2") != std::string::npos);

  CHECK(reg.join(4, 1, req(2, 1, "dup"), t0).error().code() == loomInvalidUsage);
  CHECK(reg.join(5, 1, req(2, 2, "big"), t0).error().code() == loomInvalidUsage);
  CHECK(reg.join(6, 1, req(2, -2, "neg"), t0).error().code() == loomInvalidUsage);
  CHECK(reg.join(2, 9, req(1, -1, "twice"), t0).error().code() == loomInvalidUsage);
  CHECK(reg.find(1)->pending.size() == 1);
  CHECK(reg.communicatorCount() == 1);
}

TEST_CASE("registry: a full communicator refuses more joiners", "[registry]") {
  Registry reg(1000);
  REQUIRE(reg.join(1, 5, req(1, -1, "a"), t0).value().has_value());
  auto more = reg.join(2, 5, req(1, -1, "b"), t0);
  REQUIRE_FALSE(more);
  CHECK(more.error().code() == loomInvalidUsage);
}

TEST_CASE("registry: a waiting peer that departs frees its rank; the last one frees the id", "[registry]") {
  Registry reg(1000);
  REQUIRE(reg.join(1, 3, req(3, 0, "a"), t0));
  REQUIRE(reg.join(2, 3, req(3, 1, "b"), t0));
  auto d = reg.depart(1);
  REQUIRE(d);
  CHECK(d->rank == -1);
  CHECK(d->address == "a");
  CHECK_FALSE(d->forgotten);
  REQUIRE(reg.join(3, 3, req(3, 0, "a2"), t0));  // rank 0 is free again
  CHECK_FALSE(reg.depart(1).has_value());         // departing twice is harmless
  CHECK_FALSE(reg.depart(2)->forgotten);
  CHECK(reg.depart(3)->forgotten);
  CHECK(reg.find(3) == nullptr);
}

TEST_CASE("registry: members who all leave free the id for a new world", "[registry]") {
  Registry reg(1000);
  REQUIRE(reg.join(1, 4, req(2, -1, "a"), t0));
  REQUIRE(reg.join(2, 4, req(2, -1, "b"), t0).value().has_value());
  auto d = reg.depart(2);
  REQUIRE(d);
  CHECK(d->rank == 1);
  CHECK_FALSE(d->forgotten);
  CHECK_FALSE(reg.find(4)->members[1].present);
  CHECK(reg.find(4)->presentCount() == 1);
  CHECK(reg.join(3, 4, req(2, -1, "c"), t0).error().code() == loomInvalidUsage);
  CHECK(reg.depart(1)->forgotten);
  REQUIRE(reg.join(4, 4, req(1, -1, "new"), t0).value().has_value());
}

TEST_CASE("registry: heartbeats record when each member was last seen", "[registry]") {
  Registry reg(1000);
  REQUIRE(reg.join(1, 6, req(2, -1, "a"), t0));
  CHECK_FALSE(reg.heartbeat(1, t0 + 1s));  // still gathering
  REQUIRE(reg.join(2, 6, req(2, -1, "b"), t0));
  CHECK(reg.heartbeat(2, t0 + 2s));
  CHECK_FALSE(reg.heartbeat(99, t0 + 2s));
  const Communicator* c = reg.find(6);
  CHECK(c->members[0].lastSeen == t0);
  CHECK(c->members[1].lastSeen == t0 + 2s);
}

TEST_CASE("registry: a rendezvous that outlives its timeout is expired", "[registry]") {
  Registry reg(1000);
  REQUIRE(reg.join(1, 8, req(3, -1, "a"), t0));
  REQUIRE(reg.join(2, 8, req(3, -1, "b"), t0 + 50ms));
  REQUIRE(reg.join(3, 9, req(1, -1, "solo"), t0).value().has_value());  // active: never expires
  CHECK(reg.expireGathering(t0 + 99ms, 100ms).empty());
  auto gone = reg.expireGathering(t0 + 100ms, 100ms);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].commId == 8);
  CHECK(gone[0].worldSize == 3);
  CHECK(gone[0].waiting == std::vector<PeerId>{1, 2});
  CHECK(reg.find(8) == nullptr);
  CHECK_FALSE(reg.depart(1).has_value());
  CHECK(reg.find(9) != nullptr);
}

// ---- membership epochs: the update barrier ------------------------------------------------------

namespace {

wire::JoinRequest founder(uint32_t world, int rank, std::string address, uint32_t maxWorld) {
  wire::JoinRequest r = req(world, rank, std::move(address));
  r.maxWorld = maxWorld;
  return r;
}

// A communicator `commId` whose members are peers firstPeer.. in rank order, active at epoch 1.
void formWorld(Registry& reg, uint64_t commId, int n, PeerId firstPeer = 1, uint32_t maxWorld = 0) {
  for (int r = 0; r < n; ++r) {
    auto joined = reg.join(firstPeer + r, commId, founder(n, r, "old" + std::to_string(r), maxWorld), t0);
    REQUIRE(joined);
    REQUIRE(joined->has_value() == (r == n - 1));
  }
  REQUIRE(reg.find(commId)->epoch == 1);
}

wire::UpdateRequest update(std::string address, std::vector<int32_t> suspects = {}, uint32_t timeoutMs = 10000,
                           uint32_t flags = 0) {
  wire::UpdateRequest u;
  u.flags = flags;
  u.timeoutMs = timeoutMs;
  u.address = std::move(address);
  u.suspects = std::move(suspects);
  return u;
}

// requestUpdate that must succeed; returns whether it settled the update.
std::optional<EpochChange> ask(Registry& reg, PeerId peer, uint64_t epoch, const wire::UpdateRequest& u,
                               Clock::time_point now) {
  auto got = reg.requestUpdate(peer, epoch, u, now);
  REQUIRE(got);
  return std::move(*got);
}

bool mentions(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

std::vector<PeerId> peersOf(const std::vector<std::pair<PeerId, wire::JoinAccept>>& list) {
  std::vector<PeerId> out;
  for (const auto& [p, a] : list) out.push_back(p);
  return out;
}

// Every accept of a change describes the same world; each names its own rank.
void checkAccepts(const EpochChange& change, const std::vector<std::string>& addresses,
                  const std::vector<int32_t>& previous, uint32_t heartbeatMs) {
  std::vector<std::pair<PeerId, wire::JoinAccept>> all = change.members;
  all.insert(all.end(), change.joiners.begin(), change.joiners.end());
  REQUIRE(all.size() == addresses.size());
  for (size_t r = 0; r < all.size(); ++r) {
    const wire::JoinAccept& a = all[r].second;
    CHECK(a.rank == static_cast<int32_t>(r));
    CHECK(a.worldSize == addresses.size());
    CHECK(a.heartbeatMs == heartbeatMs);
    CHECK(a.addresses == addresses);
    CHECK(a.previousRanks == previous);
  }
}

}  // namespace

TEST_CASE("registry update: a suspected member that does not come is dropped once it falls silent, the others renumbered",
          "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x21, 3);  // peers 1, 2, 3 are ranks 0, 1, 2
  CHECK_FALSE(ask(reg, 1, 1, update("new0", {1}), t0 + 10ms).has_value());  // rank 2 has not asked yet
  CHECK(reg.find(0x21)->updating());
  // Accused but still heartbeating (the accusation may be an artefact): waited for.
  CHECK_FALSE(ask(reg, 3, 1, update("new2", {1}), t0 + 20ms).has_value());
  CHECK(reg.settleUpdates(t0 + 900ms).empty());
  // Silent for 4 heartbeat periods (frozen): no longer waited for.
  auto settled = reg.settleUpdates(t0 + 1001ms);
  REQUIRE(settled.size() == 1);
  auto change = std::optional<EpochChange>(settled.front());
  REQUIRE(change.has_value());
  CHECK(change->commId == 0x21);
  CHECK(change->epoch == 2);
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 3});
  CHECK(change->joiners.empty());
  checkAccepts(*change, {"new0", "new2"}, {0, 2}, 250);
  REQUIRE(change->removed.size() == 1);
  CHECK(change->removed[0].first == 2);
  INFO(change->removed[0].second);
  CHECK(mentions(change->removed[0].second, "rank 1 of communicator 0x21 was removed at epoch 2"));
  CHECK(mentions(change->removed[0].second, "heard nothing from it"));

  const Communicator* c = reg.find(0x21);
  CHECK(c->epoch == 2);
  CHECK(c->worldSize == 2);
  REQUIRE(c->members.size() == 2);
  CHECK(c->members[1].peer == 3);
  CHECK(c->members[1].address == "new2");
  CHECK_FALSE(c->updating());
  CHECK(c->accusations.empty());
  int rank = -5;
  REQUIRE(reg.communicatorOf(3, &rank) != nullptr);
  CHECK(rank == 1);
  CHECK(reg.communicatorOf(2) == nullptr);  // the removed member is nobody now
  CHECK_FALSE(reg.heartbeat(2, t0 + 1030ms));
  CHECK_FALSE(reg.depart(2).has_value());  // its connection closing later changes nothing
  CHECK(reg.find(0x21)->presentCount() == 2);
}

TEST_CASE("registry update: nothing happens until every awaited member asked", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x22, 3);
  CHECK_FALSE(ask(reg, 2, 1, update("n1"), t0 + 1ms).has_value());
  CHECK_FALSE(ask(reg, 1, 1, update("n0"), t0 + 2ms).has_value());
  CHECK(reg.settleUpdates(t0 + 3ms).empty());
  CHECK(reg.find(0x22)->epoch == 1);
  CHECK(reg.find(0x22)->ready.size() == 2);
  // Asking twice is harmless: the later address wins.
  CHECK_FALSE(ask(reg, 1, 1, update("n0b"), t0 + 4ms).has_value());
  auto change = ask(reg, 3, 1, update("n2"), t0 + 5ms);
  REQUIRE(change.has_value());
  CHECK(change->epoch == 2);
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 2, 3});
  CHECK(change->removed.empty());
  checkAccepts(*change, {"n0b", "n1", "n2"}, {0, 1, 2}, 250);
  CHECK(reg.settleUpdates(t0 + 6ms).empty());  // decided once
  // The next epoch's update is a new barrier.
  CHECK_FALSE(ask(reg, 3, 2, update("m2"), t0 + 7ms).has_value());
  CHECK(reg.find(0x22)->ready.size() == 1);
}

TEST_CASE("registry update: a member whose connection is gone is not waited for", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x23, 3);
  CHECK_FALSE(ask(reg, 1, 1, update("n0"), t0 + 1ms).has_value());
  CHECK_FALSE(ask(reg, 2, 1, update("n1"), t0 + 2ms).has_value());
  CHECK(reg.settleUpdates(t0 + 3ms).empty());
  auto d = reg.depart(3);
  REQUIRE(d);
  CHECK(d->rank == 2);
  CHECK_FALSE(d->forgotten);
  auto changes = reg.settleUpdates(t0 + 4ms);
  REQUIRE(changes.size() == 1);
  const EpochChange& change = changes[0];
  CHECK(change.commId == 0x23);
  CHECK(change.epoch == 2);
  CHECK(peersOf(change.members) == std::vector<PeerId>{1, 2});
  CHECK(change.removed.empty());  // nobody to tell: it is gone already
  checkAccepts(change, {"n0", "n1"}, {0, 1}, 250);
  CHECK(reg.find(0x23)->members.size() == 2);
}

TEST_CASE("registry update: members that do not come within the timeout are dropped", "[registry][epoch]") {
  Registry reg(1000);  // silent only after 4 s: the update's own timeout decides here
  formWorld(reg, 0x24, 3);
  CHECK_FALSE(ask(reg, 2, 1, update("n1", {}, 500), t0).has_value());
  CHECK(reg.settleUpdates(t0 + 499ms).empty());
  CHECK(reg.find(0x24)->epoch == 1);
  auto changes = reg.settleUpdates(t0 + 500ms);
  REQUIRE(changes.size() == 1);
  const EpochChange& change = changes[0];
  CHECK(change.epoch == 2);
  CHECK(peersOf(change.members) == std::vector<PeerId>{2});
  checkAccepts(change, {"n1"}, {1}, 1000);
  REQUIRE(change.removed.size() == 2);
  CHECK(change.removed[0].first == 1);
  CHECK(change.removed[1].first == 3);
  for (const auto& [peer, why] : change.removed) {
    INFO(why);
    CHECK(mentions(why, "did not come to the update within 500 ms"));
  }
  CHECK(mentions(change.removed[0].second, "rank 0 of communicator 0x24"));
  CHECK(mentions(change.removed[1].second, "rank 2 of communicator 0x24"));
  CHECK(reg.communicatorOf(1) == nullptr);
  CHECK(reg.communicatorOf(3) == nullptr);
  CHECK(reg.settleUpdates(t0 + 10s).empty());  // the new epoch has no update under way
}

TEST_CASE("registry update: a silent member is not waited for", "[registry][epoch]") {
  Registry reg(100);
  REQUIRE(reg.silentAfter() == 400ms);
  formWorld(reg, 0x25, 3);
  CHECK(reg.heartbeat(1, t0 + 300ms));
  CHECK(reg.heartbeat(2, t0 + 300ms));  // rank 2 (peer 3) is last heard from at the rendezvous, t0
  CHECK_FALSE(ask(reg, 1, 1, update("n0"), t0 + 350ms).has_value());
  CHECK_FALSE(ask(reg, 2, 1, update("n1"), t0 + 350ms).has_value());
  CHECK(reg.settleUpdates(t0 + 400ms).empty());  // silent for exactly silentAfter(): still awaited
  auto changes = reg.settleUpdates(t0 + 401ms);
  REQUIRE(changes.size() == 1);
  CHECK(peersOf(changes[0].members) == std::vector<PeerId>{1, 2});
  checkAccepts(changes[0], {"n0", "n1"}, {0, 1}, 100);
  REQUIRE(changes[0].removed.size() == 1);
  CHECK(changes[0].removed[0].first == 3);
  CHECK(mentions(changes[0].removed[0].second, "rank 2 of communicator 0x25 was removed at epoch 2"));

  // A heartbeat keeps a member awaited: here nobody falls silent, so the update waits for all.
  Registry reg2(100);
  formWorld(reg2, 0x26, 2);
  CHECK(reg2.heartbeat(2, t0 + 350ms));
  CHECK_FALSE(ask(reg2, 1, 1, update("n0"), t0 + 350ms).has_value());
  CHECK(reg2.settleUpdates(t0 + 700ms).empty());
  CHECK(reg2.heartbeat(2, t0 + 700ms));
  CHECK(reg2.settleUpdates(t0 + 1000ms).empty());
  REQUIRE(reg2.settleUpdates(t0 + 1101ms).size() == 1);  // 401 ms after its last heartbeat
}

TEST_CASE("registry update: joiners of a running communicator are admitted after the survivors",
          "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x27, 2);
  CHECK(reg.pendingJoiners(0x27) == std::pair<uint32_t, std::vector<PeerId>>{0, {1, 2}});
  auto j1 = reg.join(10, 0x27, req(1, -1, "joinerA"), t0 + 1ms, true);
  REQUIRE(j1);
  CHECK_FALSE(j1->has_value());  // it waits for the next update
  auto j2 = reg.join(11, 0x27, req(1, -1, "joinerB"), t0 + 2ms, true);
  REQUIRE(j2);
  CHECK_FALSE(j2->has_value());
  CHECK(reg.pendingJoiners(0x27) == std::pair<uint32_t, std::vector<PeerId>>{2, {1, 2}});
  CHECK(reg.pendingJoiners(0x999).first == 0);
  // A waiting joiner is not a member yet: no heartbeats, no updates, and joining twice is misuse.
  CHECK_FALSE(reg.heartbeat(10, t0 + 3ms));
  CHECK(reg.requestUpdate(10, 1, update("x"), t0 + 3ms).error().code() == loomInvalidUsage);
  CHECK(reg.join(10, 0x27, req(1, -1, "again"), t0 + 3ms, true).error().code() == loomInvalidUsage);
  // One that gives up before the update is forgotten.
  REQUIRE(reg.join(12, 0x27, req(1, -1, "quitter"), t0 + 3ms, true));
  CHECK(reg.pendingJoiners(0x27).first == 3);
  auto gone = reg.depart(12);
  REQUIRE(gone);
  CHECK(gone->joiner);
  CHECK(gone->rank == -1);
  CHECK(gone->address == "quitter");
  CHECK_FALSE(gone->forgotten);
  CHECK(reg.pendingJoiners(0x27).first == 2);

  CHECK_FALSE(ask(reg, 2, 1, update("s1"), t0 + 4ms).has_value());
  auto change = ask(reg, 1, 1, update("s0"), t0 + 5ms);
  REQUIRE(change.has_value());
  CHECK(change->epoch == 2);
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 2});
  CHECK(peersOf(change->joiners) == std::vector<PeerId>{10, 11});
  CHECK(change->removed.empty());
  checkAccepts(*change, {"s0", "s1", "joinerA", "joinerB"}, {0, 1, -1, -1}, 250);
  CHECK(reg.pendingJoiners(0x27) == std::pair<uint32_t, std::vector<PeerId>>{0, {1, 2, 10, 11}});
  int rank = -5;
  REQUIRE(reg.communicatorOf(11, &rank) != nullptr);
  CHECK(rank == 3);
  CHECK(reg.heartbeat(10, t0 + 6ms));  // a member now
  CHECK(reg.find(0x27)->worldSize == 4);
  // It takes part in the next update like everyone else.
  CHECK_FALSE(ask(reg, 10, 2, update("j2"), t0 + 7ms).has_value());
}

TEST_CASE("registry update: joining a communicator that is not running is misuse", "[registry][epoch]") {
  Registry reg(250);
  auto j = reg.join(1, 0x28, req(1, -1, "lonely"), t0, true);
  REQUIRE_FALSE(j);
  CHECK(j.error().code() == loomInvalidUsage);
  INFO(j.error().message());
  CHECK(mentions(j.error().message(), "communicator 0x28 is not running"));
  CHECK(reg.communicatorCount() == 0);
  CHECK(reg.communicatorOf(1) == nullptr);
  // Nothing was left behind: the same connection may found it instead.
  REQUIRE(reg.join(1, 0x28, req(1, -1, "founder"), t0).value().has_value());
  // Another library version is refused before anything else.
  CHECK(reg.join(2, 0x28, req(1, -1, "old", LOOM_VERSION_CODE + 100), t0, true).error().code() ==
        loomVersionMismatch);
}

TEST_CASE("registry update: a communicator at its maxWorld refuses joiners", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x29, 3, 1, /*maxWorld=*/3);
  CHECK(reg.find(0x29)->maxWorld == 3);
  auto full = reg.join(10, 0x29, req(1, -1, "extra"), t0, true);
  REQUIRE_FALSE(full);
  CHECK(full.error().code() == loomInvalidUsage);
  INFO(full.error().message());
  CHECK(mentions(full.error().message(), "full"));
  CHECK(mentions(full.error().message(), "at most 3"));
  CHECK(reg.pendingJoiners(0x29).first == 0);
  CHECK(reg.communicatorOf(10) == nullptr);

  // With room for one: the first joiner waits, the second is refused (waiting joiners count).
  Registry reg2(250);
  formWorld(reg2, 0x2A, 2, 1, /*maxWorld=*/3);
  REQUIRE(reg2.join(10, 0x2A, req(1, -1, "j1"), t0, true));
  auto second = reg2.join(11, 0x2A, req(1, -1, "j2"), t0, true);
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == loomInvalidUsage);
  CHECK(mentions(second.error().message(), "full"));
  CHECK(reg2.pendingJoiners(0x2A).first == 1);
  // No maxWorld: no limit.
  Registry reg3(250);
  formWorld(reg3, 0x2B, 1);
  for (PeerId p = 10; p < 20; ++p) REQUIRE(reg3.join(p, 0x2B, req(1, -1, "j"), t0, true));
  CHECK(reg3.pendingJoiners(0x2B).first == 10);
}

TEST_CASE("registry update: a leaving member is neither in the next epoch nor removed", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x2C, 3);
  CHECK_FALSE(ask(reg, 2, 1, update("", {}, 10000, wire::kUpdateLeaving), t0 + 1ms).has_value());
  CHECK_FALSE(ask(reg, 1, 1, update("n0"), t0 + 2ms).has_value());
  auto change = ask(reg, 3, 1, update("n2"), t0 + 3ms);
  REQUIRE(change.has_value());
  CHECK(change->epoch == 2);
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 3});
  CHECK(change->removed.empty());  // it closes by itself
  checkAccepts(*change, {"n0", "n2"}, {0, 2}, 250);
  CHECK(reg.communicatorOf(2) == nullptr);
  CHECK_FALSE(reg.depart(2).has_value());  // its Leave afterwards finds nothing
}

TEST_CASE("registry update: a stale epoch or a non-member is refused", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x2D, 2);
  // Not at epoch 1's update with epoch 0 or 2.
  auto early = reg.requestUpdate(1, 2, update("n0"), t0);
  REQUIRE_FALSE(early);
  CHECK(early.error().code() == loomInvalidUsage);
  CHECK(mentions(early.error().message(), "epoch 2"));
  CHECK_FALSE(reg.find(0x2D)->updating());  // a refused request starts nothing
  CHECK_FALSE(ask(reg, 1, 1, update("n0"), t0 + 1ms).has_value());
  REQUIRE(ask(reg, 2, 1, update("n1"), t0 + 2ms).has_value());
  auto stale = reg.requestUpdate(1, 1, update("late"), t0 + 3ms);
  REQUIRE_FALSE(stale);
  CHECK(stale.error().code() == loomInvalidUsage);
  INFO(stale.error().message());
  CHECK(mentions(stale.error().message(), "rank 0 asks to leave epoch 1"));
  CHECK(mentions(stale.error().message(), "which is at epoch 2"));
  CHECK_FALSE(reg.find(0x2D)->updating());

  auto stranger = reg.requestUpdate(99, 2, update("x"), t0);
  REQUIRE_FALSE(stranger);
  CHECK(stranger.error().code() == loomInvalidUsage);
  CHECK(mentions(stranger.error().message(), "not a member"));
  // A founder still gathering is not a member either.
  REQUIRE(reg.join(50, 0x2E, req(2, -1, "waiting"), t0));
  auto gathering = reg.requestUpdate(50, 0, update("x"), t0);
  REQUIRE_FALSE(gathering);
  CHECK(mentions(gathering.error().message(), "not a member"));
  CHECK_FALSE(reg.find(0x2E)->updating());
}

TEST_CASE("registry update: two members that both came and accuse each other: the higher rank goes",
          "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x31, 4);  // peers 1..4 are ranks 0..3; the link between ranks 1 and 3 failed
  CHECK_FALSE(ask(reg, 2, 1, update("n1", {3}), t0 + 10ms).has_value());
  CHECK_FALSE(ask(reg, 4, 1, update("n3", {1}), t0 + 10ms).has_value());
  CHECK_FALSE(ask(reg, 1, 1, update("n0"), t0 + 10ms).has_value());
  auto change = ask(reg, 3, 1, update("n2"), t0 + 20ms);
  REQUIRE(change.has_value());
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 2, 3});
  checkAccepts(*change, {"n0", "n1", "n2"}, {0, 1, 2}, 250);
  REQUIRE(change->removed.size() == 1);
  CHECK(change->removed[0].first == 4);
}

TEST_CASE("registry update: a rank frozen and back is dropped once, its accusers stay", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x32, 3);
  CHECK_FALSE(ask(reg, 1, 1, update("n0", {1}), t0 + 10ms).has_value());
  CHECK_FALSE(ask(reg, 2, 1, update("n1", {0, 2}), t0 + 10ms).has_value());  // it blames everyone
  auto change = ask(reg, 3, 1, update("n2", {1}), t0 + 20ms);
  REQUIRE(change.has_value());
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 3});
}

TEST_CASE("registry update: when every member leaves, the communicator is forgotten", "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x33, 2);
  CHECK_FALSE(ask(reg, 1, 1, update("", {}, 10000, wire::kUpdateLeaving), t0 + 10ms).has_value());
  auto change = ask(reg, 2, 1, update("", {}, 10000, wire::kUpdateLeaving), t0 + 20ms);
  REQUIRE(change.has_value());
  CHECK(change->members.empty());
  CHECK(reg.find(0x33) == nullptr);
  // The id is free for a new communicator.
  auto again = reg.join(10, 0x33, req(1, 0, "fresh"), t0 + 30ms);
  REQUIRE(again);
  CHECK(again->has_value());
}

TEST_CASE("registry: joiners of a communicator still forming count toward maxWorld, and founders must agree on it",
          "[registry][epoch]") {
  Registry reg(250);
  REQUIRE(reg.join(1, 0x34, founder(2, 0, "f0", 2), t0));
  auto other = reg.join(2, 0x34, founder(2, 1, "f1", 5), t0);
  REQUIRE_FALSE(other);
  CHECK(mentions(other.error().message(), "maxWorld"));
  REQUIRE(reg.join(3, 0x34, founder(2, 1, "f1", 2), t0));  // completes the world of 2
  wire::JoinRequest j = req(1, -1, "j");
  auto full = reg.join(4, 0x34, j, t0, true);
  REQUIRE_FALSE(full);
  CHECK(mentions(full.error().message(), "full"));

  Registry forming(250);
  REQUIRE(forming.join(1, 0x35, founder(2, 0, "f0", 2), t0));
  REQUIRE(forming.join(5, 0x35, j, t0, true));  // 1 founder + 1 joiner
  auto tooMany = forming.join(6, 0x35, j, t0, true);
  REQUIRE_FALSE(tooMany);
  CHECK(mentions(tooMany.error().message(), "full"));
  // The founder leaves while a joiner waits: the communicator stays until the joiner goes too.
  REQUIRE(forming.depart(1).has_value());
  CHECK(forming.find(0x35) != nullptr);
  auto last = forming.depart(5);
  REQUIRE(last.has_value());
  CHECK(last->forgotten);
  CHECK(forming.find(0x35) == nullptr);
}

TEST_CASE("registry update: a lone accusation against a member that came to the update drops nobody",
          "[registry][epoch]") {
  Registry reg(250);
  formWorld(reg, 0x36, 3);
  CHECK_FALSE(ask(reg, 1, 1, update("n0", {2}), t0 + 10ms).has_value());  // rank 0 saw rank 2's socket reset
  CHECK_FALSE(ask(reg, 2, 1, update("n1"), t0 + 10ms).has_value());
  auto change = ask(reg, 3, 1, update("n2"), t0 + 20ms);  // rank 2 is alive and came
  REQUIRE(change.has_value());
  CHECK(peersOf(change->members) == std::vector<PeerId>{1, 2, 3});
  CHECK(change->removed.empty());
}
