// loomrun: start N ranks of a program on this machine, around an embedded coordinator.
//
//   loomrun -n N [--tag-output] [--coordinator-host H] [--timeout SECONDS] [--] PROGRAM ARGS...
//   loomrun -n N --elastic [--min M] [--max X] [--max-restarts R] [--] PROGRAM ARGS...
//   loomrun --add K --coordinator HOST:PORT --comm-id ID [--] PROGRAM ARGS...
//
// Elastic mode (like torchrun's elastic agent): a rank that dies does not end the job; the others
// go on (the program updates its membership, see loomCommUpdate). With --max-restarts R, a lost
// rank is replaced by a new process that joins the running job (LOOM_JOIN=1, which
// loomCommInitFromEnv turns into loomCommJoin), at most R times in all. Fewer than --min ranks
// alive stops the job. --add starts K more ranks that join a running elastic job.
//
// Each rank gets LOOM_COORDINATOR, LOOM_RANK, LOOM_WORLD_SIZE, LOOM_LOCAL_RANK and LOOM_COMM_ID,
// which loomCommInitFromEnv reads. The job fails as a whole: when a rank exits non-zero or dies,
// loomrun says which, terminates the others (SIGTERM, then SIGKILL after 2 s) and exits with that
// rank's status. Each rank runs in its own process group, so whatever it started goes with it.
#include "coordinator/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kKillGrace = std::chrono::seconds(2);  // SIGTERM, then SIGKILL this much later
constexpr int kMaxRanks = 4096;

const char* kUsage =
    "usage: loomrun -n N [--tag-output] [--coordinator-host H] [--timeout SECONDS] [--] PROGRAM [ARGS...]\n"
    "  -n N                    number of ranks to start on this machine\n"
    "  --tag-output            prefix every output line with \"[rank] \"\n"
    "  --coordinator-host H    address the embedded coordinator binds to and the ranks dial\n"
    "                          (default 127.0.0.1)\n"
    "  --timeout SECONDS       kill every rank after SECONDS and exit 124\n"
    "  --bind none|auto|core   pin rank r to the r-th CPU loomrun may use (auto: only when every\n"
    "                          rank gets a CPU of its own). Default none: pinning steadies small-\n"
    "                          message latency but costs large transfers a second core\n"
    "  --elastic               a rank that dies does not stop the others (they update the membership)\n"
    "  --min M                 elastic: stop the job when fewer than M ranks are alive (default 1);\n"
    "                          also given to the ranks as LOOM_MIN_WORLD\n"
    "  --max X                 elastic: the most ranks the job may grow to (LOOM_MAX_WORLD)\n"
    "  --max-restarts R        elastic: replace a lost rank by a new one that joins, R times in all\n"
    "  --add K                 start K ranks that join the running job at --coordinator/--comm-id\n"
    "  --coordinator HOST:PORT --comm-id ID   the job to --add to (an elastic loomrun prints both)\n"
    "  -h, --help              this text\n"
    "Each rank gets LOOM_COORDINATOR, LOOM_RANK, LOOM_WORLD_SIZE, LOOM_LOCAL_RANK and LOOM_COMM_ID.\n"
    "If a rank fails, the others are stopped and loomrun exits with its status (128+N for signal N).\n";

[[noreturn]] void usageError(const std::string& message) {
  std::fprintf(stderr, "loomrun: %s\n%.*s  (loomrun --help for more)\n", message.c_str(),
               static_cast<int>(std::strchr(kUsage, '\n') - kUsage), kUsage);
  std::exit(2);
}

struct Args {
  int n = 0;
  bool elastic = false;
  int minRanks = 1;
  int maxRanks = 0;
  int maxRestarts = 0;
  int add = 0;               // --add K: join K ranks to a running job
  std::string coordinator;   // with --add
  std::string commId;        // with --add
  bool tagOutput = false;
  std::string host = "127.0.0.1";
  double timeoutSec = 0;
  std::string bind = "none";
  std::vector<std::string> program;
};

