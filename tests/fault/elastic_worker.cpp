// One rank of the elastic fault scenarios (FAULTS.md F1, F4): a loop of in-place all-reduces that
// survives peers dying and admits joiners, checking every result exactly.
//
//   elastic_worker [--steps N] [--count C] [--id ID] [--join] [--die-at STEP] [--die-delay-us US]
//                  [--leave-at STEP] [--step-ms MS] [--async K] [--die-percent P --seed S]
//                  [--crash-after K --crash-rank R]
//
// Founders read LOOM_RANK / LOOM_WORLD_SIZE / LOOM_COORDINATOR (loomCommInitFromEnv); with --join
// the process joins the running communicator instead (loomCommJoin) and learns the step from
// rank 0. Each member's identity is its founding rank, or --id for a joiner.
//
// Step s all-reduces (in place, float32 sum) C values v[i] = (id+1)(s+1) + (i mod 7), plus three
// counters: id+1, 1, and whether joiners are waiting. Integers this small sum exactly in any order,
// so with S = sum(id+1) and K = contributors every result must be v[i] = S(s+1) + K(i mod 7), and
// K must equal the world size. After a failure the buffer must hold this rank's input again
// (restored), the membership is updated, the shared state (step, parameters) synchronized and the
// same step retried. Prints per completed step
//   step S epoch E world W contributors K idsum X hash H state T
// (T: hash of the shared state after the step), and per shared-state sync the bytes it moved.
// which the test compares across ranks. With --die-at the rank SIGKILLs itself US microseconds
// into step STEP's all-reduce (from a second thread), in the middle of it.
#include <loom/loom.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  int steps = 12;
  size_t count = 1000;
  int id = -1;
  bool join = false;
  int dieAt = -1;
  int dieDelayUs = 0;
  int leaveAt = -1;
  int stepMs = 0;  // "compute" per step
  int async = 0;   // > 1: each step is this many tagged asynchronous all-reduces of parts of the buffer
  int diePercent = 0;  // torture: at each step, this % chance of a SIGKILL some microseconds into it
  unsigned seed = 1;
  // A peer that crashes every epoch: the founder with LOOM_RANK == crashRank, and every process an
  // elastic launcher starts to replace it (LOOM_JOIN=1), die crashAfter steps after they start.
  int crashAfter = 0;
  int crashRank = -1;
};

[[noreturn]] void fail(int code, const char* what, loomComm_t comm) {
  std::printf("FAIL %s: %s\n", what, loomGetLastError(comm));
  std::fflush(stdout);
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "elastic_worker: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--steps") o.steps = std::atoi(next());
    else if (a == "--count") o.count = std::strtoull(next(), nullptr, 10);
    else if (a == "--id") o.id = std::atoi(next());
    else if (a == "--join") o.join = true;
    else if (a == "--die-at") o.dieAt = std::atoi(next());
    else if (a == "--die-delay-us") o.dieDelayUs = std::atoi(next());
    else if (a == "--leave-at") o.leaveAt = std::atoi(next());
    else if (a == "--step-ms") o.stepMs = std::atoi(next());
    else if (a == "--async") o.async = std::atoi(next());
    else if (a == "--die-percent") o.diePercent = std::atoi(next());
    else if (a == "--seed") o.seed = static_cast<unsigned>(std::atoi(next()));
    else if (a == "--crash-after") o.crashAfter = std::atoi(next());
    else if (a == "--crash-rank") o.crashRank = std::atoi(next());
    else {
      std::fprintf(stderr, "elastic_worker: unknown argument %s\n", a.c_str());
      std::exit(2);
    }
  }
  return o;
}

void fill(std::vector<float>& buf, size_t count, int id, int step, int pending) {
  for (size_t i = 0; i < count; ++i) buf[i] = float((id + 1) * (step + 1) + int(i % 7));
  buf[count] = float(id + 1);
  buf[count + 1] = 1.0f;
  buf[count + 2] = float(pending > 0 ? 1 : 0);
}

