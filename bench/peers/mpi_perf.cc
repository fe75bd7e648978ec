// mpi_perf: nccl-tests' table (bench/BENCH.md) for MPI_Allreduce (float, sum) and MPI_Bcast, to
// compare Loom with Open MPI on the same machine.
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 --mca pml ob1 --mca btl tcp,self
//     --mca btl_tcp_if_include lo build/bin/mpi_perf -c allreduce -b 4K -e 256M -f 4   (one line)
//
// -c allreduce|bcast picks the collective (default allreduce); -c 0/1 (a number) is still the
// harness' check flag. Every other flag is the harness' (-h lists them); only -d float and -o sum.
#include "peer_harness.h"

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* kProgram = "mpi_perf";

bool isCollective(const char* v) {
  return std::strcmp(v, "allreduce") == 0 || std::strcmp(v, "all_reduce") == 0 || std::strcmp(v, "bcast") == 0 ||
         std::strcmp(v, "broadcast") == 0;
}

void printExtraUsage() {
  std::printf(
      "%s: MPI_Allreduce (float, sum) or MPI_Bcast in nccl-tests' table; start it with mpirun.\n"
      "  -c,--collective <allreduce|bcast>   what to measure (default allreduce); a number is -c below\n",
      kProgram);
}

void checkMpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  std::fprintf(stderr, "%s: %s failed: %.*s\n", kProgram, what, len, msg);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

std::string mcaSetting(const char* name) {
  const std::string var = std::string("OMPI_MCA_") + name;
  const char* v = std::getenv(var.c_str());
  return v != nullptr ? std::string(name) + "=" + v : std::string();
}

}  // namespace

int main(int argc, char** argv) {
  std::string collective = "allreduce";
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) printExtraUsage();
  if (!loompeer::takeExtraFlags(&argc, argv, {{'c', "collective", &collective, isCollective}}, kProgram)) return 2;
  const loombench::Options o = loombench::parseOptions(argc, argv, kProgram);
  const bool reduces = collective == "allreduce" || collective == "all_reduce";
  loompeer::requireFloatSum(o, reduces, kProgram);

  MPI_Init(&argc, &argv);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  if (!reduces && o.root >= nranks) {
    if (rank == 0) std::fprintf(stderr, "%s: -r %d but only %d ranks\n", kProgram, o.root, nranks);
    MPI_Finalize();
    return 2;
  }
  if (!o.sizes().empty() && o.sizes().back() / sizeof(float) > static_cast<size_t>(INT_MAX)) {
    if (rank == 0) std::fprintf(stderr, "%s: -e is larger than MPI's int count of floats\n", kProgram);
    MPI_Finalize();
    return 2;
  }

  loompeer::Control ctl;
  ctl.rank = rank;
  ctl.nranks = nranks;
  ctl.reduceTime = [](double s, loombench::Aggregation a) {
    const MPI_Op op = a == loombench::Aggregation::Min ? MPI_MIN : a == loombench::Aggregation::Max ? MPI_MAX : MPI_SUM;
    double out = 0;
    checkMpi(MPI_Allreduce(&s, &out, 1, MPI_DOUBLE, op, MPI_COMM_WORLD), "MPI_Allreduce (time)");
    return out;
  };
  ctl.sumOverRanks = [](int64_t v) {
    int64_t out = 0;
    checkMpi(MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce (wrong count)");
    return out;
  };
  ctl.barrier = [] { checkMpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); };
  ctl.gatherRankInfo = [nranks](const loombench::RankInfo& mine) {
    std::vector<loombench::RankInfo> all(nranks);
    checkMpi(MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD),
             "MPI_Gather");
    return all;
  };

  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int versionLen = 0;
  MPI_Get_library_version(version, &versionLen);
  std::string firstLine(version, static_cast<size_t>(versionLen));
  firstLine = firstLine.substr(0, firstLine.find_first_of("\r\n"));
  std::string mca;
  for (const char* name : {"pml", "btl", "btl_tcp_if_include", "coll_tuned_use_dynamic_rules",
                           "coll_tuned_allreduce_algorithm", "coll_tuned_bcast_algorithm"}) {
    const std::string s = mcaSetting(name);
    if (!s.empty()) mca += (mca.empty() ? "" : " ") + s;
  }

  loompeer::Collective coll;
  coll.program = kProgram;
  coll.description = std::string(kProgram) + " -c " + (reduces ? "allreduce" : "bcast");
  coll.headerLines.push_back(firstLine);
  coll.headerLines.push_back("MCA settings from the environment: " + (mca.empty() ? std::string("(none)") : mca));
  coll.reduces = reduces;
  if (reduces) {
    coll.busFactor = 2.0 * (nranks - 1) / nranks;
    coll.headerLines.push_back(
        "MPI_Allreduce(MPI_FLOAT, MPI_SUM): out-of-place send -> recv; in-place MPI_IN_PLACE on one buffer");
    coll.prepare = [](float* send, float* recv, size_t count, bool inPlace) -> loompeer::Operation {
      const int n = static_cast<int>(count);
      if (inPlace)
        return [recv, n] {
          checkMpi(MPI_Allreduce(MPI_IN_PLACE, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        };
      return [send, recv, n] {
        checkMpi(MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
      };
    };
  } else {
    coll.root = o.root;
    coll.busFactor = 1.0;
    coll.rootRecvUnwritten = true;
    coll.headerLines.push_back(
        "MPI_Bcast(MPI_FLOAT): in-place on one buffer; out-of-place: the root sends from its send buffer, the "
        "others receive into their receive buffer (the root's receive buffer is not written, no copy)");
    const int root = o.root;
    coll.prepare = [rank, root](float* send, float* recv, size_t count, bool inPlace) -> loompeer::Operation {
      float* buf = !inPlace && rank == root ? send : recv;
      const int n = static_cast<int>(count);
      return [buf, n, root] { checkMpi(MPI_Bcast(buf, n, MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast"); };
    };
  }
  if (o.timeoutSec > 0) coll.headerLines.push_back("-T is not applied: MPI has no per-operation timeout");

  const int status = loompeer::run(o, coll, ctl);
  MPI_Finalize();
  return status;
}
