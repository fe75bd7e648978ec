#include "core/communicator.h"

#include "coordinator/client.h"
#include "coordinator/server.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/stream_copy.h"

#include <sched.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace loom {

namespace {
// After spinning, a waiter yields the core this long before it blocks: with more ranks than
// cores the peer it waits for needs the CPU.
constexpr int kYieldUs = 1000;
// A blocked waiter re-checks at least this often (deadline, abort), even without a wake-up.
constexpr int kBlockSliceMs = 50;
// How long the event-loop thread stands aside for a caller that drives progress itself, at most:
// long, because each time it wakes it takes a core from a spinning rank (at 1 ms, a 2-rank
// broadcast on 2 cores saw ~2000 such preemptions a second, and lost up to half its bandwidth);
// short enough that its timers (ticks, peer heartbeats) run on time. The caller wakes it early
// when it stops driving.
constexpr int kStandAsideMs = 20;
// How long one progressLocked() may keep the engine lock, at most (see there).
constexpr auto kMaxProgressTime = std::chrono::milliseconds(5);
// A reconnection attempt to a lost coordinator blocks the loop thread at most this long (refused at
// once when nothing listens; a host that does not answer costs the whole of it, once a heartbeat).
constexpr int kReconnectMs = 200;
// How often an update that waits for a lost coordinator looks again.
constexpr int kCoordinatorPollMs = 50;

// Whether this host's ranks of the communicator (same data address host as ours) have more
// threads that may want a core (each rank: its caller and its event-loop thread) than it has CPUs.
bool oversubscribed(const std::vector<std::string>& addresses, int rank) {
  auto hostOf = [](const std::string& a) { return a.substr(0, a.rfind(':')); };
  const std::string mine = hostOf(addresses[rank]);
  const long local = std::count_if(addresses.begin(), addresses.end(), [&](const auto& a) { return hostOf(a) == mine; });
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 && 2 * local > cpus;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

Communicator::Communicator(const Settings& settings) : settings_(settings) {}

Expected<std::unique_ptr<transport::Transport>> Communicator::newTransport(std::string& address) const {
  transport::TransportOptions topts;
  topts.streamsPerPeer = settings_.streamsPerPeer;
  topts.localStreamsPerPeer = settings_.localStreamsPerPeer;
  topts.listenHost = settings_.listenHost;
  topts.commId = settings_.commId;
  topts.peerTimeoutMs = settings_.peerTimeoutMs;
  topts.nearRttUs = static_cast<uint32_t>(settings_.tcpNearRttUs);
  if (settings_.tcpCongestion == "system") {
    topts.nearCongestion.clear();  // farCongestion is the system's already
  } else if (settings_.tcpCongestion != "auto") {
    topts.nearCongestion = topts.farCongestion = settings_.tcpCongestion;
  }
  using Coalesce = transport::TransportOptions::Coalesce;
  topts.coalesce = settings_.tcpCoalesce == "0"   ? Coalesce::Off
                   : settings_.tcpCoalesce == "1" ? Coalesce::Always
                                                  : Coalesce::SameHost;
  auto tp = transport::createTransport(settings_.transport, topts);
  if (!tp) return tp.error();
  auto listening = (*tp)->listen();
  if (!listening) return listening.error();
  address = *listening;
  return std::move(*tp);
}

Status Communicator::install(std::unique_ptr<transport::Transport> next, const coord::Membership& m,
                             Deadline deadline) {
  next->setEpoch(m.epoch);
  // Connecting takes a while; the old transport stays in place (and polled) until it is done.
  LOOM_RETURN_IF_ERROR(next->connect(m.rank, m.addresses, deadline));
  std::unique_ptr<transport::Transport> old;
  {
    std::lock_guard<std::mutex> lock(engineMu_);
    if (transport_) {
      epoll_ctl(eventFd_, EPOLL_CTL_DEL, transport_->eventFd(), nullptr);
      old = std::move(transport_);
    }
    transport_ = std::move(next);
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (epoll_ctl(eventFd_, EPOLL_CTL_ADD, transport_->eventFd(), &ev) != 0)
      return makeError(loomSystemError, "epoll_ctl: cannot watch the transport: {}", std::strerror(errno));
    rank_ = m.rank;
    size_ = m.size;
    epoch_ = m.epoch;
    // Every member starts the epoch with the same numbering, joiners included.
    blockingSeq_ = 0;
    p2pSendSeq_.assign(m.size, 0);
    p2pRecvSeq_.assign(m.size, 0);
    tagGeneration_.clear();
    sendTagGeneration_.assign(m.size, {});
    recvTagGeneration_.assign(m.size, {});
    broken_ = Status::ok();
    earlyRemoteErrors_.clear();
    spinYield_ = settings_.spinYield == "auto" ? oversubscribed(m.addresses, m.rank) : settings_.spinYield == "1";
  }
  log::setThreadRank(m.rank);
  // Closing the previous epoch's connections: the peers have installed theirs or are about to.
  if (old) old->shutdown(makeError(loomAborted, "epoch {} ended", m.epoch - 1));
  return Status::ok();
}

Expected<std::unique_ptr<Communicator>> Communicator::create(int nranks, int rank, const std::string& coordinator,
                                                              const Settings& settings,
                                                              std::unique_ptr<coord::Server> embedded,
                                                              bool joinRunning) {
  std::unique_ptr<Communicator> comm(new Communicator(settings));
  comm->embedded_ = std::move(embedded);
  comm->eventFd_ = epoll_create1(EPOLL_CLOEXEC);
  if (comm->eventFd_ < 0) return makeError(loomSystemError, "epoll_create1: {}", std::strerror(errno));
  Deadline deadline = Deadline::afterMs(settings.connectTimeoutMs);
  auto tp = comm->newTransport(comm->dataAddress_);
  if (!tp) return tp.error();

  coord::JoinOptions jopts;
  jopts.running = joinRunning;
  jopts.maxWorld = static_cast<uint32_t>(settings.maxWorld);
  jopts.retryRefusedMs = settings.coordinatorWaitMs;
  auto client = coord::Client::join(coordinator, settings.commId, joinRunning ? 1 : nranks, joinRunning ? -1 : rank,
                                    comm->dataAddress_, deadline, jopts);
  if (!client) return client.error();
  comm->coordinator_ = std::move(*client);
  const coord::Membership& m = comm->coordinator_->membership();
  Status connected = comm->install(std::move(*tp), m, joinRunning ? comm->meshDeadline(deadline) : deadline);
  // A joiner is a member of the epoch it was admitted to: if that mesh fails (a member died while it
  // formed), it takes part in the next update like the others.
  if (!connected.isOk() && joinRunning && !deadline.expired())
    connected = comm->enterNextEpoch({}, Deadline::afterMs(int64_t(settings.updateTimeoutMs) + settings.connectTimeoutMs));
  LOOM_RETURN_IF_ERROR(connected);
  comm->loop_ = std::make_unique<EventLoop>(*comm);
  comm->loop_->start(m.rank, m.heartbeatMs > 0 ? m.heartbeatMs : settings.heartbeatMs, comm->livenessIntervalMs());
  log::info(log::Subsys::Init, "communicator {} ready: rank {} of {} (epoch {}), transport {}, waiters {}",
            settings.commId, m.rank, m.size, m.epoch, settings.transport,
            comm->spinYield_ ? "yield while spinning" : "spin");
  // A joiner below LOOM_MIN_WORLD is a member all the same (the others admitted it); its
  // operations fail with loomBelowQuorum until an update brings enough members.
  return comm;
}

Status Communicator::quorum() const {
  if (size_ >= settings_.minWorld) return Status::ok();
  return makeError(loomBelowQuorum, "communicator {:#x} has {} members at epoch {}, fewer than the minimum {} "
                                    "(LOOM_MIN_WORLD): wait for joiners and call loomCommUpdate, or give up",
                   settings_.commId, size_, epoch_, settings_.minWorld);
}

int Communicator::pendingPeers() const { return coordinator_ ? coordinator_->pendingJoiners() : 0; }

Status Communicator::update() {
  if (aborted_) return makeError(loomAborted, "communicator was aborted; destroy it and create a new one");
  std::vector<int> suspects;
  {
    std::lock_guard<std::mutex> lock(engineMu_);
    Status why = transport_->health();
    if (why.isOk()) why = broken_;
    if (!active_.empty()) {
      if (why.isOk())
        return makeError(loomInvalidUsage, "loomCommUpdate with {} operations in flight: wait for them first (an "
                                           "update is a safe point)",
                         active_.size());
      failAllLocked(why);  // they cannot complete in this epoch anyway
    }
    for (const auto& f : transport_->failures()) suspects.push_back(f.rank);
  }
  return enterNextEpoch(suspects, Deadline::afterMs(int64_t(settings_.updateTimeoutMs) + settings_.connectTimeoutMs));
}

// How long the new mesh may take to connect: a member that died after the coordinator counted it
// never connects, and waiting the whole connect timeout for it would stall every survivor.
Deadline Communicator::meshDeadline(Deadline outer) const {
  const int ms = settings_.peerTimeoutMs > 0 ? std::max(2 * settings_.peerTimeoutMs, 1000) : settings_.connectTimeoutMs;
  return Deadline::afterMs(ms).earlier(outer);
}

// Ask for the next epoch and connect its mesh. If the mesh cannot be connected (a member of the new
// epoch died meanwhile, so nobody completes), ask again: the coordinator has dropped the dead one
// by then (its connection closed) or drops it at the update timeout.
Status Communicator::enterNextEpoch(std::vector<int> suspects, Deadline deadline) {
  const bool loopRuns = loop_ != nullptr;  // else (a joiner still in create) read the coordinator here
  for (;;) {
    // Membership changes wait for the coordinator: the event loop reconnects when it is back.
    while (loopRuns && !coordinator_->connected()) {
      if (deadline.expired())
        return makeError(loomSystemError, "the coordinator is unreachable: membership changes wait for it, and it "
                                          "did not come back before the update's deadline");
      std::this_thread::sleep_for(std::chrono::milliseconds(kCoordinatorPollMs));
    }
    std::string address;
    auto next = newTransport(address);
    if (!next) return next.error();
    Status asked = coordinator_->requestUpdate(address, suspects, false, settings_.updateTimeoutMs);
    if (!asked.isOk() && loopRuns && asked.code() == loomSystemError) continue;  // lost it meanwhile
    LOOM_RETURN_IF_ERROR(asked);
    auto m = coordinator_->awaitEpoch(deadline, !loopRuns);
    // The coordinator died during the update: a restarted one knows nothing of it, so ask again.
    if (!m && loopRuns && m.error().code() == loomSystemError && !deadline.expired()) continue;
    if (!m) return m.error();
    Status connected = install(std::move(*next), *m, meshDeadline(deadline));
    if (connected.isOk()) {
      dataAddress_ = address;
      log::info(log::Subsys::Init, "communicator {:#x}: epoch {}, rank {} of {}", settings_.commId, m->epoch,
                m->rank, m->size);
      return quorum();
    }
    if (deadline.expired()) return connected;
    log::warn(log::Subsys::Init, "communicator {:#x}: epoch {} could not be connected ({}); asking for the next",
              settings_.commId, m->epoch, connected.toString());
    suspects.clear();
  }
}

Status Communicator::leave() {
  if (aborted_) return makeError(loomAborted, "communicator was aborted; destroy it and create a new one");
  {
    std::lock_guard<std::mutex> lock(engineMu_);
    if (!active_.empty())
      return makeError(loomInvalidUsage, "loomCommLeave with {} operations in flight: wait for them first",
                       active_.size());
  }
  if (coordinator_) (void)coordinator_->requestUpdate("", {}, true, settings_.updateTimeoutMs);
  return shutdown();
}

Communicator::~Communicator() {
  if (loop_) loop_->stop();
  if (transport_) transport_->shutdown(makeError(loomAborted, "communicator destroyed"));
  if (eventFd_ >= 0) ::close(eventFd_);
}

int Communicator::transportFd() const { return eventFd_; }
int Communicator::coordinatorFd() const { return coordinator_ ? coordinator_->fd() : -1; }

namespace {
// Whether the operation writes over its own input (a reduction in place): that input is saved so a
// failure can give it back. All-gather in place never overwrites this rank's block, broadcast's
// root only reads, so neither needs it.
size_t inputToSave(const coll::Args& a, int rank, int size) {
  const size_t elem = dataTypeSize(a.dtype);
  switch (a.kind) {
    case coll::Kind::AllReduce:
    case coll::Kind::Reduce:
      return a.send == a.recv ? a.count * elem : 0;
    case coll::Kind::ReduceScatter:
      return static_cast<const uint8_t*>(a.send) + size_t(rank) * a.count * elem == a.recv
                 ? a.count * elem * size_t(size)
                 : 0;
    default:
      return 0;
  }
}
}  // namespace

Expected<OpPtr> Communicator::start(const coll::Args& args, std::optional<uint64_t> userTag) {
  if (aborted_) return makeError(loomAborted, "communicator was aborted; destroy it and create a new one");
  auto op = std::make_shared<OpState>();
  op->args = args;
  op->deadline = Deadline::afterMs(settings_.timeoutMs);
  coll::Context ctx;
  ctx.tuning.segmentBytes = settings_.segmentBytes;
  ctx.tuning.allreduceSmallBytes = settings_.allreduceSmallBytes;
  ctx.tuning.broadcastSmallBytes = settings_.broadcastSmallBytes;
  ctx.tuning.allreduceAlgorithm = settings_.allreduceAlgorithm;
  ctx.tuning.broadcastAlgorithm = settings_.broadcastAlgorithm;
  // An in-place input is kept for a failure: by the algorithm itself, piece by piece, where it can;
  // otherwise copied whole here, before the engine lock: copying 256 MiB under it kept the event
  // loop from sending heartbeats long enough for the peers to declare this rank lost. With
  // streaming stores, as the algorithms keep theirs: it is read only on failure, so it must not
  // take the cache from the operation's own buffers.
  if (size_t bytes = inputToSave(args, rank_, size_); bytes > 0 && size_ > 1 && settings_.restoreInput) {
    if (coll::keepsInputItself(args, ctx.tuning, size_)) {
      ctx.keepInput = true;
    } else {
      op->savedInput = Scratch(bytes);
      op->savedBytes = bytes;
      copyStreaming(op->savedInput.data(), args.send, bytes);
    }
  }
  std::lock_guard<std::mutex> lock(engineMu_);
  bool p2p = args.kind == coll::Kind::Send || args.kind == coll::Kind::Recv;
  if (userTag) {
    uint32_t kind = p2p ? kSpaceP2PAsync : kSpaceAsync;
    for (auto& other : active_)
      if (other->tag.op == *userTag && tagSpaceKind(other->tag.space) == kind &&
          (!p2p || (other->args.kind == args.kind && other->args.root == args.root)))
        return makeError(loomInvalidUsage, "tag {} is already in use by an operation in flight", *userTag);
    auto& generations = !p2p ? tagGeneration_
                        : args.kind == coll::Kind::Send ? sendTagGeneration_[args.root]
                                                        : recvTagGeneration_[args.root];
    uint32_t generation = generations[*userTag]++ & 0xFFFFFF;
    op->tag = {*userTag, kind | (generation << 8), 0};
  } else if (p2p) {
    auto& seq = args.kind == coll::Kind::Send ? p2pSendSeq_ : p2pRecvSeq_;
    op->tag = {seq[args.root]++, kSpaceP2P, 0};
  } else {
    op->tag = {blockingSeq_++, kSpaceBlocking, 0};
  }
  // A peer was lost (here or anywhere): nothing new starts until the membership is updated. The
  // peers hear about it, so a rank already waiting in this operation is not left waiting.
  Status refused = transport_->health();
  if (refused.isOk()) refused = broken_;
  if (refused.isOk() && size_ < settings_.minWorld) refused = quorum();
  if (!refused.isOk()) {
    transport_->sendOpError(op->tag, refused);
    return refused;
  }
  ctx.transport = transport_.get();
  ctx.rank = rank_;
  ctx.size = size_;
  ctx.base = op->tag;
  ctx.signature = coll::signatureOf(args);
  op->algorithm = coll::makeOperation(args, ctx);
  // Two survivors must never disagree on whether a collective succeeded (collectives/agreement).
  if (!p2p && size_ >= 3 && args.count > 0 && settings_.outcomeVote) op->algorithm = coll::withOutcomeVote(std::move(op->algorithm), ctx);
  active_.push_back(op);
  activeCount_.fetch_add(1);
  for (auto it = earlyRemoteErrors_.begin(); it != earlyRemoteErrors_.end(); ++it) {
    if (remoteErrorMatches(*it, *op)) {
      Status why = it->status;
      earlyRemoteErrors_.erase(it);
      finishLocked(op, why);
      return op;
    }
  }
  // Post the first transfers now: small messages often leave right here. No poll first: what has
  // arrived is read once a receive is posted (straight into place), and an operation that only
  // sends (a broadcast root) finishes without a single epoll_wait.
  progressLocked(/*pollFirst=*/false);
  return op;
}

void Communicator::finishLocked(const OpPtr& op, Status status) {
  if (op->finished.load()) return;
  if (!status.isOk()) {
    op->algorithm->cancel(status);  // nothing writes into the caller's buffers after this
    if (op->savedBytes > 0) std::memcpy(const_cast<void*>(op->args.send), op->savedInput.data(), op->savedBytes);
  }
  op->algorithm->settleInput(!status.isOk());
  op->savedInput = Scratch();
  op->status = std::move(status);
  op->finished.store(true);
  auto it = std::find(active_.begin(), active_.end(), op);
  if (it != active_.end()) {
    active_.erase(it);
    activeCount_.fetch_sub(1);
  }
  notifyWaiters();
}

void Communicator::notifyWaiters() {
  if (waiters_.load() > 0) {
    { std::lock_guard<std::mutex> lock(waitMu_); }
    waitCv_.notify_all();
  }
}

void Communicator::failAllLocked(const Status& why) {
  auto ops = active_;
  for (auto& op : ops) finishLocked(op, why);
}

bool Communicator::progressLocked(bool pollFirst) {
  bool movedAny = false;
  // Bounded in rounds and in time: a round can move tens of MiB (a ring's window of received
  // segments, reduced and kept), and 64 of them held the engine lock for over a second, during
  // which neither heartbeats went out nor the loop's timers ran (4 ranks, 256 MiB: peers declared
  // a busy rank lost at the default 2000 ms timeout). The holder comes straight back if need be.
  const auto until = Clock::now() + kMaxProgressTime;
  for (int round = 0; round < 64 && (round == 0 || Clock::now() < until); ++round) {
    bool polled = round > 0 || pollFirst;
    bool moved = polled && transport_->poll();
    for (auto& e : transport_->takeRemoteOpErrors()) {
      if (e.status.code() == loomPeerLost && broken_.isOk()) broken_ = e.status;
      bool matched = false;
      for (auto& op : std::vector<OpPtr>(active_)) {
        if (remoteErrorMatches(e, *op)) {
          finishLocked(op, e.status);
          matched = true;
        }
      }
      // This rank has not started that operation yet: it fails as soon as it does.
      if (!matched) earlyRemoteErrors_.push_back(std::move(e));
      moved = true;
    }
    // A peer was lost (here or anywhere): the others are on their way to an update, so operations
    // in flight fail now, telling the peers why (a rank that was not talking to the lost peer
    // learns its name). Not one that is casting its outcome vote: it already told its peers it
    // has its data, and their votes decide it the same way everywhere.
    Status h = transport_->health();
    if (h.isOk()) h = broken_;
    if (!h.isOk()) {
      for (auto& op : std::vector<OpPtr>(active_)) {
        if (op->algorithm->voting()) continue;
        transport_->sendOpError(op->tag, h);
        finishLocked(op, h);
        moved = true;
      }
    }
    // By index, not over a copy (an allocation per round): finishing an operation removes only
    // that one from active_, so the next one then sits at the same index.
    for (size_t i = 0; i < active_.size();) {
      const OpPtr op = active_[i];
      Status s = op->algorithm->progress();
      if (s.code() == loomInProgress) {
        if (!op->deadline.expired()) {
          ++i;
          continue;
        }
        s = makeError(loomTimeout, "{} (tag {}) did not finish within {} ms (LOOM_TIMEOUT_MS)",
                      coll::kindName(op->args.kind), op->tag.op, settings_.timeoutMs);
      }
      // A mismatch found here must reach the peers, or they would wait for this rank forever.
      if (!s.isOk() && s.code() != loomRemoteError) transport_->sendOpError(op->tag, s);
      finishLocked(op, std::move(s));
      moved = true;
      // finishLocked removed it, so the next one is at i now; were it ever left in place, step on.
      if (i < active_.size() && active_[i] == op) ++i;
    }
    movedAny |= moved;
    // Nothing in flight: no need to poll again. What arrives meanwhile wakes the loop thread (it
    // watches the transport's fd), and is read then or by the next operation. Before, a broadcast
    // root made two epoll_waits per call, where Open MPI's makes one writev and nothing else.
    if (active_.empty()) break;
    if (!moved && polled) break;
  }
  return movedAny;
}

bool Communicator::remoteErrorMatches(const transport::RemoteOpError& e, const OpState& op) {
  bool p2p = op.args.kind == coll::Kind::Send || op.args.kind == coll::Kind::Recv;
  // A point-to-point operation only fails when its own peer reports it.
  return op.tag.op == e.tag.op && op.tag.space == e.tag.space && (!p2p || op.args.root == e.peer);
}

bool Communicator::test(const OpPtr& op) {
  if (op->finished.load()) return true;
  if (engineMu_.try_lock()) {
    progressLocked();
    engineMu_.unlock();
  }
  return op->finished.load();
}

Status Communicator::wait(const OpPtr& op, Deadline deadline) {
  driving_.fetch_add(1);
  Status s = driveUntilDone(op, deadline);
  if (driving_.fetch_sub(1) == 1 && activeCount_.load() > 0 && loopStandingAside_.load()) {
    // Other operations are in flight and nobody drives them now: hand them back to the loop.
    { std::lock_guard<std::mutex> lock(standAsideMu_); }
    standAsideCv_.notify_one();
  }
  return s;
}

Status Communicator::driveUntilDone(const OpPtr& op, Deadline deadline) {
  auto start = Clock::now();
  auto spinUntil = start + std::chrono::microseconds(settings_.spinUs);
  auto yieldUntil = spinUntil + std::chrono::microseconds(kYieldUs);
  while (!op->finished.load()) {
    if (engineMu_.try_lock()) {
      bool moved = progressLocked();
      if (livenessDue_ != Clock::time_point{} && Clock::now() >= livenessDue_) livenessLocked();
      engineMu_.unlock();
      if (op->finished.load()) break;
      if (moved) {  // bytes are flowing: keep driving rather than hand over to the loop thread
        spinUntil = Clock::now() + std::chrono::microseconds(settings_.spinUs);
        yieldUntil = spinUntil + std::chrono::microseconds(kYieldUs);
      }
    }
    if (deadline.expired())
      return makeError(loomTimeout, "{} (tag {}) still in progress after the wait's timeout",
                       coll::kindName(op->args.kind), op->tag.op);
    auto now = Clock::now();
    if (now < spinUntil && !spinYield_) {
      for (int i = 0; i < 32; ++i) cpuRelax();
    } else if (now < yieldUntil) {
      sched_yield();
    } else {
      // Block: the event-loop thread advances the operation and wakes us when it finishes.
      driving_.fetch_sub(1);
      {
        std::lock_guard<std::mutex> lock(standAsideMu_);
      }
      standAsideCv_.notify_one();
      waiters_.fetch_add(1);
      {
        std::unique_lock<std::mutex> lock(waitMu_);
        auto until = std::min(deadline.at(), Clock::now() + std::chrono::milliseconds(kBlockSliceMs));
        waitCv_.wait_until(lock, until, [&] { return op->finished.load(); });
      }
      waiters_.fetch_sub(1);
      driving_.fetch_add(1);
    }
  }
  return op->status;
}

void Communicator::cancel(const OpPtr& op, const Status& why) {
  std::lock_guard<std::mutex> lock(engineMu_);
  if (op->finished.load()) return;
  transport_->sendOpError(op->tag, why);
  finishLocked(op, why);
}

Status Communicator::run(const coll::Args& args) {
  auto op = start(args, std::nullopt);
  if (!op) return op.error();
  Status s = wait(*op, (*op)->deadline);
  if (s.code() == loomTimeout && !(*op)->finished.load()) {
    Status why = makeError(loomTimeout, "{} did not finish within {} ms (LOOM_TIMEOUT_MS)", coll::kindName(args.kind),
                           settings_.timeoutMs);
    cancel(*op, why);
    return why;
  }
  return s;
}

void Communicator::abort() {
  if (aborted_.exchange(true)) return;
  Status why = makeError(loomAborted, "communicator aborted by the application");
  std::lock_guard<std::mutex> lock(engineMu_);
  failAllLocked(why);
  transport_->shutdown(why);
}

Status Communicator::shutdown() {
  // Let in-flight operations finish, within their own deadlines.
  while (activeCount_.load() > 0 && !aborted_.load()) {
    OpPtr op;
    {
      std::lock_guard<std::mutex> lock(engineMu_);
      if (!active_.empty()) op = active_.front();
    }
    if (op) (void)wait(op, op->deadline);
  }
  if (loop_) loop_->stop();
  if (coordinator_) coordinator_->leave();
  std::lock_guard<std::mutex> lock(engineMu_);
  transport_->shutdown(makeError(loomAborted, "communicator destroyed"));
  return Status::ok();
}

void Communicator::onTransportEvent() {
  // A caller is driving progress itself: stand aside rather than compete with it for a core and
  // for the engine lock. It wakes us when it blocks; otherwise we look again shortly.
  if (driving_.load() > 0) {
    std::unique_lock<std::mutex> lock(standAsideMu_);
    loopStandingAside_.store(true);
    standAsideCv_.wait_for(lock, std::chrono::milliseconds(kStandAsideMs), [&] { return driving_.load() == 0; });
    loopStandingAside_.store(false);
  }
  std::lock_guard<std::mutex> lock(engineMu_);
  progressLocked();
}

void Communicator::onTick() {
  if (activeCount_.load() == 0) return;
  std::lock_guard<std::mutex> lock(engineMu_);
  progressLocked();
}

void Communicator::onHeartbeat() {
  if (!coordinator_) return;
  if (!coordinatorLost_) {
    (void)coordinator_->sendHeartbeat();
    return;
  }
  // The coordinator is gone: collectives go on without it; try to reach it again (it may have been
  // restarted at the same address), telling it who we are so it can rebuild the membership.
  int rank, size;
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> lock(engineMu_);
    rank = rank_;
    size = size_;
    epoch = epoch_;
  }
  Status s = coordinator_->reconnect(rank, size, epoch, dataAddress_, static_cast<uint32_t>(settings_.maxWorld),
                                     Deadline::afterMs(kReconnectMs));
  if (!s.isOk()) return;
  log::info(log::Subsys::Coord, "reconnected to the coordinator (rank {} of {}, epoch {})", rank, size, epoch);
  coordinatorLost_ = false;
  loop_->watchCoordinator(coordinator_->fd());
}

Status Communicator::asyncError() {
  if (aborted_) return makeError(loomAborted, "communicator was aborted; destroy it and create a new one");
  std::lock_guard<std::mutex> lock(engineMu_);
  Status h = transport_->health();
  if (!h.isOk()) return h;
  if (!broken_.isOk()) return broken_;
  // A peer that left while an operation still needed it (its transfers failed) breaks it too.
  const auto failed = transport_->failures();
  return failed.empty() ? Status::ok() : failed.front().why;
}

std::vector<transport::PeerFailure> Communicator::failures() {
  std::lock_guard<std::mutex> lock(engineMu_);
  return transport_->failures();
}

int Communicator::livenessIntervalMs() const {
  return settings_.peerTimeoutMs > 0 ? std::max(settings_.peerTimeoutMs / 4, 10) : 0;
}

void Communicator::livenessLocked() {
  progressLocked();  // read what has arrived first: a rank that was itself stopped must not blame its peers
  transport_->checkLiveness();
  if (!transport_->health().isOk()) progressLocked();  // fails what is in flight, naming the silent peer
  livenessDue_ = Clock::now() + std::chrono::milliseconds(livenessIntervalMs());
}

void Communicator::onLiveness() {
  // A driving caller sends the heartbeats and judges its peers itself when they are due (see
  // driveUntilDone). Waiting here for the engine lock it keeps retaking could last seconds: on 2
  // cores with 4 ranks a 256 MiB all-reduce went quiet for over a second at a 300 ms timeout
  // (and once for 2 s at the default), and its peers declared it lost.
  std::unique_lock<std::mutex> lock(engineMu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    if (driving_.load() > 0) return;
    lock.lock();
  }
  livenessLocked();
}

void Communicator::onCoordinatorReadable() {
  Status s = coordinator_->onReadable();
  if (!s.isOk()) {
    // The data path does not need the coordinator; membership changes will (see DESIGN.md).
    log::info(log::Subsys::Coord, "lost the coordinator: {}", s.toString());
    coordinatorLost_ = true;
    loop_->stopWatchingCoordinator();
  }
}

}  // namespace loom
