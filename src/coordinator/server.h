// The coordinator: rendezvous and membership service. Runs on its own thread (Boost.Asio with
// C++20 coroutines), embedded in a process (loomrun, rank 0, tests) or standalone as `loomd`.
// It is never on the data path: ranks talk to it to join, to heartbeat and to leave.
#pragma once

#include "core/status.h"

#include <cstdint>
#include <memory>
#include <string>

namespace loom::coord {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;            // 0: any free port
  int heartbeatMs = 1000;       // period the peers are told to use
  int rendezvousTimeoutMs = 0;  // 0: wait for the world forever (per communicator)
};

class Server {
 public:
  // Binds and starts serving on a background thread. Fails with loomSystemError naming the
  // address when it cannot bind (e.g. the port is in use).
  static Expected<std::unique_ptr<Server>> start(const ServerOptions& options);
  virtual ~Server() = default;
  // "host:port" actually bound.
  virtual std::string address() const = 0;
  // Stops serving and joins the thread. Idempotent; the destructor calls it.
  virtual void stop() = 0;
  // How many communicators have completed their first rendezvous here (any thread): from then on
  // a rank can join them (a running communicator; before, such a join is refused).
  virtual uint64_t communicatorsStarted() const = 0;
};

}  // namespace loom::coord
