// loomCommInitFromEnv under other launchers' environments, without loomrun: this test starts the
// ranks itself (real processes) with exactly the variables torchrun, Open MPI or Slurm would set,
// and nothing of any other launcher. Also loomd's own command-line failures.
#include <catch2/catch.hpp>

#include "multiproc/subprocess.h"

#include <memory>
#include <thread>

using loomtest::bin;
using loomtest::Child;
using loomtest::cleanEnv;

namespace {

constexpr int kRanks = 3;
constexpr double kDeadline = 90;  // seconds for a whole world of collective_matrix ranks

std::string describe(const Child& c, int rank) {
  return "rank " + std::to_string(rank) + ": exit " + std::to_string(c.exitCode()) + " signal " +
         std::to_string(c.termSignal()) + "\n--- stdout:\n" + c.out() + "--- stderr:\n" + c.err();
}

struct WorldResult {
  bool allExited = true;
  std::vector<int> codes;
  std::string report;
};

// Starts kRanks collective_matrix --coll allreduce processes, rank r with envFor(r), and waits for
// all of them within kDeadline (the rest are killed if one hangs).
template <typename EnvFor>
WorldResult runWorld(EnvFor envFor) {
  std::vector<std::unique_ptr<Child>> ranks;
  for (int r = 0; r < kRanks; ++r)
    ranks.push_back(std::make_unique<Child>(
        std::vector<std::string>{bin("collective_matrix"), "--coll", "allreduce"}, envFor(r)));
  const auto until = loomtest::Clock::now() + std::chrono::seconds(static_cast<int>(kDeadline));
  WorldResult w;
  for (int r = 0; r < kRanks; ++r) {
    double left = std::chrono::duration<double>(until - loomtest::Clock::now()).count();
    if (!ranks[r]->wait(std::max(left, 0.1))) w.allExited = false;
  }
  for (int r = 0; r < kRanks; ++r) {
    if (!ranks[r]->exited()) ranks[r]->stop(SIGKILL, 0);
    w.codes.push_back(ranks[r]->exitCode());
    w.report += describe(*ranks[r], r) + "\n";
  }
  return w;
}

void checkWorld(const WorldResult& w) {
  INFO(w.report);
  REQUIRE(w.allExited);
  for (int r = 0; r < kRanks; ++r) {
    INFO("rank " << r);
    CHECK(w.codes[r] == 0);
  }
  CHECK(w.report.find("allreduce on 3 ranks: all checks passed") != std::string::npos);
}

// One collective_matrix rank run alone, to see how init fails.
loomtest::RunResult runAlone(std::vector<std::string> env) {
  return loomtest::run({bin("collective_matrix"), "--coll", "allreduce"}, 30, std::move(env));
}

std::vector<std::string> torchrunEnv(int rank, int masterPort) {
  // A connect timeout well under the test's deadline: a rank that cannot rendezvous fails in 15 s.
  return cleanEnv({"RANK=" + std::to_string(rank), "WORLD_SIZE=" + std::to_string(kRanks),
                   "LOCAL_RANK=" + std::to_string(rank), "MASTER_ADDR=127.0.0.1",
                   "MASTER_PORT=" + std::to_string(masterPort), "LOOM_CONNECT_TIMEOUT_MS=15000"});
}

}  // namespace

