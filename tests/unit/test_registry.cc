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
