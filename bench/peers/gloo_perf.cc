// gloo_perf: nccl-tests' table (bench/BENCH.md) for Gloo's all-reduce algorithms (float, sum) and
// broadcast over its TCP transport, to compare Loom with Gloo on the same machine.
//
//   build/bin/loomrun -n 2 -- build/bin/gloo_perf -A ring -b 4K -e 256M -f 4
//
// Rank and world size come from LOOM_RANK / LOOM_WORLD_SIZE (loomrun), else OMPI_COMM_WORLD_RANK /
// OMPI_COMM_WORLD_SIZE (mpirun), else RANK / WORLD_SIZE (torchrun). The ranks meet through a
// gloo::rendezvous::FileStore in --store DIR (default $TMPDIR/loom-gloo-$LOOM_COMM_ID; use a fresh
// directory per run: stale keys from an earlier run would mislead the rendezvous).
//
// Algorithms (-A), each on its own context (mixing the old-style algorithm classes with the
// new-style functions on one context slows the new ones 20-50x):
//   ring, bcube        new-style gloo::allreduce (AllreduceOptions::RING / BCUBE), out of place
//                      (setInput + setOutput) and in place (setOutput only)
//   ring_chunked       old-style gloo::AllreduceRingChunked<float>, in place only
//   halving_doubling   old-style gloo::AllreduceHalvingDoubling<float>, in place only
//   broadcast          new-style gloo::broadcast from -r (default 0), out of place and in place
// Old-style algorithms have no out-of-place form: those columns print N/A.
// Time aggregation (-a), the wrong-value count and barriers run on a third context.
#include "peer_harness.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/config.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {

const char* kProgram = "gloo_perf";
const char* kAlgorithms[] = {"ring", "ring_chunked", "halving_doubling", "bcube", "broadcast"};

void printExtraUsage() {
  std::printf(
      "%s: Gloo's all-reduce (float, sum) or broadcast over TCP in nccl-tests' table; start it with\n"
      "loomrun -n N -- %s [flags] (or any launcher setting LOOM_RANK and LOOM_WORLD_SIZE).\n"
      "  -A,--algorithm <ring|ring_chunked|halving_doubling|bcube|broadcast>   (default ring)\n"
      "  --store <dir>                FileStore directory for the rendezvous\n"
      "                               (default $TMPDIR/loom-gloo-$LOOM_COMM_ID)\n"
      "  --host <address>             address this rank's TCP device binds to\n"
      "                               (default $LOOM_LISTEN_HOST, else 127.0.0.1)\n",
      kProgram, kProgram);
}

[[noreturn]] void die(const std::string& message, int status = 2) {
  std::fprintf(stderr, "%s: %s\n", kProgram, message.c_str());
  std::exit(status);
}

// The first of the variables that is set, as an integer; -1 if none is.
int intFromEnv(std::initializer_list<const char*> names, std::string* which) {
  for (const char* name : names) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 0 || n > INT_MAX) die(std::string(name) + " is not a rank: '" + v + "'");
    *which = name;
    return static_cast<int>(n);
  }
  return -1;
}

std::shared_ptr<gloo::Context> connect(gloo::rendezvous::Store& store, const std::string& prefix, int rank,
                                       int nranks, std::shared_ptr<gloo::transport::Device>& dev, int timeoutSec) {
  gloo::rendezvous::PrefixStore prefixed(prefix, store);
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, nranks);
  if (timeoutSec > 0) ctx->setTimeout(std::chrono::seconds(timeoutSec));
  ctx->connectFullMesh(prefixed, dev);
  return ctx;
}

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <typename T>
T allreduceOne(const std::shared_ptr<gloo::Context>& ctx, T v, ReduceFn fn) {
  gloo::AllreduceOptions opts(ctx);
  opts.setOutput(&v, 1);
  opts.setReduceFunction(fn);
  opts.setTag(0);
  gloo::allreduce(opts);
  return v;
}

