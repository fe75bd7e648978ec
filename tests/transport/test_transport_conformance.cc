// One conformance suite, run over every transport: what the collectives rely on, stated as tests.
// Each case creates its endpoints in this process, listens on each, connects them concurrently
// from one thread per endpoint (as separate processes would), and drives progress by calling
// poll() on every endpoint until a condition holds or a deadline passes.
// LOOM_TEST_TRANSPORTS=local,tcp (the default) picks the transports to run over.
#include <catch2/catch.hpp>

#include "transports/iface/registry.h"
#include "transports/tcp/socket.h"

#include <dirent.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

namespace {

using namespace loom;
using namespace loom::transport;

std::vector<std::string> transportNames() {
  std::string list = "local,tcp";
  if (const char* env = std::getenv("LOOM_TEST_TRANSPORTS"); env && *env) list = env;
  std::vector<std::string> names;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

struct Mesh {
  std::vector<std::unique_ptr<Transport>> ep;
  std::vector<std::string> addresses;  // where each endpoint listens
  Transport& operator[](size_t i) { return *ep.at(i); }
};

// Two streams even on loopback (the library's default there is one), so that the suite covers
// striping and round-robin over several streams.
TransportOptions severalStreams() {
  TransportOptions o;
  o.localStreamsPerPeer = 2;
  return o;
}

std::unique_ptr<Mesh> makeMesh(const std::string& name, int n, const TransportOptions& options = severalStreams()) {
  auto mesh = std::make_unique<Mesh>();
  std::vector<std::string> addresses;
  for (int i = 0; i < n; ++i) {
    auto created = createTransport(name, options);
    INFO("creating transport '" << name << "': " << created.status().toString());
    REQUIRE(created.hasValue());
    REQUIRE(created.value() != nullptr);
    mesh->ep.push_back(std::move(created.value()));
    auto address = mesh->ep.back()->listen();
    INFO(address.status().toString());
    REQUIRE(address.hasValue());
    addresses.push_back(address.value());
  }
  mesh->addresses = addresses;
  std::vector<Status> results(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { results[i] = mesh->ep[i]->connect(i, addresses, Deadline::afterMs(20000)); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) {
    INFO("rank " << i << " connect: " << results[i].toString());
    REQUIRE(results[i].isOk());
    REQUIRE(mesh->ep[i]->rank() == i);
    REQUIRE(mesh->ep[i]->size() == n);
  }
  return mesh;
}

// Polls every endpoint until done() holds; false if the deadline passes first.
bool pollUntil(Mesh& mesh, const std::function<bool()>& done, int timeoutMs = 20000) {
  const Deadline deadline = Deadline::afterMs(timeoutMs);
  for (;;) {
    for (auto& e : mesh.ep) e->poll();
    if (done()) return true;
    if (deadline.expired()) return false;
    std::this_thread::yield();
  }
}

bool allFinished(const std::vector<TransferPtr>& ts) {
  return std::all_of(ts.begin(), ts.end(), [](const TransferPtr& t) { return t->done(); });
}

Tag tagOf(uint64_t op, uint32_t step = 0) {
  Tag t;
  t.op = op;
  t.space = 7;
  t.step = step;
  return t;
}

std::vector<uint8_t> pattern(size_t bytes, uint32_t seed) {
  std::vector<uint8_t> v(bytes);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

constexpr uint64_t kSig = 0x5151;

}  // namespace

TEST_CASE("messages of 0, 1, 4096 and 32 MiB bytes arrive intact, receive posted before or after the send",
          "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  uint64_t op = 1;
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{4096}, size_t{32} << 20}) {
    for (bool recvFirst : {true, false}) {
      CAPTURE(bytes, recvFirst);
      const auto sent = pattern(bytes, static_cast<uint32_t>(op));
      std::vector<uint8_t> got(bytes, 0xEE);
      TransferPtr s, r;
      if (recvFirst) r = (*mesh)[1].irecv(0, got.data(), bytes, tagOf(op), kSig);
      s = (*mesh)[0].isend(1, sent.data(), bytes, tagOf(op), kSig);
      if (!recvFirst) r = (*mesh)[1].irecv(0, got.data(), bytes, tagOf(op), kSig);
      REQUIRE(pollUntil(*mesh, [&] { return s->done() && r->done(); }));
      INFO(s->status.toString() << " / " << r->status.toString());
      REQUIRE_FALSE(s->failed());
      REQUIRE_FALSE(r->failed());
      REQUIRE(got == sent);
      ++op;
    }
  }
}

TEST_CASE("back-to-back messages of mixed sizes, one receive cancelled, arrive intact on one stream or several",
          "[transport]") {
  // Sizes around the TCP stream's direct-read threshold (16 KiB) and its striping one (128 KiB),
  // sent all at once, so one read may end a payload and begin the next frame, whole or in part.
  const std::string name = GENERATE(from_range(transportNames()));
  const int streams = GENERATE(1, 2);
  const bool recvFirst = GENERATE(true, false);
  CAPTURE(name, streams, recvFirst);
  TransportOptions options;
  options.localStreamsPerPeer = streams;
  auto mesh = makeMesh(name, 2, options);
  std::mt19937 rng(1234);
  const size_t menu[] = {0, 1, 40, 4096, 16383, 16384, 16385, 20000, 65536, 131072, 300001};
  std::vector<size_t> sizes;
  for (int i = 0; i < 120; ++i) sizes.push_back(menu[rng() % std::size(menu)]);
  const size_t cancelled = 37;  // a receive withdrawn at once: if before its message came, read and dropped
  sizes[cancelled] = 300001;
  std::vector<std::vector<uint8_t>> sent, got;
  for (size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(pattern(sizes[i], static_cast<uint32_t>(i + 1)));
    got.emplace_back(sizes[i], 0xEE);
  }
  std::vector<TransferPtr> sends, recvs(sizes.size());
  auto postRecv = [&](size_t i) {
    recvs[i] = (*mesh)[1].irecv(0, got[i].data(), sizes[i], tagOf(900 + i), kSig);
    if (i == cancelled) (*mesh)[1].cancel(recvs[i], Status(loomAborted, "cancelled by the test"));
  };
  if (recvFirst)
    for (size_t i = 0; i < sizes.size(); ++i) postRecv(i);
  for (size_t i = 0; i < sizes.size(); ++i)
    sends.push_back((*mesh)[0].isend(1, sent[i].data(), sizes[i], tagOf(900 + i), kSig));
  if (!recvFirst) {
    std::vector<size_t> order(sizes.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      postRecv(i);
      for (int k = 0; k < 3; ++k) pollUntil(*mesh, [] { return true; });  // let some arrive meanwhile
    }
  }
  REQUIRE(pollUntil(*mesh, [&] { return allFinished(sends) && allFinished(recvs); }));
  for (size_t i = 0; i < sizes.size(); ++i) {
    CAPTURE(i, sizes[i]);
    REQUIRE_FALSE(sends[i]->failed());
    if (i == cancelled && (recvFirst || recvs[i]->failed())) {  // posted late, it may be complete already
      CHECK(recvs[i]->status.code() == loomAborted);
      CHECK(std::all_of(got[i].begin(), got[i].end(), [](uint8_t b) { return b == 0xEE; }));
    } else {
      REQUIRE_FALSE(recvs[i]->failed());
      CHECK(got[i] == sent[i]);
    }
  }
}

TEST_CASE("96 MiB sent ahead of a receiver that posts nothing yet all arrives once it posts, in any order",
          "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  const bool reverse = GENERATE(false, true);
  CAPTURE(name, reverse);
  auto mesh = makeMesh(name, 2);
  constexpr size_t kMessages = 96, kBytes = 1 << 20;
  std::vector<std::vector<uint8_t>> sent, got;
  std::vector<TransferPtr> sends, recvs;
  for (size_t i = 0; i < kMessages; ++i) {
    sent.push_back(pattern(kBytes, static_cast<uint32_t>(i + 500)));
    got.emplace_back(kBytes, 0xEE);
    sends.push_back((*mesh)[0].isend(1, sent[i].data(), kBytes, tagOf(500 + i), kSig));
  }
  // The receiver's progress runs, but nothing is posted: the TCP transport buffers a bounded amount
  // (tcp_transport.cc, kMaxStashedBytesPerPeer = 32 MiB) and leaves the rest in the sender's queue.
  pollUntil(*mesh, [] { return false; }, 300);
  if (name == "tcp") CHECK_FALSE(allFinished(sends));
  for (size_t k = 0; k < kMessages; ++k) {
    const size_t i = reverse ? kMessages - 1 - k : k;
    recvs.push_back((*mesh)[1].irecv(0, got[i].data(), kBytes, tagOf(500 + i), kSig));
  }
  REQUIRE(pollUntil(*mesh, [&] { return allFinished(sends) && allFinished(recvs); }));
  for (size_t i = 0; i < kMessages; ++i) {
    CAPTURE(i);
    REQUIRE_FALSE(sends[i]->failed());
    REQUIRE_FALSE(recvs[i]->failed());
    REQUIRE(got[i] == sent[i]);
  }
}

// Rank 0 sends X to rank 2 and, only once that send is done, Y to rank 1; rank 1 then sends Z to
// rank 2; rank 2 waits for Z before it posts X's receive (operations issued in another order).
// Rank 2 awaits nothing from rank 0 while X arrives, so TCP first leaves X in the socket (read
// into place once posted, tcp_transport.cc mustHold); X is larger than the sockets buffer, so
// holding it for good would deadlock all three. The hold is bounded in time: this completes.
TEST_CASE("a large early message does not deadlock a receiver that first waits for a third rank",
          "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 3);
  constexpr size_t kBig = 24 << 20, kSmall = 1000;
  const auto x = pattern(kBig, 61), y = pattern(kSmall, 62), z = pattern(kSmall, 63);
  std::vector<uint8_t> gotX(kBig, 0xEE), gotY(kSmall, 0xEE), gotZ(kSmall, 0xEE);
  TransferPtr sendX = (*mesh)[0].isend(2, x.data(), kBig, tagOf(700), kSig);
  TransferPtr recvY = (*mesh)[1].irecv(0, gotY.data(), kSmall, tagOf(701), kSig);
  TransferPtr recvZ = (*mesh)[2].irecv(1, gotZ.data(), kSmall, tagOf(702), kSig);
  TransferPtr sendY, sendZ, recvX;
  const bool done = pollUntil(*mesh, [&] {
    if (!sendY && sendX->done()) sendY = (*mesh)[0].isend(1, y.data(), kSmall, tagOf(701), kSig);
    if (!sendZ && recvY->done()) sendZ = (*mesh)[1].isend(2, z.data(), kSmall, tagOf(702), kSig);
    if (!recvX && recvZ->done()) recvX = (*mesh)[2].irecv(0, gotX.data(), kBig, tagOf(700), kSig);
    return recvX && allFinished({sendX, sendY, sendZ, recvX, recvY, recvZ});
  });
  INFO("send X done: " << sendX->done() << ", Y sent: " << bool(sendY) << ", Z sent: " << bool(sendZ));
  REQUIRE(done);
  for (const auto& t : {sendX, sendY, sendZ, recvX, recvY, recvZ}) REQUIRE_FALSE(t->failed());
  REQUIRE(gotX == x);
  REQUIRE(gotY == y);
  REQUIRE(gotZ == z);
}

TEST_CASE("messages are matched by tag, whatever order sender and receiver post them in", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  constexpr uint32_t kMessages = 64;
  std::vector<std::vector<uint8_t>> sent, got;
  for (uint32_t i = 0; i < kMessages; ++i) {
    sent.push_back(pattern((i * 37) % 300 + 1, i));
    got.emplace_back(sent.back().size(), 0);
  }
  // Even tags: receives posted first, in reverse order (posted-receive path). Odd tags: posted
  // after every send, shuffled (unexpected-message path).
  std::vector<TransferPtr> recvs(kMessages), sends;
  for (uint32_t i = kMessages; i-- > 0;) {
    if (i % 2 == 0) recvs[i] = (*mesh)[1].irecv(0, got[i].data(), got[i].size(), tagOf(100, i), kSig);
  }
  for (uint32_t i = 0; i < kMessages; ++i) sends.push_back((*mesh)[0].isend(1, sent[i].data(), sent[i].size(), tagOf(100, i), kSig));
  REQUIRE(pollUntil(*mesh, [&] { return allFinished(sends); }));
  std::vector<uint32_t> odd;
  for (uint32_t i = 1; i < kMessages; i += 2) odd.push_back(i);
  std::shuffle(odd.begin(), odd.end(), std::mt19937(42));
  for (uint32_t i : odd) recvs[i] = (*mesh)[1].irecv(0, got[i].data(), got[i].size(), tagOf(100, i), kSig);
  REQUIRE(pollUntil(*mesh, [&] { return allFinished(recvs); }));
  for (uint32_t i = 0; i < kMessages; ++i) {
    CAPTURE(i);
    REQUIRE_FALSE(sends[i]->failed());
    REQUIRE_FALSE(recvs[i]->failed());
    REQUIRE(got[i] == sent[i]);
  }
}

TEST_CASE("every pair of four endpoints exchanges messages at the same time", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  constexpr int n = 4;
  auto mesh = makeMesh(name, n);
  std::vector<std::vector<uint8_t>> sent(n * n), got(n * n);
  std::vector<TransferPtr> all;
  for (int from = 0; from < n; ++from) {
    for (int to = 0; to < n; ++to) {
      if (from == to) continue;
      const int k = from * n + to;
      sent[k] = pattern(10000 + 10 * from + to, static_cast<uint32_t>(k));
      got[k].assign(sent[k].size(), 0);
      all.push_back((*mesh)[to].irecv(from, got[k].data(), got[k].size(), tagOf(200), kSig));
      all.push_back((*mesh)[from].isend(to, sent[k].data(), sent[k].size(), tagOf(200), kSig));
    }
  }
  REQUIRE(pollUntil(*mesh, [&] { return allFinished(all); }));
  for (auto& t : all) REQUIRE_FALSE(t->failed());
  for (int k = 0; k < n * n; ++k) REQUIRE(got[k] == sent[k]);
}

TEST_CASE("a byte-count mismatch fails the receive with loomInvalidUsage naming both counts", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  const bool recvFirst = GENERATE(true, false);
  CAPTURE(name, recvFirst);
  auto mesh = makeMesh(name, 2);
  std::vector<uint8_t> sent(400, 1), got(800, 0);
  TransferPtr r;
  if (recvFirst) r = (*mesh)[1].irecv(0, got.data(), got.size(), tagOf(300), kSig);
  auto s = (*mesh)[0].isend(1, sent.data(), sent.size(), tagOf(300), kSig);
  if (!recvFirst) {
    REQUIRE(pollUntil(*mesh, [&] { return s->done(); }));
    r = (*mesh)[1].irecv(0, got.data(), got.size(), tagOf(300), kSig);
  }
  REQUIRE(pollUntil(*mesh, [&] { return r->done(); }));
  REQUIRE(r->failed());
  CAPTURE(r->status.message());
  CHECK(r->status.code() == loomInvalidUsage);
  CHECK(r->status.message().find("400") != std::string::npos);
  CHECK(r->status.message().find("800") != std::string::npos);
}

TEST_CASE("a signature mismatch fails the receive with loomInvalidUsage", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  std::vector<uint8_t> sent(64, 1), got(64, 0);
  auto r = (*mesh)[1].irecv(0, got.data(), got.size(), tagOf(400), kSig);
  auto s = (*mesh)[0].isend(1, sent.data(), sent.size(), tagOf(400), kSig + 1);
  REQUIRE(pollUntil(*mesh, [&] { return r->done() && s->done(); }));
  REQUIRE(r->failed());
  CAPTURE(r->status.message());
  CHECK(r->status.code() == loomInvalidUsage);
  CHECK(r->status.message().find("operation differs across ranks") != std::string::npos);
}

TEST_CASE("a cancelled receive fails at once and its buffer is never written", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  std::vector<uint8_t> got(4096, 0xAB), sent(4096, 0x11);
  auto r = (*mesh)[1].irecv(0, got.data(), got.size(), tagOf(500), kSig);
  (*mesh)[1].cancel(r, Status(loomAborted, "cancelled by the test"));
  REQUIRE(r->failed());
  CHECK(r->status.code() == loomAborted);
  // The message for that tag now arrives; it must not land in the withdrawn buffer.
  auto s = (*mesh)[0].isend(1, sent.data(), sent.size(), tagOf(500), kSig);
  REQUIRE(pollUntil(*mesh, [&] { return s->done(); }));
  pollUntil(*mesh, [] { return false; }, 50);
  CHECK(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0xAB; }));
}

