// recovery_perf: how fast Loom notices a lost peer and gets going again. Standalone: it starts its
// own coordinator (loomd, next to this program) and real rank processes (itself, with --worker),
// injects each event with real signals, and measures from the rank processes' own timestamps
// (CLOCK_MONOTONIC, one clock for every process of this machine).
//
//   recovery_perf [--ranks N] [--bytes SIZE] [--reps R] [--events e1,e2,...] [--smoke]
//
// Defaults: 4 ranks, 16 MiB all-reduces, 3 repetitions of every event, medians printed:
//   event world_before world_after detect_ms recovered_ms bytes_synced ok  admit_ms sync_GBps
// Events: crash (kill -9), exit (clean exit), freeze (SIGSTOP), blackhole (ranks in network
// namespaces of their own, bench/cluster; the victim's link goes down: needs root), join, abort, and freeze_200ms, blackhole_200ms with a
// 200 ms peer timeout. detect_ms: from the event to the last survivor's error; recovered_ms: to
// the last survivor's first completed all-reduce in the new epoch; admit_ms: from the members'
// safe point (their loomCommUpdate) to the joiner's loomCommJoin returning; sync_GBps: the
// joiner's state bytes over the time it spent receiving them (loomSyncInfo_t.transferSeconds). ok is computed against the
// targets of issue 4; the program exits 0 only if every row is ok (rows that cannot run here, e.g.
// blackhole without root, print "skip" and do not count).
//
// Each worker loops: all-reduce (out of place, float sum) of SIZE bytes plus one "a joiner waits"
// element; after a failure, or when a joiner waits, loomCommUpdate then loomSharedStateSync of a
// SIZE-byte model (a joiner fetches all of it: bytes_synced, sync_GBps).
#include "multiproc/subprocess.h"

#include <loom/loom.h>

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---- the rank process ---------------------------------------------------------------------

std::atomic<bool> exitRequested{false};

[[noreturn]] void die(const char* what, loomComm_t comm) {
  std::printf("error %s: %s\n", what, loomGetLastError(comm));
  std::exit(1);
}

struct Worker {
  loomComm_t comm = nullptr;
  size_t count = 0;
  std::vector<float> grad, out, model;
  uint64_t revision = 0;

  void report(const char* what) {
    int world = 0;
    uint64_t epoch = 0;
    loomCommSize(comm, &world);
    loomCommEpoch(comm, &epoch);
    std::printf("%s %" PRId64 " %" PRIu64 " %d\n", what, nowNs(), epoch, world);
  }

  bool sync() {
    loomSharedEntry_t entry{"model", model.data(), model.size() * sizeof(float)};
    loomSyncInfo_t info{};
    const int64_t t0 = nowNs();
    loomResult_t rc = loomSharedStateSync(comm, &entry, 1, revision + 1, &info);
    if (rc == loomPeerLost || rc == loomRemoteError) return false;
    if (rc != loomSuccess) die("sync", comm);
    revision = info.revision;
    std::printf("sync %" PRId64 " %" PRIu64 " %.6f %.6f\n", nowNs(), info.bytesReceived, info.transferSeconds,
                double(nowNs() - t0) / 1e9);
    return true;
  }

  void update() {
    std::printf("updatecall %" PRId64 "\n", nowNs());
    do {
      if (loomCommUpdate(comm) != loomSuccess) die("update", comm);
    } while (!sync());
    report("update");
  }

  int run(size_t bytes) {
    if (loomCommInitFromEnv(&comm, nullptr) != loomSuccess) die("init", nullptr);
    report("admitted");
    count = bytes / sizeof(float);
    grad.assign(count + 1, 1.0f);
    out.assign(count + 1, 0.0f);
    model.assign(count, 0.5f);
    if (const char* j = std::getenv("LOOM_JOIN"); j && std::atoi(j) == 1) model.assign(count, 0.0f);
    while (!sync()) update();
    for (;;) {
      if (exitRequested) {
        std::printf("exit %" PRId64 "\n", nowNs());
        std::fflush(stdout);
        loomCommDestroy(comm);  // a clean exit: leaves the coordinator, closes the connections
        return 0;
      }
      int pending = 0;
      loomCommPendingPeers(comm, &pending);
      grad[count] = pending > 0 ? 1.0f : 0.0f;
      loomResult_t rc = loomAllReduce(grad.data(), out.data(), count + 1, loomFloat32, loomSum, comm);
      if (rc == loomPeerLost || rc == loomRemoteError) {
        std::printf("fail %" PRId64 "\n", nowNs());
        update();
        continue;
      }
      if (rc != loomSuccess) die("all-reduce", comm);
      report("op");
      if (out[count] > 0) update();
    }
  }
};

