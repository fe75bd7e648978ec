// A rank dies (SIGKILL) or freezes (SIGSTOP) in the middle of a run of all-reduces: every other
// rank must fail promptly with an error that says what happened, and nobody may hang or report
// success. Four real loss_worker processes around a loomd of the test's own.
#include <catch2/catch.hpp>

#include "multiproc/subprocess.h"

#include <memory>
#include <regex>

using loomtest::bin;
using loomtest::Child;
using loomtest::Clock;

namespace {

constexpr int kRanks = 4;
constexpr int kVictim = 2;

struct World {
  std::unique_ptr<Child> loomd;
  std::string address;
  std::vector<std::unique_ptr<Child>> ranks;

  explicit World(const std::vector<std::string>& workerArgs, const std::vector<std::string>& extraEnv = {}) {
    loomd = loomtest::startLoomd(address);
    INFO("loomd stdout: " << loomd->out() << "\nloomd stderr: " << loomd->err());
    REQUIRE(!address.empty());
    for (int r = 0; r < kRanks; ++r) {
      std::vector<std::string> argv{bin("loss_worker")};
      argv.insert(argv.end(), workerArgs.begin(), workerArgs.end());
      std::vector<std::string> env{"LOOM_COORDINATOR=" + address, "LOOM_RANK=" + std::to_string(r),
                                   "LOOM_WORLD_SIZE=" + std::to_string(kRanks), "LOOM_COMM_ID=77"};
      env.insert(env.end(), extraEnv.begin(), extraEnv.end());
      ranks.push_back(std::make_unique<Child>(argv, loomtest::cleanEnv(env)));
    }
  }

  ~World() {
    for (auto& r : ranks) {
      r->signal(SIGCONT);
      if (!r->exited()) r->stop(SIGKILL, 0);
    }
    loomd->stop(SIGTERM, 3);
  }

  // Waits until every rank has printed "iteration N"; false after `seconds`.
  bool waitForIteration(int n, double seconds) {
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (int r = 0; r < kRanks; ++r) {
      const std::string line = "rank " + std::to_string(r) + ": iteration " + std::to_string(n) + "\n";
      double left = std::chrono::duration<double>(until - Clock::now()).count();
      if (!ranks[r]->waitFor(line, std::max(left, 0.0))) return false;
    }
    return true;
  }

  std::string report() const {
    std::string s;
    for (int r = 0; r < kRanks; ++r) {
      const Child& c = *ranks[r];
      // The iteration lines are many: keep the last few.
      auto lines = loomtest::lines(c.out());
      std::string tail;
      for (size_t i = lines.size() > 4 ? lines.size() - 4 : 0; i < lines.size(); ++i) tail += "  " + lines[i] + "\n";
      s += "rank " + std::to_string(r) + ": " + (c.exited() ? "exit " + std::to_string(c.exitCode()) + " signal " +
                                                                  std::to_string(c.termSignal())
                                                            : std::string("still running")) +
           "\n stdout (last lines):\n" + tail + " stderr:\n" + c.err();
    }
    return s;
  }
};

// The "rank R: failed after ..." line a worker printed, or "".
std::string failureLine(const Child& c) {
  for (const auto& line : loomtest::lines(c.out()))
    if (line.find(": failed after ") != std::string::npos) return line;
  return "";
}

// Sends `sig` to the victim once every rank is running, then waits (at most `seconds` after it)
// until every survivor has printed its failure line. seenAt[r] gets how long after the signal rank
// r's line was seen (an upper bound on when it failed), or -1.
void signalVictimAndWatch(World& w, int sig, double seconds, std::vector<double>& seenAt) {
  if (!w.waitForIteration(10, 30)) FAIL("the workers did not get going:\n" << w.report());
  w.ranks[kVictim]->signal(sig);
  const auto signalledAt = Clock::now();
  seenAt.assign(kRanks, -1);
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    double left = seconds - loomtest::secondsSince(signalledAt);
    if (w.ranks[r]->waitFor(": failed after ", std::max(left, 0.0))) seenAt[r] = loomtest::secondsSince(signalledAt);
  }
}

