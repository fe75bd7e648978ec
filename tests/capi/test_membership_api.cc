// The elastic-membership C API (loomCommJoin, loomCommUpdate, loomCommPendingPeers, loomCommLeave,
// loomCommEpoch) and its C++ mirror in loom.hpp: argument errors get the codes the other
// functions give, a join names what is wrong, the new config fields are validated, and a process
// that joins a running communicator takes part in its next epoch. Ranks are threads with real
// communicators over loopback TCP, at a coordinator the test hosts (tests/support/threaded_world.h).
#include "support/outcome.h"
#include "support/threaded_world.h"

#include <loom/loom.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using loomtest::mentions;
using loomtest::Outcome;
using loomtest::outcome;

// Sets (or, with nullptr, unsets) an environment variable for one scope, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

uint64_t freshCommId() {
  static std::atomic<uint64_t> next{0x5e1a0000};
  return ++next;
}

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Waits (bounded) until done() holds; false if it never did.
template <typename F>
bool waitUntil(F&& done, double seconds) {
  auto t0 = Clock::now();
  while (!done()) {
    if (secondsSince(t0) > seconds) return false;
    usleep(1000);
  }
  return true;
}

}  // namespace

TEST_CASE("membership calls with a NULL, destroyed or aborted communicator", "[capi][membership]") {
  int count = -1;
  uint64_t epoch = 99;
  CHECK(loomCommUpdate(nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm is NULL"));
  CHECK(loomCommPendingPeers(nullptr, &count) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm is NULL"));
  CHECK(loomCommLeave(nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm is NULL"));
  CHECK(loomCommEpoch(nullptr, &epoch) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm is NULL"));
  CHECK(count == -1);
  CHECK(epoch == 99);

  std::vector<Outcome> countNull(1), epochNull(1), afterAbort(4), afterDestroy(4);
  std::vector<int> pending(1, -1);
  std::vector<uint64_t> epochs(2, 0);
  loomtest::runWorld(1, [&](int r, loomComm_t& comm) {
    int n = -1;
    uint64_t e = 0;
    countNull[r] = outcome(loomCommPendingPeers(comm, nullptr), comm);
    epochNull[r] = outcome(loomCommEpoch(comm, nullptr), comm);
    if (loomCommPendingPeers(comm, &n) == loomSuccess) pending[r] = n;
    if (loomCommEpoch(comm, &e) == loomSuccess) epochs[0] = e;
    loomCommAbort(comm);
    afterAbort[0] = outcome(loomCommUpdate(comm), comm);
    afterAbort[1] = outcome(loomCommPendingPeers(comm, &n), comm);
    afterAbort[2] = outcome(loomCommLeave(comm), comm);
    afterAbort[3] = outcome(loomCommEpoch(comm, &e), comm);  // a query: still answers after an abort
    epochs[1] = e;
    loomCommDestroy(comm);
    afterDestroy[0] = outcome(loomCommUpdate(comm), comm);
    afterDestroy[1] = outcome(loomCommPendingPeers(comm, &n), comm);
    afterDestroy[2] = outcome(loomCommLeave(comm), comm);
    afterDestroy[3] = outcome(loomCommEpoch(comm, &e), comm);
    comm = nullptr;
  });
  CHECK(countNull[0].rc == loomInvalidArgument);
  CHECK(mentions(countNull[0].message, "count (output pointer) is NULL"));
  CHECK(epochNull[0].rc == loomInvalidArgument);
  CHECK(mentions(epochNull[0].message, "epoch (output pointer) is NULL"));
  CHECK(pending[0] == 0);
  CHECK(epochs[0] == 1);  // the founding rendezvous
  for (int i = 0; i < 3; ++i) {
    INFO("call " << i << ": " << afterAbort[i].message);
    CHECK(afterAbort[i].rc == loomAborted);
    CHECK(mentions(afterAbort[i].message, "aborted"));
  }
  CHECK(afterAbort[3].rc == loomSuccess);
  CHECK(epochs[1] == 1);
  for (int i = 0; i < 4; ++i) {
    INFO("call " << i << ": " << afterDestroy[i].message);
    CHECK(afterDestroy[i].rc == loomInvalidUsage);
    CHECK(mentions(afterDestroy[i].message, "destroyed"));
  }
}

TEST_CASE("loomCommJoin: NULL output, no coordinator", "[capi][membership]") {
  auto server = loomtest::startCoordinator();
  CHECK(loomCommJoin(nullptr, server->address().c_str(), nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm (output pointer) is NULL"));

  ScopedEnv noCoordinator("LOOM_COORDINATOR", nullptr);
  loomComm_t comm = reinterpret_cast<loomComm_t>(0x1);  // must be cleared on failure
  CHECK(loomCommJoin(&comm, nullptr, nullptr) == loomInvalidArgument);
  CHECK(comm == nullptr);
  INFO(loomGetLastError(nullptr));
  CHECK(mentions(loomGetLastError(nullptr), "coordinator is NULL"));
  CHECK(mentions(loomGetLastError(nullptr), "LOOM_COORDINATOR"));
  {
    ScopedEnv empty("LOOM_COORDINATOR", "");
    CHECK(loomCommJoin(&comm, nullptr, nullptr) == loomInvalidArgument);
    CHECK(mentions(loomGetLastError(nullptr), "LOOM_COORDINATOR"));
  }
  CHECK(loomCommJoin(&comm, "no-port-here", nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "no-port-here"));
  CHECK(comm == nullptr);
}

TEST_CASE("loomCommJoin of a communicator that is not running is invalid usage", "[capi][membership]") {
  auto server = loomtest::startCoordinator();
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  config.commId = freshCommId();
  config.connectTimeoutMs = 5000;
  loomComm_t comm = nullptr;
  auto t0 = Clock::now();
  CHECK(loomCommJoin(&comm, server->address().c_str(), &config) == loomInvalidUsage);
  std::string message = loomGetLastError(nullptr);
  INFO(message);
  CHECK(mentions(message, "not running"));
  CHECK(comm == nullptr);
  CHECK(secondsSince(t0) < 4);  // refused at once, not timed out

  // The coordinator from LOOM_COORDINATOR, the id from LOOM_COMM_ID.
  {
    ScopedEnv coordinator("LOOM_COORDINATOR", server->address().c_str());
    ScopedEnv id("LOOM_COMM_ID", "12345");
    CHECK(loomCommJoin(&comm, nullptr, nullptr) == loomInvalidUsage);
    CHECK(mentions(loomGetLastError(nullptr), "not running"));
    CHECK(comm == nullptr);
  }

  // The C++ layer throws the same, with the message.
  try {
    loom::Comm joined = loom::Comm::join(server->address(), &config);
    FAIL("loom::Comm::join of a communicator that is not running succeeded");
  } catch (const loom::Error& e) {
    CHECK(e.code() == loomInvalidUsage);
    CHECK(mentions(e.what(), "not running"));
  }
  // The refusals left nothing behind: the same id can be founded there now.
  loomComm_t founded = nullptr;
  REQUIRE(loomCommInitRank(&founded, 1, 0, server->address().c_str(), &config) == loomSuccess);
  uint64_t epoch = 0;
  CHECK(loomCommEpoch(founded, &epoch) == loomSuccess);
  CHECK(epoch == 1);
  CHECK(loomCommDestroy(founded) == loomSuccess);
}

TEST_CASE("membership settings are validated", "[capi][membership]") {
  // Checked before anything is contacted: these addresses are never dialled.
  loomComm_t comm = nullptr;
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  config.minWorld = 3;
  config.maxWorld = 2;
  CHECK(loomCommInitRank(&comm, 1, 0, "127.0.0.1:1", &config) == loomInvalidArgument);
  INFO(loomGetLastError(nullptr));
  CHECK(mentions(loomGetLastError(nullptr), "maxWorld 2 is below minWorld 3"));
  CHECK(loomCommJoin(&comm, "127.0.0.1:1", &config) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "maxWorld 2 is below minWorld 3"));
  CHECK(comm == nullptr);

  {
    ScopedEnv minWorld("LOOM_MIN_WORLD", "0");
    CHECK(loomCommJoin(&comm, "127.0.0.1:1", nullptr) == loomInvalidArgument);
    CHECK(mentions(loomGetLastError(nullptr), "LOOM_MIN_WORLD = 0 is out of range"));
  }
  {
    ScopedEnv minWorld("LOOM_MIN_WORLD", "4");
    ScopedEnv maxWorld("LOOM_MAX_WORLD", "3");
    CHECK(loomCommInitRank(&comm, 1, 0, "127.0.0.1:1", nullptr) == loomInvalidArgument);
    CHECK(mentions(loomGetLastError(nullptr), "maxWorld 3 is below minWorld 4"));
    CHECK(mentions(loomGetLastError(nullptr), "LOOM_MAX_WORLD"));
  }
  loomConfig_t negative = LOOM_CONFIG_INITIALIZER;
  negative.minWorld = -1;
  CHECK(loomCommJoin(&comm, "127.0.0.1:1", &negative) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "config.minWorld = -1"));
  negative = loom::defaultConfig();
  negative.maxWorld = -2;
  CHECK(loomCommJoin(&comm, "127.0.0.1:1", &negative) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "config.maxWorld = -2"));
  negative = loom::defaultConfig();
  negative.updateTimeoutMs = -5;
  CHECK(loomCommJoin(&comm, "127.0.0.1:1", &negative) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "config.updateTimeoutMs = -5"));
  {
    ScopedEnv updateTimeout("LOOM_UPDATE_TIMEOUT_MS", "0");
    CHECK(loomCommJoin(&comm, "127.0.0.1:1", nullptr) == loomInvalidArgument);
    CHECK(mentions(loomGetLastError(nullptr), "LOOM_UPDATE_TIMEOUT_MS"));
  }
  // A config from before the fields existed (shorter size) does not read them: the bad values
  // below are past its end, so the join gets as far as looking for a coordinator.
  {
    ScopedEnv noCoordinator("LOOM_COORDINATOR", nullptr);
    loomConfig_t old = LOOM_CONFIG_INITIALIZER;
    old.size = offsetof(loomConfig_t, minWorld);
    old.minWorld = -7;
    old.maxWorld = -7;
    old.updateTimeoutMs = -7;
    CHECK(loomCommJoin(&comm, nullptr, &old) == loomInvalidArgument);
    INFO(loomGetLastError(nullptr));
    CHECK(mentions(loomGetLastError(nullptr), "LOOM_COORDINATOR"));
  }
  CHECK(comm == nullptr);
}

TEST_CASE("the C++ layer's membership calls throw like the others", "[capi][membership][cpp]") {
  loom::Comm none(static_cast<loomComm_t>(nullptr));
  auto codeOf = [](auto&& call) {
    try {
      call();
    } catch (const loom::Error& e) {
      return e.code();
    }
    return loomSuccess;
  };
  CHECK(codeOf([&] { none.update(); }) == loomInvalidArgument);
  CHECK(codeOf([&] { (void)none.pendingPeers(); }) == loomInvalidArgument);
  CHECK(codeOf([&] { none.leave(); }) == loomInvalidArgument);
  CHECK(codeOf([&] { (void)none.epoch(); }) == loomInvalidArgument);
  ScopedEnv noCoordinator("LOOM_COORDINATOR", nullptr);
  try {
    (void)loom::Comm::join();
    FAIL("loom::Comm::join without a coordinator succeeded");
  } catch (const loom::Error& e) {
    CHECK(e.code() == loomInvalidArgument);
    CHECK(mentions(e.what(), "LOOM_COORDINATOR"));
  }
}

namespace {

// What each rank of the join scenario saw.
struct Seen {
  std::string error;  // first failure, empty if none
  int rank = -1, size = -1, pendingSeen = -1;
  uint64_t epoch = 0;
  int32_t sum = 0;
};

void fail(Seen& s, const std::string& what, loomComm_t comm) {
  if (s.error.empty()) s.error = what + ": " + loomGetLastError(comm);
}

}  // namespace

TEST_CASE("a process joins a running communicator at its members' next update", "[capi][membership]") {
  auto server = loomtest::startCoordinator();
  const std::string address = server->address();
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  config.commId = freshCommId();
  config.transport = "tcp";
  config.connectTimeoutMs = 15000;  // bounds the joiner's wait for admission
  config.updateTimeoutMs = 10000;
  config.timeoutMs = 15000;

  std::vector<Seen> seen(3);
  std::atomic<int> founded{0};  // founders done with their init; +100 for one that failed
  std::atomic<bool> joinerGone{false};
  auto t0 = Clock::now();

  auto founder = [&](int r) {
    Seen& s = seen[r];
    loomComm_t comm = nullptr;
    if (loomCommInitRank(&comm, 2, r, address.c_str(), &config) != loomSuccess) {
      fail(s, "init", nullptr);
      founded += 100;  // wakes the joiner thread, which then gives up
      return;
    }
    ++founded;
    uint64_t epoch = 0;
    if (loomCommEpoch(comm, &epoch) != loomSuccess || epoch != 1) fail(s, "epoch before the update", comm);
    // The coordinator tells the members when a joiner waits; poll up to 5 s.
    int pending = 0;
    auto waited = Clock::now();
    while (s.error.empty() && pending < 1 && secondsSince(waited) < 5) {
      if (loomCommPendingPeers(comm, &pending) != loomSuccess) fail(s, "pending peers", comm);
      if (pending < 1) usleep(2000);
      if (joinerGone.load()) break;
    }
    s.pendingSeen = pending;
    if (pending == 1 && loomCommUpdate(comm) != loomSuccess) fail(s, "update", comm);
    if (s.error.empty() && pending == 1) {
      if (loomCommPendingPeers(comm, &pending) == loomSuccess && pending != 0) fail(s, "pending after the update", comm);
      int32_t one = 1;
      if (loomAllReduce(&one, &one, 1, loomInt32, loomSum, comm) != loomSuccess) fail(s, "all-reduce", comm);
      s.sum = one;
      loomCommRank(comm, &s.rank);
      loomCommSize(comm, &s.size);
      loomCommEpoch(comm, &s.epoch);
    }
    loomCommDestroy(comm);
  };
  auto joiner = [&] {
    Seen& s = seen[2];
    if (!waitUntil([&] { return founded.load() >= 2; }, 20) || founded.load() >= 100) {
      s.error = "the founders did not form the communicator";
      joinerGone = true;
      return;
    }
    loomComm_t comm = nullptr;
    if (loomCommJoin(&comm, address.c_str(), &config) != loomSuccess) {
      fail(s, "join", nullptr);
      joinerGone = true;
      return;
    }
    int32_t one = 1;
    if (loomAllReduce(&one, &one, 1, loomInt32, loomSum, comm) != loomSuccess) fail(s, "all-reduce", comm);
    s.sum = one;
    loomCommRank(comm, &s.rank);
    loomCommSize(comm, &s.size);
    loomCommEpoch(comm, &s.epoch);
    loomCommPendingPeers(comm, &s.pendingSeen);
    loomCommDestroy(comm);
  };

  std::vector<std::thread> threads;
  threads.emplace_back(founder, 0);
  threads.emplace_back(founder, 1);
  threads.emplace_back(joiner);
  for (auto& t : threads) t.join();
  const double seconds = secondsSince(t0);

  for (int r = 0; r < 3; ++r) {
    INFO("thread " << r << ": " << seen[r].error);
    CHECK(seen[r].error.empty());
    CHECK(seen[r].sum == 3);
    CHECK(seen[r].size == 3);
    CHECK(seen[r].epoch == 2);
  }
  CHECK(seen[0].pendingSeen == 1);
  CHECK(seen[1].pendingSeen == 1);
  CHECK(seen[2].pendingSeen == 0);
  CHECK(seen[0].rank == 0);  // survivors keep their order
  CHECK(seen[1].rank == 1);
  CHECK(seen[2].rank == 2);  // the joiner follows
  CHECK(seconds < 30);
}

TEST_CASE("the C++ layer: join, pendingPeers, update, epoch", "[capi][membership][cpp]") {
  auto server = loomtest::startCoordinator();
  const std::string address = server->address();
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  config.commId = freshCommId();
  config.connectTimeoutMs = 15000;
  config.updateTimeoutMs = 10000;
  config.timeoutMs = 15000;

  std::string founderError, joinerError;
  int pendingSeen = -1;
  // What each side sees in the new epoch: one all-reduce of 1s, and its place.
  struct After {
    double sum = 0;
    int rank = -1, size = -1;
    uint64_t epoch = 0;
  } founderAfter, joinerAfter;
  auto sumAndRecord = [](loom::Comm& comm, After& after) {
    double v = 1;
    comm.allReduce(&v, &v, 1, loomSum);
    after = {v, comm.rank(), comm.size(), comm.epoch()};
  };
  std::atomic<int> founder{0};  // 1: communicator formed, 2: its init failed
  std::atomic<bool> joinerGone{false};

  std::thread founderThread([&] {
    try {
      loom::Comm comm(1, 0, address, &config);
      founder = 1;
      if (comm.epoch() != 1) throw std::runtime_error("epoch before the update is not 1");
      auto t0 = Clock::now();
      while (comm.pendingPeers() < 1 && secondsSince(t0) < 5 && !joinerGone.load()) usleep(2000);
      pendingSeen = comm.pendingPeers();
      if (pendingSeen != 1) return;
      comm.update();
      sumAndRecord(comm, founderAfter);
    } catch (const std::exception& e) {
      founderError = e.what();
      int formed = 0;
      founder.compare_exchange_strong(formed, 2);  // a joiner still waiting gives up
    }
  });
  std::thread joinerThread([&] {
    try {
      if (!waitUntil([&] { return founder.load() != 0; }, 20) || founder.load() != 1)
        throw std::runtime_error("the founder did not form the communicator");
      loom::Comm comm = loom::Comm::join(address, &config);
      sumAndRecord(comm, joinerAfter);
    } catch (const std::exception& e) {
      joinerError = e.what();
    }
    joinerGone = true;
  });
  founderThread.join();
  joinerThread.join();
  INFO("founder: " << founderError);
  INFO("joiner: " << joinerError);
  CHECK(founderError.empty());
  CHECK(joinerError.empty());
  CHECK(pendingSeen == 1);
  CHECK(founderAfter.sum == 2);
  CHECK(joinerAfter.sum == 2);
  CHECK(founderAfter.rank == 0);
  CHECK(joinerAfter.rank == 1);
  CHECK(founderAfter.size == 2);
  CHECK(joinerAfter.size == 2);
  CHECK(founderAfter.epoch == 2);
  CHECK(joinerAfter.epoch == 2);
}
