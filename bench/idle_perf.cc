// idle_perf: CPU used by a communicator with nothing in flight (issue 3's target: under 1% of a
// core). Each rank creates a communicator from the environment, does one all-reduce so every
// connection is up, then sleeps for -t seconds (default 5) while the library's own threads run
// (event loop, heartbeats, deadline tick). It reports the process's CPU time over that window as
// a percentage of one core; rank 0 prints every rank's figure and the maximum.
//   build/bin/loomrun -n 4 -- build/bin/idle_perf -t 5
#include <loom/loom.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

void check(loomResult_t rc, const char* what, loomComm_t comm) {
  if (rc == loomSuccess) return;
  std::fprintf(stderr, "idle_perf: %s failed: %s\n", what, loomGetLastError(comm));
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: idle_perf [-t SECONDS]\n");
      return 2;
    }
  }
  loomComm_t comm = nullptr;
  check(loomCommInitFromEnv(&comm, nullptr), "loomCommInitFromEnv", comm);
  int rank = 0, size = 1;
  check(loomCommRank(comm, &rank), "loomCommRank", comm);
  check(loomCommSize(comm, &size), "loomCommSize", comm);
  float one = 1;
  check(loomAllReduce(&one, &one, 1, loomFloat32, loomSum, comm), "loomAllReduce", comm);

  const double cpu0 = cpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double percent = 100.0 * (cpuSeconds() - cpu0) / wall;

  std::vector<double> all(size);
  check(loomAllGather(&percent, all.data(), 1, loomFloat64, comm), "loomAllGather", comm);
  if (rank == 0) {
    std::printf("# idle_perf: %d ranks, %.1f s idle after one all-reduce; CPU of each process over that time,\n"
                "# in %% of one core (user + system, all threads)\n# rank cpu_pct\n",
                size, wall);
    double worst = 0;
    for (int r = 0; r < size; ++r) {
      std::printf("%6d %7.3f\n", r, all[r]);
      worst = all[r] > worst ? all[r] : worst;
    }
    std::printf("# max idle CPU: %.3f %% of a core\n", worst);
  }
  check(loomCommDestroy(comm), "loomCommDestroy", nullptr);
  return 0;
}