// A non-negative count from "--flag value" text, at least `lo`.
int count(const std::string& v, const std::string& flag, int lo) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < lo || n > kMaxRanks)
    usageError(flag + " expects a number from " + std::to_string(lo) + " to " + std::to_string(kMaxRanks) + ", got '" +
               v + "'");
  return static_cast<int>(n);
}

Args parseArgs(int argc, char** argv) {
  Args a;
  bool haveN = false;
  int i = 1;
  // "--flag value" or "--flag=value".
  auto value = [&](const std::string& arg, const std::string& flag) -> std::string {
    if (arg.size() > flag.size() && arg[flag.size()] == '=') return arg.substr(flag.size() + 1);
    if (i + 1 >= argc) usageError(flag + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "-n" || arg == "-np" || arg.rfind("-n=", 0) == 0 || arg.rfind("-np=", 0) == 0 ||
        (arg.size() > 2 && arg.rfind("-n", 0) == 0 && std::isdigit(static_cast<unsigned char>(arg[2])))) {
      std::string v = arg.rfind("-np", 0) == 0 ? value(arg, "-np")
                      : arg.size() > 2 && arg[2] != '=' ? arg.substr(2)
                                                        : value(arg, "-n");
      char* end = nullptr;
      errno = 0;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0 || n < 1 || n > kMaxRanks)
        usageError("-n expects a number of ranks from 1 to " + std::to_string(kMaxRanks) + ", got '" + v + "'");
      a.n = static_cast<int>(n);
      haveN = true;
    } else if (arg == "--tag-output") {
      a.tagOutput = true;
    } else if (arg.rfind("--coordinator-host", 0) == 0 && (arg.size() == 18 || arg[18] == '=')) {
      a.host = value(arg, "--coordinator-host");
      if (a.host.empty()) usageError("--coordinator-host needs a host");
    } else if (arg.rfind("--timeout", 0) == 0 && (arg.size() == 9 || arg[9] == '=')) {
      std::string v = value(arg, "--timeout");
      char* end = nullptr;
      a.timeoutSec = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(a.timeoutSec > 0) || a.timeoutSec > 1e7)
        usageError("--timeout expects a positive number of seconds, got '" + v + "'");
    } else if (arg.rfind("--bind", 0) == 0 && (arg.size() == 6 || arg[6] == '=')) {
      a.bind = value(arg, "--bind");
      if (a.bind != "auto" && a.bind != "core" && a.bind != "none")
        usageError("--bind expects auto, core or none, got '" + a.bind + "'");
    } else if (arg == "--elastic") {
      a.elastic = true;
    } else if (arg.rfind("--min", 0) == 0 && (arg.size() == 5 || arg[5] == '=')) {
      a.minRanks = count(value(arg, "--min"), "--min", 1);
    } else if (arg.rfind("--max-restarts", 0) == 0 && (arg.size() == 14 || arg[14] == '=')) {
      a.maxRestarts = count(value(arg, "--max-restarts"), "--max-restarts", 0);
    } else if (arg.rfind("--max", 0) == 0 && (arg.size() == 5 || arg[5] == '=')) {
      a.maxRanks = count(value(arg, "--max"), "--max", 1);
    } else if (arg.rfind("--add", 0) == 0 && (arg.size() == 5 || arg[5] == '=')) {
      a.add = count(value(arg, "--add"), "--add", 1);
    } else if (arg.rfind("--coordinator", 0) == 0 && (arg.size() == 13 || arg[13] == '=')) {
      a.coordinator = value(arg, "--coordinator");
    } else if (arg.rfind("--comm-id", 0) == 0 && (arg.size() == 9 || arg[9] == '=')) {
      a.commId = value(arg, "--comm-id");
    } else if (arg.size() > 1 && arg[0] == '-') {
      usageError("unknown option '" + arg + "'");
    } else {
      break;
    }
  }
  for (; i < argc; ++i) a.program.push_back(argv[i]);
  if (a.program.empty()) usageError("no program to run");
  if (a.add > 0) {
    if (haveN) usageError("--add starts joiners of a running job; it takes no -n");
    if (a.coordinator.empty() || a.commId.empty()) usageError("--add needs --coordinator HOST:PORT and --comm-id ID");
    a.n = a.add;
    a.elastic = true;
    return a;
  }
  if (!haveN) usageError("missing -n N (the number of ranks)");
  if (!a.elastic && (a.maxRestarts > 0 || a.maxRanks > 0 || a.minRanks > 1))
    usageError("--min, --max and --max-restarts need --elastic");
  if (a.maxRanks > 0 && (a.maxRanks < a.n || a.maxRanks < a.minRanks))
    usageError("--max must be at least -n and --min");
  if (a.minRanks > a.n) usageError("--min is more than -n");
  return a;
}