void killVictimAndWatch(World& w, double seconds, std::vector<double>& seenAt) {
  signalVictimAndWatch(w, SIGKILL, seconds, seenAt);
  REQUIRE(w.ranks[kVictim]->wait(5));
  CHECK(w.ranks[kVictim]->termSignal() == SIGKILL);
}

}  // namespace

TEST_CASE("a SIGKILLed rank: every survivor fails with peer lost within 5 s, naming a rank", "[peer_loss]") {
  World w({});
  if (!w.waitForIteration(10, 30)) FAIL("the workers did not get going:\n" << w.report());

  w.ranks[kVictim]->signal(SIGKILL);
  const auto killedAt = Clock::now();
  REQUIRE(w.ranks[kVictim]->wait(5));
  CHECK(w.ranks[kVictim]->termSignal() == SIGKILL);

  // Survivors: each must be gone within 5 s of the kill (checked against its own exit time).
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    double left = 5.0 - loomtest::secondsSince(killedAt);
    w.ranks[r]->wait(std::max(left, 0.0) + 0.5);
  }
  INFO(w.report());
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    const Child& c = *w.ranks[r];
    INFO("survivor rank " << r);
    REQUIRE(c.exited());
    const double afterKill = std::chrono::duration<double>(c.exitedAt() - killedAt).count();
    INFO("exited " << afterKill << " s after the kill");
    CHECK(afterKill < 5.0);
    CHECK(c.exitCode() == 3);
    const std::string line = failureLine(c);
    INFO("failure line: " << line);
    CHECK(line.find(": peer lost: ") != std::string::npos);
    CHECK(std::regex_search(line, std::regex("peer rank [0-9]+")));
    CHECK(c.out().find("done after") == std::string::npos);
  }
}

TEST_CASE("a SIGKILLed rank: survivors that keep their communicator open still all fail within 5 s", "[peer_loss]") {
  // Each survivor waits 8 s after its failure before aborting: detection must not depend on the
  // other survivors exiting.
  World w({"--linger-ms", "8000"});
  std::vector<double> seenAt;
  killVictimAndWatch(w, 5.0, seenAt);
  INFO(w.report());
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    const Child& c = *w.ranks[r];
    INFO("survivor rank " << r << ", failure seen " << seenAt[r] << " s after the kill");
    CHECK(seenAt[r] >= 0);
    CHECK(seenAt[r] < 5.0);
    const std::string line = failureLine(c);
    INFO("failure line: " << line);
    CHECK(line.find(": peer lost: ") != std::string::npos);
    CHECK(std::regex_search(line, std::regex("peer rank [0-9]+")));
  }
}

// Survivors that were not talking to the dead rank learn its name from the peers that were
// (their operation errors carry the cause), and never blame a live survivor.
TEST_CASE("a SIGKILLed rank: every survivor's error names the rank that was lost", "[peer_loss]") {
  World w({"--linger-ms", "8000"});
  std::vector<double> seenAt;
  killVictimAndWatch(w, 5.0, seenAt);
  INFO(w.report());
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    const std::string line = failureLine(*w.ranks[r]);
    INFO("survivor rank " << r << ": " << line);
    CHECK(line.find("peer rank " + std::to_string(kVictim) + " ") != std::string::npos);
    // The same, structured: loomCommGetAsyncError and loomCommGetFailures.
    const std::string out = w.ranks[r]->out();
    CHECK(out.find("async error peer lost") != std::string::npos);
    CHECK(out.find("peer failure: rank " + std::to_string(kVictim) + " reason peer lost") != std::string::npos);
  }
}

