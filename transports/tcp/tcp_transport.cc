// TCP transport: connection set-up (hello / ack / reject), message matching, striping.
#include "transports/tcp/tcp_transport.h"

#include "core/log.h"
#include "transports/iface/registry.h"
#include "transports/tcp/socket.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace loom::tcp {

namespace {
// Messages at least this large are split over every stream of the pair.
constexpr size_t kStripeBytes = 128 << 10;
constexpr size_t kStripeAlign = 4096;
// Unexpected bytes (messages whose receive is not posted yet) buffered per peer before its streams
// stop being read. One message is always taken, however large, so a lone big one cannot stall.
constexpr uint64_t kMaxStashedBytesPerPeer = 32 << 20;
// How long a message may wait in the socket for its receive while this rank awaits nothing from
// its sender (mustHold). Long enough for a rank to get from one operation to the next, also
// descheduled on an oversubscribed host; short enough that a different issue order only costs it.
constexpr auto kIdleHoldLimit = std::chrono::milliseconds(2);
// An idle rank (nothing posted, nobody polling) takes held messages into the stash after at most
// this long: a timer makes its epoll set readable. Longer than kIdleHoldLimit, since a rank that
// is driving an operation checks at every poll anyway; this only bounds how long a sender waits
// on an idle receiver, without waking the event loop every 2 ms while holds come and go.
constexpr auto kIdleHoldTimer = std::chrono::milliseconds(20);
// The epoll data of the hold timer (the others are streams, or null for the listening socket).
char holdTimerMark;
}  // namespace

TcpTransport::TcpTransport(const transport::TransportOptions& options) : options_(options), discard_(64 << 10) {
  epollFd_ = epoll_create1(EPOLL_CLOEXEC);
  // Wakes whoever watches this epoll set once an idle hold may have expired, so a held message
  // reaches the stash (and its sender's operation completes) even if this rank stays idle.
  holdTimerFd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epollFd_ >= 0 && holdTimerFd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &holdTimerMark;
    epoll_ctl(epollFd_, EPOLL_CTL_ADD, holdTimerFd_, &ev);
  }
}

TcpTransport::~TcpTransport() {
  log::info(log::Subsys::Net, "tcp: {} of {} messages received ({} of {} bytes) arrived before their receive was posted",
            stats_.stashedMessages, stats_.receivedMessages, stats_.stashedBytes, stats_.receivedBytes);
  shutdown(makeError(loomAborted, "transport destroyed"));
  closeFd(epollFd_);
  closeFd(holdTimerFd_);
}

std::string TcpTransport::peerName(int peer) const {
  if (peer < 0 || peer >= static_cast<int>(peers_.size())) return "an unidentified peer";
  const Peer& p = peers_[peer];
  return fmt::format("peer rank {} ({}, {} messages received from it)", peer, p.address, p.receivedMessages);
}

Expected<std::string> TcpTransport::listen() {
  if (epollFd_ < 0) return makeError(loomSystemError, "epoll_create1: {}", std::strerror(errno));
  auto fd = listenOn(options_.listenHost, 512);
  if (!fd) return fd.error();
  listenFd_ = *fd;
  // Refuse an algorithm the kernel does not offer here, at set-up, not silently per connection.
  // (Not tried on the listening socket: accepted connections would inherit it.)
  for (const std::string* name : {&options_.nearCongestion, &options_.farCongestion}) {
    if (name->empty()) continue;
    Status s = checkCongestionControl(*name);
    if (!s.isOk()) return makeError(s.code(), "{} (LOOM_TCP_CONGESTION; 'system' keeps the system's)", s.message());
  }
  auto addr = localAddress(listenFd_);
  if (!addr) return addr.error();
  address_ = *addr;
  addToEpoll(listenFd_, nullptr);
  return address_;
}

void TcpTransport::addToEpoll(int fd, Stream* s) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = s;  // null: the listening socket
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev);
}

void TcpTransport::armWrite(Stream& s, bool on) {
  s.writeArmed = on;
  setReading(s, !s.held);
}

void TcpTransport::setReading(Stream& s, bool on) {
  epoll_event ev{};
  ev.events = (on ? uint32_t(EPOLLIN) : 0u) | (s.writeArmed ? uint32_t(EPOLLOUT) : 0u);
  ev.data.ptr = &s;
  epoll_ctl(epollFd_, EPOLL_CTL_MOD, s.fd(), &ev);
}

