// N ranks as threads of one process, each with its own communicator over real TCP sockets on
// loopback, rendezvousing at a coordinator the test hosts. For tests of the C API's behaviour;
// tests/multiproc runs the same collectives as real processes.
#pragma once

#include "coordinator/server.h"

#include <loom/loom.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace loomtest {

inline std::unique_ptr<loom::coord::Server> startCoordinator() {
  auto server = loom::coord::Server::start({});
  if (!server) throw std::runtime_error("cannot start coordinator: " + server.error().toString());
  return std::move(*server);
}

// Runs body(rank, comm) on n threads; every communicator is created with `config` and destroyed
// afterwards (the body may abort or destroy it itself and set comm to NULL).
inline void runWorld(int n, const std::function<void(int, loomComm_t&)>& body,
                     loomConfig_t config = LOOM_CONFIG_INITIALIZER) {
  auto server = startCoordinator();
  std::string address = server->address();
  static uint64_t nextCommId = 1000;
  config.commId = ++nextCommId;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(n);
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      loomComm_t comm = nullptr;
      loomResult_t rc = loomCommInitRank(&comm, n, r, address.c_str(), &config);
      if (rc != loomSuccess) {
        errors[r] = std::string("init failed: ") + loomGetLastError(nullptr);
        return;
      }
      try {
        body(r, comm);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
      if (comm) loomCommDestroy(comm);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r)
    if (!errors[r].empty()) throw std::runtime_error("rank " + std::to_string(r) + ": " + errors[r]);
}

}  // namespace loomtest