TEST_CASE("shutdown fails pending and later transfers and makes health() report it", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  std::vector<uint8_t> buf(128, 0);
  auto r = (*mesh)[0].irecv(1, buf.data(), buf.size(), tagOf(600), kSig);
  (*mesh)[0].shutdown(Status(loomAborted, "shut down by the test"));
  REQUIRE(r->failed());
  CHECK(r->status.code() == loomAborted);
  CHECK_FALSE((*mesh)[0].health().isOk());
  auto later = (*mesh)[0].isend(1, buf.data(), buf.size(), tagOf(601), kSig);
  REQUIRE(pollUntil(*mesh, [&] { return later->done(); }));
  CHECK(later->failed());
  (*mesh)[0].shutdown(Status(loomAborted, "again"));  // idempotent
}

TEST_CASE("a peer's shutdown fails pending receives from it with loomPeerLost naming its rank", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 3);
  std::vector<uint8_t> buf(128, 0);
  auto r = (*mesh)[0].irecv(2, buf.data(), buf.size(), tagOf(700), kSig);
  (*mesh)[2].shutdown(Status(loomAborted, "rank two leaves"));
  REQUIRE(pollUntil(*mesh, [&] { return r->done(); }));
  REQUIRE(r->failed());
  CAPTURE(r->status.message());
  CHECK(r->status.code() == loomPeerLost);
  CHECK(r->status.message().find("rank 2") != std::string::npos);
}

