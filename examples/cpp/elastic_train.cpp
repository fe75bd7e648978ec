// Elastic training with Loom: SGD on a small linear model where workers may be killed and new
// ones join while it runs, and every worker keeps bit-identical parameters.
//
//   elastic_train [--steps N] [--outer H] [--step-ms MS] [--join] [--id ID] [--print-every K]
//
// Founders are started by a launcher (LOOM_RANK, LOOM_WORLD_SIZE, LOOM_COORDINATOR: loomrun, or
// your own script around loomd); a process started later with --join enters the running job
// (loomCommJoin) and fetches the model from the others (loomSharedStateSync).
//
// Each worker draws its own deterministic data stream (by its id): y = w*.x + noise. Per step it
// computes the gradient of the squared error on a batch, all-reduces it (average), and takes an
// SGD step. The parameters and the step counter are Loom shared state: after any membership
// change the workers synchronize them, so a joiner starts from the others' model and a worker that
// was ahead of a failed step is put back in line. Per step it prints the world size and the hash
// of the parameters: the hashes are equal on every worker.
//
// With --outer H it runs DiLoCo (docs: ALGORITHMS.md section 5) instead: H local SGD steps from the
// global parameters with no communication, then the outer gradient delta = avg(global - local)
// (one all-reduce), outer Nesterov momentum v = mu v + delta, global -= lr_out (delta + mu v).
//
// When a collective fails because a worker died (loomPeerLost or loomRemoteError), the survivors
// call loomCommUpdate (the dead worker is dropped, waiting joiners admitted), synchronize the
// state, and redo the step: the gradient buffer was restored, and avg now divides by the new world.
#include <loom/loom.h>

#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kDim = 64;       // model: w (kDim weights) and a bias
constexpr int kBatch = 32;     // samples per step and worker
constexpr float kLr = 0.05f;   // inner learning rate
constexpr float kOuterLr = 0.7f, kMomentum = 0.9f;  // DiLoCo outer Nesterov (the paper's values)

struct Options {
  int steps = 60;
  int outer = 0;  // 0: plain data-parallel SGD; H > 0: DiLoCo with H local steps per round
  int stepMs = 0;
  bool join = false;
  int id = -1;
  int printEvery = 1;
};

[[noreturn]] void die(const char* what, loomComm_t comm) {
  std::fprintf(stderr, "elastic_train: %s failed: %s\n", what, loomGetLastError(comm));
  std::exit(1);
}

bool lostPeer(loomResult_t rc) { return rc == loomPeerLost || rc == loomRemoteError; }

// Deterministic pseudo-random numbers in [-1, 1): the data stream of worker `id`.
float uniform(uint64_t id, uint64_t step, uint64_t k) {
  uint64_t x = id * 0x9E3779B97F4A7C15ull ^ step * 0xBF58476D1CE4E5B9ull ^ k * 0x94D049BB133111EBull;
  x ^= x >> 31;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return static_cast<float>(x >> 40) / static_cast<float>(1ull << 23) - 1.0f;
}

// Gradient of the mean squared error of `w` (kDim weights, then the bias) on this worker's batch.
void gradient(const std::vector<float>& w, int id, int64_t step, float* grad) {
  std::memset(grad, 0, (kDim + 1) * sizeof(float));
  for (int j = 0; j < kBatch; ++j) {
    float x[kDim], pred = w[kDim], target = 0.5f;
    for (int i = 0; i < kDim; ++i) {
      x[i] = uniform(uint64_t(id), uint64_t(step), uint64_t(j * kDim + i));
      pred += w[i] * x[i];
      target += std::sin(float(i)) * x[i];  // the true model
    }
    target += 0.01f * uniform(uint64_t(id), uint64_t(step), 1u << 30 | uint64_t(j));  // noise
    const float err = pred - target;
    for (int i = 0; i < kDim; ++i) grad[i] += 2.0f * err * x[i] / kBatch;
    grad[kDim] += 2.0f * err / kBatch;
  }
}

// What every worker keeps identical, synchronized through loomSharedStateSync.
struct State {
  int64_t step = 0;               // inner steps (SGD) or outer rounds (DiLoCo) completed
  std::vector<float> params = std::vector<float>(kDim + 1, 0.0f);    // SGD model; DiLoCo: global model
  std::vector<float> momentum = std::vector<float>(kDim + 1, 0.0f);  // DiLoCo outer momentum
  uint64_t revision = 0;

  // False if a worker was lost during the sync: update and try again.
  bool sync(loomComm_t comm, int id) {
    loomSharedEntry_t entries[] = {{"step", &step, sizeof step},
                                   {"params", params.data(), params.size() * sizeof(float)},
                                   {"momentum", momentum.data(), momentum.size() * sizeof(float)}};
    loomSyncInfo_t info{};
    loomResult_t rc = loomSharedStateSync(comm, entries, 3, revision + 1, &info);
    if (lostPeer(rc)) return false;
    if (rc != loomSuccess) die("loomSharedStateSync", comm);
    revision = info.revision;
    if (info.bytesReceived > 0 || info.bytesSent > 0) {
      int rank = 0;
      loomCommRank(comm, &rank);
      std::printf("[worker %d rank %d] state synchronized at revision %" PRIu64 ": sent %" PRIu64
                  " bytes, received %" PRIu64 "\n", id, rank, revision, info.bytesSent, info.bytesReceived);
    }
    return true;
  }

