// Every bad input gets its distinct code and a message naming what is wrong, and loses nothing.
// Ranks are threads with real communicators over loopback TCP (tests/support/threaded_world.h).
#include "capi/handles.h"
#include "protocol/wire.h"
#include "support/outcome.h"
#include "support/threaded_world.h"
#include "transports/tcp/socket.h"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using loomtest::mentions;
using loomtest::Outcome;
using loomtest::outcome;

}  // namespace

TEST_CASE("null communicator and null pointers name the argument", "[capi]") {
  float x = 0;
  CHECK(loomAllReduce(&x, &x, 1, loomFloat32, loomSum, nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm is NULL"));
  CHECK(loomCommRank(nullptr, nullptr) == loomInvalidArgument);
  CHECK(loomCommInitRank(nullptr, 1, 0, "127.0.0.1:1", nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "comm (output pointer) is NULL"));
  CHECK(loomTest(nullptr, nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "request is NULL"));

  std::vector<Outcome> sendNull(1), recvNull(1), requestNull(1), rankNull(1);
  loomtest::runWorld(1, [&](int r, loomComm_t& comm) {
    float v = 1;
    sendNull[r] = outcome(loomAllReduce(nullptr, &v, 4, loomFloat32, loomSum, comm), comm);
    recvNull[r] = outcome(loomBroadcast(&v, nullptr, 4, loomFloat32, 0, comm), comm);
    requestNull[r] = outcome(loomAllReduceAsync(&v, &v, 1, loomFloat32, loomSum, 1, comm, nullptr), comm);
    rankNull[r] = outcome(loomCommRank(comm, nullptr), comm);
  });
  CHECK(sendNull[0].rc == loomInvalidArgument);
  CHECK(mentions(sendNull[0].message, "sendbuff is NULL"));
  CHECK(recvNull[0].rc == loomInvalidArgument);
  CHECK(mentions(recvNull[0].message, "recvbuff is NULL"));
  CHECK(requestNull[0].rc == loomInvalidArgument);
  CHECK(mentions(requestNull[0].message, "request"));
  CHECK(rankNull[0].rc == loomInvalidArgument);
}

TEST_CASE("counts that overflow, unknown datatype or op, root out of range", "[capi]") {
  std::vector<Outcome> overflow(2), gatherOverflow(2), dtype(2), op(2), root(2), peer(2), after(2);
  loomtest::runWorld(2, [&](int r, loomComm_t& comm) {
    float v[4] = {1, 2, 3, 4};
    overflow[r] = outcome(loomAllReduce(v, v, SIZE_MAX / 2, loomFloat32, loomSum, comm), comm);
    gatherOverflow[r] = outcome(loomAllGather(v, v, SIZE_MAX / 8, loomFloat32, comm), comm);
    dtype[r] = outcome(loomAllReduce(v, v, 4, static_cast<loomDataType_t>(42), loomSum, comm), comm);
    op[r] = outcome(loomAllReduce(v, v, 4, loomFloat32, static_cast<loomRedOp_t>(9), comm), comm);
    root[r] = outcome(loomBroadcast(v, v, 4, loomFloat32, 5, comm), comm);
    peer[r] = outcome(loomSend(v, 4, loomFloat32, r, comm), comm);
    // Nothing was lost: the communicator still works, and the buffer is as it was.
    after[r] = outcome(loomAllReduce(v, v, 4, loomFloat32, loomSum, comm), comm);
    if (after[r].rc == loomSuccess && !(v[0] == 2 && v[3] == 8)) after[r].rc = loomInternalError;
  });
  for (int r = 0; r < 2; ++r) {
    CHECK(overflow[r].rc == loomInvalidArgument);
    CHECK(mentions(overflow[r].message, "count"));
    CHECK(gatherOverflow[r].rc == loomInvalidArgument);
    CHECK(dtype[r].rc == loomInvalidArgument);
    CHECK(mentions(dtype[r].message, "datatype 42"));
    CHECK(op[r].rc == loomInvalidArgument);
    CHECK(mentions(op[r].message, "op 9"));
    CHECK(root[r].rc == loomInvalidArgument);
    CHECK(mentions(root[r].message, "root 5"));
    CHECK(peer[r].rc == loomInvalidArgument);
    CHECK(mentions(peer[r].message, "this rank itself"));
    CHECK(after[r].rc == loomSuccess);
  }
}

TEST_CASE("a count that differs across ranks is detected on every rank", "[capi]") {
  std::vector<Outcome> first(3), after(3);
  loomtest::runWorld(3, [&](int r, loomComm_t& comm) {
    std::vector<int32_t> v(1000, 1);
    size_t count = r == 1 ? 500 : 1000;
    first[r] = outcome(loomAllReduce(v.data(), v.data(), count, loomInt32, loomSum, comm), comm);
  });
  for (int r = 0; r < 3; ++r) {
    INFO("rank " << r << ": " << first[r].message);
    CHECK((first[r].rc == loomInvalidUsage || first[r].rc == loomRemoteError));
  }
  bool named = false;
  for (auto& o : first) named |= mentions(o.message, "differs across ranks");
  CHECK(named);
}

TEST_CASE("a datatype that differs across ranks is detected", "[capi]") {
  std::vector<Outcome> first(2);
  loomtest::runWorld(2, [&](int r, loomComm_t& comm) {
    std::vector<int32_t> v(64, 1);
    first[r] = outcome(loomAllReduce(v.data(), v.data(), 64, r == 0 ? loomInt32 : loomFloat32, loomSum, comm), comm);
  });
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << ": " << first[r].message);
    CHECK((first[r].rc == loomInvalidUsage || first[r].rc == loomRemoteError));
  }
}

