// The communicator: membership (from the coordinator), one transport, the in-flight operations,
// and the progress engine that advances them.
//
// Progress engine: one mutex (engineMu_) guards the transport and the operation list. Whoever
// holds it advances everything: a caller waiting on its own operation (spin with try_lock, then
// yield, then block), or the event-loop thread when the transport's fd becomes readable. So a
// small all-reduce completes on the caller's thread with no hand-over, and asynchronous work
// still moves while the caller computes.
#pragma once

#include "collectives/collective.h"
#include "core/config.h"
#include "core/deadline.h"
#include "core/scratch.h"
#include "core/status.h"
#include "transports/iface/transport.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace loom {

namespace coord {
struct Membership;
class Client;
class Server;
}  // namespace coord
class EventLoop;

// One operation in flight.
struct OpState {
  coll::Args args;
  transport::Tag tag;
  Deadline deadline = Deadline::never();
  std::unique_ptr<coll::Operation> algorithm;
  std::atomic<bool> finished{false};
  Status status;  // valid once finished
  // An in-place reduction's input, restored into the caller's buffer if the operation fails, so
  // the same call can be retried among the survivors.
  Scratch savedInput;
  size_t savedBytes = 0;
};
using OpPtr = std::shared_ptr<OpState>;

// Tag namespaces: blocking operations are numbered by a per-communicator sequence (every rank
// issues them in the same order); asynchronous ones carry the caller's tag. The low 8 bits of
// Tag::space hold the namespace; the rest count how often this rank used the same caller's tag
// before (its generation), so a tag reused every iteration never meets a straggling message of
// the previous use.
enum TagSpace : uint32_t { kSpaceAsync = 1, kSpaceBlocking = 2, kSpaceP2P = 3, kSpaceP2PAsync = 4 };
inline uint32_t tagSpaceKind(uint32_t space) { return space & 0xFF; }

class Communicator {
 public:
  // Rendezvous through `coordinator`, then connect the transport mesh. With `joinRunning`, join a
  // communicator that already runs instead: nranks and rank are ignored, and this blocks until its
  // members admit this rank at their next update (or the connect timeout passes).
  static Expected<std::unique_ptr<Communicator>> create(int nranks, int rank, const std::string& coordinator,
                                                         const Settings& settings,
                                                         std::unique_ptr<coord::Server> embedded,
                                                         bool joinRunning = false);
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  uint64_t epoch() const { return epoch_; }
  uint64_t commId() const { return settings_.commId; }
  const Settings& settings() const { return settings_; }
  // The transport address peers reach this rank at (diagnostics, tests).
  const std::string& dataAddress() const { return dataAddress_; }

  // Starts an operation. userTag: asynchronous (matched by tag); none: blocking sequence.
  Expected<OpPtr> start(const coll::Args& args, std::optional<uint64_t> userTag);
  // Drives progress until op finishes or the deadline passes (then loomTimeout; op keeps running).
  Status wait(const OpPtr& op, Deadline deadline);
  // One progress attempt without blocking; true when op is finished.
  bool test(const OpPtr& op);
  // Fails op on this rank (if still running) and tells the peers.
  void cancel(const OpPtr& op, const Status& why);
  // Start + wait + cancel on timeout: the blocking API.
  Status run(const coll::Args& args);

  // Membership (see docs/DESIGN.md, "Membership"). A safe point every member calls together:
  // failed and leaving members are dropped, waiting joiners admitted, ranks renumbered, and a new
  // transport mesh built for the new epoch. Operations still in flight fail first.
  Status update();
  // Leaves at a safe point (the others call update() there), then shuts down.
  Status leave();
  // Joiners waiting for the next update (what the coordinator last said; no round trip).
  int pendingPeers() const;

  // From any thread: fail everything in flight with loomAborted and close connections.
  void abort();
  bool aborted() const { return aborted_.load(); }
  // Waits (bounded) for in-flight operations, leaves the coordinator, stops the loop.
  Status shutdown();
  // The sticky error every later operation would fail with (aborted, a peer lost); ok if healthy.
  Status asyncError();
  // Peers known to have failed (seen here or reported by others), first seen first.
  std::vector<transport::PeerFailure> failures();