// A rank blocked on a receive nobody sends; another thread aborts after 200 ms: how long until the
// blocked call returns (promise: well under a second).
int abortProbe() {
  loomComm_t comm = nullptr;
  if (loomCommInitFromEnv(&comm, nullptr) != loomSuccess) die("init", nullptr);
  int rank = 0;
  loomCommRank(comm, &rank);
  if (rank == 0) {
    int64_t abortedAt = 0;
    std::thread aborter([&] {
      usleep(200 * 1000);
      abortedAt = nowNs();
      loomCommAbort(comm);
    });
    float x = 0;
    loomResult_t rc = loomRecv(&x, 1, loomFloat32, 1, comm);
    const int64_t returned = nowNs();
    aborter.join();
    std::printf("abort %.3f %s\n", double(returned - abortedAt) / 1e6, rc == loomAborted ? "aborted" : "other");
  } else {
    usleep(1500 * 1000);  // never sends
  }
  loomCommDestroy(comm);
  return 0;
}

// ---- the driver ---------------------------------------------------------------------------

struct Sample {
  bool ran = false;
  int before = 0, after = 0;
  double detectMs = -1, recoveredMs = -1, admitMs = -1, syncGBps = -1;
  uint64_t bytesSynced = 0;
};

struct Line {
  std::string kind;
  int64_t ns = 0;
  std::vector<std::string> rest;
};

std::vector<Line> parse(const std::string& out) {
  std::vector<Line> lines;
  for (const auto& text : loomtest::lines(out)) {
    std::istringstream in(text);
    Line l;
    in >> l.kind >> l.ns;
    for (std::string w; in >> w;) l.rest.push_back(w);
    if (!l.kind.empty()) lines.push_back(l);
  }
  return lines;
}

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return x < 0; }), v.end());
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

class Driver {
 public:
  Driver(int ranks, size_t bytes) : ranks_(ranks), bytes_(bytes) {}

  // A black-holed link needs hosts of their own: network namespaces on a bridge (bench/cluster),
  // one rank per host, loomd in host 0; the victim's link goes down and no reset ever arrives.
  // Returns false where that cannot be built (not root, no ip): the rows are skipped.
  bool clusterUp() {
    if (clusterTried_) return clusterOk_;
    clusterTried_ = true;
    const char* env = std::getenv("LOOM_CLUSTER_SCRIPT");
    cluster_ = env ? env : LOOM_SOURCE_DIR "/bench/cluster";
    if (geteuid() != 0 || access(cluster_.c_str(), X_OK) != 0) return false;
    std::string cmd = cluster_ + " up --name loomrp --hosts " + std::to_string(ranks_) + " >/dev/null 2>&1";
    clusterOk_ = std::system(cmd.c_str()) == 0;
    return clusterOk_;
  }
  void clusterDown() {
    if (clusterOk_) (void)!std::system((cluster_ + " down --name loomrp >/dev/null 2>&1").c_str());
    clusterOk_ = false;
  }
  // argv prefix that runs a program in host i (empty on plain loopback).
  std::vector<std::string> in(bool hosts, int i) const {
    if (!hosts) return {};
    return {"/usr/bin/env", "ip", "netns", "exec", "loomrph" + std::to_string(i)};
  }
  static std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  ~Driver() { clusterDown(); }

