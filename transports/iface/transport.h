// The transport contract. Small on purpose: collectives see only isend/irecv/test/cancel on
// (peer, buffer, bytes, tag), never a socket. Everything here is non-blocking; the communicator's
// progress engine calls poll() to move bytes, and waits on eventFd() when there is nothing to do.
//
// Threading: every method except eventFd() and the factory is called with the owning
// communicator's engine lock held, so implementations need no locking of their own for their
// per-communicator state (only for state shared with other communicators, e.g. in-process).
#pragma once

#include "core/deadline.h"
#include "core/status.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace loom::transport {

// Messages are matched by (peer, tag). Tags of messages in flight between a pair must differ.
struct Tag {
  uint64_t op = 0;     // the operation: user tag, or the communicator's sequence number
  uint32_t space = 0;  // namespace of `op` (user async, blocking sequence, point-to-point, ...)
  uint32_t step = 0;   // message within the operation (algorithm step x segment)
  friend bool operator==(const Tag&, const Tag&) = default;
};

struct TagHash {
  size_t operator()(const Tag& t) const noexcept {
    uint64_t h = t.op * 0x9E3779B97F4A7C15ull ^ (uint64_t(t.space) << 32 | t.step);
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

// One posted send or receive. The poster keeps the shared_ptr; the transport completes it.
struct Transfer {
  enum State : int { Pending = 0, Done = 1, Failed = 2 };
  std::atomic<int> state{Pending};
  Status status;  // set before state becomes Failed
  bool done() const { return state.load(std::memory_order_acquire) != Pending; }
  bool failed() const { return state.load(std::memory_order_acquire) == Failed; }
};
using TransferPtr = std::shared_ptr<Transfer>;

// A peer reported that operation `tag` failed on its side.
struct RemoteOpError {
  Tag tag;
  int peer = -1;
  Status status;
};

// A peer that failed: seen by this endpoint (its connection broke or it fell silent), or reported
// lost by another peer (reportedBy).
struct PeerFailure {
  int rank = -1;
  std::string address;    // host:port of its data connection; "" when only reported
  uint64_t lastSeq = 0;   // messages completed from it before it failed (seen here only)
  int reportedBy = -1;    // -1: seen here
  Status why;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual const char* name() const = 0;
  // Start listening; returns this rank's address blob to publish through the coordinator.
  virtual Expected<std::string> listen() = 0;
  // The membership epoch this mesh belongs to, set before connect(): every frame carries it and a
  // connection or message of another epoch is refused. Transports without remote peers ignore it.
  virtual void setEpoch(uint64_t epoch) { (void)epoch; }
  // Connect the full mesh given every rank's blob (index = rank). Blocks until every pair is up
  // or the deadline passes. After this, rank()/size() are valid.
  virtual Status connect(int rank, const std::vector<std::string>& addresses, Deadline deadline) = 0;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // `signature` describes the operation (kind, count, datatype, op, root): a receive whose match
  // carries another signature or another byte count fails with loomInvalidUsage naming both.
  virtual TransferPtr isend(int peer, const void* buf, size_t bytes, Tag tag, uint64_t signature) = 0;
  virtual TransferPtr irecv(int peer, void* buf, size_t bytes, Tag tag, uint64_t signature) = 0;
  // Withdraw a pending transfer: after return the transport never touches its buffer again.
  // The transfer is failed with `why` unless it already completed.
  virtual void cancel(const TransferPtr& t, const Status& why) = 0;
  // Tell every peer that operation `tag.op` failed here (they fail it with loomRemoteError).
  virtual void sendOpError(Tag tag, const Status& why) = 0;
  // Operations failed remotely since the last call (tag.op/space, who reported it, why).
  virtual std::vector<RemoteOpError> takeRemoteOpErrors() = 0;

  // Move bytes without blocking. Returns true if anything happened.
  virtual bool poll() = 0;
  // Readable when poll() may have work; the event loop watches it.
  virtual int eventFd() const = 0;
  // A sticky failure (connection lost); every pending and future transfer fails with it.
  virtual Status health() const = 0;
  // Fail everything pending with `why` and close connections. Idempotent.
  virtual void shutdown(const Status& why) = 0;
  // Called periodically (every peerTimeoutMs / 4) after a poll(): tells quiet peers this rank is
  // alive, and fails a peer it has heard nothing from for peerTimeoutMs (frozen, or its link went
  // dark without a reset). Transports without remote peers need not do anything.
  virtual void checkLiveness() {}
  // Peers known to have failed, first seen first. Transports without remote peers have none.
  virtual std::vector<PeerFailure> failures() const { return {}; }
};

struct TransportOptions {
  int streamsPerPeer = 2;       // TCP streams to a peer on another host
  int localStreamsPerPeer = 1;  // ... and to one on this host (same host part in the address, or both loopback)
  std::string listenHost = "127.0.0.1";
  uint64_t commId = 0;
  uint64_t epoch = 0;
  int peerTimeoutMs = 2000;  // <= 0: no liveness checks
  // TCP congestion control of data connections to a near peer and to a far one ("": the
  // system's). A peer is near when it is on this host or the connection's handshake took less
  // than nearRttUs (the same rack or data centre; 0: only this host). Near links carry little
  // besides the collective, and a pacing algorithm (BBR, the default of many systems) holds back
  // the bursts a collective sends: Reno made 1 MiB-256 MiB collectives on loopback 1.2-2x faster
  // and the emulated cluster's ring all-reduce fill its 1 Gbit/s links (bench/RESULTS.md, sessions
  // 11-12). At such round trips Cubic, Linux's default, behaves as Reno anyway. Far paths (long
  // round trips, random loss) are where a model-based algorithm such as BBR earns its keep, so
  // they keep the system's.
  std::string nearCongestion = "reno";
  std::string farCongestion;
  uint32_t nearRttUs = 2000;
  // Which connections may hold a small frame back in the kernel while earlier ones are
  // unacknowledged, so that a run of them leaves as one segment (transports/tcp/tcp_coalesce.cc).
  // On one host each segment costs both ends a whole trip through TCP; across hosts holding back
  // would add up to a round trip to the frame, so there it is off unless asked for.
  enum class Coalesce { Off, SameHost, Always };
  Coalesce coalesce = Coalesce::SameHost;
};

// Registered by name ("tcp", "local"); nullptr with an error if the name is unknown.
Expected<std::unique_ptr<Transport>> createTransport(const std::string& name, const TransportOptions& options);

}  // namespace loom::transport