TEST_CASE("tcp: a peer that leaves with our bytes unread (a reset, not a close) is gone, not a failure",
          "[transport][tcp]") {
  auto mesh = makeMesh("tcp", 3);
  // Rank 2 never reads what rank 0 sends it, as a rank that exits right after its last operation
  // never reads a heartbeat that arrived meanwhile: its close then resets the connection.
  const auto unread = pattern(64, 3);
  auto s = (*mesh)[0].isend(2, unread.data(), unread.size(), tagOf(900), kSig);
  for (const Deadline d = Deadline::afterMs(2000); !s->done() && !d.expired();) (*mesh)[0].poll();  // not rank 2
  REQUIRE(s->done());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the bytes reach rank 2's socket
  (*mesh)[2].shutdown(Status(loomAborted, "rank two leaves"));
  const auto deadline = Deadline::afterMs(200);
  while (!deadline.expired()) (*mesh)[0].poll();  // rank 0 reads the reset
  CHECK((*mesh)[0].health().isOk());  // nothing was pending with rank 2
  // Transfers with the others go on.
  const auto sent = pattern(256, 4);
  std::vector<uint8_t> got(sent.size());
  auto r = (*mesh)[0].irecv(1, got.data(), got.size(), tagOf(901), kSig);
  auto s1 = (*mesh)[1].isend(0, sent.data(), sent.size(), tagOf(901), kSig);
  REQUIRE(pollUntil(*mesh, [&] { return r->done() && s1->done(); }));
  CHECK_FALSE(r->failed());
  CHECK(got == sent);
  // A later receive from the departed rank fails at once, naming it.
  std::vector<uint8_t> never(8);
  auto late = (*mesh)[0].irecv(2, never.data(), never.size(), tagOf(902), kSig);
  REQUIRE(late->done());
  CHECK(late->status.code() == loomPeerLost);
  CHECK(late->status.message().find("rank 2") != std::string::npos);
}

