// The coordinator end to end: a real server on 127.0.0.1 (port 0), real clients on threads, and a
// raw socket where a test must send what a well-behaved client never would.
#include "coordinator/client.h"
#include "coordinator/server.h"
#include "protocol/wire.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace loom;
using namespace loom::coord;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Server> startServer(ServerOptions o = {}) {
  auto s = Server::start(o);
  REQUIRE(s);
  return std::move(*s);
}

bool contains(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

using JoinResult = Expected<std::unique_ptr<Client>>;

// Joins `ranks.size()` clients at once, each on its own thread, with address "peer-<i>".
std::vector<JoinResult> joinAll(const std::string& coord, uint64_t commId, int world, const std::vector<int>& ranks,
                                int timeoutMs = 10000) {
  std::vector<std::optional<JoinResult>> out(ranks.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks.size(); ++i)
    threads.emplace_back([&, i] {
      out[i].emplace(
          Client::join(coord, commId, world, ranks[i], fmt::format("peer-{}", i), Deadline::afterMs(timeoutMs)));
    });
  for (auto& t : threads) t.join();
  std::vector<JoinResult> results;
  for (auto& r : out) results.push_back(std::move(*r));
  return results;
}

// Every join succeeded, with one consistent membership whose address list is in rank order.
void checkWorld(const std::vector<JoinResult>& rs, uint64_t commId, int world) {
  std::set<int> ranks;
  for (size_t i = 0; i < rs.size(); ++i) {
    INFO("peer " << i << ": " << rs[i].status().toString());
    REQUIRE(rs[i]);
    const Membership& m = rs[i].value()->membership();
    CHECK(m.commId == commId);
    CHECK(m.epoch == 1);
    CHECK(m.size == world);
    CHECK(m.heartbeatMs == 1000);
    REQUIRE(m.addresses.size() == size_t(world));
    CHECK(m.addresses[m.rank] == fmt::format("peer-{}", i));
    CHECK(m.addresses == rs[0].value()->membership().addresses);
    ranks.insert(m.rank);
  }
  CHECK(ranks.size() == size_t(world));
}

// A hand-driven connection: sends any bytes, reads frames back.
struct RawPeer {
  int fd = -1;
  explicit RawPeer(const std::string& coord) {
    auto hp = parseHostPort(coord);
    REQUIRE(hp);
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(hp->second);
    ::inet_pton(AF_INET, hp->first.c_str(), &sa.sin_addr);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  }
  ~RawPeer() { ::close(fd); }
  void send(const std::vector<uint8_t>& f) const {
    REQUIRE(::send(fd, f.data(), f.size(), MSG_NOSIGNAL) == ssize_t(f.size()));
  }
  bool readExact(uint8_t* p, size_t n, const Deadline& d) const {
    while (n > 0) {
      pollfd pf{fd, POLLIN, 0};
      if (::poll(&pf, 1, d.remainingMs()) <= 0) return false;
      ssize_t got = ::recv(fd, p, n, 0);
      if (got <= 0) return false;
      p += got;
      n -= size_t(got);
    }
    return true;
  }
  // The next frame, or nullopt on EOF / timeout.
  std::optional<std::pair<wire::Header, std::vector<uint8_t>>> read(int timeoutMs = 5000) const {
    Deadline d = Deadline::afterMs(timeoutMs);
    std::vector<uint8_t> head(wire::kHeaderBytes);
    if (!readExact(head.data(), head.size(), d)) return std::nullopt;
    auto h = wire::decodeHeader(head);
    REQUIRE(h);
    std::vector<uint8_t> payload(h->payloadBytes);
    if (!readExact(payload.data(), payload.size(), d)) return std::nullopt;
    return std::make_pair(*h, std::move(payload));
  }
  // Reads a Reject and the close after it; returns it.
  wire::Reject expectReject() const {
    auto f = read();
    REQUIRE(f);
    REQUIRE(f->first.type == wire::Type::Reject);
    auto r = wire::decodeReject(f->second);
    REQUIRE(r);
    uint8_t byte;
    CHECK_FALSE(readExact(&byte, 1, Deadline::afterMs(5000)));  // closed
    return *r;
  }
  // Sends a JoinRequest, then a Heartbeat whose ack proves the join was processed (frames on one
  // connection are handled in order), so later joins by others are ordered after it.
  void joinAndWait(uint64_t commId, uint32_t world, int rank, const std::string& address) const {
    wire::Header h;
    h.commId = commId;
    send(wire::encode(h, wire::JoinRequest{LOOM_VERSION_CODE, world, rank, address}));
    h.type = wire::Type::Heartbeat;
    send(wire::encodeEmpty(h));
    auto ack = read();
    REQUIRE(ack);
    REQUIRE(ack->first.type == wire::Type::HeartbeatAck);
  }
};

wire::Header joinHeader(uint64_t commId) {
  wire::Header h;
  h.commId = commId;
  return h;
}

// A port nothing listens on: bind one, read its number, close it.
uint16_t unusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

}  // namespace