TEST_CASE("an unreachable coordinator is a system error naming the address", "[capi]") {
  setenv("LOOM_COORDINATOR_WAIT_MS", "300", 1);  // retried for 0.3 s, then reported
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  config.connectTimeoutMs = 5000;
  loomComm_t comm = nullptr;
  auto t0 = std::chrono::steady_clock::now();
  CHECK(loomCommInitRank(&comm, 2, 0, "127.0.0.1:1", &config) == loomSystemError);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  unsetenv("LOOM_COORDINATOR_WAIT_MS");
  CHECK(mentions(loomGetLastError(nullptr), "127.0.0.1:1"));
  CHECK(seconds >= 0.25);  // it did retry
  CHECK(seconds < 5);
  CHECK(comm == nullptr);
}

TEST_CASE("a malformed coordinator address is an invalid argument", "[capi]") {
  loomComm_t comm = nullptr;
  CHECK(loomCommInitRank(&comm, 2, 0, "no-port-here", nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "no-port-here"));
  CHECK(loomCommInitRank(&comm, 2, 0, nullptr, nullptr) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "coordinator"));
}

TEST_CASE("a coordinator port in use is a system error", "[capi]") {
  auto holder = loomtest::startCoordinator();  // holds a port
  setenv("LOOM_EMBEDDED_COORDINATOR", "1", 1);
  loomComm_t comm = nullptr;
  loomResult_t rc = loomCommInitRank(&comm, 1, 0, holder->address().c_str(), nullptr);
  std::string message = loomGetLastError(nullptr);
  unsetenv("LOOM_EMBEDDED_COORDINATOR");
  CHECK(rc == loomSystemError);
  INFO(message);
  CHECK(mentions(message, holder->address().substr(holder->address().rfind(':') + 1)));
}

TEST_CASE("a settings value out of range names the variable", "[capi]") {
  setenv("LOOM_STREAMS", "99", 1);
  loomComm_t comm = nullptr;
  loomResult_t rc = loomCommInitRank(&comm, 1, 0, "127.0.0.1:1", nullptr);
  unsetenv("LOOM_STREAMS");
  CHECK(rc == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "LOOM_STREAMS"));
  loomConfig_t bad = LOOM_CONFIG_INITIALIZER;
  bad.size = 3;
  CHECK(loomCommInitRank(&comm, 1, 0, "127.0.0.1:1", &bad) == loomInvalidArgument);
  CHECK(mentions(loomGetLastError(nullptr), "LOOM_CONFIG_INITIALIZER"));
}

