// FAULTS.md F7 and the elastic launcher: the same peer crashes every epoch. `loomrun --elastic
// --max-restarts 3` runs 4 elastic_workers; the one with LOOM_RANK 2, and each replacement the
// launcher starts for it (which joins the running job), crashes 10 steps after it starts. The
// launcher must replace it exactly 3 times, then stop ("restart limit reached") and exclude it; the
// three others must finish every step with the same lines, and the job exit 0.
// Also: `--min` stops a job that falls below it, and `loomrun --add` joins a rank to a running job.
#include "multiproc/subprocess.h"

#include <catch2/catch.hpp>

#include <map>
#include <regex>

using loomtest::bin;
using loomtest::Child;

namespace {

int occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The "[label] step 119 ..." lines of a --tag-output run, by label.
std::map<std::string, std::string> finalLines(const std::string& out, int lastStep) {
  std::map<std::string, std::string> lines;
  const std::regex re("^\\[(\\d+)\\] (step " + std::to_string(lastStep) + " .*)$");
  for (const auto& line : loomtest::lines(out)) {
    std::smatch m;
    if (std::regex_match(line, m, re)) lines[m[1]] = m[2];
  }
  return lines;
}

std::vector<std::string> env() {
  return loomtest::cleanEnv({"LOOM_PEER_TIMEOUT_MS=1000", "LOOM_TIMEOUT_MS=30000", "LOOM_DEBUG=NONE"});
}

}  // namespace

TEST_CASE("F7: the same peer crashes every epoch; the elastic launcher replaces it up to its restart limit, "
          "then excludes it",
          "[fault][F7][loomrun]") {
  Child job({bin("loomrun"), "-n", "4", "--elastic", "--max-restarts", "3", "--tag-output", "--timeout", "120", "--",
             bin("elastic_worker"), "--steps", "120", "--count", "4096", "--step-ms", "10", "--crash-after", "10",
             "--crash-rank", "2"},
            env());
  REQUIRE(job.wait(150));
  INFO(job.out() << job.err());
  CHECK(job.exitCode() == 0);
  CHECK(occurrences(job.err(), "killed by signal SIGKILL; the others go on") == 4);
  CHECK(occurrences(job.err(), "which joins the job") == 3);
  CHECK(job.err().find("restart limit reached (3): rank 6 is not replaced") != std::string::npos);
  auto lines = finalLines(job.out(), 119);
  REQUIRE(lines.size() == 3);
  CHECK(lines.count("0") == 1);
  CHECK(lines.count("1") == 1);
  CHECK(lines.count("3") == 1);
  CHECK(lines["0"] == lines["1"]);
  CHECK(lines["1"] == lines["3"]);
  CHECK(lines["0"].find(" world 3 ") != std::string::npos);
}

TEST_CASE("loomrun --elastic --min: a job that falls below the minimum is stopped, with a clear message",
          "[fault][loomrun]") {
  // The rank with LOOM_RANK 2 crashes at step 10: 3 left, below --min 4 (no restarts).
  Child job({bin("loomrun"), "-n", "4", "--elastic", "--min", "4", "--timeout", "120", "--", bin("elastic_worker"),
             "--steps", "100000", "--count", "1024", "--step-ms", "10", "--crash-after", "10", "--crash-rank", "2"},
            env());
  REQUIRE(job.wait(60));
  INFO(job.out() << job.err());
  CHECK(job.exitCode() == 1);
  CHECK(job.err().find("3 ranks alive, fewer than --min 4; stopping the job") != std::string::npos);
}

TEST_CASE("loomrun --add joins ranks to a running elastic job", "[fault][loomrun]") {
  Child job({bin("loomrun"), "-n", "2", "--elastic", "--tag-output", "--timeout", "120", "--", bin("elastic_worker"),
             "--steps", "150", "--count", "1024", "--step-ms", "20"},
            env());
  REQUIRE(job.waitFor("--comm-id", 30, true));
  std::smatch m;
  const std::string err = job.err();
  REQUIRE(std::regex_search(err, m, std::regex("coordinator (\\S+), communicator id (\\d+)")));
  Child add({bin("loomrun"), "--add", "1", "--coordinator", m[1].str(), "--comm-id", m[2].str(), "--",
             bin("elastic_worker"), "--steps", "150", "--count", "1024", "--step-ms", "20"},
            env());
  REQUIRE(add.wait(60));
  REQUIRE(job.wait(60));
  INFO(job.out() << job.err() << "\n--- added:\n" << add.out() << add.err());
  CHECK(add.exitCode() == 0);
  CHECK(job.exitCode() == 0);
  CHECK(add.out().find("world 3 contributors 3") != std::string::npos);
  CHECK(job.out().find("world 3 contributors 3") != std::string::npos);
}