Status TcpTransport::connect(int rank, const std::vector<std::string>& addresses, Deadline deadline) {
  if (listenFd_ < 0) return makeError(loomInvalidUsage, "tcp transport: connect() before listen()");
  rank_ = rank;
  size_ = static_cast<int>(addresses.size());
  peers_.resize(size_);
  for (int p = 0; p < size_; ++p) peers_[p].address = addresses[p];
  for (int p = 0; p < size_; ++p) peers_[p].streams.assign(p == rank_ ? 0 : streamsTo(p), nullptr);
  connecting_ = true;
  // Lower ranks accept, higher ranks connect: each pair has one owner of the set-up.
  for (int p = 0; p < rank_; ++p) {
    for (size_t s = 0; s < peers_[p].streams.size(); ++s) {
      auto fd = connectTo(addresses[p], deadline);
      if (!fd) return makeError(fd.error().code(), "connecting to rank {}: {}", p, fd.error().message());
      chooseCongestion(*fd);
      auto stream = std::make_unique<Stream>(*this, *fd, Stream::Role::Connected);
      stream->coalesce = coalescesWith(*fd);
      stream->peer = p;
      stream->index = static_cast<int>(s);
      wire::Header h{.type = wire::Type::PeerHello, .commId = options_.commId, .epoch = options_.epoch};
      auto frame = wire::encode(h, wire::PeerHello{static_cast<uint32_t>(LOOM_VERSION_CODE), rank_,
                                                    static_cast<uint32_t>(size_), static_cast<uint32_t>(s)});
      LOOM_RETURN_IF_ERROR(writeAll(*fd, frame.data(), frame.size(), deadline));
      addToEpoll(*fd, stream.get());
      streams_.push_back(std::move(stream));
    }
  }
  while (!allEstablished()) {
    if (!setupError_.isOk()) return setupError_;
    if (!failure_.isOk()) return failure_;
    if (deadline.expired())
      return makeError(loomTimeout, "connection set-up timed out; still waiting for ranks {}", missingPeers());
    epoll_event ev;
    epoll_wait(epollFd_, &ev, 1, std::min(deadline.remainingMs(), 50));  // just a wake-up hint
    poll();
  }
  connecting_ = false;
  for (Peer& p : peers_) p.lastHeard = std::chrono::steady_clock::now();
  log::info(log::Subsys::Net, "tcp: rank {} connected to {} peers ({} streams to a peer on this host, {} to one on "
            "another)", rank_, size_ - 1, options_.localStreamsPerPeer, options_.streamsPerPeer);
  return Status::ok();
}

// Both ends of a pair compute the same count from the same address list. On one host the streams
// share the machine's cores and memory, so more of them add syscalls and wake-ups, not bandwidth
// (2 ranks, loopback: a 1 MiB broadcast 4.3 GB/s with one stream, 2.8 with two); across hosts
// several streams keep a link busy that one congestion window would not.
int TcpTransport::streamsTo(int peer) const {
  return sameHost(peers_[rank_].address, peers_[peer].address) ? options_.localStreamsPerPeer
                                                               : options_.streamsPerPeer;
}

void TcpTransport::chooseCongestion(int fd) {
  const uint32_t rttUs = roundTripUs(fd);  // 0: no sample (a retransmitted handshake): far
  const bool near = peerOnThisHost(fd) || (rttUs > 0 && rttUs < options_.nearRttUs);
  const std::string& name = near ? options_.nearCongestion : options_.farCongestion;
  if (name.empty()) return;
  Status s = setCongestionControl(fd, name);  // listen() checked it: a failure here is unexpected
  if (!s.isOk()) log::warn(log::Subsys::Net, "tcp: {}; this connection keeps the system's", s.message());
}

bool TcpTransport::coalescesWith(int fd) const {
  using C = transport::TransportOptions::Coalesce;
  return options_.coalesce == C::Always || (options_.coalesce == C::SameHost && peerOnThisHost(fd));
}

bool TcpTransport::allEstablished() const {
  for (int p = 0; p < size_; ++p)
    for (auto* s : peers_[p].streams)
      if (!s || !s->established) return false;
  return true;
}