// The state every member keeps equal: the step and the "parameters" (the running sum of results).
// A joiner, and any member that fell behind, gets it from the others (loomSharedStateSync).
struct State {
  int64_t step = 0;
  std::vector<float> params;
  uint64_t revision = 0;

  // False when a member was lost meanwhile: update and sync again.
  bool sync(loomComm_t comm) {
    loomSharedEntry_t entries[] = {{"step", &step, sizeof step}, {"params", params.data(), params.size() * sizeof(float)}};
    loomSyncInfo_t info{};
    loomResult_t rc = loomSharedStateSync(comm, entries, 2, revision + 1, &info);
    if (rc == loomPeerLost || rc == loomRemoteError) {
      std::printf("sync failed: %s\n", loomGetLastError(comm));
      return false;
    }
    if (rc != loomSuccess) fail(7, "loomSharedStateSync", comm);
    revision = info.revision;
    uint64_t epoch = 0;
    loomCommEpoch(comm, &epoch);
    std::printf("sync epoch %" PRIu64 " revision %" PRIu64 " sent %" PRIu64 " received %" PRIu64 "\n", epoch, revision,
                info.bytesSent, info.bytesReceived);
    return true;
  }

  uint64_t hash() const {
    const void* parts[] = {&step, params.data()};
    const size_t bytes[] = {sizeof step, params.size() * sizeof(float)};
    uint64_t h = 0;
    loomHash(parts, bytes, 2, &h);
    return h;
  }
};

// One step's all-reduce: blocking, or (--async K) K tagged asynchronous all-reduces of consecutive
// parts in flight together, each waited for: every handle must complete (success or error) within
// its deadline, none may stay pending. The result is the first failure, if any.
loomResult_t allReduceStep(std::vector<float>& buf, int parts, int id, int step, loomComm_t comm) {
  const size_t n = buf.size();
  if (parts <= 1) return loomAllReduce(buf.data(), buf.data(), n, loomFloat32, loomSum, comm);
  const size_t per = (n + parts - 1) / parts;
  std::vector<loomRequest_t> requests(parts, nullptr);
  loomResult_t first = loomSuccess;
  int ok = 0, failed = 0;
  for (int k = 0; k < parts; ++k) {
    const size_t at = std::min(n, k * per), count = std::min(per, n - at);
    loomResult_t rc = loomAllReduceAsync(buf.data() + at, buf.data() + at, count, loomFloat32, loomSum,
                                         static_cast<uint64_t>(k + 1), comm, &requests[k]);
    if (rc != loomSuccess) {
      ++failed;
      if (first == loomSuccess) first = rc;
    }
  }
  for (auto& r : requests) {
    if (!r) continue;
    loomResult_t rc = loomWait(r, 30000);
    if (rc == loomTimeout) fail(11, "an asynchronous all-reduce still pending after 30 s", comm);
    if (rc == loomSuccess) {
      ++ok;
    } else {
      ++failed;
      if (first == loomSuccess) first = rc;
    }
    loomRequestFree(r);
  }
  if (failed > 0) std::printf("id %d: async step %d: %d ok, %d failed\n", id, step, ok, failed);
  return first;
}