TEST_CASE("sendOpError reaches every peer's takeRemoteOpErrors", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 3);
  (*mesh)[1].sendOpError(tagOf(99), Status(loomInvalidUsage, "count differs on rank one"));
  std::vector<std::vector<loom::transport::RemoteOpError>> got(3);
  REQUIRE(pollUntil(*mesh, [&] {
    for (int i : {0, 2}) {
      for (auto& e : (*mesh)[i].takeRemoteOpErrors()) got[i].push_back(e);
    }
    return !got[0].empty() && !got[2].empty();
  }));
  for (int i : {0, 2}) {
    REQUIRE(got[i].size() == 1);
    CHECK(got[i][0].tag.op == 99);
    CHECK(got[i][0].peer == 1);
    CHECK(got[i][0].tag.space == 7);
    CAPTURE(got[i][0].status.message());
    CHECK(got[i][0].status.code() == loomRemoteError);
    CHECK(got[i][0].status.message().find("count differs on rank one") != std::string::npos);
  }
  CHECK((*mesh)[1].takeRemoteOpErrors().empty());
}

TEST_CASE("eventFd becomes readable when a message arrives", "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  auto readable = [&](int timeoutMs) {
    pollfd p{(*mesh)[1].eventFd(), POLLIN, 0};
    return ::poll(&p, 1, timeoutMs) == 1 && (p.revents & POLLIN);
  };
  for (int i = 0; i < 100 && readable(0); ++i) (*mesh)[1].poll();  // consume set-up wake-ups
  std::vector<uint8_t> sent(256, 3), got(256, 0);
  auto s = (*mesh)[0].isend(1, sent.data(), sent.size(), tagOf(800), kSig);
  // Only the sender is driven: the receiver learns of the arrival through its eventFd alone.
  const Deadline deadline = Deadline::afterMs(10000);
  bool woke = false;
  while (!woke && !deadline.expired()) {
    (*mesh)[0].poll();
    woke = readable(1);
  }
  REQUIRE(woke);
  auto r = (*mesh)[1].irecv(0, got.data(), got.size(), tagOf(800), kSig);
  REQUIRE(pollUntil(*mesh, [&] { return r->done() && s->done(); }));
  CHECK_FALSE(r->failed());
  CHECK(got == sent);
}

