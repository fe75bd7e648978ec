// A rank's connection to the coordinator. The rendezvous is blocking with a deadline; after it the
// socket stays open (non-blocking) for heartbeats, driven by the communicator's event loop.
#pragma once

#include "core/deadline.h"
#include "core/status.h"

#include <cstdint>
#include <memory>
#include <optional>
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
  std::vector<int> previousRanks;      // index = rank: rank in the previous epoch, -1 if new (empty at founding)
};

// How a rank joins: founding a communicator (the rendezvous of all its first ranks), or joining
// one that runs already (admitted at its members' next update).
struct JoinOptions {
  bool running = false;
  uint32_t maxWorld = 0;   // founders: the most members it may grow to (0: no limit)
  int retryRefusedMs = 0;  // a refused connection is retried this long (the coordinator may start later)
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
                                                const JoinOptions& options = {});
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

  // Membership changes. Thread-safe against the event loop's heartbeat/onReadable.
  // Ask for the next epoch (this member is at its safe point); suspects: ranks it saw fail.
  virtual Status requestUpdate(const std::string& nextAddress, const std::vector<int>& suspects, bool leaving,
                               int timeoutMs) = 0;
  // Waits until the coordinator starts the next epoch. The event loop reads the socket, unless
  // readSocket: then this call does (before the communicator's event loop runs).
  virtual Expected<Membership> awaitEpoch(Deadline deadline, bool readSocket = false) = 0;
  // Joiners waiting for the next update, as the coordinator last said.
  virtual int pendingJoiners() const = 0;
  // Whether the connection is up (false once the coordinator closed it or failed).
  virtual bool connected() = 0;
  // After the coordinator was lost: connect again (same address) and tell it who this member is
  // (rank, epoch, world, data address), so a restarted coordinator rebuilds the membership. The
  // caller stops watching the old fd first; fd() is the new socket on success.
  virtual Status reconnect(int rank, int size, uint64_t epoch, const std::string& myAddress, uint32_t maxWorld,
                           Deadline deadline) = 0;
};

}  // namespace loom::coord
