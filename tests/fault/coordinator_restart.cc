// FAULTS.md promise and issue 4: the coordinator may die. Three workers run with a loomd the test
// controls on a fixed port; the loomd is killed with kill -9. The workers must keep completing
// collectives without it (at least 10 steps while it is down) and none may die. Meanwhile one
// worker is killed too: the survivors' update waits for the coordinator. A new loomd is started at
// the same address: the survivors reconnect, it rebuilds the membership from them, their update
// completes (the dead worker dropped), and then a new worker joins through it. Every step's line
// must be identical on every worker that completed it.
#include "fault/elastic_job.h"

#include <cstdio>

using loomtest::Child;
using loomtest::ElasticJob;

namespace {

std::unique_ptr<Child> loomdAt(const std::string& address) {
  auto d = std::make_unique<Child>(std::vector<std::string>{loomtest::bin("loomd"), "--listen", address},
                                   loomtest::cleanEnv({"LOOM_DEBUG=INFO", "LOOM_DEBUG_SUBSYS=COORD"}));
  REQUIRE(d->waitFor("listening on", 15));
  return d;
}

int lastStep(const std::string& out) {
  const auto at = out.rfind("\nstep ");
  return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 6);
}

}  // namespace

TEST_CASE("coordinator_restart: collectives go on while the coordinator is down; a restarted one rebuilds the "
          "membership, an update and a join go through it",
          "[fault][coordinator]") {
  const std::string address = "127.0.0.1:" + std::to_string(loomtest::freePort());
  auto loomd = loomdAt(address);
  ElasticJob job(700, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000", "LOOM_HEARTBEAT_MS=200"},
                 "elastic_worker", address);
  const std::vector<std::string> args{"--steps", "100000000", "--count", "4096", "--step-ms", "20"};
  std::vector<Child*> workers;
  for (int r = 0; r < 3; ++r) workers.push_back(&job.founder(r, 3, args));
  REQUIRE(job.waitFor(*workers[0], "\nstep 5 ", 30));

  loomd->signal(SIGKILL);
  REQUIRE(loomd->wait(5));
  const int downAt = lastStep(workers[0]->out());
  // At least 10 collectives while the coordinator is down.
  REQUIRE(job.waitFor(*workers[0], "\nstep " + std::to_string(downAt + 12) + " ", 30));
  // A worker dies while the coordinator is down: the survivors' update must wait for it.
  workers[2]->signal(SIGKILL);
  job.pumpAll(500);
  job.pumpAll(500);
  const int stalledAt = lastStep(workers[0]->out());
  std::printf("coordinator_restart: down at step %d, still stepping to %d, then a worker killed\n", downAt,
              stalledAt);
  for (int i = 0; i < 4; ++i) job.pumpAll(250);
  CHECK(workers[0]->exited() == false);
  CHECK(workers[1]->exited() == false);

  loomd = loomdAt(address);  // restarted at the same address
  // The survivors reconnect, the rebuilt coordinator drops the dead worker, the update completes.
  REQUIRE(job.waitFor(*workers[0], " world 2 ", 30));
  Child& joiner = job.joiner(9, args);
  REQUIRE(job.waitFor(joiner, " world 3 ", 30));
  REQUIRE(job.waitFor(*workers[0], "\nstep " + std::to_string(lastStep(joiner.out()) + 3) + " ", 30));

  for (auto& p : job.procs())
    if (!p->exited()) p->signal(SIGKILL);
  REQUIRE(job.waitAll(10));
  INFO(job.report() << "\n--- loomd:\n" << loomd->err());
  CHECK(workers[0]->termSignal() == SIGKILL);  // ran until the test stopped it: nobody died of the coordinator
  CHECK(workers[1]->termSignal() == SIGKILL);
  CHECK(workers[0]->out().find("FAIL") == std::string::npos);
  CHECK(workers[1]->out().find("FAIL") == std::string::npos);
  CHECK(joiner.out().find("received") != std::string::npos);
  // Everyone the test stopped at the end counts; the worker killed mid-run does not.
  const Child* dead = workers[2];
  const auto steps = job.checkAgreement([&](const Child& c) { return &c != dead; });
  CHECK(steps.size() > 20);
}
