// One rank of the peer-loss test (tests/multiproc/test_peer_loss.cc): joins from the environment,
// then all-reduces 1 MiB of int32 over and over for up to --seconds (default 20), printing
// "rank R: iteration K" after each (flushed, so the test sees it running). On the first failure it
// prints "rank R: failed after K iterations: <result>: <loomGetLastError>", then what
// loomCommGetAsyncError and loomCommGetFailures say ("rank R: async error <result>", one
// "rank R: peer failure: rank V ..." line per failed peer), and exits 3; a wrong
// sum exits 4; running out the time exits 0 ("rank R: done after K iterations").
// --linger-ms N: after a failure, wait N ms before aborting the communicator (as an application
// that saves a checkpoint first would), so its connections stay open meanwhile.
// SIGUSR1: exit cleanly (status 0, "rank R: exiting on request") at the next iteration boundary,
// without telling anyone: a peer that simply leaves (FAULTS.md F2(a)).
// Usage: loss_worker [--timeout-ms N] [--seconds S] [--linger-ms N]
#include <loom/loom.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <thread>
#include <vector>

namespace {
volatile std::sig_atomic_t exitRequested = 0;
void requestExit(int) { exitRequested = 1; }
}  // namespace

int main(int argc, char** argv) {
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  config.timeoutMs = 20000;
  double seconds = 20;
  int lingerMs = 0;  // after a failure, keep the communicator this long before aborting it
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
      config.timeoutMs = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--linger-ms") == 0 && i + 1 < argc) {
      lingerMs = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: loss_worker [--timeout-ms N] [--seconds S] [--linger-ms N]\n");
      return 2;
    }
  }
  std::signal(SIGUSR1, requestExit);
  loomComm_t comm = nullptr;
  loomResult_t r = loomCommInitFromEnv(&comm, &config);
  if (r != loomSuccess) {
    std::fprintf(stderr, "loss_worker: init failed: %s: %s\n", loomGetErrorString(r), loomGetLastError(nullptr));
    return 2;
  }
  int rank = 0, size = 0;
  loomCommRank(comm, &rank);
  loomCommSize(comm, &size);

  const size_t count = (1u << 20) / sizeof(int32_t);
  std::vector<int32_t> send(count), recv(count);
  const int32_t want = size * (size + 1) / 2;
  const auto start = std::chrono::steady_clock::now();
  long iteration = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::duration<double>(seconds)) {
    if (exitRequested) {
      std::printf("rank %d: exiting on request\n", rank);
      std::fflush(stdout);
      std::exit(0);
    }
    std::fill(send.begin(), send.end(), rank + 1);
    r = loomAllReduce(send.data(), recv.data(), count, loomInt32, loomSum, comm);
    if (r != loomSuccess) {
      std::printf("rank %d: failed after %ld iterations: %s: %s\n", rank, iteration, loomGetErrorString(r),
                  loomGetLastError(comm));
      loomResult_t async = loomSuccess;
      loomCommGetAsyncError(comm, &async);
      std::printf("rank %d: async error %s\n", rank, loomGetErrorString(async));
      loomPeerFailure_t failures[8];
      int known = 0;
      loomCommGetFailures(comm, failures, 8, &known);
      for (int i = 0; i < std::min(known, 8); ++i)
        std::printf("rank %d: peer failure: rank %d reason %s reported by %d address '%s' last seq %llu: %s\n", rank,
                    failures[i].rank, loomGetErrorString(failures[i].reason), failures[i].reportedBy,
                    failures[i].address, static_cast<unsigned long long>(failures[i].lastSeq), failures[i].detail);
      std::fflush(stdout);
      if (lingerMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(lingerMs));
      loomCommAbort(comm);
      loomCommDestroy(comm);
      return 3;
    }
    if (recv[0] != want || recv[count - 1] != want) {
      std::printf("rank %d: wrong sum at iteration %ld: %d, %d (want %d)\n", rank, iteration, recv[0],
                  recv[count - 1], want);
      std::fflush(stdout);
      loomCommAbort(comm);
      loomCommDestroy(comm);
      return 4;
    }
    ++iteration;
    std::printf("rank %d: iteration %ld\n", rank, iteration);
    std::fflush(stdout);
  }
  std::printf("rank %d: done after %ld iterations\n", rank, iteration);
  std::fflush(stdout);
  r = loomCommDestroy(comm);
  return r == loomSuccess ? 0 : 1;
}
