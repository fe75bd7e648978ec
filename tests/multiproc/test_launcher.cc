// loomrun as a user meets it: real processes, real exit codes and signals. Every run has a
// deadline (loomtest::run stops a hang and reports it), so a launcher that never returns fails
// the test instead of blocking it.
#include <catch2/catch.hpp>

#include "multiproc/subprocess.h"

#include <algorithm>
#include <cstdio>
#include <set>

using loomtest::bin;
using loomtest::run;

namespace {

const std::string kSh = "/bin/sh";

std::vector<std::string> loomrun(std::vector<std::string> args) {
  args.insert(args.begin(), bin("loomrun"));
  return args;
}

std::string describe(const loomtest::RunResult& r) {
  return "exit " + std::to_string(r.code) + " signal " + std::to_string(r.signal) + " after " +
         std::to_string(r.seconds) + " s" + (r.timedOut ? " (TIMED OUT)" : "") + "\n--- stdout:\n" + r.out +
         "--- stderr:\n" + r.err;
}

// A fresh directory for files the ranks write; removed with its contents at the end of the scope.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/loom_launcher_XXXXXX";
    const char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() {
    std::string cmd = "rm -rf '" + path + "'";
    (void)!std::system(cmd.c_str());
  }
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

}  // namespace

TEST_CASE("loomrun starts N ranks with rank and world size in the environment", "[launcher]") {
  auto r = run(loomrun({"-n", "3", "--", kSh, "-c", "echo rank=$LOOM_RANK size=$LOOM_WORLD_SIZE"}), 30);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 0);
  auto got = loomtest::lines(r.out);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"rank=0 size=3", "rank=1 size=3", "rank=2 size=3"});
}

TEST_CASE("loomrun gives every rank a coordinator, a local rank and one communicator id", "[launcher]") {
  auto r = run(loomrun({"-n", "2", "--", kSh, "-c",
                        "echo $LOOM_RANK $LOOM_LOCAL_RANK $LOOM_COMM_ID $LOOM_COORDINATOR"}),
               30);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  REQUIRE(r.code == 0);
  auto got = loomtest::lines(r.out);
  REQUIRE(got.size() == 2);
  std::sort(got.begin(), got.end());
  char a[4][256], b[4][256];
  REQUIRE(std::sscanf(got[0].c_str(), "%255s %255s %255s %255s", a[0], a[1], a[2], a[3]) == 4);
  REQUIRE(std::sscanf(got[1].c_str(), "%255s %255s %255s %255s", b[0], b[1], b[2], b[3]) == 4);
  CHECK(std::string(a[0]) == "0");
  CHECK(std::string(a[1]) == "0");
  CHECK(std::string(b[0]) == "1");
  CHECK(std::string(b[1]) == "1");
  CHECK(std::string(a[2]) == b[2]);  // one communicator
  CHECK(std::string(a[2]) != "0");
  CHECK(std::string(a[3]) == b[3]);  // one coordinator
  CHECK(std::string(a[3]).rfind("127.0.0.1:", 0) == 0);
}

TEST_CASE("loomrun passes output through unchanged by default", "[launcher]") {
  // No trailing newline, tabs and spaces kept; stderr stays stderr.
  auto r = run(loomrun({"-n", "1", "--", kSh, "-c", "printf 'a  b\\tc\\nlast'; printf 'to stderr\\n' >&2"}), 30);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 0);
  CHECK(r.out == "a  b\tc\nlast");
  CHECK(r.err == "to stderr\n");
}

TEST_CASE("loomrun --tag-output prefixes every line with its rank", "[launcher]") {
  auto r = run(loomrun({"-n", "2", "--tag-output", "--", kSh, "-c",
                        "echo one $LOOM_RANK; echo two $LOOM_RANK; echo err $LOOM_RANK >&2; printf tail"}),
               30);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 0);
  auto out = loomtest::lines(r.out);
  std::multiset<std::string> got(out.begin(), out.end());
  CHECK(got == std::multiset<std::string>{"[0] one 0", "[0] two 0", "[0] tail", "[1] one 1", "[1] two 1",
                                          "[1] tail"});
  // Each rank's own lines keep their order.
  auto pos = [&](const std::string& line) { return std::find(out.begin(), out.end(), line) - out.begin(); };
  CHECK(pos("[0] one 0") < pos("[0] two 0"));
  CHECK(pos("[1] one 1") < pos("[1] two 1"));
  auto err = loomtest::lines(r.err);
  std::multiset<std::string> gotErr(err.begin(), err.end());
  CHECK(gotErr == std::multiset<std::string>{"[0] err 0", "[1] err 1"});
}

TEST_CASE("a rank exiting non-zero fails the job and stops the other ranks", "[launcher]") {
  TempDir dir;
  // Ranks 0 and 2 record their pid (exec keeps it) and sleep; rank 1 waits until both have
  // written theirs, then exits 3.
  const std::string script =
      "if [ \"$LOOM_RANK\" = 1 ]; then\n"
      "  i=0; while [ ! -s " + dir.path + "/pid.0 ] || [ ! -s " + dir.path + "/pid.2 ]; do\n"
      "    i=$((i+1)); [ $i -gt 200 ] && exit 5; sleep 0.05; done\n"
      "  echo rank 1 failing >&2; exit 3\n"
      "fi\n"
      "echo $$ > " + dir.path + "/pid.tmp.$LOOM_RANK && mv " + dir.path + "/pid.tmp.$LOOM_RANK " + dir.path +
      "/pid.$LOOM_RANK\n"
      "exec sleep 30\n";
  auto r = run(loomrun({"-n", "3", "--", kSh, "-c", script}), 20);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 3);  // the failed rank's status
  CHECK(r.seconds < 10);
  CHECK(r.err.find("rank 1 exited with status 3") != std::string::npos);
  for (int rank : {0, 2}) {
    std::string pid = readFile(dir.path + "/pid." + std::to_string(rank));
    INFO("rank " << rank << " pid '" << pid << "'");
    REQUIRE(!pid.empty());
    CHECK_FALSE(loomtest::processAlive(static_cast<pid_t>(std::stol(pid))));
  }
}