// PATH lookup done before forking, so the child only calls execve (async-signal-safe).
std::optional<std::string> resolveProgram(const std::string& name) {
  auto runnable = [](const std::string& p) { return access(p.c_str(), X_OK) == 0; };
  if (name.find('/') != std::string::npos) return runnable(name) ? std::optional(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (runnable(candidate)) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

std::string signalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

void writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t w = write(fd, data, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // EPIPE and the like: the reader is gone; keep draining the ranks anyway
    data += w;
    size -= static_cast<size_t>(w);
  }
}

struct Rank {
  int rank = 0;
  pid_t pid = -1;  // also its process group
  bool running = false;
};

// One rank's stdout or stderr under --tag-output: whole lines are forwarded with the prefix, so
// lines of different ranks never interleave mid-line.
struct Stream {
  int fd = -1;     // read end
  int outFd = 1;   // where the lines go
  std::string prefix;
  std::string pending;

  void forward(bool eof) {
    size_t start = 0, nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
      std::string line = prefix + pending.substr(start, nl + 1 - start);
      writeAll(outFd, line.data(), line.size());
      start = nl + 1;
    }
    pending.erase(0, start);
    if (!pending.empty() && (eof || pending.size() > 65536)) {  // unterminated or huge line
      std::string line = prefix + pending + "\n";
      writeAll(outFd, line.data(), line.size());
      pending.clear();
    }
  }
};

class Launcher {
 public:
  explicit Launcher(Args args) : args_(std::move(args)) {}