std::string TcpTransport::missingPeers() const {
  std::string out;
  for (int p = 0; p < size_; ++p) {
    bool missing = false;
    for (auto* s : peers_[p].streams) missing |= (!s || !s->established);
    if (missing) out += (out.empty() ? "" : ", ") + std::to_string(p);
  }
  return out;
}

void TcpTransport::acceptAll() {
  for (;;) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    tuneDataSocket(fd);
    chooseCongestion(fd);
    auto stream = std::make_unique<Stream>(*this, fd, Stream::Role::Accepted);
    stream->coalesce = coalescesWith(fd);
    addToEpoll(fd, stream.get());
    streams_.push_back(std::move(stream));
  }
}

// An accepted connection introduced itself. Reject anything that is not an expected stream of
// this communicator, telling the other side why, without disturbing established streams.
void TcpTransport::onHello(Stream& s, const wire::Header& h, const wire::PeerHello& hello) {
  auto reject = [&](loomResult_t code, std::string message) {
    log::warn(log::Subsys::Net, "tcp: rejected a connection: {}", message);
    rejectStranger(s, Status(code, std::move(message)));
  };
  if (hello.libraryVersion / 100 != LOOM_VERSION_CODE / 100)
    return reject(loomVersionMismatch, fmt::format("peer library version {} is incompatible with this rank's {}",
                                                   hello.libraryVersion, LOOM_VERSION_CODE));
  if (h.commId != options_.commId)
    return reject(loomInvalidUsage, fmt::format("communicator id {} differs from this communicator's {}", h.commId,
                                                options_.commId));
  if (h.epoch != options_.epoch)
    return reject(loomInvalidUsage, fmt::format("epoch {} differs from this communicator's {}", h.epoch,
                                                options_.epoch));
  if (rank_ < 0 || static_cast<int>(hello.worldSize) != size_ || hello.rank <= rank_ || hello.rank >= size_ ||
      hello.stream >= peers_[hello.rank].streams.size() || peers_[hello.rank].streams[hello.stream])
    return reject(loomInvalidUsage, fmt::format("unexpected connection from rank {} stream {} (world {}): this rank "
                                                "{} of {} is not waiting for it",
                                                hello.rank, hello.stream, hello.worldSize, rank_, size_));
  s.peer = hello.rank;
  s.index = static_cast<int>(hello.stream);
  s.established = true;
  peers_[s.peer].streams[s.index] = &s;
  wire::Header ah{.type = wire::Type::PeerHelloAck, .commId = options_.commId, .epoch = options_.epoch};
  auto frame = wire::encodeEmpty(ah);
  OutFrame f;
  f.owned = std::move(frame);
  f.data = f.owned.data();
  f.dataLen = f.owned.size();
  s.outq.push_back(std::move(f));
  s.flush();
}

void TcpTransport::onHelloAck(Stream& s) {
  s.established = true;
  peers_[s.peer].streams[s.index] = &s;
}

void TcpTransport::onReject(Stream& s, const wire::Reject& r) {
  auto code = static_cast<loomResult_t>(r.code > 0 && r.code < loomNumResults ? r.code : loomRemoteError);
  Status why(code, fmt::format("rank {} rejected the connection: {}", s.peer, r.message));
  if (connecting_) setupError_ = why;
  streamFailed(s, why);
}

void TcpTransport::onOpError(int peer, const wire::OpError& e) {
  // A peer lost anywhere is a peer lost here too (the caller's remedy is the same); anything else
  // that failed on another rank is a remote error.
  auto code = e.code == loomPeerLost ? loomPeerLost : loomRemoteError;
  Status why = makeError(code, "rank {} failed this operation: {}", peer, e.message);
  if (code == loomPeerLost && e.lostRank >= 0 && e.lostRank < size_ && e.lostRank != rank_)
    recordFailure({e.lostRank, "", 0, peer, why});
  remoteErrors_.push_back({Tag{e.tagOp, e.tagSpace, 0}, peer, std::move(why)});
}

void TcpTransport::recordLoss(int peer, const Status& why) {
  recordFailure({peer, peers_[peer].address, peers_[peer].receivedMessages, -1, why});
}

void TcpTransport::recordFailure(transport::PeerFailure f) {
  for (const auto& known : failures_)
    if (known.rank == f.rank) return;
  failures_.push_back(std::move(f));
}