TEST_CASE("a rank killed by a signal fails the job and names the signal", "[launcher]") {
  auto r = run(loomrun({"-n", "3", "--", kSh, "-c",
                        "if [ \"$LOOM_RANK\" = 2 ]; then sleep 0.2; kill -KILL $$; fi; exec sleep 30"}),
               20);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code != 0);
  CHECK(r.code == 128 + SIGKILL);
  CHECK(r.seconds < 10);
  CHECK(r.err.find("rank 2 killed by signal SIGKILL") != std::string::npos);
}

TEST_CASE("loomrun --timeout stops the ranks and exits 124", "[launcher]") {
  auto r = run(loomrun({"-n", "2", "--timeout", "1", "--", kSh, "-c", "exec sleep 30"}), 20);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 124);
  CHECK(r.seconds >= 0.9);
  CHECK(r.seconds < 5);
  CHECK(r.err.find("timed out") != std::string::npos);
}

TEST_CASE("loomrun --timeout also stops ranks that ignore SIGTERM", "[launcher]") {
  // SIGTERM first, SIGKILL 2 s later.
  auto r = run(loomrun({"-n", "2", "--timeout", "1", "--", kSh, "-c", "trap '' TERM; sleep 30 & wait; sleep 30"}),
               20);
  INFO(describe(r));
  REQUIRE_FALSE(r.timedOut);
  CHECK(r.code == 124);
  CHECK(r.seconds < 7);
}

TEST_CASE("loomrun rejects bad usage with exit 2 and a message", "[launcher]") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"-n", "0", "--", "/bin/true"}, "-n expects"},
      {{"-n", "-3", "--", "/bin/true"}, "-n expects"},
      {{"-n", "abc", "--", "/bin/true"}, "-n expects"},
      {{"-n", "100000", "--", "/bin/true"}, "-n expects"},
      {{"--", "/bin/true"}, "missing -n"},
      {{"-n", "2"}, "no program to run"},
      {{"-n", "2", "--"}, "no program to run"},
      {{"-n", "2", "--", "/nonexistent/loom/program"}, "cannot run"},
      {{"-n", "2", "--", "no-such-command-for-loomrun"}, "command not found"},
      {{"-n", "2", "--bogus", "--", "/bin/true"}, "unknown option"},
      {{"-n", "2", "--timeout", "0", "--", "/bin/true"}, "--timeout expects"},
  };
  for (const auto& c : cases) {
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    auto r = run(loomrun(c.args), 20);
    INFO("loomrun " << shown << "\n" << describe(r));
    REQUIRE_FALSE(r.timedOut);
    CHECK(r.code == 2);
    CHECK(r.err.find(c.message) != std::string::npos);
  }
}

TEST_CASE("the C and C++ examples run under loomrun -n 3", "[launcher][examples]") {
  for (const char* example : {"allreduce_broadcast", "allreduce_cpp"}) {
    if (access(bin(example).c_str(), X_OK) != 0) {
      WARN(bin(example) << " was not built (LOOM_BUILD_EXAMPLES=OFF?); not run");
      continue;
    }
    auto r = run(loomrun({"-n", "3", "--timeout", "60", "--", bin(example)}), 75);
    INFO(example << ": " << describe(r));
    REQUIRE_FALSE(r.timedOut);
    CHECK(r.code == 0);
    CHECK(r.out.find(std::string(example == std::string("allreduce_cpp") ? "allreduce" : example) + ": 3 ranks: ") !=
          std::string::npos);
    CHECK(r.out.find(": OK") != std::string::npos);
  }
}

TEST_CASE("loomrun --bind core pins each rank to a CPU of its own; the default leaves them free", "[launcher]") {
  const char* show = "grep Cpus_allowed_list /proc/self/status | cut -f2";
  auto pinned = run(loomrun({"-n", "2", "--bind", "core", "--", kSh, "-c", show}), 30);
  INFO(describe(pinned));
  REQUIRE(pinned.code == 0);
  auto free = run(loomrun({"-n", "2", "--", kSh, "-c", show}), 30);
  INFO(describe(free));
  REQUIRE(free.code == 0);
  auto got = loomtest::lines(pinned.out);
  REQUIRE(got.size() == 2);
  if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
    CHECK(got[0] != got[1]);                               // two different CPUs
    CHECK(got[0].find_first_of(",-") == std::string::npos);  // one CPU each
    CHECK(loomtest::lines(free.out)[0].find_first_of(",-") != std::string::npos);
  }
  auto bad = run(loomrun({"-n", "2", "--bind", "sideways", "--", kSh, "-c", "true"}), 30);
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--bind") != std::string::npos);
}