  int run() {
    auto program = resolveProgram(args_.program[0]);
    if (!program) {
      std::fprintf(stderr, "loomrun: cannot run '%s': %s\n", args_.program[0].c_str(),
                   args_.program[0].find('/') != std::string::npos ? std::strerror(errno) : "command not found");
      return 2;
    }
    // Signals are taken through a signalfd; block them before the coordinator's thread starts so
    // no thread receives them the default way.
    sigset_t handled;
    sigemptyset(&handled);
    for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&handled, s);
    pthread_sigmask(SIG_BLOCK, &handled, &originalMask_);
    sigFd_ = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill the launcher mid-job
    // Orphans of the ranks are reparented to us rather than to init, so we reap them at once and
    // an exited process never lingers as a zombie that looks like a live stray.
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    program_ = *program;
    std::unique_ptr<loom::coord::Server> server;
    if (args_.add > 0) {  // joiners of a job that runs elsewhere
      coordinator_ = args_.coordinator;
      commId_ = std::strtoull(args_.commId.c_str(), nullptr, 10);
    } else {
      loom::coord::ServerOptions options;
      options.host = args_.host;
      auto started = loom::coord::Server::start(options);
      if (!started) {
        std::fprintf(stderr, "loomrun: cannot start the coordinator on %s: %s\n", args_.host.c_str(),
                     started.error().toString().c_str());
        return 1;
      }
      server = std::move(*started);
      coordinator_ = server->address();
      std::random_device rd;
      commId_ = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;  // never 0, which means "unset"
      // How to add ranks is printed once the job's communicator runs (loop()): a rank added
      // before that would be refused ("not running").
      server_ = server.get();
      hintPending_ = args_.elastic;
    }
    nextLabel_ = args_.n;
    for (int r = 0; r < args_.n; ++r) {
      if (!spawn(r, program_, args_.add > 0)) {
        beginShutdown(SIGTERM);
        exitCode_ = 1;
        break;
      }
    }
    loop();
    server_ = nullptr;
    if (server) server->stop();
    if (args_.elastic && exitCode_ == 0 && succeeded_ == 0) exitCode_ = 1;  // nobody finished the job
    return exitCode_;
  }

 private:
  std::vector<std::string> environment(int rank, bool join) const {
    static const char* ours[] = {"LOOM_COORDINATOR=", "LOOM_RANK=", "LOOM_WORLD_SIZE=", "LOOM_LOCAL_RANK=",
                                 "LOOM_COMM_ID=",     "LOOM_JOIN=", "LOOM_MIN_WORLD=",  "LOOM_MAX_WORLD="};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      bool replaced = false;
      for (const char* o : ours) replaced = replaced || std::strncmp(*e, o, std::strlen(o)) == 0;
      if (!replaced) env.emplace_back(*e);
    }
    env.push_back("LOOM_COORDINATOR=" + coordinator_);
    env.push_back("LOOM_RANK=" + std::to_string(rank));
    env.push_back("LOOM_WORLD_SIZE=" + std::to_string(args_.n));
    env.push_back("LOOM_LOCAL_RANK=" + std::to_string(rank));
    env.push_back("LOOM_COMM_ID=" + std::to_string(commId_));
    if (join) env.push_back("LOOM_JOIN=1");  // loomCommInitFromEnv joins the running job
    if (args_.elastic && args_.minRanks > 1) env.push_back("LOOM_MIN_WORLD=" + std::to_string(args_.minRanks));
    if (args_.elastic && args_.maxRanks > 0) env.push_back("LOOM_MAX_WORLD=" + std::to_string(args_.maxRanks));
    return env;
  }

  // The CPU rank `rank` is pinned to, or -1. Two spinning ranks that the scheduler happens to put
  // on one core wait for each other's time slices: small-message latency then swings 4x between
  // runs. Pinning is only done when every rank gets a CPU of its own.
  int cpuFor(int rank) const {
    if (args_.bind == "none") return -1;
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    if (cpus.empty() || (args_.bind == "auto" && args_.n > static_cast<int>(cpus.size()))) return -1;
    return cpus[static_cast<size_t>(rank) % cpus.size()];
  }

  bool spawn(int rank, const std::string& path, bool join) {
    // Everything the child needs is built now: between fork and exec only async-signal-safe calls.
    const int cpu = cpuFor(rank);
    std::vector<std::string> env = environment(rank, join);
    std::vector<char*> envp, argv;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = args_.program;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string execError = "loomrun: rank " + std::to_string(rank) + ": cannot execute " + path + "\n";
    // stdin goes to rank 0 only, and only when it is not a terminal (a rank in a background
    // process group reading the terminal would be stopped).
    const bool keepStdin = rank == 0 && !isatty(0);

    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (args_.tagOutput && (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)) {
      std::fprintf(stderr, "loomrun: pipe: %s\n", std::strerror(errno));
      return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "loomrun: fork: %s\n", std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      setpgid(0, 0);
      if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        sched_setaffinity(0, sizeof one, &one);
      }
      if (args_.tagOutput) {
        dup2(out[1], 1);
        dup2(err[1], 2);
      }
      if (!keepStdin) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
      }
      // The coordinator's sockets, the signalfd, other ranks' pipes (loop: kernels before 5.9).
      if (close_range(3, ~0u, 0) != 0)
        for (int fd = 3; fd < 4096; ++fd) close(fd);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigaction(SIGPIPE, &dfl, nullptr);  // ignored dispositions survive exec; restore it
      sigprocmask(SIG_SETMASK, &originalMask_, nullptr);
      execve(path.c_str(), argv.data(), envp.data());
      writeAll(2, execError.data(), execError.size());
      _exit(127);
    }
    setpgid(pid, pid);  // also here, so the group exists before we might signal it
    ranks_.push_back({rank, pid, true});
    if (args_.tagOutput) {
      close(out[1]);
      close(err[1]);
      std::string prefix = std::to_string(rank);  // "[R] ", built so as not to trip GCC 12's -Wrestrict
      prefix.insert(prefix.begin(), '[');
      prefix += "] ";
      streams_.push_back({out[0], 1, prefix, {}});
      streams_.push_back({err[0], 2, prefix, {}});
    }
    return true;
  }

  int running() const {
    int n = 0;
    for (const Rank& r : ranks_) n += r.running;
    return n;
  }

  // Signals every rank's process group, exited ranks included (their stray children).
  void signalAll(int sig) {
    for (const Rank& r : ranks_) kill(-r.pid, sig);
  }

  void beginShutdown(int sig) {
    if (shuttingDown_) return;
    shuttingDown_ = true;
    signalAll(sig);
    killAt_ = Clock::now() + kKillGrace;
  }

  void reap() {
    int status;
    pid_t pid;
    std::vector<std::pair<Rank*, int>> failed;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      for (Rank& r : ranks_) {
        if (r.pid != pid) continue;
        r.running = false;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
          failed.emplace_back(&r, status);
        else
          ++succeeded_;
      }
    }
    if (failed.empty() || shuttingDown_) return;  // after a shutdown began, deaths are ours
    if (args_.elastic) {
      survive(failed);
      return;
    }
    for (auto [r, st] : failed) {
      if (WIFSIGNALED(st))
        std::fprintf(stderr, "loomrun: rank %d killed by signal %s\n", r->rank, signalName(WTERMSIG(st)).c_str());
      else
        std::fprintf(stderr, "loomrun: rank %d exited with status %d\n", r->rank, WEXITSTATUS(st));
    }
    const int st = failed.front().second;
    exitCode_ = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    beginShutdown(SIGTERM);
  }

  // Elastic mode: the others go on without the lost ranks; replace them while restarts remain.
  void survive(const std::vector<std::pair<Rank*, int>>& lost) {
    std::vector<int> labels;
    for (auto [r, st] : lost) {
      labels.push_back(r->rank);
      if (WIFSIGNALED(st))
        std::fprintf(stderr, "loomrun: rank %d killed by signal %s; the others go on\n", r->rank,
                     signalName(WTERMSIG(st)).c_str());
      else
        std::fprintf(stderr, "loomrun: rank %d exited with status %d; the others go on\n", r->rank, WEXITSTATUS(st));
    }
    for (int label : labels) {
      if (restarts_ >= args_.maxRestarts) {
        if (args_.maxRestarts > 0)
          std::fprintf(stderr, "loomrun: restart limit reached (%d): rank %d is not replaced\n", args_.maxRestarts,
                       label);
        continue;
      }
      ++restarts_;
      const int replacement = nextLabel_++;
      std::fprintf(stderr, "loomrun: replacing rank %d by rank %d, which joins the job (restart %d of %d)\n", label,
                   replacement, restarts_, args_.maxRestarts);
      if (!spawn(replacement, program_, true)) std::fprintf(stderr, "loomrun: could not start the replacement\n");
    }
    if (running() < args_.minRanks) {
      std::fprintf(stderr, "loomrun: %d ranks alive, fewer than --min %d; stopping the job\n", running(),
                   args_.minRanks);
      exitCode_ = 1;
      beginShutdown(SIGTERM);
    }
  }

  void onSignals() {
    signalfd_siginfo info;
    while (read(sigFd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
      } else if (!shuttingDown_) {
        exitCode_ = 128 + sig;
        beginShutdown(sig);  // forward it: the ranks decide how to stop
      } else {
        signalAll(SIGKILL);  // asked twice: stop now
      }
    }
  }

  // True while a rank's process group still has members: processes the rank started.
  bool straysLeft() const {
    for (const Rank& r : ranks_)
      if (kill(-r.pid, 0) == 0) return true;
    return false;
  }

  void loop() {
    std::optional<Clock::time_point> deadline;  // --timeout
    if (args_.timeoutSec > 0)
      deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args_.timeoutSec));
    std::optional<Clock::time_point> drainUntil;  // once every rank has exited
    char buf[65536];
    for (;;) {
      const auto now = Clock::now();
      if (hintPending_ && server_->communicatorsStarted() > 0) {
        hintPending_ = false;
        std::fprintf(stderr,
                     "loomrun: elastic job: coordinator %s, communicator id %llu (add ranks with: loomrun --add K "
                     "--coordinator %s --comm-id %llu -- PROGRAM)\n",
                     coordinator_.c_str(), static_cast<unsigned long long>(commId_), coordinator_.c_str(),
                     static_cast<unsigned long long>(commId_));
      }
      if (deadline && now >= *deadline) {
        deadline.reset();
        if (!shuttingDown_) {
          std::fprintf(stderr, "loomrun: timed out after %g s; stopping all ranks\n", args_.timeoutSec);
          exitCode_ = 124;
          beginShutdown(SIGTERM);
        }
      }
      if (killAt_ && now >= *killAt_) {
        signalAll(SIGKILL);
        killAt_.reset();
      }
      if (running() == 0) {
        if (!drainUntil) {
          signalAll(SIGTERM);  // whatever the ranks left running goes with them
          drainUntil = now + kKillGrace;
        }
        if ((streams_.empty() && !straysLeft()) || now >= *drainUntil) break;
      }
      auto next = Clock::time_point::max();
      for (const auto& t : {deadline, killAt_, drainUntil})
        if (t) next = std::min(next, *t);
      if (drainUntil) next = std::min(next, now + std::chrono::milliseconds(50));  // re-check strays
      if (hintPending_) next = std::min(next, now + std::chrono::milliseconds(20));  // has the job started?
      const int waitMs = next == Clock::time_point::max()
                             ? -1
                             : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next - now).count());

      std::vector<pollfd> fds{{sigFd_, POLLIN, 0}};
      for (const Stream& s : streams_) fds.push_back({s.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), waitMs) < 0 && errno != EINTR) {
        std::fprintf(stderr, "loomrun: poll: %s\n", std::strerror(errno));
        signalAll(SIGKILL);
        exitCode_ = 1;
        return;
      }
      for (size_t i = fds.size() - 1; i >= 1; --i) {  // backwards: erasing keeps earlier indices
        if (fds[i].revents == 0) continue;
        Stream& s = streams_[i - 1];
        const ssize_t n = read(s.fd, buf, sizeof buf);
        if (n > 0) {
          s.pending.append(buf, static_cast<size_t>(n));
          s.forward(false);
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          s.forward(true);
          close(s.fd);
          streams_.erase(streams_.begin() + static_cast<long>(i - 1));
        }
      }
      if (fds[0].revents != 0) onSignals();
    }
    if (straysLeft()) signalAll(SIGKILL);
    for (Stream& s : streams_) {
      s.forward(true);
      close(s.fd);
    }
    streams_.clear();
  }

  Args args_;
  sigset_t originalMask_{};
  int sigFd_ = -1;
  std::string coordinator_;
  uint64_t commId_ = 0;
  loom::coord::Server* server_ = nullptr;  // the embedded coordinator, while loop() runs
  bool hintPending_ = false;               // the elastic job's "add ranks with" line, not printed yet
  std::vector<Rank> ranks_;
  std::vector<Stream> streams_;
  std::string program_;
  int nextLabel_ = 0;   // output label of the next replacement rank
  int restarts_ = 0;
  int succeeded_ = 0;   // ranks that exited 0
  bool shuttingDown_ = false;
  std::optional<Clock::time_point> killAt_;
  int exitCode_ = 0;
};

}  // namespace

int main(int argc, char** argv) { return Launcher(parseArgs(argc, argv)).run(); }
