// FAULTS.md F8: torture. Six ranks, each SIGKILLing itself with 4% probability at every step (at a
// random moment inside it, seeds printed), for 40 steps. The job must run to the end or down to
// one survivor with zero hangs: every process either was killed or exits 0, and every step's
// line (epoch, world, result and state hashes) is identical on every process that completed it.
#include "fault/elastic_job.h"

#include <cstdio>

using loomtest::ElasticJob;

TEST_CASE("F8: every rank may self-kill at any step; runs to the end or one survivor, zero hangs", "[fault][F8]") {
  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    ElasticJob job(800 + round, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000"});
    for (int r = 0; r < 6; ++r) {
      const int seed = round * 100 + r;
      job.founder(r, 6, {"--steps", "40", "--count", "16384", "--step-ms", "5", "--die-percent", "4", "--seed",
                         std::to_string(seed)});
    }
    const bool ended = job.waitAll(120);
    INFO(job.report());
    REQUIRE(ended);  // zero hangs
    int killed = 0, finished = 0;
    for (auto& p : job.procs()) {
      if (p->termSignal() == SIGKILL) {
        ++killed;
        continue;
      }
      CHECK(p->exitCode() == 0);
      ++finished;
    }
    std::printf("F8 round %d (seeds %d..%d): %d killed themselves, %d finished\n", round, round * 100,
                round * 100 + 5, killed, finished);
    job.checkAgreement();
  }
}