  Sample run(const std::string& event) {
    const bool hosts = event.rfind("blackhole", 0) == 0;
    if (hosts && !clusterUp()) return Sample{};
    if (hosts) (void)!std::system(("ip netns exec loomrph" + std::to_string(ranks_ - 1) + " ip link set eth0 up").c_str());
    const bool fast = event.find("200ms") != std::string::npos;
    std::string address;
    // The coordinator's heartbeat period also sets how soon it counts a silent member out.
    auto loomd = std::make_unique<loomtest::Child>(
        concat(in(hosts, 0), {loomtest::bin("loomd"), "--listen", hosts ? "10.77.0.1:0" : "127.0.0.1:0",
                              "--heartbeat-ms", fast ? "50" : "500"}),
        loomtest::cleanEnv({"LOOM_DEBUG=WARN"}));
    if (!loomd->waitFor("\n", 15)) return Sample{};
    const auto at = loomd->out().find("listening on ");
    address = loomd->out().substr(at + 13, loomd->out().find('\n', at) - at - 13);
    const std::vector<std::string> env{"LOOM_COORDINATOR=" + address, "LOOM_COMM_ID=77",
                                       std::string("LOOM_PEER_TIMEOUT_MS=") + (fast ? "200" : "2000"),
                                       "LOOM_TIMEOUT_MS=60000", "LOOM_DEBUG=NONE"};
    std::vector<std::unique_ptr<loomtest::Child>> procs;
    const std::string self = loomtest::bin("recovery_perf");
    for (int r = 0; r < ranks_; ++r) {
      auto e = env;
      e.push_back("LOOM_RANK=" + std::to_string(r));
      e.push_back("LOOM_WORLD_SIZE=" + std::to_string(ranks_));
      if (hosts) e.push_back("LOOM_LISTEN_HOST=10.77.0." + std::to_string(r + 1));
      procs.push_back(std::make_unique<loomtest::Child>(
          concat(in(hosts, r), {self, event == "abort" ? "--abort-probe" : "--worker", "--bytes",
                                std::to_string(bytes_)}),
          loomtest::cleanEnv(e)));
    }
    Sample s;
    s.before = ranks_;
    auto pumpAll = [&](int ms) {
      for (auto& p : procs) p->pump(ms);
    };
    auto count = [&](const loomtest::Child& p, const std::string& kind) {
      int n = 0;
      for (const auto& l : parse(p.out())) n += l.kind == kind;
      return n;
    };
    if (event == "abort") {
      procs[0]->wait(20);
      for (const auto& line : loomtest::lines(procs[0]->out()))
        if (line.rfind("abort ", 0) == 0) {
          s.ran = true;
          s.detectMs = std::atof(line.c_str() + 6);
        }
      s.after = ranks_;
      return s;
    }
    // Steady state first: every rank through a few all-reduces.
    const auto warm = loomtest::Clock::now();
    for (;;) {
      pumpAll(5);
      bool all = true;
      for (auto& p : procs) all = all && count(*p, "op") >= 3;
      if (all) break;
      if (loomtest::secondsSince(warm) > 30) return Sample{};
    }
    opMs_ = steadyOpMs(procs[0]->out());
    const int victim = ranks_ - 1;
    int64_t t0 = nowNs();
    std::unique_ptr<loomtest::Child> joiner;
    if (event == "crash") {
      procs[victim]->signal(SIGKILL);
    } else if (event == "exit") {
      procs[victim]->signal(SIGTERM);
    } else if (event.rfind("freeze", 0) == 0) {
      procs[victim]->signal(SIGSTOP);
    } else if (hosts) {
      t0 = nowNs();  // the event starts with the command that takes the link down
      (void)!std::system(("ip netns exec loomrph" + std::to_string(victim) + " ip link set eth0 down").c_str());
    } else if (event == "join") {
      auto e = env;
      e.push_back("LOOM_JOIN=1");
      joiner = std::make_unique<loomtest::Child>(std::vector<std::string>{self, "--worker", "--bytes",
                                                                          std::to_string(bytes_)},
                                                 loomtest::cleanEnv(e));
    }
    // Wait until every member of the new epoch completed an all-reduce in it.
    const int expected = event == "join" ? ranks_ + 1 : ranks_ - 1;
    std::vector<loomtest::Child*> members;
    for (int r = 0; r < ranks_; ++r)
      if (event == "join" || r != victim) members.push_back(procs[r].get());
    if (joiner) members.push_back(joiner.get());
    const auto waitStart = loomtest::Clock::now();
    for (;;) {
      pumpAll(5);
      if (joiner) joiner->pump(5);
      bool all = true;
      for (auto* m : members) {
        bool done = false;
        for (const auto& l : parse(m->out()))
          if (l.kind == "op" && l.ns > t0 && l.rest.size() == 2 && std::atoi(l.rest[1].c_str()) == expected) done = true;
        all = all && done;
      }
      if (all) break;
      if (loomtest::secondsSince(waitStart) > 60) break;
    }
    if (event == "exit") {  // the event is the victim's own exit
      for (const auto& l : parse(procs[victim]->out()))
        if (l.kind == "exit") t0 = l.ns;
    }
    s.ran = true;
    s.after = expected;
    double detect = -1, recovered = -1, admit = -1;
    int64_t updateCall = INT64_MAX;
    for (auto* m : members) {
      int64_t failAt = -1, firstOp = -1;
      for (const auto& l : parse(m->out())) {
        if (l.ns <= t0) continue;
        if (l.kind == "fail" && failAt < 0) failAt = l.ns;
        if (l.kind == "updatecall") updateCall = std::min(updateCall, l.ns);
        if (l.kind == "op" && firstOp < 0 && l.rest.size() == 2 && std::atoi(l.rest[1].c_str()) == expected)
          firstOp = l.ns;
      }
      if (failAt >= 0) detect = std::max(detect, double(failAt - t0) / 1e6);
      if (firstOp >= 0) recovered = std::max(recovered, double(firstOp - t0) / 1e6);
      else recovered = 1e9;  // never recovered
    }
    if (event != "join") s.detectMs = detect;
    s.recoveredMs = recovered;
    if (joiner) {
      for (const auto& l : parse(joiner->out())) {
        if (l.kind == "admitted" && updateCall != INT64_MAX) admit = double(l.ns - updateCall) / 1e6;
        if (l.kind == "sync" && l.rest.size() == 3 && std::strtoull(l.rest[0].c_str(), nullptr, 10) > 0) {
          s.bytesSynced = std::strtoull(l.rest[0].c_str(), nullptr, 10);
          s.syncGBps = double(s.bytesSynced) / std::atof(l.rest[1].c_str()) / 1e9;
        }
      }
      s.admitMs = admit;
    }
    for (auto& p : procs) {
      p->signal(SIGCONT);
      p->stop(SIGKILL, 0);
    }
    if (joiner) joiner->stop(SIGKILL, 0);
    loomd->stop(SIGTERM, 3);
    return s;
  }