int realMain(int argc, char** argv) {
  const char* listenHost = std::getenv("LOOM_LISTEN_HOST");  // set per rank by bench/cluster run
  std::string algorithm = "ring", storeDir, host = listenHost != nullptr && *listenHost != '\0' ? listenHost : "127.0.0.1";
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) printExtraUsage();
  if (!loompeer::takeExtraFlags(&argc, argv,
                                {{'A', "algorithm", &algorithm}, {0, "store", &storeDir}, {0, "host", &host}},
                                kProgram))
    return 2;
  const loombench::Options o = loombench::parseOptions(argc, argv, kProgram);
  bool known = false;
  for (const char* a : kAlgorithms) known = known || algorithm == a;
  if (!known) die("unknown algorithm '" + algorithm + "' (ring, ring_chunked, halving_doubling, bcube, broadcast)");
  const bool reduces = algorithm != "broadcast";
  const bool oldStyle = algorithm == "ring_chunked" || algorithm == "halving_doubling";
  loompeer::requireFloatSum(o, reduces, kProgram);

  std::string rankVar, sizeVar;
  const int rank = intFromEnv({"LOOM_RANK", "OMPI_COMM_WORLD_RANK", "RANK"}, &rankVar);
  const int nranks = intFromEnv({"LOOM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "WORLD_SIZE"}, &sizeVar);
  if (rank < 0 || nranks < 1 || rank >= nranks)
    die("no rank: start it with loomrun -n N -- gloo_perf ... (LOOM_RANK and LOOM_WORLD_SIZE)");
  if (!reduces && o.root >= nranks) die("-r " + std::to_string(o.root) + " but only " + std::to_string(nranks) + " ranks");
  if (oldStyle && !o.sizes().empty() && o.sizes().back() / sizeof(float) > static_cast<size_t>(INT_MAX))
    die("-e is larger than the int count of floats that " + algorithm + " takes");

  bool defaultStore = false;
  if (storeDir.empty()) {
    const char* id = std::getenv("LOOM_COMM_ID");
    if (id == nullptr || *id == '\0') die("no LOOM_COMM_ID to name the rendezvous directory: pass --store DIR");
    const char* tmp = std::getenv("TMPDIR");
    storeDir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/loom-gloo-" + id;
    defaultStore = true;
  }
  if (mkdir(storeDir.c_str(), 0700) != 0 && errno != EEXIST)
    die("cannot create " + storeDir + ": " + std::strerror(errno), 1);

  gloo::transport::tcp::attr attr;
  attr.hostname = host;
  auto dev = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(storeDir);
  // One context for the measured algorithm, one for the harness' own operations.
  auto control = connect(store, "control", rank, nranks, dev, o.timeoutSec);
  auto ctx = connect(store, algorithm, rank, nranks, dev, o.timeoutSec);

  loompeer::Control ctl;
  ctl.rank = rank;
  ctl.nranks = nranks;
  ctl.reduceTime = [control](double s, loombench::Aggregation a) {
    const ReduceFn fn = a == loombench::Aggregation::Min   ? ReduceFn(&gloo::min<double>)
                        : a == loombench::Aggregation::Max ? ReduceFn(&gloo::max<double>)
                                                           : ReduceFn(&gloo::sum<double>);
    return allreduceOne<double>(control, s, fn);
  };
  ctl.sumOverRanks = [control](int64_t v) { return allreduceOne<int64_t>(control, v, &gloo::sum<int64_t>); };
  ctl.barrier = [control] {
    gloo::BarrierOptions opts(control);
    opts.setTag(1);
    gloo::barrier(opts);
  };
  ctl.gatherRankInfo = [control, nranks](const loombench::RankInfo& mine) {
    std::vector<loombench::RankInfo> all(nranks);
    loombench::RankInfo in = mine;
    gloo::AllgatherOptions opts(control);
    opts.setInput(reinterpret_cast<char*>(&in), sizeof in);
    opts.setOutput(reinterpret_cast<char*>(all.data()), sizeof in * nranks);
    opts.setTag(2);
    gloo::allgather(opts);
    return all;
  };

  loompeer::Collective coll;
  coll.program = kProgram;
  coll.description = std::string(kProgram) + " -A " + algorithm;
  coll.headerLines.push_back("Gloo " + std::to_string(GLOO_VERSION_MAJOR) + "." + std::to_string(GLOO_VERSION_MINOR) +
                             "." + std::to_string(GLOO_VERSION_PATCH) + ", TCP transport on " + host +
                             ", rendezvous: FileStore " + storeDir);
  coll.reduces = reduces;
  coll.busFactor = reduces ? 2.0 * (nranks - 1) / nranks : 1.0;
  const auto noop = [] {};

  if (algorithm == "ring" || algorithm == "bcube") {
    const auto algo = algorithm == "ring" ? gloo::AllreduceOptions::Algorithm::RING
                                          : gloo::AllreduceOptions::Algorithm::BCUBE;
    coll.headerLines.push_back("gloo::allreduce " + algorithm +
                               " (float, sum): out-of-place setInput + setOutput; in-place setOutput only");
    coll.prepare = [ctx, algo, noop](float* send, float* recv, size_t count, bool inPlace) -> loompeer::Operation {
      if (count == 0) return noop;
      auto opts = std::make_shared<gloo::AllreduceOptions>(ctx);
      opts->setAlgorithm(algo);
      if (!inPlace) opts->setInput(send, count);
      opts->setOutput(recv, count);
      opts->setReduceFunction(ReduceFn(&gloo::sum<float>));
      opts->setTag(10);
      return [opts] { gloo::allreduce(*opts); };
    };
  } else if (oldStyle) {
    coll.headerLines.push_back(std::string("gloo::") +
                               (algorithm == "ring_chunked" ? "AllreduceRingChunked" : "AllreduceHalvingDoubling") +
                               "<float> (sum): in place only, out-of-place N/A");
    const bool chunked = algorithm == "ring_chunked";
    coll.prepare = [ctx, chunked, noop](float*, float* recv, size_t count, bool inPlace) -> loompeer::Operation {
      if (!inPlace) return {};
      if (count == 0) return noop;
      std::shared_ptr<gloo::Algorithm> a;
      const std::vector<float*> ptrs{recv};
      if (chunked)
        a = std::make_shared<gloo::AllreduceRingChunked<float>>(ctx, ptrs, static_cast<int>(count));
      else
        a = std::make_shared<gloo::AllreduceHalvingDoubling<float>>(ctx, ptrs, static_cast<int>(count));
      return [a] { a->run(); };
    };
  } else {
    coll.root = o.root;
    coll.headerLines.push_back("gloo::broadcast (float) from rank " + std::to_string(o.root) +
                               ": out-of-place root setInput + setOutput, others setOutput; in-place setOutput only");
    const int root = o.root;
    coll.prepare = [ctx, rank, root, noop](float* send, float* recv, size_t count, bool inPlace) -> loompeer::Operation {
      if (count == 0) return noop;
      auto opts = std::make_shared<gloo::BroadcastOptions>(ctx);
      opts->setRoot(root);
      if (!inPlace && rank == root) opts->setInput(send, count);
      opts->setOutput(recv, count);
      opts->setTag(20);
      return [opts] { gloo::broadcast(*opts); };
    };
  }

  const int status = loompeer::run(o, coll, ctl);
  // Every rank is past the rendezvous (run() ends with a barrier): remove the store's files.
  for (const std::string& path : store.getAllKeyFilePaths()) unlink(path.c_str());
  ctl.barrier();
  if (defaultStore && rank == 0) rmdir(storeDir.c_str());  // fails harmlessly if anything is left
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return realMain(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return 1;
  }
}
