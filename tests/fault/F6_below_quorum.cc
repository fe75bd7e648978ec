// FAULTS.md F6: below the minimum, and everyone dies. With LOOM_MIN_WORLD=3, killing two of four
// ranks leaves two survivors whose update must fail with the distinct loomBelowQuorum ("below
// quorum") promptly, never hang; and when all but one rank die, the lone survivor gets the same.
#include "fault/elastic_job.h"

using loomtest::Child;
using loomtest::ElasticJob;

namespace {

// Starts 4 ranks (LOOM_MIN_WORLD=3), SIGKILLs `victims` once rank 0 is at step 5, and checks that
// every survivor reports below quorum within the bound.
void run(const std::vector<int>& victims, int commId) {
  ElasticJob job(commId, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000", "LOOM_MIN_WORLD=3"});
  for (int r = 0; r < 4; ++r) job.founder(r, 4, {"--steps", "100000", "--count", "1000", "--step-ms", "5"});
  REQUIRE(job.waitFor(*job.procs()[0], "\nstep 5 ", 30));
  const auto killed = loomtest::Clock::now();
  for (int v : victims) job.procs()[v]->signal(SIGKILL);
  const bool ended = job.waitAll(30);  // the bound: detection (at once for a kill) + update, with margin
  INFO(job.report());
  REQUIRE(ended);
  const double seconds = loomtest::secondsSince(killed);
  std::printf("F6: %zu of 4 killed; survivors ended %.2f s later\n", victims.size(), seconds);
  CHECK(seconds < 10);
  for (int r = 0; r < 4; ++r) {
    if (std::find(victims.begin(), victims.end(), r) != victims.end()) continue;
    const Child& c = *job.procs()[r];
    INFO("rank " << r);
    CHECK(c.exitCode() == 5);  // elastic_worker: loomCommUpdate failed
    CHECK(c.out().find("FAIL loomCommUpdate: below quorum") != std::string::npos);
    CHECK(c.out().find("LOOM_MIN_WORLD") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("F6: two of four ranks die with LOOM_MIN_WORLD=3: the survivors get loomBelowQuorum, never a hang",
          "[fault][F6]") {
  run({1, 3}, 600);
}

TEST_CASE("F6: everyone but one dies: the lone survivor gets loomBelowQuorum", "[fault][F6]") {
  run({1, 2, 3}, 601);
}
