// A rank's coordinator connection, on plain POSIX sockets: it is linked into every rank, so it
// stays free of Boost and threads. The rendezvous blocks in poll() against the caller's deadline;
// afterwards the socket is non-blocking and the communicator's event loop drives it.
#include "coordinator/client.h"

#include "protocol/wire.h"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace loom::coord {
namespace {

constexpr int kLeaveFlushMs = 100;  // leave() waits at most this long for a full send buffer

// Owns one fd; closes it on destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// poll() one fd for `events` until the deadline; EINTR restarts with the time left.
// Returns >0 ready, 0 timed out, -1 error (errno set).
int pollFor(int fd, short events, const Deadline& deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, deadline.remainingMs());
    if (n >= 0 || errno != EINTR) return n;
  }
}

std::string hostPortText(const std::string& host, uint16_t port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

Status unreachable(const std::string& where, int err) {
  return makeError(loomSystemError, "cannot reach coordinator at {}: {} (is it running? set LOOM_COORDINATOR)", where,
                   std::strerror(err));
}

// Non-blocking connect to every address the name resolves to, in order, within the deadline.
Expected<Fd> connectTo(const std::string& host, uint16_t port, const Deadline& deadline) {
  const std::string where = hostPortText(host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return makeError(loomSystemError, "cannot resolve coordinator host '{}': {} (set LOOM_COORDINATOR)", host,
                     rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);

  int lastErr = ECONNREFUSED;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      lastErr = errno;
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
      lastErr = errno;
      continue;
    }
    int ready = pollFor(fd.get(), POLLOUT, deadline);
    if (ready == 0)
      return makeError(loomTimeout, "connecting to the coordinator at {} timed out (is it reachable? set "
                                    "LOOM_COORDINATOR)", where);
    int err = 0;
    socklen_t len = sizeof(err);
    if (ready < 0)
      err = errno;
    else if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err == 0) return fd;
    lastErr = err;
  }
  return unreachable(where, lastErr);
}

Membership membershipOf(const wire::Header& h, wire::JoinAccept&& a) {
  Membership m;
  m.commId = h.commId;
  m.epoch = h.epoch;
  m.rank = a.rank;
  m.size = static_cast<int>(a.worldSize);
  m.heartbeatMs = static_cast<int>(a.heartbeatMs);
  m.addresses = std::move(a.addresses);
  m.previousRanks.assign(a.previousRanks.begin(), a.previousRanks.end());
  return m;
}

class ClientImpl final : public Client {
 public:
  ClientImpl(Fd fd, std::string host, uint16_t port)
      : fd_(std::move(fd)), host_(std::move(host)), port_(port), where_(hostPortText(host_, port_)) {}

  Status rendezvous(uint64_t commId, int worldSize, int requestedRank, const std::string& myAddress,
                    const Deadline& deadline, const JoinOptions& options);
  const Membership& membership() const override { return membership_; }
  int fd() const override { return fd_.get(); }
  Status sendHeartbeat() override;
  Status onReadable() override;
  void leave() override;
  Status requestUpdate(const std::string& nextAddress, const std::vector<int>& suspects, bool leaving,
                       int timeoutMs) override;
  Expected<Membership> awaitEpoch(Deadline deadline, bool readSocket) override;
  int pendingJoiners() const override { return pending_.load(std::memory_order_relaxed); }
  bool connected() override {
    std::lock_guard lock(mu_);
    return broken_.isOk() && fd() >= 0;
  }
  Status reconnect(int rank, int size, uint64_t epoch, const std::string& myAddress, uint32_t maxWorld,
                   Deadline deadline) override;

 private:
  wire::Header header(wire::Type t) {
    wire::Header h;
    h.type = t;
    h.commId = membership_.commId;
    h.epoch = membership_.epoch;
    h.seq = nextSeq_++;
    return h;
  }
  // Writes as much of tx_ as the socket takes now; errors become sticky.
  Status flush();
  // Pops one complete frame off rx_, if there is one.
  Expected<bool> nextFrame(wire::Header& h, std::vector<uint8_t>& payload);
  Status fail(Status s) {
    if (broken_.isOk()) broken_ = std::move(s);
    cv_.notify_all();  // an awaitEpoch() learns why
    return broken_;
  }