TEST_CASE("parseHostPort accepts host:port and [v6]:port only", "[coordinator]") {
  CHECK(parseHostPort("127.0.0.1:29501").value() == std::make_pair(std::string("127.0.0.1"), uint16_t(29501)));
  CHECK(parseHostPort("node-3.cluster:80").value().first == "node-3.cluster");
  CHECK(parseHostPort("[::1]:7").value() == std::make_pair(std::string("::1"), uint16_t(7)));
  for (const char* bad : {"", "host", "host:", ":80", "host:http", "host:70000", "::1:80", "[::1]80", "[::1:80"}) {
    INFO(bad);
    auto r = parseHostPort(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == loomInvalidArgument);
  }
}

TEST_CASE("a world of one joins alone", "[coordinator]") {
  auto server = startServer();
  checkWorld(joinAll(server->address(), 1, 1, {-1}), 1, 1);
}

TEST_CASE("three peers asking for any rank get distinct ranks and the addresses in rank order", "[coordinator]") {
  auto server = startServer();
  checkWorld(joinAll(server->address(), 3, 3, {-1, -1, -1}), 3, 3);
}

TEST_CASE("eight peers get the ranks they request", "[coordinator]") {
  auto server = startServer();
  std::vector<int> ranks{7, 3, 0, 5, 1, 6, 2, 4};
  auto rs = joinAll(server->address(), 8, 8, ranks);
  checkWorld(rs, 8, 8);
  for (size_t i = 0; i < ranks.size(); ++i) CHECK(rs[i].value()->membership().rank == ranks[i]);
}

TEST_CASE("peers asking for any rank fill the ranks nobody requested", "[coordinator]") {
  auto server = startServer();
  auto rs = joinAll(server->address(), 4, 4, {2, -1, 0, -1});
  checkWorld(rs, 4, 4);
  CHECK(rs[0].value()->membership().rank == 2);
  CHECK(rs[2].value()->membership().rank == 0);
  std::set<int> free{rs[1].value()->membership().rank, rs[3].value()->membership().rank};
  CHECK(free == std::set<int>{1, 3});
}

TEST_CASE("a worldSize that disagrees with the first joiner is invalid usage naming both", "[coordinator]") {
  auto server = startServer();
  RawPeer first(server->address());
  first.joinAndWait(10, 2, -1, "first");
  auto r = Client::join(server->address(), 10, 3, -1, "second", Deadline::afterMs(5000));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == loomInvalidUsage);
  CHECK(contains(r.error(), "worldSize 3"));
  CHECK(contains(r.error(), "said 2"));
}

TEST_CASE("a requested rank that is taken, out of range, or of a full communicator is invalid usage",
          "[coordinator]") {
  auto server = startServer();
  RawPeer first(server->address());
  first.joinAndWait(11, 2, 0, "zero");
  auto taken = Client::join(server->address(), 11, 2, 0, "again", Deadline::afterMs(5000));
  REQUIRE_FALSE(taken);
  CHECK(taken.error().code() == loomInvalidUsage);
  CHECK(contains(taken.error(), "rank 0 of communicator 0xb is already taken by the peer at 'zero'"));

  RawPeer outOfRange(server->address());
  outOfRange.send(wire::encode(joinHeader(12), wire::JoinRequest{LOOM_VERSION_CODE, 2, 5, "x"}));
  CHECK(outOfRange.expectReject().code == loomInvalidUsage);
  // The client refuses the same mistake before sending anything.
  CHECK(Client::join(server->address(), 12, 2, 5, "x", Deadline::afterMs(1000)).error().code() == loomInvalidArgument);

  auto solo = Client::join(server->address(), 13, 1, -1, "solo", Deadline::afterMs(5000));
  REQUIRE(solo);
  auto extra = Client::join(server->address(), 13, 1, -1, "extra", Deadline::afterMs(5000));
  REQUIRE_FALSE(extra);
  CHECK(extra.error().code() == loomInvalidUsage);
  CHECK(contains(extra.error(), "already has all 1 ranks"));
}