void TcpTransport::streamFailed(Stream& s, const Status& why) {
  if (!s.established && s.peer < 0) {  // a stranger that never introduced itself: tell it why
    log::warn(log::Subsys::Net, "tcp: dropped an unidentified connection: {}", why.message());
    rejectStranger(s, why);
    return;
  }
  log::warn(log::Subsys::Net, "tcp: {}", why.message());
  failPeer(s.peer, why);
}

// The connection to one peer is gone. Its transfers fail, and the transport's health carries the
// cause, so the communicator starts nothing new and tells the other peers who was lost. Transfers
// with the other peers go on: an operation that needs nothing more from the lost peer may still
// complete, and the communicator's agreement step decides its outcome the same way everywhere.
// Connections to the others stay open: closing them would make them blame this rank instead.
void TcpTransport::failPeer(int p, const Status& why) {
  if (failure_.isOk()) failure_ = why;
  Peer& peer = peers_[p];
  recordLoss(p, why);
  if (peer.closed.isOk()) peer.closed = why;
  for (auto& [tag, in] : peer.incoming)
    if (in.recv) fail(in.recv, why);
  peer.incoming.clear();
  peer.stashedBytes = 0;
  for (Stream* s : peer.streams)
    if (s) dropStream(*s, why);
}

void TcpTransport::dropStream(Stream& s, const Status& why) {
  for (auto& f : s.outq) {
    if (!f.send || f.send->done()) continue;
    // An operation fails because of this peer: it counts as failed, even if it left cleanly.
    if (s.peer >= 0 && why.code() == loomPeerLost)
      recordLoss(s.peer, why);
    fail(f.send, why);
  }
  s.outq.clear();
  if (s.fd() >= 0) epoll_ctl(epollFd_, EPOLL_CTL_DEL, s.fd(), nullptr);
  s.close();
}

void TcpTransport::streamClosed(Stream& s) {
  if (s.peer < 0 || !s.established) {
    streamFailed(s, makeError(loomPeerLost, "{} closed the connection during set-up", peerName(s.peer)));
    return;
  }
  int p = s.peer;
  dropStream(s, peerGone(p));  // what was still queued on it can no longer be delivered
  Peer& peer = peers_[p];
  if (++peer.closedStreams < static_cast<int>(peer.streams.size())) return;  // the rest still deliver
  peer.closed = peerGone(p);
  if (hasPendingWith(p)) {
    log::warn(log::Subsys::Net, "tcp: {}", peer.closed.message());
    failPeer(p, peer.closed);
  } else {
    log::info(log::Subsys::Net, "tcp: {}", peer.closed.message());
  }
}

bool TcpTransport::hasPendingWith(int peer) const {
  for (const auto& [tag, in] : peers_[peer].incoming)
    if (in.recv && !in.complete()) return true;
  for (const Stream* s : peers_[peer].streams)
    if (s && !s->outq.empty()) return true;
  return false;
}

