// FAULTS.md F10: a peer is killed while 8 tagged asynchronous all-reduces are in flight. Every
// handle must complete, with success or an error, within its wait (none left pending); the
// survivors then update, synchronize and retry the step, and agree bit for bit from there on.
// 5 ranks, 8 parts of a 1 MiB buffer per step, the victim killed inside a step; 5 seeds.
#include "fault/elastic_job.h"

#include <cstdio>

using loomtest::Child;
using loomtest::ElasticJob;

TEST_CASE("F10: a rank killed with 8 tagged async all-reduces in flight; every handle completes, a retry succeeds",
          "[fault][F10]") {
  for (int seed = 1; seed <= 5; ++seed) {
    const int victim = 1 + seed % 4, dieAt = 2 + seed % 3, delayUs = 300 * seed;
    INFO("seed " << seed << ": rank " << victim << " killed " << delayUs << " us into step " << dieAt);
    std::printf("F10 seed %d: rank %d killed %d us into step %d\n", seed, victim, delayUs, dieAt);
    ElasticJob job(1000 + seed, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000"});
    for (int r = 0; r < 5; ++r) {
      std::vector<std::string> args{"--steps", "8", "--count", "262144", "--async", "8", "--step-ms", "3"};
      if (r == victim)
        args.insert(args.end(), {"--die-at", std::to_string(dieAt), "--die-delay-us", std::to_string(delayUs)});
      job.founder(r, 5, args);
    }
    const bool ended = job.waitAll(60);
    INFO(job.report());
    REQUIRE(ended);
    for (int r = 0; r < 5; ++r) {
      const Child& c = *job.procs()[r];
      INFO("rank " << r);
      if (r == victim) {
        CHECK(c.termSignal() == SIGKILL);
        continue;
      }
      CHECK(c.exitCode() == 0);  // exit 11 would be a handle still pending
      CHECK(c.out().find("failed: ") != std::string::npos);
      CHECK(c.out().find("world 4 contributors 4") != std::string::npos);
    }
    job.checkAgreement();
  }
}