  Fd fd_;
  std::string host_;
  uint16_t port_ = 0;
  std::string where_;  // "host:port" of the coordinator, for messages
  Membership membership_;
  uint64_t nextSeq_ = 1;
  std::vector<uint8_t> rx_;  // bytes received, not yet a complete frame
  std::vector<uint8_t> tx_;  // the unsent tail of a partially written frame
  Status broken_;            // sticky: once the connection failed, every call reports why
  // Guards everything above against the two threads that use it: the event loop (heartbeats,
  // reads) and the caller of requestUpdate/awaitEpoch.
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Membership> nextEpoch_;  // an EpochStart read by the event loop, not yet taken
  std::atomic<int> pending_{0};
};

Status ClientImpl::rendezvous(uint64_t commId, int worldSize, int requestedRank, const std::string& myAddress,
                              const Deadline& deadline, const JoinOptions& options) {
  membership_.commId = commId;
  wire::Header jh = header(wire::Type::JoinRequest);
  if (options.running) jh.flags |= wire::kJoinRunning;
  tx_ = wire::encode(jh, wire::JoinRequest{LOOM_VERSION_CODE, uint32_t(worldSize), requestedRank, myAddress,
                                           options.maxWorld});
  while (!tx_.empty()) {
    LOOM_RETURN_IF_ERROR(flush());
    if (!tx_.empty() && pollFor(fd(), POLLOUT, deadline) == 0)
      return makeError(loomTimeout, "sending the JoinRequest to the coordinator at {} timed out", where_);
  }

  wire::Header h;
  std::vector<uint8_t> payload;
  for (;;) {
    auto got = nextFrame(h, payload);
    if (!got) return got.error();
    if (*got) break;
    int ready = pollFor(fd(), POLLIN, deadline);
      if (ready == 0 && options.running)
      return makeError(loomTimeout,
                       "joining communicator {:#x} at the coordinator {} timed out: its members did not admit this "
                       "rank (loomCommUpdate) before the deadline",
                       commId, where_);
    if (ready == 0)
      return makeError(loomTimeout,
                       "rendezvous of communicator {:#x} at the coordinator {} timed out: not all {} ranks joined "
                       "before the deadline",
                       commId, where_, worldSize);
    if (ready < 0) return makeError(loomSystemError, "poll on the coordinator connection: {}", std::strerror(errno));
    char buf[4096];
    ssize_t n = ::recv(fd(), buf, sizeof buf, 0);
    if (n == 0)
      return makeError(loomSystemError, "the coordinator at {} closed the connection during the rendezvous", where_);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return makeError(loomSystemError, "reading from the coordinator at {}: {}", where_, std::strerror(errno));
    if (n > 0) rx_.insert(rx_.end(), buf, buf + n);
  }

  if (h.type == wire::Type::Reject) {
    auto r = wire::decodeReject(payload);
    if (!r) return r.error();
    return Status(loomResult_t(r->code),
                  fmt::format("the coordinator at {} refused to join communicator {:#x}: {}", where_, commId,
                              r->message));
  }
  if (h.type != wire::Type::JoinAccept)
    return makeError(loomInternalError, "the coordinator at {} answered the JoinRequest with {}", where_,
                     wire::typeName(h.type));
  auto a = wire::decodeJoinAccept(payload);
  if (!a) return a.error();
  if (h.commId != commId ||
      (!options.running && (a->worldSize != uint32_t(worldSize) || (requestedRank >= 0 && a->rank != requestedRank))))
    return makeError(loomInternalError,
                     "the coordinator at {} accepted communicator {:#x} rank {} of {}, but this rank asked for "
                     "{:#x} rank {} of {}",
                     where_, h.commId, a->rank, a->worldSize, commId, requestedRank, worldSize);
  membership_ = membershipOf(h, std::move(*a));
  return Status::ok();
}

Status ClientImpl::flush() {
  while (!tx_.empty()) {
    ssize_t n = ::send(fd(), tx_.data(), tx_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::ok();
      return fail(makeError(loomSystemError, "writing to the coordinator at {}: {}", where_, std::strerror(errno)));
    }
    tx_.erase(tx_.begin(), tx_.begin() + n);
  }
  return Status::ok();
}

Expected<bool> ClientImpl::nextFrame(wire::Header& h, std::vector<uint8_t>& payload) {
  if (rx_.size() < wire::kHeaderBytes) return false;
  auto head = wire::decodeHeader(rx_);
  if (!head)
    return Status(head.error().code(),
                  fmt::format("bad frame from the coordinator at {}: {}", where_, head.error().message()));
  const size_t total = wire::kHeaderBytes + head->payloadBytes;
  if (rx_.size() < total) return false;
  h = *head;
  payload.assign(rx_.begin() + wire::kHeaderBytes, rx_.begin() + total);
  rx_.erase(rx_.begin(), rx_.begin() + total);
  return true;
}