  // Median time of the steady-state all-reduces rank 0 reported (between consecutive "op" lines).
  static double steadyOpMs(const std::string& out) {
    std::vector<double> gaps;
    int64_t last = -1;
    for (const auto& l : parse(out)) {
      if (l.kind != "op") continue;
      if (last >= 0) gaps.push_back(double(l.ns - last) / 1e6);
      last = l.ns;
    }
    return median(gaps);
  }

  double opMs() const { return opMs_; }

 private:
  int ranks_;
  size_t bytes_;
  double opMs_ = -1;
  std::string cluster_;
  bool clusterTried_ = false, clusterOk_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  int ranks = 4, reps = 3;
  size_t bytes = 16 << 20;
  std::vector<std::string> events{"crash", "exit", "freeze", "blackhole", "join", "abort", "freeze_200ms",
                                  "blackhole_200ms"};
  bool worker = false, probe = false, smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "recovery_perf: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--worker") worker = true;
    else if (a == "--abort-probe") probe = true;
    else if (a == "--smoke") smoke = true;
    else if (a == "--ranks") ranks = std::atoi(next().c_str());
    else if (a == "--reps") reps = std::atoi(next().c_str());
    else if (a == "--bytes") {
      std::string v = next();
      bytes = std::strtoull(v.c_str(), nullptr, 10);
      if (v.back() == 'M') bytes <<= 20;
      if (v.back() == 'K') bytes <<= 10;
    } else if (a == "--events") {
      events.clear();
      std::stringstream in(next());
      for (std::string e; std::getline(in, e, ',');) events.push_back(e);
    } else {
      std::fprintf(stderr,
                   "usage: recovery_perf [--ranks N] [--bytes SIZE] [--reps R] [--events crash,exit,freeze,"
                   "blackhole,join,abort,freeze_200ms,blackhole_200ms] [--smoke]\n"
                   "  --smoke: exit 0 when every event could be measured, whatever the figures (for CTest)\n");
      return 2;
    }
  }
  if (worker) {
    signal(SIGTERM, [](int) { exitRequested = true; });
    return Worker().run(bytes);
  }
  if (probe) return abortProbe();

  std::printf("# recovery_perf: %d ranks, %zu-byte all-reduces, %d repetitions, medians\n", ranks, bytes, reps);
  std::printf("%-16s %12s %11s %9s %12s %12s %4s %8s %9s\n", "event", "world_before", "world_after", "detect_ms",
              "recovered_ms", "bytes_synced", "ok", "admit_ms", "sync_GBps");
  Driver driver(ranks, bytes);
  bool allOk = true, allRan = true;
  for (const auto& event : events) {
    std::vector<double> detect, recovered, admit, gbps, opMs;
    Sample last;
    for (int r = 0; r < reps; ++r) {
      Sample s = driver.run(event);
      if (!s.ran) break;
      detect.push_back(s.detectMs);
      recovered.push_back(s.recoveredMs);
      admit.push_back(s.admitMs);
      gbps.push_back(s.syncGBps);
      opMs.push_back(driver.opMs());
      last = s;
    }
    if (!last.ran && event.rfind("blackhole", 0) != 0) allRan = false;
    if (!last.ran) {
      std::printf("%-16s %12d %11s %9s %12s %12s %4s %8s %9s  (%s)\n", event.c_str(), ranks, "-", "-", "-", "-",
                  "skip", "-", "-",
                  event.rfind("blackhole", 0) == 0 ? "needs network namespaces: run as root, with iproute2"
                                                   : "could not run");
      continue;
    }
    const double d = median(detect), rec = median(recovered), adm = median(admit), g = median(gbps),
                 op = median(opMs);
    const double timeout = event.find("200ms") != std::string::npos ? 200 : 2000;
    // busbw of the steady all-reduce: 2(n-1)/n * bytes / time.
    const double busbw = op > 0 ? 2.0 * (ranks - 1) / ranks * double(bytes) / (op / 1e3) / 1e9 : -1;
    bool ok = true;
    if (event == "crash") ok = d >= 0 && d <= 50 && rec >= 0 && rec <= 100 + op;
    else if (event.rfind("freeze", 0) == 0 || event.rfind("blackhole", 0) == 0) ok = d >= 0 && d <= timeout + 500;
    else if (event == "exit") ok = d >= 0 && d <= 50 && rec >= 0;
    else if (event == "join") ok = adm >= 0 && adm <= 100 && g >= 0.8 * busbw;
    else if (event == "abort") ok = d >= 0 && d <= 1000;
    allOk = allOk && ok;
    auto num = [](double v, const char* fmt) {
      char buf[32];
      if (v < 0) return std::string("-");
      std::snprintf(buf, sizeof buf, fmt, v);
      return std::string(buf);
    };
    std::printf("%-16s %12d %11d %9s %12s %12" PRIu64 " %4s %8s %9s", event.c_str(), last.before, last.after,
                num(d, "%.1f").c_str(), num(rec, "%.1f").c_str(), last.bytesSynced, ok ? "ok" : "FAIL",
                num(adm, "%.1f").c_str(), num(g, "%.2f").c_str());
    if (event == "join") std::printf("  (all-reduce busbw %.2f GB/s)", busbw);
    if (event == "crash") std::printf("  (one all-reduce %.1f ms)", op);
    std::printf("\n");
  }
  if (smoke) return allRan ? 0 : 1;
  return allOk ? 0 : 1;
}