// A receiver that posts nothing and is driven only when its eventFd says so (like the event-loop
// thread of an idle rank): TCP first leaves an early large message in the socket, but must take it
// into the stash after a few milliseconds on its own, so the sender's operation completes.
TEST_CASE("a large send to an idle receiver completes without the receiver posting or spinning",
          "[transport]") {
  const std::string name = GENERATE(from_range(transportNames()));
  CAPTURE(name);
  auto mesh = makeMesh(name, 2);
  constexpr size_t kBytes = 24 << 20;
  const auto sent = pattern(kBytes, 71);
  std::vector<uint8_t> got(kBytes, 0xEE);
  auto s = (*mesh)[0].isend(1, sent.data(), kBytes, tagOf(810), kSig);
  const Deadline deadline = Deadline::afterMs(10000);
  while (!s->done() && !deadline.expired()) {
    (*mesh)[0].poll();
    pollfd p{(*mesh)[1].eventFd(), POLLIN, 0};
    if (::poll(&p, 1, 1) == 1) (*mesh)[1].poll();
  }
  REQUIRE(s->done());
  REQUIRE_FALSE(s->failed());
  auto r = (*mesh)[1].irecv(0, got.data(), kBytes, tagOf(810), kSig);
  REQUIRE(pollUntil(*mesh, [&] { return r->done(); }));
  REQUIRE_FALSE(r->failed());
  REQUIRE(got == sent);
}

