// loomd: the coordinator as a standalone process. Ranks find it through LOOM_COORDINATOR.
//
//   loomd [--listen HOST:PORT] [--heartbeat-ms N] [--rendezvous-timeout-ms N]
//
// Prints "loomd listening on HOST:PORT" once it accepts connections (scripts wait for that
// line), logs joins and departures to stderr (LOOM_DEBUG=WARN quietens it), and stops cleanly on SIGINT or SIGTERM.
#include "coordinator/client.h"  // parseHostPort
#include "coordinator/server.h"

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <signal.h>  // pthread_sigmask, sigwait

namespace {

constexpr const char* kUsage =
    "usage: loomd [--listen HOST:PORT] [--heartbeat-ms N] [--rendezvous-timeout-ms N]\n"
    "\n"
    "Loom coordinator: rendezvous and membership service for Loom communicators.\n"
    "\n"
    "  --listen HOST:PORT          address to listen on (default 127.0.0.1:29501; [::1]:PORT for IPv6;\n"
    "                              0.0.0.0:PORT for every interface)\n"
    "  --heartbeat-ms N            heartbeat period the ranks are told to use (default 1000)\n"
    "  --rendezvous-timeout-ms N   refuse a communicator whose ranks have not all joined after N ms\n"
    "                              (default 0: wait forever)\n"
    "  --help                      print this help\n";

int usageError(const std::string& why) {
  fmt::print(stderr, "loomd: {}\n{}", why, kUsage);
  return 2;
}

bool parsePositive(const char* text, bool allowZero, int* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < (allowZero ? 0 : 1) || v > INT_MAX) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  loom::coord::ServerOptions options;
  std::string listen = "127.0.0.1:29501";

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
    // Both "--flag value" and "--flag=value".
    std::string value;
    bool inlineValue = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inlineValue = true;
    }
    if (arg != "--listen" && arg != "--heartbeat-ms" && arg != "--rendezvous-timeout-ms")
      return usageError(fmt::format("unknown argument '{}'", argv[i]));
    if (!inlineValue) {
      if (i + 1 >= argc) return usageError(fmt::format("{} needs a value", arg));
      value = argv[++i];
    }
    if (arg == "--listen") {
      listen = value;
    } else if (arg == "--heartbeat-ms") {
      if (!parsePositive(value.c_str(), false, &options.heartbeatMs))
        return usageError(fmt::format("--heartbeat-ms wants a positive integer, got '{}'", value));
    } else if (!parsePositive(value.c_str(), true, &options.rendezvousTimeoutMs)) {
      return usageError(fmt::format("--rendezvous-timeout-ms wants a non-negative integer, got '{}'", value));
    }
  }

  auto hostPort = loom::coord::parseHostPort(listen);
  if (!hostPort) return usageError(hostPort.error().message());
  options.host = hostPort->first;
  options.port = hostPort->second;

  // A daemon's log is its joins and departures (COORD INFO): show them unless LOOM_DEBUG says
  // otherwise. Set before the first log line, when the logger reads its filter.
  setenv("LOOM_DEBUG", "INFO", /*overwrite=*/0);

  // Block the stop signals before the server thread exists, so it inherits the mask and only
  // sigwait() below ever sees them.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto server = loom::coord::Server::start(options);
  if (!server) {
    fmt::print(stderr, "loomd: {}\n", server.error().toString());
    return 1;
  }
  fmt::print("loomd listening on {}\n", (*server)->address());
  std::fflush(stdout);

  int received = 0;
  sigwait(&stopSignals, &received);
  fmt::print(stderr, "loomd: {}; stopping\n", received == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->stop();
  return 0;
}
