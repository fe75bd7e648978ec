// FAULTS.md F4: join with healing. Four founders run a training-like loop; at step 10 four more
// processes join (loomCommJoin), are admitted at the next update and fetch the shared state (step
// and parameters) from the founders; at step 20 two members go away, one leaving gracefully
// (loomCommLeave) and one SIGKILLed. Every step completed by several processes must carry the same
// epoch, world, result hash and state hash on all of them (so a joiner's state equals the others'
// from its first step, and no collective mixed epochs); the joiners must have received state
// bytes and the founders must have sent them.
#include "fault/elastic_job.h"

using loomtest::Child;
using loomtest::ElasticJob;

TEST_CASE("F4: 4 founders, 4 joiners at step 10 healed from the live peers, 2 removed at step 20", "[fault][F4]") {
  ElasticJob job(400, {"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000"});
  const std::vector<std::string> common{"--steps", "36", "--count", "4096", "--step-ms", "15"};
  std::vector<Child*> founders;
  for (int r = 0; r < 4; ++r) {
    auto args = common;
    if (r == 2) args.insert(args.end(), {"--leave-at", "21"});  // announced at step 20, leaves after it
    founders.push_back(&job.founder(r, 4, args));
  }
  REQUIRE(job.waitFor(*founders[0], "\nstep 10 ", 30));
  std::vector<Child*> joiners;
  for (int id = 4; id < 8; ++id) joiners.push_back(&job.joiner(id, common));
  REQUIRE(job.waitFor(*founders[0], "\nstep 20 ", 30));
  joiners[1]->signal(SIGKILL);
  const bool ended = job.waitAll(90);
  INFO(job.report());
  REQUIRE(ended);

  // Everyone but the killed joiner ended well; the leaver left where it said.
  for (size_t i = 0; i < job.procs().size(); ++i) {
    const Child& p = *job.procs()[i];
    INFO("process " << i);
    if (&p == joiners[1]) {
      CHECK(p.termSignal() == SIGKILL);
      continue;
    }
    CHECK(p.exitCode() == 0);
  }
  CHECK(founders[2]->out().find("left before step 21") != std::string::npos);

  const auto steps = job.checkAgreement();
  REQUIRE(steps.size() == 36);
  // The world grew to 8 and ended at 6.
  bool sawEight = false;
  for (const auto& [step, line] : steps) sawEight |= line.find(" world 8 ") != std::string::npos;
  CHECK(sawEight);
  CHECK(steps.at(35).find(" world 6 contributors 6 ") != std::string::npos);
  // Joiners healed from live peers: they fetched the state, the founders sent it.
  for (Child* j : joiners) {
    if (j == joiners[1]) continue;
    auto first = j->out().find("sync epoch ");
    REQUIRE(first != std::string::npos);
    CHECK(j->out().substr(first, j->out().find('\n', first) - first).find(" received 0") == std::string::npos);
  }
  uint64_t sent = 0;
  for (Child* f : founders)
    for (const auto& line : loomtest::lines(f->out()))
      if (line.rfind("sync epoch ", 0) == 0) sent += std::stoull(line.substr(line.find(" sent ") + 6));
  CHECK(sent >= 3 * (4096 * sizeof(float) + 8));
}