namespace {

// Connects to a running rank's data address, sends a forged PeerHello, returns its Reject.
loom::wire::Reject forgeHello(const std::string& address, uint64_t commId, uint32_t version) {
  auto fd = loom::tcp::connectTo(address, loom::Deadline::afterMs(5000));
  REQUIRE(fd);
  loom::wire::Header h{.type = loom::wire::Type::PeerHello, .commId = commId, .epoch = 0};
  auto frame = loom::wire::encode(h, loom::wire::PeerHello{version, 1, 2, 0});
  REQUIRE(loom::tcp::writeAll(*fd, frame.data(), frame.size(), loom::Deadline::afterMs(5000)));
  std::vector<uint8_t> in;
  uint8_t buf[8192];
  auto deadline = loom::Deadline::afterMs(5000);
  while (!deadline.expired()) {
    ssize_t n = ::recv(*fd, buf, sizeof(buf), 0);
    if (n > 0) in.insert(in.end(), buf, buf + n);
    else if (n == 0) break;
    else usleep(1000);
  }
  ::close(*fd);
  REQUIRE(in.size() >= loom::wire::kHeaderBytes);
  auto header = loom::wire::decodeHeader({in.data(), loom::wire::kHeaderBytes});
  REQUIRE(header);
  REQUIRE(header->type == loom::wire::Type::Reject);
  REQUIRE(in.size() == loom::wire::kHeaderBytes + header->payloadBytes);
  auto reject = loom::wire::decodeReject({in.data() + loom::wire::kHeaderBytes, header->payloadBytes});
  REQUIRE(reject);
  return *reject;
}

}  // namespace

TEST_CASE("a peer with another version or communicator id is rejected, and the communicator goes on",
          "[capi][wire]") {
  std::string address;
  uint64_t commId = 0;
  std::atomic<int> phase{0};
  std::vector<Outcome> after(2);
  loom::wire::Reject versionReject, idReject;
  loomtest::runWorld(2, [&](int r, loomComm_t& comm) {
    if (r == 0) {
      address = comm->impl->dataAddress();
      commId = comm->impl->commId();
      phase = 1;
    }
    while (phase.load() == 0) usleep(1000);
    if (r == 1) {
      versionReject = forgeHello(address, commId, 9 * 10000);
      idReject = forgeHello(address, commId + 1, LOOM_VERSION_CODE);
      phase = 2;
    }
    while (phase.load() < 2) usleep(1000);
    int32_t v[3] = {r, r, r};
    after[r] = outcome(loomAllReduce(v, v, 3, loomInt32, loomSum, comm), comm);
    if (after[r].rc == loomSuccess && v[2] != 1) after[r].rc = loomInternalError;
  });
  CHECK(versionReject.code == loomVersionMismatch);
  CHECK(mentions(versionReject.message, "version"));
  CHECK(idReject.code == loomInvalidUsage);
  CHECK(mentions(idReject.message, "communicator id"));
  CHECK(after[0].rc == loomSuccess);
  CHECK(after[1].rc == loomSuccess);
}

TEST_CASE("calls after abort fail with aborted; after destroy with invalid usage", "[capi]") {
  std::vector<Outcome> afterAbort(2), afterDestroy(2), doubleDestroy(2);
  loomtest::runWorld(2, [&](int r, loomComm_t& comm) {
    float v = 1;
    loomCommAbort(comm);
    afterAbort[r] = outcome(loomAllReduce(&v, &v, 1, loomFloat32, loomSum, comm), comm);
    loomCommDestroy(comm);
    afterDestroy[r] = outcome(loomAllReduce(&v, &v, 1, loomFloat32, loomSum, comm), comm);
    doubleDestroy[r] = outcome(loomCommDestroy(comm), comm);
    comm = nullptr;
  });
  for (int r = 0; r < 2; ++r) {
    CHECK(afterAbort[r].rc == loomAborted);
    CHECK(mentions(afterAbort[r].message, "aborted"));
    CHECK(afterDestroy[r].rc == loomInvalidUsage);
    CHECK(mentions(afterDestroy[r].message, "destroyed"));
    CHECK(doubleDestroy[r].rc == loomInvalidUsage);
  }
}

TEST_CASE("abort from another thread unblocks a waiting rank within a second", "[capi]") {
  std::vector<Outcome> waited(2);
  std::vector<double> seconds(2, 0);
  std::atomic<bool> done{false};
  loomtest::runWorld(2, [&](int r, loomComm_t& comm) {
    if (r == 1) {  // never posts, so rank 0's all-reduce cannot finish; stays connected meanwhile
      while (!done.load()) usleep(1000);
      return;
    }
    float v = 1;
    std::thread aborter([&] {
      usleep(200 * 1000);
      loomCommAbort(comm);
    });
    auto t0 = std::chrono::steady_clock::now();
    waited[r] = outcome(loomAllReduce(&v, &v, 1, loomFloat32, loomSum, comm), comm);
    seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    aborter.join();
    done = true;
  });
  CHECK(waited[0].rc == loomAborted);
  CHECK(seconds[0] < 1.2);
}