TEST_CASE("a JoinRequest from another library version is refused as a version mismatch", "[coordinator]") {
  auto server = startServer();
  RawPeer peer(server->address());
  peer.send(wire::encode(joinHeader(20), wire::JoinRequest{LOOM_VERSION_CODE + 100, 1, -1, "future"}));
  auto r = peer.expectReject();
  CHECK(r.code == loomVersionMismatch);
  CHECK(r.message.find("0.2.0") != std::string::npos);
  // Another patch release is compatible.
  RawPeer patch(server->address());
  patch.send(wire::encode(joinHeader(21), wire::JoinRequest{LOOM_VERSION_CODE + 1, 1, -1, "patch"}));
  auto f = patch.read();
  REQUIRE(f);
  CHECK(f->first.type == wire::Type::JoinAccept);
}

TEST_CASE("another wire version or a malformed frame is refused", "[coordinator]") {
  auto server = startServer();
  RawPeer v2(server->address());
  wire::Header h = joinHeader(22);
  h.wireVersion = wire::kWireVersion + 1;
  v2.send(wire::encode(h, wire::JoinRequest{LOOM_VERSION_CODE, 1, -1, "v2"}));
  CHECK(v2.expectReject().code == loomVersionMismatch);

  RawPeer garbage(server->address());
  garbage.send(std::vector<uint8_t>(wire::kHeaderBytes, 0x5A));
  auto r = garbage.expectReject();
  CHECK(r.code == loomInvalidArgument);
  CHECK(r.message.find("is not LOOM") != std::string::npos);

  RawPeer wrongType(server->address());
  wrongType.send(wire::encode(joinHeader(23), wire::PeerHello{LOOM_VERSION_CODE, 0, 1, 0}));
  CHECK(wrongType.expectReject().code == loomInvalidArgument);
}

TEST_CASE("an unreachable coordinator is a system error, quickly", "[coordinator]") {
  auto t0 = Clock::now();
  auto r = Client::join(fmt::format("127.0.0.1:{}", unusedPort()), 30, 2, -1, "x", Deadline::afterMs(10000));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == loomSystemError);
  CHECK(contains(r.error(), "Connection refused (is it running? set LOOM_COORDINATOR)"));
  CHECK(Clock::now() - t0 < 1s);
}

TEST_CASE("a world that never completes times out within the deadline", "[coordinator]") {
  auto server = startServer();
  auto t0 = Clock::now();
  auto r = Client::join(server->address(), 31, 2, -1, "lonely", Deadline::afterMs(300));
  auto took = Clock::now() - t0;
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == loomTimeout);
  CHECK(took >= 290ms);
  CHECK(took < 800ms);
  // Its place was freed when it hung up: a full world can still form.
  checkWorld(joinAll(server->address(), 31, 2, {-1, -1}), 31, 2);
}

TEST_CASE("the server's rendezvous timeout rejects a waiting peer", "[coordinator]") {
  ServerOptions o;
  o.rendezvousTimeoutMs = 200;
  auto server = startServer(o);
  auto r = Client::join(server->address(), 32, 2, -1, "lonely", Deadline::afterMs(5000));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == loomTimeout);
  CHECK(contains(r.error(), "only 1 of 2 ranks joined within 200 ms"));
}

TEST_CASE("a port in use is a system error naming the address", "[coordinator]") {
  auto first = startServer();
  ServerOptions o;
  o.port = static_cast<uint16_t>(std::stoi(first->address().substr(first->address().rfind(':') + 1)));
  auto second = Server::start(o);
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == loomSystemError);
  CHECK(contains(second.error(), first->address()));
  CHECK(contains(second.error(), "Address already in use"));
}