TEST_CASE("a SIGSTOPped rank: every survivor fails with peer lost naming it, within the peer timeout",
          "[peer_loss]") {
  // Liveness (LOOM_PEER_TIMEOUT_MS=1000): the victim's neighbours hear nothing from it for 1 s and
  // declare it lost; the others learn it from them. The operation deadline (30 s) is far away, so
  // only the heartbeats can free the survivors this early. Each survivor lingers (communicator
  // open) so that its exit is not what the others see.
  constexpr double kPeerTimeoutS = 1.0;
  World w({"--timeout-ms", "30000", "--linger-ms", "4000"}, {"LOOM_PEER_TIMEOUT_MS=1000"});
  std::vector<double> seenAt;
  signalVictimAndWatch(w, SIGSTOP, kPeerTimeoutS + 10.0, seenAt);
  w.ranks[kVictim]->signal(SIGCONT);
  const bool victimFailed = w.ranks[kVictim]->waitFor(": failed after ", 10.0);
  for (int r = 0; r < kRanks; ++r) w.ranks[r]->wait(10.0);

  INFO(w.report());
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    const Child& c = *w.ranks[r];
    const std::string line = failureLine(c);
    INFO("survivor rank " << r << ", failure seen " << seenAt[r] << " s after the stop: " << line);
    CHECK(seenAt[r] >= 0);
    // The promise is timeout + 0.5 s; the margin is for a loaded 2-core CI machine.
    CHECK(seenAt[r] < kPeerTimeoutS + 3.0);
    CHECK(c.out().find("done after") == std::string::npos);
    CHECK(line.find("peer rank " + std::to_string(kVictim) + " ") != std::string::npos);
    CHECK(c.exitCode() == 3);
  }
  // Woken, the frozen rank finds its peers gone: it fails too, never reports success.
  CHECK(victimFailed);
  CHECK(w.ranks[kVictim]->out().find("done after") == std::string::npos);
}

TEST_CASE("a SIGSTOPped rank with liveness checks off: survivors fail with a timeout, never success",
          "[peer_loss]") {
  // LOOM_PEER_TIMEOUT_MS=0: the operation deadline (--timeout-ms 3000) is what frees the
  // survivors. The survivors are not all in the same
  // all-reduce when the victim stops (one may have finished it and started the next), so each
  // keeps its communicator open for 4 s after failing (--linger-ms): otherwise the first one to
  // time out would exit, and a survivor still in the next operation would see it leave ("peer
  // lost") before its own deadline came.
  constexpr double kTimeoutS = 3.0, kLingerS = 4.0;
  World w({"--timeout-ms", "3000", "--linger-ms", "4000"}, {"LOOM_PEER_TIMEOUT_MS=0"});
  std::vector<double> seenAt;
  signalVictimAndWatch(w, SIGSTOP, kTimeoutS + 5.0, seenAt);
  // Wake the frozen rank while the survivors still hold their communicators: it must not report
  // success either.
  w.ranks[kVictim]->signal(SIGCONT);
  const bool victimFailed = w.ranks[kVictim]->waitFor(": failed after ", 5.0);
  // Then everybody exits (the survivors after their linger).
  for (int r = 0; r < kRanks; ++r) w.ranks[r]->wait(kLingerS + 5.0);

  INFO(w.report());
  int reportedTimeout = 0;
  for (int r = 0; r < kRanks; ++r) {
    if (r == kVictim) continue;
    const Child& c = *w.ranks[r];
    INFO("survivor rank " << r << ", failure seen " << seenAt[r] << " s after the stop");
    CHECK(seenAt[r] >= 0);
    CHECK(seenAt[r] < kTimeoutS + 5.0);
    CHECK(c.out().find("done after") == std::string::npos);
    const std::string line = failureLine(c);
    INFO("failure line: " << line);
    // Its own deadline ("timed out: ... did not finish within"), or a peer's, passed on as a
    // remote error ("rank R failed this operation: ... did not finish within").
    const bool timedOut = line.find(": timed out: ") != std::string::npos;
    reportedTimeout += timedOut;
    CHECK((timedOut || line.find("did not finish") != std::string::npos));
    CHECK(c.exited());
    CHECK(c.exitCode() == 3);
  }
  CHECK(reportedTimeout >= 1);
  {
    const Child& v = *w.ranks[kVictim];
    INFO("the stopped rank, woken");
    CHECK(victimFailed);
    CHECK(v.out().find("done after") == std::string::npos);
    if (v.exited()) CHECK(v.exitCode() == 3);
  }
}
