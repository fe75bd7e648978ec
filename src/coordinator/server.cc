// The coordinator server: one io_context on one thread. A coroutine per connection reads frames and
// hands them to the Registry (all protocol rules live there); replies go through a per-connection
// write queue, because the session that completes a rendezvous writes to every member's socket.
// Everything runs on the io thread, so no state here needs a lock.
#include <utility>  // before any Boost header: Boost 1.74's coroutine support needs it under g++ 12

#include "coordinator/server.h"

#include "coordinator/registry.h"
#include "core/log.h"
#include "protocol/wire.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace loom::coord {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;

constexpr auto kRejectLinger = std::chrono::seconds(2);  // time a rejected peer gets to read its Reject
constexpr size_t kMaxQueuedFrames = 1024;                // a peer this far behind on reading is dropped

std::string hostPortText(const std::string& host, uint16_t port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}
std::string endpointText(const tcp::endpoint& ep) { return hostPortText(ep.address().to_string(), ep.port()); }

// Frame types a peer may send the coordinator; anything else is refused on its header alone,
// before the payload is read (a JoinAccept header could otherwise claim 16 MiB).
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  log::info(log::Subsys::Coord, f, std::forward<Args>(args)...);
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  log::warn(log::Subsys::Coord, f, std::forward<Args>(args)...);
}

bool fromPeer(wire::Type t) {
  return t == wire::Type::JoinRequest || t == wire::Type::Heartbeat || t == wire::Type::Leave ||
         t == wire::Type::Reject || t == wire::Type::UpdateRequest;
}

// How often pending updates are looked at (members falling silent, update timeouts).
constexpr auto kSettlePeriod = std::chrono::milliseconds(20);

struct Conn {
  Conn(tcp::socket s, PeerId i) : socket(std::move(s)), linger(socket.get_executor()), id(i) {}
  tcp::socket socket;
  asio::steady_timer linger;  // closes a rejected connection the peer does not close itself
  PeerId id;
  std::string remote;  // "ip:port", for logs
  std::deque<std::vector<uint8_t>> outq;
  bool writing = false;
  bool rejected = false;  // a Reject is queued: shut the send side down once it is written
};
using ConnPtr = std::shared_ptr<Conn>;

class ServerImpl final : public Server {
 public:
  explicit ServerImpl(const ServerOptions& o) : opt_(o), registry_(static_cast<uint32_t>(o.heartbeatMs)) {}
  ~ServerImpl() override { stop(); }

  Status listen();
  void run();
  std::string address() const override { return address_; }
  void stop() override;
  uint64_t communicatorsStarted() const override { return started_.load(); }

 private:
  awaitable<void> acceptLoop();
  awaitable<void> session(ConnPtr c);
  awaitable<void> writer(ConnPtr c);
  awaitable<void> sweepLoop();
  Status handle(const ConnPtr& c, const wire::Header& h, std::span<const uint8_t> payload);
  Status onJoin(const ConnPtr& c, const wire::Header& h, std::span<const uint8_t> payload);
  Status onUpdate(const ConnPtr& c, const wire::Header& h, std::span<const uint8_t> payload);
  awaitable<void> settleLoop();
  void startEpoch(const EpochChange& change);
  void tellPending(uint64_t commId);
  wire::Header header(wire::Type t, uint64_t commId, uint64_t epoch);
  void send(const ConnPtr& c, std::vector<uint8_t> frame);
  void reject(const ConnPtr& c, uint64_t commId, const Status& why);
  void departed(const ConnPtr& c, const char* how);
  void closeAll();

  ServerOptions opt_;
  asio::io_context io_{1};  // declared before everything that holds an I/O object
  tcp::acceptor acceptor_{io_};
  asio::steady_timer sweep_{io_};
  asio::steady_timer settle_{io_};
  Registry registry_;
  std::unordered_map<PeerId, ConnPtr> conns_;
  PeerId nextPeer_ = 1;
  uint64_t nextSeq_ = 1;  // over every frame sent, so each connection sees an increasing seq
  bool stopping_ = false;
  std::atomic<uint64_t> started_{0};  // communicatorsStarted(), read from other threads
  std::string address_;
  std::mutex stopMutex_;
  std::thread thread_;
  std::future<void> done_;
};