Status ClientImpl::sendHeartbeat() {
  std::lock_guard lock(mu_);
  LOOM_RETURN_IF_ERROR(broken_);
  LOOM_RETURN_IF_ERROR(flush());
  // The tail of an earlier frame is still queued: the socket is full, so this beat is dropped
  // (the next one says the same thing).
  if (!tx_.empty()) return Status::ok();
  tx_ = wire::encodeEmpty(header(wire::Type::Heartbeat));
  LOOM_RETURN_IF_ERROR(flush());
  if (tx_.size() == wire::kHeaderBytes) tx_.clear();  // nothing went out: drop it whole
  return Status::ok();
}

Status ClientImpl::onReadable() {
  std::lock_guard lock(mu_);
  LOOM_RETURN_IF_ERROR(broken_);
  Status closed;  // EOF or a read error; reported after the frames that arrived before it
  for (;;) {
    char buf[4096];
    ssize_t n = ::recv(fd(), buf, sizeof buf, 0);
    if (n > 0) {
      rx_.insert(rx_.end(), buf, buf + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    closed = n == 0
                 ? makeError(loomSystemError, "the coordinator at {} closed the connection", where_)
                 : makeError(loomSystemError, "reading from the coordinator at {}: {}", where_, std::strerror(errno));
    break;
  }
  wire::Header h;
  std::vector<uint8_t> payload;
  for (;;) {
    auto got = nextFrame(h, payload);
    if (!got) return fail(got.error());
    if (!*got) break;
    if (h.type == wire::Type::HeartbeatAck) continue;
    if (h.type == wire::Type::PendingNotice) {
      auto n = wire::decodePendingNotice(payload);
      if (!n) return fail(n.error());
      pending_.store(static_cast<int>(n->joiners), std::memory_order_relaxed);
      continue;
    }
    if (h.type == wire::Type::EpochStart) {
      auto a = wire::decodeJoinAccept(payload);
      if (!a) return fail(a.error());
      nextEpoch_ = membershipOf(h, std::move(*a));
      membership_.epoch = h.epoch;  // heartbeats from now on speak of the new epoch
      pending_.store(0, std::memory_order_relaxed);
      cv_.notify_all();
      continue;
    }
    if (h.type == wire::Type::Reject) {  // says more than the EOF that follows it
      auto r = wire::decodeReject(payload);
      if (!r) return fail(r.error());
      return fail(Status(loomResult_t(r->code), fmt::format("the coordinator at {} removed rank {}: {}", where_,
                                                            membership_.rank, r->message)));
    }
    return fail(makeError(loomInvalidArgument, "unexpected {} frame from the coordinator at {}",
                          wire::typeName(h.type), where_));
  }
  return closed.isOk() ? Status::ok() : fail(std::move(closed));
}

Status ClientImpl::requestUpdate(const std::string& nextAddress, const std::vector<int>& suspects, bool leaving,
                                 int timeoutMs) {
  std::lock_guard lock(mu_);
  LOOM_RETURN_IF_ERROR(broken_);
  nextEpoch_.reset();
  wire::UpdateRequest req;
  req.flags = leaving ? wire::kUpdateLeaving : 0;
  req.timeoutMs = static_cast<uint32_t>(std::max(timeoutMs, 0));
  req.address = nextAddress;
  req.suspects.assign(suspects.begin(), suspects.end());
  std::vector<uint8_t> frame = wire::encode(header(wire::Type::UpdateRequest), req);
  tx_.insert(tx_.end(), frame.begin(), frame.end());
  // Small, and the socket is nearly always writable; bounded all the same.
  Deadline deadline = Deadline::afterMs(1000);
  while (!tx_.empty()) {
    LOOM_RETURN_IF_ERROR(flush());
    if (!tx_.empty() && pollFor(fd(), POLLOUT, deadline) == 0)
      return fail(makeError(loomTimeout, "the coordinator at {} does not take the UpdateRequest", where_));
  }
  return Status::ok();
}

Expected<Membership> ClientImpl::awaitEpoch(Deadline deadline, bool readSocket) {
  while (readSocket && !deadline.expired()) {
    {
      std::lock_guard lock(mu_);
      if (nextEpoch_ || !broken_.isOk()) break;
    }
    if (pollFor(fd(), POLLIN, Deadline::afterMs(50).earlier(deadline)) > 0) (void)onReadable();
  }
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(deadline.remainingMs()),
               [&] { return nextEpoch_.has_value() || !broken_.isOk(); });
  if (nextEpoch_) {
    Membership m = std::move(*nextEpoch_);
    nextEpoch_.reset();
    membership_ = m;
    return m;
  }
  if (!broken_.isOk()) return broken_;
  return makeError(loomTimeout, "the coordinator at {} started no new epoch of communicator {:#x} before the deadline",
                   where_, membership_.commId);
}

Status ClientImpl::reconnect(int rank, int size, uint64_t epoch, const std::string& myAddress, uint32_t maxWorld,
                             Deadline deadline) {
  auto fd = connectTo(host_, port_, deadline);
  if (!fd) return fd.error();
  int one = 1;
  ::setsockopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::lock_guard lock(mu_);
  fd_ = std::move(*fd);
  rx_.clear();
  tx_.clear();
  broken_ = Status::ok();
  membership_.epoch = epoch;
  wire::Header h = header(wire::Type::JoinRequest);
  h.flags = wire::kJoinRunning | wire::kRejoin;
  tx_ = wire::encode(h, wire::JoinRequest{LOOM_VERSION_CODE, uint32_t(size), rank, myAddress, maxWorld});
  while (!tx_.empty()) {
    LOOM_RETURN_IF_ERROR(flush());
    if (!tx_.empty() && pollFor(fd_.get(), POLLOUT, deadline) == 0)
      return fail(makeError(loomTimeout, "sending the rejoin to the coordinator at {} timed out", where_));
  }
  return Status::ok();
}

void ClientImpl::leave() {
  std::lock_guard lock(mu_);
  if (fd() < 0) return;
  if (broken_.isOk()) {
    // Best effort, bounded: finish any partial frame, then say goodbye.
    Deadline deadline = Deadline::afterMs(kLeaveFlushMs);
    std::vector<uint8_t> bye = wire::encodeEmpty(header(wire::Type::Leave));
    tx_.insert(tx_.end(), bye.begin(), bye.end());
    while (!tx_.empty() && flush().isOk() && !tx_.empty() && pollFor(fd(), POLLOUT, deadline) > 0) {
    }
  }
  fd_.reset();
  broken_ = makeError(loomInvalidUsage, "this rank left the coordinator at {}", where_);
}

}  // namespace

