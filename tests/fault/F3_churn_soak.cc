// FAULTS.md F3: churn soak. Between 2 and 8 workers; every 0.5-2 s a new one is spawned (p = 0.6,
// it joins with loomCommJoin) or a random one is killed with kill -9 (p = 0.4); always a spawn at
// 2 workers, a kill at 8. Runs LOOM_F3_SECONDS (default 60). Passes if no gap of more than 5 s
// went by without a completed step, no worker failed (every one either ran until the end or was
// killed), and every step's line (epoch, world, result hash, state hash) is identical on every
// worker that completed it. The seed is printed (LOOM_F3_SEED to replay).
#include "fault/elastic_job.h"

#include <cstdio>
#include <random>
#include <set>

using loomtest::Child;
using loomtest::Clock;
using loomtest::ElasticJob;

namespace {

// The number of the last step `out` reports, -1 if none.
int lastStep(const std::string& out) {
  const auto at = out.rfind("\nstep ");
  return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 6);
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

TEST_CASE("F3: churn soak, workers spawned and killed every 0.5-2 s; progress never stalls over 5 s", "[fault][F3]") {
  const double seconds = std::getenv("LOOM_F3_SECONDS") ? std::atof(std::getenv("LOOM_F3_SECONDS")) : 60;
  const unsigned seed = std::getenv("LOOM_F3_SEED") ? static_cast<unsigned>(std::atoi(std::getenv("LOOM_F3_SEED")))
                                                    : static_cast<unsigned>(Clock::now().time_since_epoch().count() % 100000);
  std::printf("F3: %.0f s of churn, seed %u\n", seconds, seed);
  std::fflush(stdout);
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  ElasticJob job(300, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000"});
  const std::vector<std::string> args{"--steps", "100000000", "--count", "4096", "--step-ms", "20"};
  for (int r = 0; r < 4; ++r) job.founder(r, 4, args);
  std::set<Child*> killed;
  int spawned = 0, nextId = 100;

  const auto start = Clock::now();
  auto lastProgress = start;
  int maxStep = -1;
  double maxGap = 0;
  auto nextEvent = start + std::chrono::milliseconds(500 + rng() % 1500);
  while (since(start) < seconds) {
    job.pumpAll(5);
    for (auto& p : job.procs()) {
      const int s = lastStep(p->out());
      if (s > maxStep) {
        maxStep = s;
        lastProgress = Clock::now();
      }
      // A worker that ends by itself (it was not killed) has failed.
      if (p->exited() && !killed.contains(p.get())) {
        INFO(job.report());
        FAIL("a worker exited by itself with status " << p->exitCode());
      }
    }
    maxGap = std::max(maxGap, since(lastProgress));
    if (Clock::now() < nextEvent) continue;
    nextEvent = Clock::now() + std::chrono::milliseconds(500 + rng() % 1500);
    std::vector<Child*> alive;
    for (auto& p : job.procs())
      if (!p->exited() && !killed.contains(p.get())) alive.push_back(p.get());
    const bool spawn = alive.size() <= 2 || (alive.size() < 8 && rng() % 10 < 6);
    if (spawn) {
      job.joiner(nextId++, args);
      ++spawned;
    } else {
      Child* victim = alive[rng() % alive.size()];
      victim->signal(SIGKILL);
      killed.insert(victim);
    }
  }
  const size_t killedDuringRun = killed.size();
  const std::set<Child*> killedEarly = killed;
  for (auto& p : job.procs())
    if (!p->exited()) {
      killed.insert(p.get());
      p->signal(SIGKILL);
    }
  REQUIRE(job.waitAll(10));
  std::printf("F3: %d spawned, %zu killed during the run, %d steps, longest gap without a step %.2f s\n", spawned,
              killedDuringRun, maxStep + 1, maxGap);
  INFO(job.report());
  CHECK(maxGap < 5.0);
  CHECK(maxStep > 0);
  // The workers still running at the end (however many joined) agree on every step they completed.
  job.checkAgreement([&](const Child& c) { return !killedEarly.contains(const_cast<Child*>(&c)); });
}