Status ServerImpl::listen() {
  const std::string where = hostPortText(opt_.host, opt_.port);
  error_code ec;
  auto addr = asio::ip::make_address(opt_.host, ec);
  if (ec) {  // a name: resolve it here, before the io thread exists, so blocking is harmless
    tcp::resolver resolver(io_);
    auto found = resolver.resolve(opt_.host, std::to_string(opt_.port), ec);
    if (ec || found.empty())
      return makeError(loomSystemError, "cannot listen on {}: cannot resolve '{}': {}", where, opt_.host,
                       ec ? ec.message() : "no addresses");
    addr = found.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, opt_.port);
  acceptor_.open(ep.protocol(), ec);
  // SO_REUSEADDR lets a restarted coordinator reuse a port held only by TIME_WAIT connections; a
  // live listener on the port still makes bind fail.
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return makeError(loomSystemError, "cannot listen on {}: {}", where, ec.message());
  address_ = endpointText(acceptor_.local_endpoint());
  return Status::ok();
}

void ServerImpl::run() {
  asio::co_spawn(io_, acceptLoop(), asio::detached);
  if (opt_.rendezvousTimeoutMs > 0) asio::co_spawn(io_, sweepLoop(), asio::detached);
  asio::co_spawn(io_, settleLoop(), asio::detached);
  std::packaged_task<void()> task([this] {
    log::nameThread("loom-coord");
    io_.run();
  });
  done_ = task.get_future();
  thread_ = std::thread(std::move(task));
}

void ServerImpl::stop() {
  std::lock_guard lock(stopMutex_);
  if (!thread_.joinable()) return;
  asio::post(io_, [this] { closeAll(); });
  // Closing every socket ends every coroutine; should one still be busy, stop the loop anyway so
  // stop() stays bounded. Its frame is then destroyed with the io_context.
  if (done_.wait_for(std::chrono::milliseconds(800)) != std::future_status::ready) io_.stop();
  thread_.join();
}

void ServerImpl::closeAll() {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  sweep_.cancel();
  settle_.cancel();
  for (auto& [id, c] : conns_) {
    c->linger.cancel();
    c->socket.close(ignored);
  }
  conns_.clear();
}