  // Called from the event-loop thread.
  void onTransportEvent();
  void onTick();
  void onHeartbeat();
  void onLiveness();  // every peerTimeoutMs / 4: heartbeats to quiet peers, silent ones declared lost
  void onCoordinatorReadable();
  int transportFd() const;
  int coordinatorFd() const;

 private:
  Communicator(const Settings& settings);
  // Creates and starts listening on a transport for the next epoch (its address goes to the coordinator).
  Expected<std::unique_ptr<transport::Transport>> newTransport(std::string& address) const;
  // Connects `next` for membership `m` and makes it the communicator's transport.
  Status install(std::unique_ptr<transport::Transport> next, const coord::Membership& m, Deadline deadline);
  Status quorum() const;  // loomBelowQuorum when fewer members than LOOM_MIN_WORLD remain
  Status enterNextEpoch(std::vector<int> suspects, Deadline deadline);
  Deadline meshDeadline(Deadline outer) const;
  bool progressLocked(bool pollFirst = true);  // engineMu_ held; true if anything moved
  // Heartbeats to the peers and the judgement of their silence (TcpTransport::checkLiveness), every
  // livenessIntervalMs() (LOOM_PEER_TIMEOUT_MS / 4): by the loop thread's timer, or by a caller
  // that is driving progress when they are due. engineMu_ held.
  void livenessLocked();
  int livenessIntervalMs() const;
  Status driveUntilDone(const OpPtr& op, Deadline deadline);
  void finishLocked(const OpPtr& op, Status status);
  void notifyWaiters();
  void failAllLocked(const Status& why);
  static bool remoteErrorMatches(const transport::RemoteOpError& e, const OpState& op);

  Settings settings_;
  // Waiters yield the core between polls instead of pausing (LOOM_SPIN_YIELD): with more threads
  // than CPUs on this host, the peer (or loop thread) a rank waits for may need its core.
  bool spinYield_ = false;
  std::string dataAddress_;
  int rank_ = 0;
  int size_ = 1;
  uint64_t epoch_ = 0;
  // The event loop watches this epoll set, which holds the current transport's event fd: a new
  // epoch swaps the transport inside it without touching the loop thread.
  int eventFd_ = -1;
  std::unique_ptr<coord::Server> embedded_;  // when this rank hosts the coordinator
  std::unique_ptr<coord::Client> coordinator_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<EventLoop> loop_;

  std::mutex engineMu_;
  std::vector<OpPtr> active_;
  uint64_t blockingSeq_ = 0;
  std::vector<uint64_t> p2pSendSeq_, p2pRecvSeq_;
  // Generations of caller's tags: collectives by tag; send/recv by (peer, tag) per direction.
  std::unordered_map<uint64_t, uint32_t> tagGeneration_;
  std::vector<std::unordered_map<uint64_t, uint32_t>> sendTagGeneration_, recvTagGeneration_;
  std::atomic<bool> aborted_{false};
  // A peer was lost (reported by another rank): every operation fails with this until the
  // communicator is rebuilt (membership changes come with the fault-tolerance work).
  Status broken_;
  // Failures peers reported for operations this rank had not started yet.
  std::vector<transport::RemoteOpError> earlyRemoteErrors_;
  std::atomic<int> activeCount_{0};
  bool coordinatorLost_ = false;

  std::mutex waitMu_;
  std::condition_variable waitCv_;
  std::atomic<int> waiters_{0};
  // Callers driving progress themselves (spinning or yielding in wait()); the loop thread stands
  // aside while there are any.
  std::atomic<int> driving_{0};
  Clock::time_point livenessDue_{};  // engineMu_; unset until the loop's first liveness check
  std::atomic<bool> loopStandingAside_{false};
  std::mutex standAsideMu_;
  std::condition_variable standAsideCv_;
};

}  // namespace loom
