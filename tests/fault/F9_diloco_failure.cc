// FAULTS.md F9: the DiLoCo outer loop of examples/cpp/elastic_train (--outer H: H local steps, then
// an all-reduce (avg) of the outer gradient and an outer Nesterov step) with 4 replicas; one
// replica is SIGKILLed at outer round 2. The survivors update, synchronize the shared state
// (global parameters, outer momentum, round) and go on; their final parameters must be
// bit-identical (same hash), and the last rounds ran with 3 replicas.
#include "fault/elastic_job.h"

#include <regex>
#include <set>

using loomtest::Child;
using loomtest::ElasticJob;

TEST_CASE("F9: DiLoCo outer loop, a replica killed at outer round 2; final parameters bit-equal", "[fault][F9]") {
  ElasticJob job(900, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000"}, "elastic_train");
  const std::vector<std::string> args{"--outer", "5", "--steps", "8", "--step-ms", "40"};
  std::vector<Child*> replicas;
  for (int r = 0; r < 4; ++r) replicas.push_back(&job.founder(r, 4, args));
  REQUIRE(job.waitFor(*replicas[0], "] round 2 world 4 ", 30));
  replicas[2]->signal(SIGKILL);
  const bool ended = job.waitAll(60);
  INFO(job.report());
  REQUIRE(ended);

  const std::regex last(R"(\] round 8 world (\d+) params hash ([0-9a-f]{16}))");
  std::set<std::string> hashes;
  for (int r = 0; r < 4; ++r) {
    INFO("replica " << r);
    if (r == 2) {
      CHECK(replicas[r]->termSignal() == SIGKILL);
      continue;
    }
    CHECK(replicas[r]->exitCode() == 0);
    std::smatch m;
    REQUIRE(std::regex_search(replicas[r]->out(), m, last));
    CHECK(m[1] == "3");
    hashes.insert(m[2]);
    CHECK(replicas[r]->out().find("a peer was lost") != std::string::npos);
  }
  CHECK(hashes.size() == 1);
}