awaitable<void> ServerImpl::acceptLoop() {
  for (;;) {
    error_code ec;
    tcp::socket s = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (stopping_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: back off so a persistent error does not spin the loop.
      warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    s.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<Conn>(std::move(s), nextPeer_++);
    auto remote = c->socket.remote_endpoint(ec);
    c->remote = ec ? std::string("?") : endpointText(remote);
    conns_[c->id] = c;
    asio::co_spawn(io_, session(c), asio::detached);
  }
}

awaitable<void> ServerImpl::session(ConnPtr c) {
  std::array<uint8_t, wire::kHeaderBytes> head{};
  std::vector<uint8_t> payload;
  error_code ec;
  for (;;) {
    co_await asio::async_read(c->socket, asio::buffer(head), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    auto h = wire::decodeHeader(head);
    if (!h) {
      reject(c, 0, h.error());
      break;
    }
    if (!fromPeer(h->type)) {
      reject(c, h->commId,
             makeError(loomInvalidArgument, "the coordinator does not accept {} frames (from {})",
                       wire::typeName(h->type), c->remote));
      break;
    }
    payload.resize(h->payloadBytes);
    co_await asio::async_read(c->socket, asio::buffer(payload), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    if (Status s = handle(c, *h, payload); !s) {
      reject(c, h->commId, s);
      break;
    }
  }
  if (c->rejected && !ec) {
    // Let the peer read its Reject: closing now could reset the connection under it. Read until
    // it closes, or until the linger timer closes the socket.
    std::array<uint8_t, 512> sink;
    while (!ec) co_await c->socket.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
  }
  departed(c, ec == asio::error::eof ? "disconnected" : "lost its connection");
  c->linger.cancel();
  c->socket.close(ec);
  conns_.erase(c->id);
}

Status ServerImpl::handle(const ConnPtr& c, const wire::Header& h, std::span<const uint8_t> payload) {
  switch (h.type) {
    case wire::Type::JoinRequest:
      return onJoin(c, h, payload);
    case wire::Type::Heartbeat: {
      registry_.heartbeat(c->id, Clock::now());
      const Communicator* comm = registry_.communicatorOf(c->id);
      send(c, wire::encodeEmpty(header(wire::Type::HeartbeatAck, comm ? comm->commId : h.commId,
                                       comm ? comm->epoch : 0)));
      return Status::ok();
    }
    case wire::Type::Leave:
      departed(c, "left");
      return Status::ok();
    case wire::Type::UpdateRequest:
      return onUpdate(c, h, payload);
    case wire::Type::Reject: {  // the peer gives up on us; it closes next
      auto m = wire::decodeReject(payload);
      info("{} sent Reject: {}", c->remote, m ? Status(loomResult_t(m->code), m->message).toString() : "(malformed)");
      departed(c, "rejected the coordinator");
      return Status::ok();
    }
    default:
      return makeError(loomInternalError, "unexpected {} frame", wire::typeName(h.type));
  }
}

Status ServerImpl::onJoin(const ConnPtr& c, const wire::Header& h, std::span<const uint8_t> payload) {
  auto req = wire::decodeJoinRequest(payload);
  if (!req) return req.error();
  const bool running = (h.flags & wire::kJoinRunning) != 0;
  if (running && (h.flags & wire::kRejoin) != 0) {
    LOOM_RETURN_IF_ERROR(registry_.rejoin(c->id, h.commId, h.epoch, *req, Clock::now()));
    info("communicator {:#x}: rank {} ('{}', {}) reconnected at epoch {}", h.commId, req->requestedRank, req->address,
         c->remote, h.epoch);
    if (registry_.pendingJoiners(h.commId).first > 0) tellPending(h.commId);
    return Status::ok();
  }
  auto joined = registry_.join(c->id, h.commId, *req, Clock::now(), running);
  if (!joined) return joined.error();
  if (running) {
    info("communicator {:#x}: {} ('{}') waits to join at the next update", h.commId, c->remote, req->address);
    tellPending(h.commId);
    return Status::ok();
  }
  if (!joined->has_value()) {
    const Communicator* comm = registry_.find(h.commId);
    info("communicator {:#x}: {} ('{}') waiting for the world, {} of {}", h.commId, c->remote, req->address,
        comm->pending.size(), comm->worldSize);
    return Status::ok();
  }
  const Rendezvous& rv = **joined;
  for (const auto& [peer, accept] : rv.accepts)
    if (auto it = conns_.find(peer); it != conns_.end())
      send(it->second, wire::encode(header(wire::Type::JoinAccept, rv.commId, rv.epoch), accept));
  info("communicator {:#x}: all {} ranks joined, epoch {}", rv.commId, rv.accepts.size(), rv.epoch);
  started_.fetch_add(1);
  if (registry_.pendingJoiners(rv.commId).first > 0) tellPending(rv.commId);  // joiners came early
  return Status::ok();
}

Status ServerImpl::onUpdate(const ConnPtr& c, const wire::Header& h, std::span<const uint8_t> payload) {
  auto req = wire::decodeUpdateRequest(payload);
  if (!req) return req.error();
  auto change = registry_.requestUpdate(c->id, h.epoch, *req, Clock::now());
  if (!change) return change.error();
  if (change->has_value()) startEpoch(**change);
  return Status::ok();
}

// Members learn their new rank and peers (EpochStart), joiners are admitted (JoinAccept), and
// members left behind are told why before their connection is closed.
void ServerImpl::startEpoch(const EpochChange& change) {
  for (const auto& [peer, accept] : change.members)
    if (auto it = conns_.find(peer); it != conns_.end())
      send(it->second, wire::encodeAs(wire::Type::EpochStart, header(wire::Type::EpochStart, change.commId, change.epoch),
                                      accept));
  for (const auto& [peer, accept] : change.joiners)
    if (auto it = conns_.find(peer); it != conns_.end())
      send(it->second, wire::encode(header(wire::Type::JoinAccept, change.commId, change.epoch), accept));
  for (const auto& [peer, why] : change.removed)
    if (auto it = conns_.find(peer); it != conns_.end()) reject(it->second, change.commId, Status(loomPeerLost, why));
  info("communicator {:#x}: epoch {} with {} members ({} joined, {} removed)", change.commId, change.epoch,
       change.members.size() + change.joiners.size(), change.joiners.size(), change.removed.size());
}

void ServerImpl::tellPending(uint64_t commId) {
  auto [joiners, members] = registry_.pendingJoiners(commId);
  const Communicator* comm = registry_.find(commId);
  for (PeerId p : members)
    if (auto it = conns_.find(p); it != conns_.end())
      send(it->second, wire::encode(header(wire::Type::PendingNotice, commId, comm ? comm->epoch : 0),
                                    wire::PendingNotice{joiners}));
}

awaitable<void> ServerImpl::settleLoop() {
  while (!stopping_) {
    settle_.expires_after(kSettlePeriod);
    error_code ec;
    co_await settle_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping_) co_return;
    for (const auto& change : registry_.settleUpdates(Clock::now())) startEpoch(change);
  }
}

awaitable<void> ServerImpl::sweepLoop() {
  const auto timeout = std::chrono::milliseconds(opt_.rendezvousTimeoutMs);
  const auto period = std::clamp<std::chrono::milliseconds>(timeout / 10, std::chrono::milliseconds(10),
                                                            std::chrono::milliseconds(1000));
  while (!stopping_) {
    sweep_.expires_after(period);
    error_code ec;
    co_await sweep_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping_) co_return;
    for (const auto& e : registry_.expireGathering(Clock::now(), timeout)) {
      auto why = makeError(loomTimeout, "communicator {:#x}: only {} of {} ranks joined within {} ms", e.commId,
                           e.waiting.size(), e.worldSize, opt_.rendezvousTimeoutMs);
      for (PeerId p : e.waiting)
        if (auto it = conns_.find(p); it != conns_.end()) reject(it->second, e.commId, why);
    }
  }
}

wire::Header ServerImpl::header(wire::Type t, uint64_t commId, uint64_t epoch) {
  wire::Header h;
  h.type = t;
  h.commId = commId;
  h.epoch = epoch;
  h.seq = nextSeq_++;
  return h;
}

void ServerImpl::send(const ConnPtr& c, std::vector<uint8_t> frame) {
  if (!c->socket.is_open()) return;
  if (c->outq.size() >= kMaxQueuedFrames) {
    warn("{} is not reading its socket ({} frames queued); closing it", c->remote, c->outq.size());
    error_code ignored;
    c->socket.close(ignored);
    return;
  }
  c->outq.push_back(std::move(frame));
  if (!c->writing) {
    c->writing = true;
    asio::co_spawn(io_, writer(c), asio::detached);
  }
}

awaitable<void> ServerImpl::writer(ConnPtr c) {
  error_code ec;
  while (!c->outq.empty()) {  // deque: push_back keeps the front buffer valid during the write
    co_await asio::async_write(c->socket, asio::buffer(c->outq.front()), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      c->outq.clear();
      break;
    }
    c->outq.pop_front();
  }
  c->writing = false;
  if (c->rejected && !ec) c->socket.shutdown(tcp::socket::shutdown_send, ec);
}

void ServerImpl::reject(const ConnPtr& c, uint64_t commId, const Status& why) {
  if (c->rejected) return;
  warn("rejecting {}: {}", c->remote, why.toString());
  const Communicator* comm = registry_.communicatorOf(c->id);
  const uint64_t epoch = comm ? comm->epoch : 0;
  departed(c, "was rejected");
  c->rejected = true;
  std::string message = why.message().substr(0, wire::kMaxMessageBytes);
  send(c, wire::encode(header(wire::Type::Reject, commId, epoch), wire::Reject{why.code(), std::move(message)}));
  c->linger.expires_after(kRejectLinger);
  c->linger.async_wait([c](error_code ec) {
    if (!ec) c->socket.close(ec);
  });
}

void ServerImpl::departed(const ConnPtr& c, const char* how) {
  auto d = registry_.depart(c->id);
  if (!d) return;
  if (d->rank >= 0)
    info("communicator {:#x}: rank {} ('{}', {}) {}", d->commId, d->rank, d->address, c->remote, how);
  else
    info("communicator {:#x}: waiting peer '{}' ({}) {}", d->commId, d->address, c->remote, how);
  if (d->forgotten) info("communicator {:#x}: no members left; forgotten", d->commId);
  if (d->joiner) tellPending(d->commId);
  // The members still in an update may have been waiting only for this one.
  for (const auto& change : registry_.settleUpdates(Clock::now())) startEpoch(change);
}

}  // namespace

Expected<std::unique_ptr<Server>> Server::start(const ServerOptions& options) {
  if (options.heartbeatMs <= 0)
    return makeError(loomInvalidArgument, "coordinator heartbeatMs must be positive, got {}", options.heartbeatMs);
  auto server = std::make_unique<ServerImpl>(options);
  LOOM_RETURN_IF_ERROR(server->listen());
  server->run();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace loom::coord