TEST_CASE("tcp: the stream count of a pair follows whether both ranks are on one host", "[transport][tcp]") {
  using loom::tcp::sameHost;
  CHECK(sameHost("127.0.0.1:1000", "127.0.0.1:2000"));
  CHECK(sameHost("127.0.0.1:1000", "127.0.0.2:2000"));  // every loopback address is this machine
  CHECK(sameHost("[::1]:1000", "127.0.0.1:2000"));
  CHECK(sameHost("10.77.0.1:1000", "10.77.0.1:2000"));
  CHECK_FALSE(sameHost("10.77.0.1:1000", "10.77.0.2:1000"));
  CHECK_FALSE(sameHost("10.77.0.1:1000", "127.0.0.1:1000"));
  CHECK_FALSE(sameHost("no-port", "127.0.0.1:1000"));

  // Three streams on loopback (one across hosts): a striped message uses all three and arrives
  // intact both ways, whatever its length modulo the stripe alignment.
  TransportOptions options;
  options.streamsPerPeer = 1;
  options.localStreamsPerPeer = 3;
  auto mesh = makeMesh("tcp", 2, options);
  uint64_t op = 1;
  for (size_t bytes : {size_t{128} << 10, (size_t{3} << 20) + 17}) {
    CAPTURE(bytes);
    const auto a = pattern(bytes, 11), b = pattern(bytes, 12);
    std::vector<uint8_t> gotA(bytes, 0xEE), gotB(bytes, 0xEE);
    auto r1 = (*mesh)[1].irecv(0, gotA.data(), bytes, tagOf(op), kSig);
    auto s0 = (*mesh)[0].isend(1, a.data(), bytes, tagOf(op), kSig);
    auto s1 = (*mesh)[1].isend(0, b.data(), bytes, tagOf(op), kSig);
    auto r0 = (*mesh)[0].irecv(1, gotB.data(), bytes, tagOf(op), kSig);
    REQUIRE(pollUntil(*mesh, [&] { return allFinished({r0, r1, s0, s1}); }));
    INFO(r0->status.toString() << " / " << r1->status.toString());
    REQUIRE_FALSE(r0->failed());
    REQUIRE_FALSE(r1->failed());
    CHECK(gotA == a);
    CHECK(gotB == b);
    ++op;
  }

  // The two ends must agree on the count: an endpoint expecting one local stream rejects the
  // second its peer opens, and the connection set-up fails instead of hanging.
  TransportOptions one;
  one.localStreamsPerPeer = 1;
  auto e0 = createTransport("tcp", one);
  auto e1 = createTransport("tcp", options);
  REQUIRE(e0.hasValue());
  REQUIRE(e1.hasValue());
  auto a0 = (*e0)->listen();
  auto a1 = (*e1)->listen();
  REQUIRE(a0.hasValue());
  REQUIRE(a1.hasValue());
  std::vector<std::string> addresses{*a0, *a1};
  Status c0, c1;
  std::thread t0([&] { c0 = (*e0)->connect(0, addresses, Deadline::afterMs(3000)); });
  std::thread t1([&] { c1 = (*e1)->connect(1, addresses, Deadline::afterMs(3000)); });
  t0.join();
  t1.join();
  CHECK_FALSE(c1.isOk());
}