TEST_CASE("torchrun-style RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT: rank 0 hosts the coordinator", "[launch_env]") {
  // Rank 0 starts first; the others once its embedded coordinator listens on MASTER_PORT+1.
  // (All at once, as torchrun does, is the next test case.)
  WorldResult w;
  for (int attempt = 0; attempt < 3; ++attempt) {
    // Loom's coordinator goes on MASTER_PORT+1: both must be free. Another process could take the
    // port between our check and rank 0's bind; then try again with a fresh pair.
    const int port = loomtest::freePortPair();
    REQUIRE(port > 0);
    bool listening = false;
    w = runWorld([&](int r) {
      if (r > 0) {
        const auto until = loomtest::Clock::now() + std::chrono::seconds(15);
        while (!(listening = loomtest::isListening(port + 1)) && loomtest::Clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      return torchrunEnv(r, port);
    });
    INFO(w.report);
    CHECK(listening);
    if (w.report.find("in use") == std::string::npos) break;
    WARN("coordinator port " << port + 1 << " was taken; trying another");
  }
  checkWorld(w);
}

// torchrun starts every rank at once; the others may dial MASTER_PORT+1 before rank 0's embedded
// coordinator listens, and must retry (LOOM_COORDINATOR_WAIT_MS) instead of failing.
TEST_CASE("torchrun-style, all ranks started at once: rank 0 hosts the coordinator", "[launch_env]") {
  WorldResult w;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = loomtest::freePortPair();
    REQUIRE(port > 0);
    w = runWorld([&](int r) { return torchrunEnv(r, port); });
    if (w.report.find("in use") == std::string::npos) break;
    WARN("coordinator port " << port + 1 << " was taken; trying another");
  }
  checkWorld(w);
}

TEST_CASE("Open MPI-style OMPI_COMM_WORLD_RANK/SIZE with LOOM_COORDINATOR at loomd", "[launch_env]") {
  std::string address;
  auto loomd = loomtest::startLoomd(address);
  INFO("loomd stdout: " << loomd->out() << "\nloomd stderr: " << loomd->err());
  REQUIRE(!address.empty());
  auto w = runWorld([&](int r) {
    return cleanEnv({"OMPI_COMM_WORLD_RANK=" + std::to_string(r), "OMPI_COMM_WORLD_SIZE=" + std::to_string(kRanks),
                     "OMPI_COMM_WORLD_LOCAL_RANK=" + std::to_string(r), "LOOM_COORDINATOR=" + address});
  });
  checkWorld(w);
  loomd->stop(SIGTERM, 5);
  CHECK(loomd->exitCode() == 0);
}

TEST_CASE("Slurm-style SLURM_PROCID/SLURM_NTASKS with LOOM_COORDINATOR at loomd", "[launch_env]") {
  std::string address;
  auto loomd = loomtest::startLoomd(address);
  INFO("loomd stdout: " << loomd->out() << "\nloomd stderr: " << loomd->err());
  REQUIRE(!address.empty());
  auto w = runWorld([&](int r) {
    return cleanEnv({"SLURM_PROCID=" + std::to_string(r), "SLURM_NTASKS=" + std::to_string(kRanks),
                     "SLURM_LOCALID=" + std::to_string(r), "LOOM_COORDINATOR=" + address});
  });
  checkWorld(w);
  loomd->stop(SIGTERM, 5);
  CHECK(loomd->exitCode() == 0);
}

TEST_CASE("the child environments carry no other launcher's variables", "[launch_env]") {
  auto r = loomtest::run({"/usr/bin/env"}, 10, cleanEnv({"SLURM_PROCID=0", "SLURM_NTASKS=1"}));
  REQUIRE(r.code == 0);
  for (const auto& line : loomtest::lines(r.out)) {
    INFO(line);
    if (line == "SLURM_PROCID=0" || line == "SLURM_NTASKS=1") continue;
    CHECK_FALSE(loomtest::isLaunchVariable(line));
  }
}

TEST_CASE("no rank variables at all: init fails naming LOOM_RANK", "[launch_env]") {
  auto r = runAlone(cleanEnv({"LOOM_COORDINATOR=127.0.0.1:1"}));
  INFO("exit " << r.code << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code != 0);
  CHECK(r.signal == 0);
  CHECK(r.err.find("LOOM_RANK") != std::string::npos);
}

TEST_CASE("rank variables without a coordinator or MASTER_ADDR: init says to set LOOM_COORDINATOR", "[launch_env]") {
  for (auto vars : {std::vector<std::string>{"LOOM_RANK=0", "LOOM_WORLD_SIZE=2"},
                    std::vector<std::string>{"RANK=0", "WORLD_SIZE=2"},
                    std::vector<std::string>{"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2"},
                    std::vector<std::string>{"SLURM_PROCID=0", "SLURM_NTASKS=2"}}) {
    auto r = runAlone(cleanEnv(vars));
    INFO(vars[0] << " " << vars[1] << ": exit " << r.code << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
    REQUIRE_FALSE(r.timedOut);
    CHECK(r.code != 0);
    CHECK(r.signal == 0);
    CHECK(r.err.find("set LOOM_COORDINATOR") != std::string::npos);
  }
}

TEST_CASE("loomd on an address already in use exits non-zero naming the address", "[launch_env][loomd]") {
  int taken = -1, port = 0;
  for (int attempt = 0; attempt < 20 && taken < 0; ++attempt) {
    port = loomtest::freePort();
    taken = loomtest::bindLoopback(port, /*listening=*/true);
  }
  REQUIRE(taken >= 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto r = loomtest::run({bin("loomd"), "--listen", address}, 15, cleanEnv());
  close(taken);
  INFO("exit " << r.code << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code != 0);
  CHECK(r.signal == 0);
  CHECK(r.err.find(address) != std::string::npos);
  CHECK(r.out.find("listening") == std::string::npos);
}

TEST_CASE("loomd with an unknown argument exits 2", "[launch_env][loomd]") {
  auto r = loomtest::run({bin("loomd"), "--bogus"}, 15, cleanEnv());
  INFO("exit " << r.code << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 2);
  CHECK(r.err.find("--bogus") != std::string::npos);
}