Expected<std::pair<std::string, uint16_t>> parseHostPort(const std::string& text) {
  auto bad = [&](const char* why) {
    return makeError(loomInvalidArgument, "address '{}' is not HOST:PORT or [IPV6]:PORT: {}", text, why);
  };
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing ':PORT' after ']'");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return bad("missing ':PORT'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("write an IPv6 address in brackets");
  }
  if (host.empty()) return bad("empty host");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return bad("the port is not a number");
  unsigned long value = std::stoul(port);
  if (value > 65535) return bad("the port is over 65535");
  return std::make_pair(host, static_cast<uint16_t>(value));
}

Expected<std::unique_ptr<Client>> Client::join(const std::string& coordinator, uint64_t commId, int worldSize,
                                               int requestedRank, const std::string& myAddress, Deadline deadline,
                                               const JoinOptions& options) {
  const int retryRefusedMs = options.retryRefusedMs;
  if (worldSize < 1 || uint32_t(worldSize) > wire::kMaxWorldSize)
    return makeError(loomInvalidArgument, "world size {} is outside 1..{}", worldSize, wire::kMaxWorldSize);
  if (requestedRank < -1 || requestedRank >= worldSize)
    return makeError(loomInvalidArgument, "rank {} is outside 0..{} (or -1: any)", requestedRank, worldSize - 1);
  if (myAddress.size() > wire::kMaxAddressBytes)
    return makeError(loomInvalidArgument, "this rank's address is {} bytes, limit {}", myAddress.size(),
                     wire::kMaxAddressBytes);
  auto hostPort = parseHostPort(coordinator);
  if (!hostPort) return hostPort.error();
  // Ranks start in any order (torchrun starts them together, and rank 0 hosts the coordinator):
  // a refused connection is retried for a while before it counts as unreachable.
  const Deadline retryUntil = Deadline::afterMs(retryRefusedMs).earlier(deadline);
  auto fd = connectTo(hostPort->first, hostPort->second, deadline);
  while (!fd && fd.error().code() == loomSystemError && !retryUntil.expired()) {
    ::usleep(20 * 1000);
    fd = connectTo(hostPort->first, hostPort->second, deadline);
  }
  if (!fd) return fd.error();
  int one = 1;
  ::setsockopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // heartbeats are tiny: no Nagle delay
  auto client = std::make_unique<ClientImpl>(std::move(*fd), hostPort->first, hostPort->second);
  LOOM_RETURN_IF_ERROR(client->rendezvous(commId, worldSize, requestedRank, myAddress, deadline, options));
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace loom::coord
