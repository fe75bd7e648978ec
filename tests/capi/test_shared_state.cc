// loomSharedStateSync: the majority's entries win, only the entries that differ move (zero bytes in
// steady state), the revision must advance by exactly one, a member that never synced takes the
// majority's revision, entries of another shape are refused everywhere, bad arguments are named.
// Ranks are threads with real communicators over loopback TCP (tests/support/threaded_world.h).
#include "support/threaded_world.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int kRanks = 3;

[[noreturn]] void fail(const char* what, loomComm_t comm) {
  throw std::runtime_error(std::string(what) + ": " + loomGetLastError(comm));
}

uint64_t hashOf(const std::vector<std::vector<uint8_t>*>& buffers) {
  std::vector<const void*> parts;
  std::vector<size_t> bytes;
  for (auto* b : buffers) {
    parts.push_back(b->data());
    bytes.push_back(b->size());
  }
  uint64_t h = 0;
  loomHash(parts.data(), bytes.data(), static_cast<int>(parts.size()), &h);
  return h;
}

}  // namespace

TEST_CASE("shared state: steady state moves nothing; the revision must advance by exactly one", "[capi][shared]") {
  std::mutex mu;
  std::vector<loomSyncInfo_t> infos;
  loomtest::runWorld(kRanks, [&](int, loomComm_t& comm) {
    std::vector<uint8_t> weights(100000, 7);
    int64_t step = 42;
    loomSharedEntry_t entries[] = {{"weights", weights.data(), weights.size()}, {"step", &step, sizeof step}};
    for (uint64_t revision = 1; revision <= 3; ++revision) {
      loomSyncInfo_t info{};
      if (loomSharedStateSync(comm, entries, 2, revision, &info) != loomSuccess) fail("sync", comm);
      std::lock_guard<std::mutex> lock(mu);
      infos.push_back(info);
    }
    // Skipping a revision is refused before anything moves, on every rank alike.
    if (loomSharedStateSync(comm, entries, 2, 5, nullptr) != loomInvalidUsage) fail("a skipped revision", comm);
    if (!std::strstr(loomGetLastError(comm), "exactly one")) fail("the message", comm);
    if (loomSharedStateSync(comm, entries, 2, 3, nullptr) != loomInvalidUsage) fail("a repeated revision", comm);
    // The communicator is unharmed: the next revision still works.
    if (loomSharedStateSync(comm, entries, 2, 4, nullptr) != loomSuccess) fail("sync after the refusals", comm);
  });
  REQUIRE(infos.size() == 3 * kRanks);
  for (const auto& info : infos) {
    CHECK(info.bytesSent == 0);
    CHECK(info.bytesReceived == 0);
    CHECK(info.entriesReceived == 0);
  }
}

TEST_CASE("shared state: the majority wins and only the entries that differ move", "[capi][shared]") {
  std::mutex mu;
  std::vector<loomSyncInfo_t> infos(kRanks);
  std::vector<uint64_t> hashes(kRanks);
  loomtest::runWorld(kRanks, [&](int rank, loomComm_t& comm) {
    std::vector<uint8_t> a(64 << 10, 1), b(1 << 20, 2), c(4, 3);
    if (rank == 2) {
      b[12345] = 99;  // one byte of one entry differs on one rank
      c[0] = 9;
    }
    loomSharedEntry_t entries[] = {{"a", a.data(), a.size()}, {"b", b.data(), b.size()}, {"c", c.data(), c.size()}};
    loomSyncInfo_t info{};
    if (loomSharedStateSync(comm, entries, 3, 1, &info) != loomSuccess) fail("sync", comm);
    std::lock_guard<std::mutex> lock(mu);
    infos[rank] = info;
    hashes[rank] = hashOf({&a, &b, &c});
    if (b[12345] != 2 || c[0] != 3) throw std::runtime_error("the minority's entries were not replaced");
  });
  CHECK(hashes[0] == hashes[1]);
  CHECK(hashes[1] == hashes[2]);
  CHECK(infos[2].bytesReceived == (1 << 20) + 4);  // b and c, not a
  CHECK(infos[2].entriesReceived == 2);
  CHECK(infos[2].bytesSent == 0);
  // The entries came from both majority members (b cut in two parts, spread round-robin).
  CHECK(infos[0].entriesSent >= 1);
  CHECK(infos[1].entriesSent >= 1);
  CHECK(infos[0].bytesSent > 0);
  CHECK(infos[1].bytesSent > 0);
  CHECK(infos[0].bytesSent + infos[1].bytesSent == (1 << 20) + 4);
  for (const auto& info : infos) CHECK(info.revision == 1);
}

