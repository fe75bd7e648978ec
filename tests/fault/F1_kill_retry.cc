// FAULTS.md F1: SIGKILL a random non-zero rank at a random iteration of an all-reduce loop, in the
// middle of the operation; over 20 seeds (printed). Every survivor must see the failure
// (loomPeerLost / loomRemoteError naming the lost rank), find its in-place input restored, update
// the membership and retry; the retried step's result must be bit-identical on every survivor and
// equal the exact sum over the survivors. Real elastic_worker processes around a loomd of the
// test's own; a watchdog on every run.
#include <catch2/catch.hpp>

#include "fault/elastic_job.h"

#include <random>
#include <sstream>

using loomtest::Child;
using loomtest::ElasticJob;

namespace {

struct Scenario {
  int seed = 0;
  int ranks = 4;
  int victim = 1;
  int dieAt = 3;
  int delayUs = 0;
  size_t count = 1000;
  int steps = 10;
};

Scenario scenario(int seed) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  Scenario s;
  s.seed = seed;
  static const int kRanks[] = {3, 4, 5, 6, 8};
  s.ranks = kRanks[seed % 5];
  s.victim = 1 + static_cast<int>(rng() % static_cast<unsigned>(s.ranks - 1));
  s.dieAt = 1 + static_cast<int>(rng() % 6);
  // Both all-reduce algorithms: recursive doubling (4 KiB) and the pipelined ring (1 MiB); the
  // delay spans about one operation, so the kill lands before, inside or after it.
  s.count = seed % 2 ? 1000 : 262144;
  s.delayUs = static_cast<int>(rng() % (s.count > 1000 ? 4000u : 400u));
  s.steps = s.dieAt + 4;
  return s;
}

std::string describe(const Scenario& s) {
  std::ostringstream o;
  o << "seed " << s.seed << ": " << s.ranks << " ranks, rank " << s.victim << " killed in step " << s.dieAt
    << " after " << s.delayUs << " us, " << s.count << " floats";
  return o.str();
}

void runScenario(const Scenario& s) {
  INFO(describe(s));
  std::printf("F1 %s\n", describe(s).c_str());
  std::fflush(stdout);
  ElasticJob job(100 + s.seed, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000"});
  for (int r = 0; r < s.ranks; ++r) {
    // 3 ms of "compute" before each step: a kill that misses the operation lands before the next.
    std::vector<std::string> args{"--steps", std::to_string(s.steps), "--count", std::to_string(s.count),
                                  "--step-ms", "3"};
    if (r == s.victim)
      args.insert(args.end(), {"--die-at", std::to_string(s.dieAt), "--die-delay-us", std::to_string(s.delayUs)});
    job.founder(r, s.ranks, args);
  }
  const bool ended = job.waitAll(60);  // watchdog: nobody may hang
  INFO(job.report());
  REQUIRE(ended);

  int idsum = 0;
  for (int r = 0; r < s.ranks; ++r)
    if (r != s.victim) idsum += r + 1;
  const std::string finalWorld = "world " + std::to_string(s.ranks - 1) + " contributors " +
                                 std::to_string(s.ranks - 1) + " idsum " + std::to_string(idsum) + " ";
  for (int r = 0; r < s.ranks; ++r) {
    const Child& c = *job.procs()[r];
    INFO("rank " << r);
    if (r == s.victim) {
      CHECK(c.termSignal() == SIGKILL);
      continue;
    }
    REQUIRE(c.exitCode() == 0);
    // It saw the loss: one failed step whose error names the lost rank.
    const auto failedAt = c.out().find("failed: ");
    CHECK(failedAt != std::string::npos);
    CHECK(c.out().find("rank " + std::to_string(s.victim)) != std::string::npos);
    if (r == (s.victim == 1 ? 0 : 1) && failedAt != std::string::npos) {
      const auto lineStart = c.out().rfind('\n', failedAt) + 1;
      std::printf("   %s\n", c.out().substr(lineStart, failedAt - lineStart + 6).c_str());
    }
    auto lines = ElasticJob::stepLines(c.out());
    REQUIRE(static_cast<int>(lines.size()) == s.steps);
    // The last steps ran among the survivors and summed exactly their contributions.
    CHECK(lines[s.steps - 1].find(finalWorld) != std::string::npos);
  }
  // Bit-identical on every survivor, at every step, the retried one included.
  job.checkAgreement();
}

}  // namespace

TEST_CASE("F1: a rank SIGKILLed mid all-reduce; survivors retry the step and agree bit for bit (20 seeds)",
          "[fault][F1]") {
  const int first = std::getenv("LOOM_F1_FIRST_SEED") ? std::atoi(std::getenv("LOOM_F1_FIRST_SEED")) : 1;
  const int seeds = std::getenv("LOOM_F1_SEEDS") ? std::atoi(std::getenv("LOOM_F1_SEEDS")) : 20;
  for (int seed = first; seed < first + seeds; ++seed) runScenario(scenario(seed));
}