  uint64_t hash() const {
    const void* parts[] = {params.data(), momentum.data()};
    const size_t bytes[] = {params.size() * sizeof(float), momentum.size() * sizeof(float)};
    uint64_t h = 0;
    loomHash(parts, bytes, 2, &h);
    return h;
  }
};

// A safe point: new membership (dead workers dropped, joiners admitted), then the same state.
void update(State& state, int id, loomComm_t comm) {
  do {
    loomResult_t rc = loomCommUpdate(comm);
    if (rc != loomSuccess) die("loomCommUpdate", comm);
  } while (!state.sync(comm, id));
}

// All-reduce (average) of `buf`, whose last element is "a joiner is waiting" (any worker's 1 makes
// the average positive on every worker alike). False if a worker was lost: buf holds its input again.
bool averageWithPending(std::vector<float>& buf, int id, loomComm_t comm) {
  int pending = 0;
  loomCommPendingPeers(comm, &pending);
  buf.back() = pending > 0 ? 1.0f : 0.0f;
  loomResult_t rc = loomAllReduce(buf.data(), buf.data(), buf.size(), loomFloat32, loomAvg, comm);
  if (lostPeer(rc)) {
    std::printf("[worker %d] a peer was lost: %s\n", id, loomGetLastError(comm));
    return false;
  }
  if (rc != loomSuccess) die("loomAllReduce", comm);
  return true;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "elastic_train: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (a == "--steps") o.steps = value();
    else if (a == "--outer") o.outer = value();
    else if (a == "--step-ms") o.stepMs = value();
    else if (a == "--join") o.join = true;
    else if (a == "--id") o.id = value();
    else if (a == "--print-every") o.printEvery = value();
    else {
      std::fprintf(stderr,
                   "usage: elastic_train [--steps N] [--outer H] [--step-ms MS] [--join] [--id ID] [--print-every K]\n");
      std::exit(2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const Options o = parse(argc, argv);
  loomComm_t comm = nullptr;
  loomResult_t rc = o.join ? loomCommJoin(&comm, nullptr, nullptr) : loomCommInitFromEnv(&comm, nullptr);
  if (rc != loomSuccess) die(o.join ? "loomCommJoin" : "loomCommInitFromEnv", nullptr);
  int rank = 0, world = 0;
  loomCommRank(comm, &rank);
  const int id = o.id >= 0 ? o.id : (o.join ? 1000 + static_cast<int>(getpid() % 1000) : rank);

  State state;
  if (!state.sync(comm, id)) update(state, id, comm);  // a joiner receives the model here
  loomCommRank(comm, &rank);
  std::printf("[worker %d rank %d] starts at %s %" PRId64 "\n", id, rank, o.outer ? "round" : "step", state.step);

  std::vector<float> buf(kDim + 2);  // gradient (or outer gradient), then the pending flag
  std::vector<float> local(kDim + 1);
  while (state.step < o.steps) {
    if (o.stepMs > 0) usleep(static_cast<useconds_t>(o.stepMs) * 1000);
    if (o.outer == 0) {
      gradient(state.params, id, state.step, buf.data());
    } else {
      // DiLoCo inner loop: H local steps from the global model, no communication.
      local = state.params;
      float g[kDim + 1];
      for (int h = 0; h < o.outer; ++h) {
        gradient(local, id, state.step * o.outer + h, g);
        for (int i = 0; i <= kDim; ++i) local[i] -= kLr * g[i];
      }
      for (int i = 0; i <= kDim; ++i) buf[i] = state.params[i] - local[i];
    }
    if (!averageWithPending(buf, id, comm)) {
      update(state, id, comm);
      continue;  // redo this step (or the step the majority is at) with the survivors
    }
    if (o.outer == 0) {
      for (int i = 0; i <= kDim; ++i) state.params[i] -= kLr * buf[i];
    } else {
      for (int i = 0; i <= kDim; ++i) {
        state.momentum[i] = kMomentum * state.momentum[i] + buf[i];
        state.params[i] -= kOuterLr * (buf[i] + kMomentum * state.momentum[i]);
      }
    }
    ++state.step;
    loomCommRank(comm, &rank);
    loomCommSize(comm, &world);
    if (state.step % o.printEvery == 0 || state.step == o.steps) {
      float loss = 0;  // squared distance to the true model, for the eye
      for (int i = 0; i < kDim; ++i) loss += (state.params[i] - std::sin(float(i))) * (state.params[i] - std::sin(float(i)));
      std::printf("[worker %d rank %d] %s %" PRId64 " world %d params hash %016" PRIx64 " distance %.4f\n", id, rank,
                  o.outer ? "round" : "step", state.step, world, state.hash(), double(std::sqrt(loss)));
    }
    if (buf.back() > 0 && state.step < o.steps) update(state, id, comm);  // admit the joiners
  }
  loomCommDestroy(comm);
  return 0;
}