// Until the members agree on a membership and the state: another member may fail meanwhile.
void update(State& state, loomComm_t comm) {
  do {
    if (loomCommUpdate(comm) != loomSuccess) fail(5, "loomCommUpdate", comm);
  } while (!state.sync(comm));
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Options o = parse(argc, argv);
  std::mt19937 rng(o.seed);
  loomComm_t comm = nullptr;
  if (o.join) {
    if (loomCommJoin(&comm, nullptr, nullptr) != loomSuccess) fail(3, "loomCommJoin", nullptr);
  } else if (loomCommInitFromEnv(&comm, nullptr) != loomSuccess) {
    fail(3, "loomCommInitFromEnv", nullptr);
  }
  int rank = 0;
  loomCommRank(comm, &rank);
  const int id = o.id >= 0 ? o.id : rank;
  State state;
  state.params.assign(o.count, 0.0f);
  if (!state.sync(comm)) update(state, comm);  // a joiner gets the step and parameters here
  int step = static_cast<int>(state.step);
  std::printf("id %d: rank %d, starting at step %d\n", id, rank, step);
  const char* envRank = std::getenv("LOOM_RANK");
  const char* envJoin = std::getenv("LOOM_JOIN");
  const bool replacement = envJoin && std::atoi(envJoin) == 1;
  if (o.crashAfter > 0 && (replacement || (envRank && std::atoi(envRank) == o.crashRank))) {
    o.dieAt = step + o.crashAfter;
    o.dieDelayUs = 200;
  }

  const size_t n = o.count + 3;
  std::vector<float> buf(n), input(n);
  while (step < o.steps) {
    int pending = 0;
    loomCommPendingPeers(comm, &pending);
    if (step + 1 == o.leaveAt) pending = 1;  // everyone updates after this step; this rank leaves there
    if (o.stepMs > 0) usleep(static_cast<useconds_t>(o.stepMs) * 1000);
    fill(input, o.count, id, step, pending);
    buf = input;
    if (o.diePercent > 0 && static_cast<int>(rng() % 100) < o.diePercent) {
      o.dieAt = step;
      o.dieDelayUs = static_cast<int>(rng() % 3000);
    }
    if (step == o.dieAt) {
      // Dies while this very all-reduce runs: a thread kills the process after the delay.
      std::printf("id %d: dying in step %d\n", id, step);
      std::thread([delay = o.dieDelayUs] {
        if (delay > 0) usleep(static_cast<useconds_t>(delay));
        raise(SIGKILL);
      }).detach();
    }
    loomResult_t rc = allReduceStep(buf, o.async, id, step, comm);
    if (rc == loomPeerLost || rc == loomRemoteError) {
      std::printf("id %d: step %d failed: %s\n", id, step, loomGetLastError(comm));
      // (With --async the parts that completed hold their result; the step is redone from `input`.)
      if (o.async <= 1 && std::memcmp(buf.data(), input.data(), n * sizeof(float)) != 0)
        fail(4, "input not restored", comm);
      update(state, comm);
      step = static_cast<int>(state.step);
      continue;
    }
    if (rc != loomSuccess) fail(6, "loomAllReduce", comm);
    const double idsum = buf[o.count], contributors = buf[o.count + 1];
    int world = 0;
    loomCommSize(comm, &world);
    if (contributors != world) fail(9, "contributors differ from the world size", comm);
    for (size_t i = 0; i < o.count; ++i) {
      const double want = idsum * (step + 1) + contributors * double(i % 7);
      if (buf[i] != want) {
        std::printf("FAIL step %d element %zu: %.1f, want %.1f\n", step, i, double(buf[i]), want);
        return 10;
      }
    }
    uint64_t epoch = 0, hash = 0;
    loomCommEpoch(comm, &epoch);
    const void* parts[] = {buf.data()};
    const size_t bytes[] = {n * sizeof(float)};
    loomHash(parts, bytes, 1, &hash);
    // "Training": the parameters take the step's result (exact: small integers), the step advances.
    for (size_t i = 0; i < o.count; ++i) state.params[i] += buf[i] - state.params[i] * 0.5f;
    state.step = ++step;
    std::printf("step %d epoch %" PRIu64 " world %d contributors %d idsum %d hash %016" PRIx64 " state %016" PRIx64 "\n",
                step - 1, epoch, world, int(contributors), int(idsum), hash, state.hash());
    if (buf[o.count + 2] > 0 && step == o.leaveAt) {
      if (loomCommLeave(comm) != loomSuccess) fail(8, "loomCommLeave", comm);
      std::printf("id %d: left before step %d\n", id, step);
      loomCommDestroy(comm);
      return 0;
    }
    if (buf[o.count + 2] > 0 && step < o.steps) {
      update(state, comm);
      step = static_cast<int>(state.step);
    }
  }
  std::printf("id %d: done\n", id);
  loomCommDestroy(comm);
  return 0;
}