TEST_CASE("shared state: a member that never synced (a joiner) takes the majority's state and revision",
          "[capi][shared]") {
  std::vector<loomSyncInfo_t> infos(kRanks);
  std::mutex mu;
  loomtest::runWorld(kRanks, [&](int rank, loomComm_t& comm) {
    std::vector<uint8_t> model(4096, rank == 2 ? 0 : 5);
    loomSharedEntry_t entry{"model", model.data(), model.size()};
    loomSyncInfo_t info{};
    // The founders are at revision 8 of their state; the newcomer knows nothing and says 1.
    if (loomSharedStateSync(comm, &entry, 1, rank == 2 ? 1 : 8, &info) != loomSuccess) fail("sync", comm);
    if (model != std::vector<uint8_t>(4096, 5)) throw std::runtime_error("the newcomer did not get the model");
    // From now on everyone is at 8 and goes on with 9.
    if (loomSharedStateSync(comm, &entry, 1, 9, nullptr) != loomSuccess) fail("the next sync", comm);
    std::lock_guard<std::mutex> lock(mu);
    infos[rank] = info;
  });
  for (const auto& info : infos) CHECK(info.revision == 8);
  CHECK(infos[2].bytesReceived == 4096);
}

TEST_CASE("shared state: entries of another shape are refused on every rank, naming them", "[capi][shared]") {
  loomtest::runWorld(kRanks, [&](int rank, loomComm_t& comm) {
    std::vector<uint8_t> w(rank == 1 ? 200 : 100, 0);
    loomSharedEntry_t entry{"w", w.data(), w.size()};
    if (loomSharedStateSync(comm, &entry, 1, 1, nullptr) != loomInvalidUsage) fail("another size", comm);
    if (!std::strstr(loomGetLastError(comm), "same names and sizes")) fail("the message", comm);
  });
}

TEST_CASE("shared state: bad arguments are named", "[capi][shared]") {
  loomtest::runWorld(1, [&](int, loomComm_t& comm) {
    uint8_t x = 0;
    loomSharedEntry_t twice[] = {{"x", &x, 1}, {"x", &x, 1}};
    if (loomSharedStateSync(comm, twice, 2, 1, nullptr) != loomInvalidArgument) fail("a duplicate name", comm);
    if (!std::strstr(loomGetLastError(comm), "used twice")) fail("the duplicate message", comm);
    loomSharedEntry_t unnamed{"", &x, 1};
    if (loomSharedStateSync(comm, &unnamed, 1, 1, nullptr) != loomInvalidArgument) fail("an empty name", comm);
    loomSharedEntry_t nodata{"n", nullptr, 8};
    if (loomSharedStateSync(comm, &nodata, 1, 1, nullptr) != loomInvalidArgument) fail("NULL data", comm);
    if (loomSharedStateSync(comm, nullptr, 1, 1, nullptr) != loomInvalidArgument) fail("NULL entries", comm);
    if (loomSharedStateSync(comm, nullptr, -1, 1, nullptr) != loomInvalidArgument) fail("a negative count", comm);
    if (loomSharedStateSync(nullptr, &unnamed, 1, 1, nullptr) != loomInvalidArgument) fail("a NULL comm", comm);
    // Nothing to sync is fine.
    if (loomSharedStateSync(comm, nullptr, 0, 1, nullptr) != loomSuccess) fail("no entries", comm);
  });
}