namespace {

std::string firstLineOf(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

uint16_t portOf(const sockaddr_storage& a) {
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(a).sin6_port
                                       : reinterpret_cast<const sockaddr_in&>(a).sin_port);
}

// Calls f(fd, own end, other end) for every connected socket of this process.
void forEachConnection(const std::function<void(int, const sockaddr_storage&, const sockaddr_storage&)>& f) {
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    sockaddr_storage self{}, peer{};
    socklen_t selfLen = sizeof(self), peerLen = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&self), &selfLen) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peerLen) != 0)
      continue;  // not a socket, or a listening one
    f(fd, self, peer);
  }
  closedir(dir);
}

// This process's connected socket whose own end is at `port` (-1: none).
int connectionOn(uint16_t port) {
  int found = -1;
  forEachConnection([&](int fd, const sockaddr_storage& self, const sockaddr_storage&) {
    if (portOf(self) == port) found = fd;
  });
  return found;
}

uint16_t listeningPort(const Mesh& mesh, int rank) {
  const std::string& a = mesh.addresses.at(rank);
  return static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
}

// The congestion control of every connection of this process to or from one of the mesh's
// listening ports (both ends of each pair live here), read from the sockets themselves.
std::vector<std::string> congestionOfMesh(const Mesh& mesh) {
  std::vector<uint16_t> ports;
  for (size_t r = 0; r < mesh.addresses.size(); ++r) ports.push_back(listeningPort(mesh, static_cast<int>(r)));
  const auto ours = [&](uint16_t p) { return std::find(ports.begin(), ports.end(), p) != ports.end(); };
  std::vector<std::string> out;
  forEachConnection([&](int fd, const sockaddr_storage& self, const sockaddr_storage& peer) {
    int protocol = 0;
    socklen_t len = sizeof(protocol);
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 || protocol != IPPROTO_TCP) return;
    if (!ours(portOf(self)) && !ours(portOf(peer))) return;
    CHECK(loom::tcp::peerOnThisHost(fd));
    out.push_back(loom::tcp::congestionControl(fd));
  });
  return out;
}

}  // namespace

TEST_CASE("tcp: connections within this host use Reno unless told otherwise; a name the kernel lacks fails listen",
          "[transport][tcp]") {
  const std::string system = firstLineOf("/proc/sys/net/ipv4/tcp_congestion_control");
  INFO("the system's congestion control: " << system);
  // Three endpoints, one stream a pair: three connections, both ends of each in this process.
  TransportOptions options;
  REQUIRE(options.nearCongestion == "reno");
  {
    auto mesh = makeMesh("tcp", 3, options);
    const auto got = congestionOfMesh(*mesh);
    CHECK(got.size() == 6);
    for (const auto& cc : got) CHECK(cc == "reno");
  }
  {
    options.nearCongestion.clear();  // the system's
    auto mesh = makeMesh("tcp", 3, options);
    const auto got = congestionOfMesh(*mesh);
    CHECK(got.size() == 6);
    for (const auto& cc : got) CHECK(cc == system);
  }
  // A third algorithm, so that neither Reno nor the system's default could pass by chance.
  std::stringstream offered(firstLineOf(geteuid() == 0 ? "/proc/sys/net/ipv4/tcp_available_congestion_control"
                                                        : "/proc/sys/net/ipv4/tcp_allowed_congestion_control"));
  std::string third;
  for (std::string name; offered >> name;)
    if (name != "reno" && name != system) third = name;
  if (third.empty()) {
    WARN("no third congestion control algorithm is offered here: that part is skipped");
  } else {
    options.nearCongestion = third;
    auto mesh = makeMesh("tcp", 2, options);
    const auto got = congestionOfMesh(*mesh);
    CHECK(got.size() == 2);
    for (const auto& cc : got) CHECK(cc == third);
  }
  options.nearCongestion = "no-such-cc";
  auto t = createTransport("tcp", options);
  REQUIRE(t.hasValue());
  auto listening = (*t)->listen();
  REQUIRE_FALSE(listening.hasValue());
  CHECK(listening.error().code() == loomInvalidArgument);
  CHECK(listening.error().message().find("no-such-cc") != std::string::npos);
  CHECK(listening.error().message().find("LOOM_TCP_CONGESTION") != std::string::npos);
}