// Tells a connection that is not (or not yet) a peer of this communicator why it is refused, then
// drops it; established streams are untouched.
void TcpTransport::rejectStranger(Stream& s, const Status& why) {
  wire::Header h{.type = wire::Type::Reject, .commId = options_.commId, .epoch = options_.epoch};
  auto frame = wire::encode(h, wire::Reject{why.code(), why.message().substr(0, wire::kMaxMessageBytes)});
  (void)::send(s.fd(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  dropStream(s, why);
}

Status TcpTransport::peerGone(int p) const {
  return makeError(loomPeerLost, "{} closed the connection (it left or crashed)", peerName(p));
}

// A message matched a receive but disagrees with it: sizes, or else the operation's signature.
Status TcpTransport::mismatch(int peer, uint64_t gotBytes, uint64_t wantBytes) {
  if (gotBytes != wantBytes)
    return makeError(loomInvalidUsage,
                     "message from rank {} has {} bytes but this rank expected {}: count or datatype differs across "
                     "ranks",
                     peer, gotBytes, wantBytes);
  return makeError(loomInvalidUsage, "operation differs across ranks: rank {} sent another kind, count, datatype, op "
                                     "or root for the same tag",
                   peer);
}

TransferPtr TcpTransport::failed(const Status& why) {
  auto t = std::make_shared<transport::Transfer>();
  t->status = why;
  t->state.store(transport::Transfer::Failed, std::memory_order_release);
  return t;
}

void TcpTransport::complete(const TransferPtr& t) {
  if (!t->done()) t->state.store(transport::Transfer::Done, std::memory_order_release);
}

void TcpTransport::fail(const TransferPtr& t, const Status& why) {
  if (t->done()) return;
  // A failed transfer must carry an error, or its operation would wait on it forever.
  t->status = why.isOk() ? makeError(loomInternalError, "transfer failed without a reason") : why;
  t->state.store(transport::Transfer::Failed, std::memory_order_release);
}

TransferPtr TcpTransport::isend(int peer, const void* buf, size_t bytes, Tag tag, uint64_t signature) {
  if (!shutDown_.isOk()) return failed(shutDown_);
  if (peer < 0 || peer >= size_ || peer == rank_)
    return failed(makeError(loomInvalidArgument, "tcp: send to invalid peer {} (world {})", peer, size_));
  if (!peers_[peer].closed.isOk()) {
    recordLoss(peer, peers_[peer].closed);
    return failed(peers_[peer].closed);
  }
  Peer& p = peers_[peer];
  size_t nstreams = p.streams.size();
  size_t fragments = bytes >= kStripeBytes ? nstreams : 1;
  size_t per = (bytes / fragments + kStripeAlign - 1) / kStripeAlign * kStripeAlign;
  auto state = std::make_shared<SendState>();
  // Counted before the first frame is queued: queueFrame may send it, and the send completes
  // when the last fragment has gone.
  const size_t count = fragments == 1 ? 1 : std::min(fragments, (bytes + per - 1) / per);
  state->fragmentsLeft = static_cast<int>(count);
  size_t first = fragments == 1 ? (p.nextStream++ % nstreams) : 0;
  const uint64_t seq = p.sentMessages++;
  for (size_t i = 0, offset = 0; i < count; ++i) {
    size_t len = fragments == 1 ? bytes : std::min(per, bytes - offset);
    OutFrame f;
    wire::Header h{.type = wire::Type::Data,
                   .payloadBytes = static_cast<uint32_t>(wire::kDataHeaderBytes + len),
                   .commId = options_.commId,
                   .epoch = options_.epoch,
                   .seq = seq};
    wire::DataHeader d{tag.op, tag.space, tag.step, signature, bytes, offset};
    wire::encodeDataPrefix(h, d, f.prefix);
    f.prefixLen = wire::kDataPrefixBytes;
    f.data = static_cast<const uint8_t*>(buf) + offset;
    f.dataLen = len;
    f.send = state;
    queueFrame(peer, (first + i) % nstreams, std::move(f));
    offset += len;
  }
  return state;
}

void TcpTransport::queueFrame(int peer, size_t stream, OutFrame&& frame) {
  Stream* s = peers_[peer].streams[stream];
  if (!s || s->fd() < 0) {  // this stream already saw the peer close: it is going away
    Status why = peers_[peer].closed.isOk() ? peerGone(peer) : peers_[peer].closed;
    if (frame.send) {
      recordLoss(peer, why);
      fail(frame.send, why);
    }
    return;
  }
  s->outq.push_back(std::move(frame));
  if (s->outq.size() == 1) s->flush();  // eager: most small messages leave right here
}

TransferPtr TcpTransport::irecv(int peer, void* buf, size_t bytes, Tag tag, uint64_t signature) {
  if (!shutDown_.isOk()) return failed(shutDown_);
  if (peer < 0 || peer >= size_ || peer == rank_)
    return failed(makeError(loomInvalidArgument, "tcp: receive from invalid peer {} (world {})", peer, size_));
  auto t = std::make_shared<transport::Transfer>();
  auto& map = peers_[peer].incoming;
  auto [it, inserted] = map.try_emplace(tag);
  Incoming& in = it->second;
  in.tag = tag;
  if (!inserted && in.recv) {
    fail(t, makeError(loomInvalidUsage, "a receive from rank {} with tag (op {}, step {}) is already posted", peer,
                      tag.op, tag.step));
    return t;
  }
  if (!peers_[peer].closed.isOk() && !in.complete()) {  // gone, and it sent nothing more for this tag
    if (inserted) map.erase(it);
    recordLoss(peer, peers_[peer].closed);
    return failed(peers_[peer].closed);
  }
  in.recv = t;
  peers_[peer].idleHoldSince = {};  // this rank moved on: a message it holds may wait afresh
  if (peers_[peer].hasHeld) releaseHolds(peer);
  in.userBuf = static_cast<uint8_t*>(buf);
  in.expectedBytes = bytes;
  in.expectedSignature = signature;
  if (!in.arrived) {
    in.direct = in.userBuf;
    return t;
  }
  if (in.totalBytes != bytes || in.signature != signature) {
    fail(t, mismatch(peer, in.totalBytes, bytes));
    in.discard = true;
  }
  if (in.complete()) finishIncoming(peer, tag, in);
  return t;
}

Incoming* TcpTransport::incomingFor(int peer, const wire::DataHeader& d, size_t fragmentBytes, Status& error) {
  if (d.offset > d.totalBytes || fragmentBytes > d.totalBytes - d.offset) {
    error = makeError(loomInvalidArgument, "fragment [{}, +{}) outside a message of {} bytes", d.offset,
                      fragmentBytes, d.totalBytes);
    return nullptr;
  }
  Tag tag{d.tagOp, d.tagSpace, d.tagStep};
  auto [it, inserted] = peers_[peer].incoming.try_emplace(tag);
  Incoming& in = it->second;
  in.tag = tag;
  if (in.arrived) {
    if (in.totalBytes != d.totalBytes) {
      error = makeError(loomInvalidArgument, "fragments of one message disagree on its size");
      return nullptr;
    }
    return &in;
  }
  in.arrived = true;
  in.totalBytes = d.totalBytes;
  in.signature = d.signature;
  if (in.recv) {
    if (in.recv->done()) {
      in.discard = true;  // cancelled
    } else if (d.totalBytes != in.expectedBytes || d.signature != in.expectedSignature) {
      fail(in.recv, mismatch(peer, d.totalBytes, in.expectedBytes));
      in.discard = true;
      in.direct = nullptr;
    }
  } else {
    // Unexpected: keep it until the receive is posted (uninitialised: every byte will be written).
    in.stash = Scratch(d.totalBytes);
    peers_[peer].stashedBytes += d.totalBytes;
    ++stats_.stashedMessages;
    stats_.stashedBytes += d.totalBytes;
  }
  return &in;
}

bool TcpTransport::mustHold(int peer, const wire::DataHeader& d) {
  Peer& p = peers_[peer];
  auto it = p.incoming.find(Tag{d.tagOp, d.tagSpace, d.tagStep});
  if (it != p.incoming.end() && (it->second.recv || it->second.arrived)) return false;  // expected, or begun
  if (p.stashedBytes != 0 && p.stashedBytes + d.totalBytes > kMaxStashedBytesPerPeer) {
    p.idleHoldSince = {};  // held for the stash bound, not for an idle receiver
    return true;
  }
  // Early, while this rank awaits nothing from the peer (a broadcast root or a ring neighbour one
  // operation ahead): leave it in the socket, so once its receive is posted it is read straight
  // into place instead of into the stash and copied again. Bounded in time: a peer blocked on this
  // send while this rank waits for a third one (operations issued in another order) must not wait.
  // Small messages pass through the stream's buffer anyway: for them a hold saves less than its
  // two epoll_ctl calls and the wake-up when reading resumes.
  if (d.totalBytes < kDirectReadBytes || awaitsMessage(p)) return false;
  const auto now = std::chrono::steady_clock::now();
  if (p.idleHoldSince == TimePoint{}) p.idleHoldSince = now;
  // Without a running timer nothing would end the hold of an idle rank: then no hold at all.
  return now - p.idleHoldSince < kIdleHoldLimit && armHoldTimer();
}

bool TcpTransport::armHoldTimer() {
  if (holdTimerArmed_ || holdTimerFd_ < 0) return holdTimerArmed_;
  itimerspec when{};
  when.it_value.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(kIdleHoldTimer).count();
  holdTimerArmed_ = timerfd_settime(holdTimerFd_, 0, &when, nullptr) == 0;
  return holdTimerArmed_;
}

bool TcpTransport::awaitsMessage(const Peer& p) {
  for (const auto& [tag, in] : p.incoming)
    if (in.recv && !in.arrived) return true;
  return false;
}

void TcpTransport::releaseExpiredHolds() {
  const auto now = std::chrono::steady_clock::now();
  bool waiting = false;  // idle holds not yet expired
  for (int p = 0; p < size_; ++p) {
    const Peer& peer = peers_[p];
    if (!peer.hasHeld || peer.idleHoldSince == TimePoint{}) continue;
    if (now - peer.idleHoldSince >= kIdleHoldLimit)
      releaseHolds(p);  // the streams re-check: past the limit, their message goes to the stash
    else
      waiting = true;
  }
  if (waiting) armHoldTimer();
}

void TcpTransport::heardFrom(int peer) {
  if (peer >= 0) peers_[peer].lastHeard = std::chrono::steady_clock::now();
}

void TcpTransport::checkLiveness() {
  const int timeoutMs = options_.peerTimeoutMs;
  if (timeoutMs <= 0 || !failure_.isOk() || connecting_ || peers_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  for (int p = 0; p < size_; ++p) {
    Peer& peer = peers_[p];
    if (p == rank_ || !peer.closed.isOk() || peer.streams.empty() || !peer.streams[0]) continue;
    // A held stream is a peer sending faster than this rank takes: alive.
    if (peer.hasHeld) peer.lastHeard = now;
    const auto silentMs = std::chrono::duration_cast<std::chrono::milliseconds>(now - peer.lastHeard).count();
    if (silentMs > timeoutMs) {
      failPeer(p, makeError(loomPeerLost, "{} sent nothing for {} ms (LOOM_PEER_TIMEOUT_MS={}): it is frozen or "
                                          "its link is down",
                            peerName(p), silentMs, timeoutMs));
      return;  // failPeer failed the transport; the communicator reports it
    }
    // A heartbeat only where nothing is queued: queued bytes reach the peer first anyway.
    Stream* s = peer.streams[0];
    if (s->fd() >= 0 && s->outq.empty()) {
      wire::Header h{.type = wire::Type::Heartbeat, .commId = options_.commId, .epoch = options_.epoch};
      OutFrame f;
      f.owned = wire::encodeEmpty(h);
      f.data = f.owned.data();
      f.dataLen = f.owned.size();
      queueFrame(p, 0, std::move(f));
    }
  }
}

void TcpTransport::holdStream(Stream& s) {
  peers_[s.peer].hasHeld = true;
  setReading(s, false);
}

void TcpTransport::releaseHolds(int peer) {
  Peer& p = peers_[peer];
  p.hasHeld = false;
  for (Stream* s : p.streams) {
    if (!s || !s->held) continue;
    s->held = false;  // the stream re-checks its next message, and holds again if still needed
    if (s->fd() >= 0) setReading(*s, true);
    resumed_.push_back(s);
  }
}

void TcpTransport::incomingProgress(int peer, Incoming* in, size_t bytes) {
  in->received += bytes;
  if (in->complete()) finishIncoming(peer, in->tag, *in);
}

void TcpTransport::finishIncoming(int peer, Tag tag, Incoming& in) {
  if (!in.recv) {
    if (in.discard) peers_[peer].incoming.erase(tag);
    return;  // unexpected and complete: waits for its receive
  }
  if (!in.discard && !in.direct && in.totalBytes) std::memcpy(in.userBuf, in.stash.data(), in.totalBytes);
  if (in.stash.data()) {
    peers_[peer].stashedBytes -= in.totalBytes;
    in.stash = Scratch();  // back to the pool
    if (peers_[peer].hasHeld) releaseHolds(peer);
  }
  if (!in.discard) complete(in.recv);
  ++stats_.receivedMessages;
  stats_.receivedBytes += in.totalBytes;
  ++peers_[peer].receivedMessages;
  peers_[peer].incoming.erase(tag);
}

void TcpTransport::cancel(const TransferPtr& t, const Status& why) {
  if (t->done()) return;
  fail(t, why);
  for (int p = 0; p < size_; ++p) {
    auto& map = peers_[p].incoming;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->second.recv != t) continue;
      Incoming& in = it->second;
      if (!in.arrived) {
        map.erase(it);
      } else {
        in.discard = true;  // bytes still in flight are dropped
        in.direct = nullptr;
        in.recv = nullptr;
        if (in.complete()) map.erase(it);
      }
      return;
    }
    for (Stream* s : peers_[p].streams) {
      if (!s) continue;
      // A fragment not yet started is withdrawn; one partly on the wire cannot be (the byte
      // stream announced its length), so its bytes are copied out of the user's buffer.
      for (auto it = s->outq.begin(); it != s->outq.end();) {
        if (!it->send || it->send.get() != t.get()) {
          ++it;
        } else if (it->sent == 0) {
          it = s->outq.erase(it);
        } else {
          if (it->owned.empty()) {
            it->owned.assign(it->data, it->data + it->dataLen);
            it->data = it->owned.data();
          }
          it->send = nullptr;
          ++it;
        }
      }
    }
  }
}

void TcpTransport::sendOpError(Tag tag, const Status& why) {
  wire::Header h{.type = wire::Type::OpError, .commId = options_.commId, .epoch = options_.epoch};
  // A lost peer is named, so a rank that never talked to it can say which one it was.
  const int32_t lostRank = why.code() == loomPeerLost && !failures_.empty() ? failures_.front().rank : -1;
  auto frame = wire::encode(h, wire::OpError{tag.op, tag.space, static_cast<int32_t>(why.code()), lostRank,
                                             why.message().substr(0, wire::kMaxMessageBytes)});
  for (int p = 0; p < size_; ++p) {
    if (p == rank_ || !peers_[p].closed.isOk()) continue;
    OutFrame f;
    f.owned = frame;
    f.data = f.owned.data();
    f.dataLen = f.owned.size();
    queueFrame(p, 0, std::move(f));
  }
}

std::vector<transport::RemoteOpError> TcpTransport::takeRemoteOpErrors() { return std::exchange(remoteErrors_, {}); }

bool TcpTransport::poll() {
  if (epollFd_ < 0) return false;
  bool moved = false;
  if (holdTimerArmed_) releaseExpiredHolds();  // armed: an idle hold may be waiting
  while (!resumed_.empty()) {
    Stream* s = resumed_.back();
    resumed_.pop_back();
    if (s->fd() >= 0 && !s->held) s->resume();
    moved = true;
  }
  epoll_event events[64];
  int n = epoll_wait(epollFd_, events, 64, 0);
  for (int i = 0; i < n; ++i) {
    if (events[i].data.ptr == &holdTimerMark) {
      uint64_t expirations;
      [[maybe_unused]] ssize_t r = ::read(holdTimerFd_, &expirations, sizeof expirations);
      holdTimerArmed_ = false;
      releaseExpiredHolds();  // and re-arms while holds still wait
      moved = true;
      continue;
    }
    auto* s = static_cast<Stream*>(events[i].data.ptr);
    if (!s) {
      acceptAll();
      continue;
    }
    if (s->fd() < 0) continue;
    if (events[i].events & EPOLLOUT) s->flush();
    if (s->fd() >= 0 && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      s->onReadable((events[i].events & (EPOLLERR | EPOLLHUP)) != 0);
  }
  // Nothing more to read: acknowledge what was read at once (tcp_coalesce.cc).
  if (n == 0 && !ackOwed_.empty()) {
    for (Stream* s : ackOwed_) s->acknowledgeIfOwed();
    ackOwed_.clear();
  }
  return moved || n > 0;
}

void TcpTransport::failAll(const Status& why) {
  if (failure_.isOk()) failure_ = why;
  if (shutDown_.isOk()) shutDown_ = why;
  for (auto& peer : peers_) {
    for (auto& [tag, in] : peer.incoming)
      if (in.recv) fail(in.recv, why);
    peer.incoming.clear();
    peer.stashedBytes = 0;
  }
  resumed_.clear();
  for (auto& s : streams_) dropStream(*s, why);
}

void TcpTransport::shutdown(const Status& why) {
  failAll(why);
  if (listenFd_ >= 0) epoll_ctl(epollFd_, EPOLL_CTL_DEL, listenFd_, nullptr);
  closeFd(listenFd_);
}

}  // namespace loom::tcp

namespace loom::transport {
std::unique_ptr<Transport> makeTcpTransport(const TransportOptions& options) {
  return std::make_unique<tcp::TcpTransport>(options);
}
}  // namespace loom::transport