TEST_CASE("heartbeats are acknowledged", "[coordinator]") {
  auto server = startServer();
  auto c = Client::join(server->address(), 40, 1, -1, "beat", Deadline::afterMs(5000));
  REQUIRE(c);
  Client& client = **c;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(client.sendHeartbeat().isOk());
    pollfd pf{client.fd(), POLLIN, 0};
    REQUIRE(::poll(&pf, 1, 5000) == 1);
    CHECK(client.onReadable().isOk());
  }
  // Once the coordinator is gone, the next read says so.
  server->stop();
  pollfd pf{client.fd(), POLLIN, 0};
  REQUIRE(::poll(&pf, 1, 5000) == 1);
  auto s = client.onReadable();
  CHECK(s.code() == loomSystemError);
  CHECK(contains(s, "closed the connection"));
  CHECK(client.sendHeartbeat().code() == loomSystemError);
}

TEST_CASE("every coordinator frame carries the communicator, the epoch and an increasing seq", "[coordinator]") {
  auto server = startServer();
  RawPeer peer(server->address());
  peer.send(wire::encode(joinHeader(41), wire::JoinRequest{LOOM_VERSION_CODE, 1, -1, "raw"}));
  auto accept = peer.read();
  REQUIRE(accept);
  CHECK(accept->first.type == wire::Type::JoinAccept);
  CHECK(accept->first.commId == 41);
  CHECK(accept->first.epoch == 1);
  uint64_t seq = accept->first.seq;
  wire::Header hb = joinHeader(41);
  hb.type = wire::Type::Heartbeat;
  hb.epoch = 1;
  for (int i = 0; i < 3; ++i) {
    peer.send(wire::encodeEmpty(hb));
    auto ack = peer.read();
    REQUIRE(ack);
    CHECK(ack->first.type == wire::Type::HeartbeatAck);
    CHECK(ack->first.commId == 41);
    CHECK(ack->first.epoch == 1);
    CHECK(ack->first.seq > seq);
    seq = ack->first.seq;
  }
}

TEST_CASE("a communicator id is reusable once all its members left", "[coordinator]") {
  auto server = startServer();
  auto rs = joinAll(server->address(), 50, 2, {-1, -1});
  checkWorld(rs, 50, 2);
  for (auto& r : rs) r.value()->leave();
  // The Leaves travel on other connections than the next join, so allow the server a moment.
  std::optional<JoinResult> again;
  for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    again.emplace(Client::join(server->address(), 50, 1, -1, "reborn", Deadline::afterMs(5000)));
    if (*again || again->error().code() != loomInvalidUsage) break;
  }
  REQUIRE(again);
  INFO(again->status().toString());
  REQUIRE(*again);
  CHECK(again->value()->membership().size == 1);
}

TEST_CASE("stop returns promptly with clients connected and waiting", "[coordinator]") {
  auto server = startServer();
  auto joined = Client::join(server->address(), 60, 1, -1, "a", Deadline::afterMs(5000));
  REQUIRE(joined);
  std::thread waiter([&] { (void)Client::join(server->address(), 61, 2, -1, "b", Deadline::afterMs(3000)); });
  std::this_thread::sleep_for(100ms);
  auto t0 = Clock::now();
  server->stop();
  CHECK(Clock::now() - t0 < 1s);
  waiter.join();
  server->stop();  // idempotent
}

TEST_CASE("joins, failed joins and a stopped server leave no file descriptor behind", "[coordinator]") {
  auto countFds = [] {
    int n = 0;
    for (int fd = 0; fd < 4096; ++fd) n += ::fcntl(fd, F_GETFD) != -1;
    return n;
  };
  const int before = countFds();
  {
    auto server = startServer();
    auto ok = Client::join(server->address(), 70, 1, -1, "a", Deadline::afterMs(5000));
    REQUIRE(ok);
    auto timedOut = Client::join(server->address(), 71, 2, -1, "b", Deadline::afterMs(50));
    CHECK(timedOut.error().code() == loomTimeout);
    auto full = Client::join(server->address(), 70, 1, -1, "c", Deadline::afterMs(5000));
    CHECK(full.error().code() == loomInvalidUsage);
    ok.value()->leave();
  }
  (void)Client::join(fmt::format("127.0.0.1:{}", unusedPort()), 72, 1, -1, "d", Deadline::afterMs(1000));
  CHECK(countFds() == before);
}
