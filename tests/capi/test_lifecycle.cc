// Creating and destroying communicators leaks nothing: file descriptors and threads stay flat over
// many cycles, with and without an abort before the destroy.
#include "support/proc_counts.h"
#include "support/threaded_world.h"

#include <catch2/catch.hpp>

#include <string>

namespace {


void cycle(bool abortFirst) {
  loomtest::runWorld(3, [&](int r, loomComm_t& comm) {
    int32_t v = r;
    if (loomAllReduce(&v, &v, 1, loomInt32, loomSum, comm) != loomSuccess || v != 3)
      throw std::runtime_error("all-reduce failed");
    if (abortFirst) loomCommAbort(comm);
  });
}

}  // namespace

TEST_CASE("init and destroy cycles leave fd and thread counts flat", "[lifecycle]") {
  cycle(false);  // warm up lazily created process-wide state
  int fds = loomtest::openFds(), ths = loomtest::threadCount();
  for (int i = 0; i < 20; ++i) cycle(false);
  CHECK(loomtest::openFds() == fds);
  CHECK(loomtest::threadCount() == ths);
}

TEST_CASE("init, abort and destroy cycles leave fd and thread counts flat", "[lifecycle]") {
  cycle(true);
  int fds = loomtest::openFds(), ths = loomtest::threadCount();
  for (int i = 0; i < 20; ++i) cycle(true);
  CHECK(loomtest::openFds() == fds);
  CHECK(loomtest::threadCount() == ths);
}

TEST_CASE("loomCommGetAsyncError: success while healthy, loomAborted after an abort; no failures listed",
          "[lifecycle]") {
  loomtest::runWorld(2, [&](int, loomComm_t& comm) {
    loomResult_t e = loomInternalError;
    int count = -1;
    auto expect = [](bool ok, const char* what) {
      if (!ok) throw std::runtime_error(what);
    };
    expect(loomCommGetAsyncError(comm, &e) == loomSuccess && e == loomSuccess, "healthy comm reports an error");
    expect(loomCommGetFailures(comm, nullptr, 0, &count) == loomSuccess && count == 0, "healthy comm lists failures");
    expect(loomCommGetAsyncError(comm, nullptr) == loomInvalidArgument, "NULL asyncError accepted");
    expect(loomCommGetFailures(comm, nullptr, 1, &count) == loomInvalidArgument, "NULL failures accepted");
    expect(loomCommGetFailures(comm, nullptr, 0, nullptr) == loomInvalidArgument, "NULL count accepted");
    loomCommAbort(comm);
    expect(loomCommGetAsyncError(comm, &e) == loomSuccess && e == loomAborted, "aborted comm not reported");
    expect(std::string(loomGetLastError(comm)).find("aborted") != std::string::npos, "no message after abort");
  });
}