// A rank sends runs of small messages, one call at a time, while its peer is busy; then the peer
// takes them and replies. On one host the later messages of a run wait in the kernel and leave
// together (transports/tcp/tcp_coalesce.cc). Checked: every byte arrives in order; the run was
// really joined into fewer segments (read back from the socket); and no run's last message is
// held for the receiver's delayed acknowledgement (40 ms a run, which the receiver's prompt
// acknowledgement avoids; the reply puts the connection in the mode where Linux delays it).
TEST_CASE("tcp: runs of small messages on one host leave as fewer segments, and none is held back", "[transport][tcp]") {
  const bool coalesce = GENERATE(true, false);
  CAPTURE(coalesce);
  TransportOptions options;
  options.coalesce = coalesce ? TransportOptions::Coalesce::SameHost : TransportOptions::Coalesce::Off;
  auto mesh = makeMesh("tcp", 2, options);
  Transport& sender = (*mesh)[0];
  Transport& receiver = (*mesh)[1];
  // Rank 1 connected to rank 0, so rank 0's end of the connection is at rank 0's listening port.
  const int senderFd = connectionOn(listeningPort(*mesh, 0));
  REQUIRE(senderFd >= 0);
  auto segmentsOut = [&] {
    tcp_info info{};
    socklen_t len = sizeof info;
    REQUIRE(getsockopt(senderFd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0);
    return info.tcpi_segs_out;
  };
  constexpr int kRuns = 60, kPerRun = 16;
  constexpr size_t kBytes = 4096;
  const uint32_t segmentsBefore = segmentsOut();
  std::chrono::steady_clock::duration receiving{};
  uint64_t op = 1;
  for (int run = 0; run < kRuns; ++run) {
    CAPTURE(run);
    std::vector<std::vector<uint8_t>> sent, got;
    for (int i = 0; i < kPerRun; ++i) {
      sent.push_back(pattern(kBytes, static_cast<uint32_t>(op + i)));
      got.emplace_back(kBytes, 0xEE);
    }
    for (int i = 0; i < kPerRun; ++i) {  // one call at a time, as a loop of blocking collectives
      auto s = sender.isend(1, sent[i].data(), kBytes, tagOf(op + i), kSig);
      const Deadline deadline = Deadline::afterMs(20000);
      while (!s->done() && !deadline.expired()) sender.poll();
      REQUIRE(s->done());
      REQUIRE_FALSE(s->failed());
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<TransferPtr> recvs;
    for (int i = 0; i < kPerRun; ++i) recvs.push_back(receiver.irecv(0, got[i].data(), kBytes, tagOf(op + i), kSig));
    const Deadline deadline = Deadline::afterMs(20000);
    while (!allFinished(recvs) && !deadline.expired()) receiver.poll();  // the sender is left alone meanwhile
    receiving += std::chrono::steady_clock::now() - start;
    REQUIRE(allFinished(recvs));
    for (int i = 0; i < kPerRun; ++i) {
      INFO("message " << i << ": " << recvs[i]->status.toString());
      REQUIRE_FALSE(recvs[i]->failed());
      REQUIRE(got[i] == sent[i]);
    }
    op += kPerRun;
    uint8_t reply = 1, replied = 0;
    auto r = sender.irecv(1, &replied, 1, tagOf(op), kSig);
    auto s = receiver.isend(0, &reply, 1, tagOf(op), kSig);
    REQUIRE(pollUntil(*mesh, [&] { return r->done() && s->done(); }));
    REQUIRE(replied == 1);
    ++op;
  }
  const uint32_t segments = segmentsOut() - segmentsBefore;
  const auto receivingMs = std::chrono::duration_cast<std::chrono::milliseconds>(receiving).count();
  INFO(kRuns * kPerRun << " messages left in " << segments << " segments; taking them took " << receivingMs
                       << " ms in all");
  if (coalesce) CHECK(segments < kRuns * kPerRun / 2);
  // Normally a few milliseconds in all; a delayed acknowledgement a run would make it 2.4 s.
  CHECK(receivingMs < 1200);

  // Now the receiver keeps up: it takes each message before the next is sent, so nothing is left
  // unacknowledged when the next goes. A message held back then would wait for the kernel's probe
  // timer (200 ms or more each), so it must go at once.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns * kPerRun / 4; ++i, ++op) {
    CAPTURE(i);
    const auto sent = pattern(kBytes, static_cast<uint32_t>(op));
    std::vector<uint8_t> got(kBytes, 0xEE);
    auto r = receiver.irecv(0, got.data(), kBytes, tagOf(op), kSig);
    auto s = sender.isend(1, sent.data(), kBytes, tagOf(op), kSig);
    const Deadline deadline = Deadline::afterMs(20000);
    while (!s->done() && !deadline.expired()) sender.poll();
    while (!r->done() && !deadline.expired()) receiver.poll();
    REQUIRE(r->done());
    REQUIRE_FALSE(r->failed());
    REQUIRE(got == sent);
  }
  const auto keepingUpMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  INFO(kRuns * kPerRun / 4 << " messages sent and taken one by one in " << keepingUpMs << " ms");
  CHECK(keepingUpMs < 1200);  // normally a few milliseconds
}
