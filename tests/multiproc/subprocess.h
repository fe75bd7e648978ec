// Real-process helpers for the multi-process tests: start a program with fork/exec (its stdout and
// stderr captured through pipes, its environment built explicitly), read its output as it runs,
// wait for it with a deadline, signal it, and find free loopback ports. A child still running when
// its Child object goes away is SIGKILLed (with its process group) and reaped, so a failed REQUIRE
// never leaves processes behind.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace loomtest {

using Clock = std::chrono::steady_clock;

inline double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Where the build put its programs: $LOOM_BIN_DIR (set by CTest), else this test's own directory.
inline std::string binDir() {
  if (const char* d = std::getenv("LOOM_BIN_DIR"); d && *d) return d;
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.rfind('/'));
}

inline std::string bin(const std::string& name) { return binDir() + "/" + name; }

// True for variables through which a launcher tells a process its rank, world or coordinator,
// and for every LOOM_* setting: a child must see only the ones a test gives it.
inline bool isLaunchVariable(const std::string& entry) {
  std::string name = entry.substr(0, entry.find('='));
  static const char* exact[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                                "ROLE_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"};
  for (const char* e : exact)
    if (name == e) return true;
  for (const char* p : {"LOOM_", "OMPI_", "PMI_", "PMIX_", "SLURM_"})
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

// This process's environment without any launcher's variables, plus `extra` ("NAME=value").
inline std::vector<std::string> cleanEnv(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (!isLaunchVariable(*e)) env.emplace_back(*e);
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// One started program.
class Child {
 public:
  // argv[0] must be a path (no PATH search). env: the complete environment (nullopt: cleanEnv()).
  explicit Child(std::vector<std::string> argv, std::optional<std::vector<std::string>> env = std::nullopt) {
    std::vector<std::string> envv = env ? std::move(*env) : cleanEnv();
    std::vector<char*> argp, envp;
    for (auto& a : argv) argp.push_back(a.data());
    argp.push_back(nullptr);
    for (auto& e : envv) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string execError = "subprocess: cannot execute " + argv[0] + ": ";
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    started_ = Clock::now();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Only async-signal-safe calls from here to execve.
      setpgid(0, 0);  // its own group, so a cleanup can take whatever it started
      dup2(out[1], 1);
      dup2(err[1], 2);
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int s : {SIGPIPE, SIGALRM, SIGINT, SIGTERM, SIGCHLD}) sigaction(s, &dfl, nullptr);  // ignored survive exec
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execve(argp[0], argp.data(), envp.data());
      const char* why = strerror(errno);
      (void)!write(2, execError.data(), execError.size());
      (void)!write(2, why, strlen(why));
      (void)!write(2, "\n", 1);
      _exit(127);
    }
    setpgid(pid_, pid_);
    close(out[1]);
    close(err[1]);
    fds_[0] = out[0];
    fds_[1] = err[0];
    for (int fd : fds_) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  ~Child() {
    if (!exited_) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      int st;
      while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    for (int fd : fds_)
      if (fd >= 0) close(fd);
  }

  pid_t pid() const { return pid_; }
  bool exited() const { return exited_; }
  bool outputClosed() const { return fds_[0] < 0 && fds_[1] < 0; }
  // Exit status, or -1 if it was killed by a signal (or has not exited).
  int exitCode() const { return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
  int termSignal() const { return exited_ && WIFSIGNALED(status_) ? WTERMSIG(status_) : 0; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  // Seconds from the start to its exit (as seen by pump), or so far.
  double seconds() const {
    return std::chrono::duration<double>((exited_ ? exitedAt_ : Clock::now()) - started_).count();
  }
  Clock::time_point exitedAt() const { return exitedAt_; }

  void signal(int sig) { kill(pid_, sig); }
  void signalGroup(int sig) { kill(-pid_, sig); }

  // Reads what is available, waiting up to `ms` for something to arrive; notices its exit.
  void pump(int ms) {
    pollfd p[2];
    int n = 0;
    for (int i = 0; i < 2; ++i)
      if (fds_[i] >= 0) p[n++] = {fds_[i], POLLIN, 0};
    if (n > 0) {
      if (poll(p, static_cast<nfds_t>(n), ms) > 0) {
        for (int i = 0; i < n; ++i) {
          if (p[i].revents == 0) continue;
          int which = p[i].fd == fds_[0] ? 0 : 1;
          drain(which);
        }
      }
    } else if (!exited_ && ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 10)));
    }
    reap();
  }

  // Waits until stdout (or stderr) contains `needle`; false if the time runs out or it exits first.
  bool waitFor(const std::string& needle, double seconds, bool inStderr = false) {
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    const std::string& s = inStderr ? err_ : out_;
    for (;;) {
      if (s.find(needle) != std::string::npos) return true;
      if (exited_ && outputClosed()) return false;
      if (Clock::now() >= until) return false;
      pump(20);
    }
  }

  // Waits until it has exited and closed its output; false if that did not happen in time.
  bool wait(double seconds) {
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (;;) {
      pump(exited_ ? 50 : 10);
      if (exited_ && outputClosed()) return true;
      if (Clock::now() >= until) return false;
    }
  }

  // Stops it for good: `sig` to it and its group, SIGKILL after `graceSeconds`, then waits.
  void stop(int sig = SIGTERM, double graceSeconds = 3) {
    if (!exited_) {
      signal(sig);
      signalGroup(sig);
      if (wait(graceSeconds)) return;
    }
    signalGroup(SIGKILL);
    signal(SIGKILL);
    wait(5);
  }

 private:
  void drain(int which) {
    char buf[65536];
    for (;;) {
      ssize_t n = read(fds_[which], buf, sizeof buf);
      if (n > 0) {
        (which == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      close(fds_[which]);  // EOF or error
      fds_[which] = -1;
      return;
    }
  }

  void reap() {
    if (exited_) return;
    int st;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = st;
      exitedAt_ = Clock::now();
    }
  }

  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  bool exited_ = false;
  int status_ = 0;
  Clock::time_point started_, exitedAt_;
  std::string out_, err_;
};

struct RunResult {
  int code = -1;           // exit status; -1 when killed by a signal
  int signal = 0;          // terminating signal
  bool timedOut = false;   // had to be stopped (or kept its output open) past the deadline
  double seconds = 0;      // start to exit
  std::string out, err;
};

// Runs a program to completion within `seconds`; a hang is stopped (SIGTERM, then SIGKILL) and
// reported as timedOut.
inline RunResult run(std::vector<std::string> argv, double seconds,
                     std::optional<std::vector<std::string>> env = std::nullopt) {
  Child c(std::move(argv), std::move(env));
  RunResult r;
  if (!c.wait(seconds)) {
    r.timedOut = true;
    c.stop(SIGTERM, 3);
  }
  r.code = c.exitCode();
  r.signal = c.termSignal();
  r.seconds = c.seconds();
  r.out = c.out();
  r.err = c.err();
  return r;
}

inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) v.push_back(line);
  return v;
}

