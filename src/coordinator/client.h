// A rank's connection to the coordinator. The rendezvous is blocking with a deadline; after it the
// socket stays open (non-blocking) for heartbeats, driven by the communicator's event loop.
#pragma once

#include "core/deadline.h"
#include "core/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom::coord {

struct Membership {
  uint64_t commId = 0;
  uint64_t epoch = 0;
  int rank = 0;
  int size = 0;
  int heartbeatMs = 0;
  std::vector<std::string> addresses;  // index = rank
};

// "host:port" -> (host, port); loomInvalidArgument naming the text if malformed.
Expected<std::pair<std::string, uint16_t>> parseHostPort(const std::string& hostPort);

class Client {
 public:
  // Connects and joins: sends JoinRequest, waits for JoinAccept (every rank arrived) or Reject.
  // Errors: loomInvalidArgument (bad address text), loomSystemError (connection refused, with the
  // address), loomTimeout, loomVersionMismatch / loomInvalidUsage / ... from a Reject.
  // A refused connection is retried for up to retryRefusedMs (within the deadline): the
  // coordinator may start a moment after this rank.
  static Expected<std::unique_ptr<Client>> join(const std::string& coordinator, uint64_t commId, int worldSize,
                                                int requestedRank, const std::string& myAddress, Deadline deadline,
                                                int retryRefusedMs = 0);
  virtual ~Client() = default;
  virtual const Membership& membership() const = 0;
  // The socket, non-blocking, for the event loop to watch.
  virtual int fd() const = 0;
  // Queue a heartbeat without blocking (drops it if the socket buffer is full).
  virtual Status sendHeartbeat() = 0;
  // Read whatever arrived (acks, Reject); a Reject or EOF becomes the returned error.
  virtual Status onReadable() = 0;
  // Tell the coordinator this rank leaves on purpose, then close.
  virtual void leave() = 0;
};

}  // namespace loom::coord