// A TCP port on 127.0.0.1 nobody was using a moment ago (bound to port 0, then closed); 0 on failure.
inline int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// A socket bound (and, if `listening`, listening) on 127.0.0.1:port; -1 if the port is taken.
inline int bindLoopback(int port, bool listening) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || (listening && listen(fd, 16) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

// A port P such that P and P+1 were both free a moment ago (torchrun's MASTER_PORT; Loom uses P+1).
inline int freePortPair() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int p = freePort();
    if (p <= 0 || p >= 65535) continue;
    int a = bindLoopback(p, false), b = bindLoopback(p + 1, false);
    if (a >= 0) close(a);
    if (b >= 0) close(b);
    if (a >= 0 && b >= 0) return p;
  }
  return 0;
}

// True when some socket listens on 127.0.0.1:port or on the wildcard address (read from
// /proc/net/tcp, so asking disturbs nobody: no connection, no bind).
inline bool isListening(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  char want[16];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string slot, local, remote, state;
    f >> slot >> local >> remote >> state;
    if (state != "0A") continue;  // TCP_LISTEN
    if (local.size() < 5 || local.substr(local.size() - 5) != want) continue;
    std::string addr = local.substr(0, local.size() - 5);
    if (addr == "0100007F" || addr == "00000000") return true;
  }
  return false;
}

// True while the process exists and is not a zombie.
inline bool processAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return false;
  auto close = content.rfind(')');
  if (close == std::string::npos || close + 2 >= content.size()) return false;
  char state = content[close + 2];
  return state != 'Z' && state != 'X';
}

// Starts loomd on 127.0.0.1 with port 0 (the kernel picks a free one) and returns it once it has
// printed its address; `address` gets "127.0.0.1:PORT". Empty address if it did not come up.
inline std::unique_ptr<Child> startLoomd(std::string& address) {
  auto d = std::make_unique<Child>(std::vector<std::string>{bin("loomd"), "--listen", "127.0.0.1:0"},
                                   cleanEnv({"LOOM_DEBUG=WARN"}));
  address.clear();
  if (!d->waitFor("\n", 15)) return d;
  const std::string prefix = "loomd listening on ";
  auto at = d->out().find(prefix);
  if (at == std::string::npos) return d;
  auto end = d->out().find('\n', at);
  address = d->out().substr(at + prefix.size(), end - at - prefix.size());
  return d;
}

}  // namespace loomtest
