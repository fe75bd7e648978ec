#include "capi/validate.h"

#include "core/config.h"
#include "core/reduce.h"

#include <cstdint>
#include <utility>

namespace loom::capi {

Status validateArgs(const coll::Args& a, int rank, int size) {
  const char* name = coll::kindName(a.kind);
  if (!validDataType(a.dtype))
    return makeError(loomInvalidArgument, "{}: datatype {} is not a loomDataType_t", name, static_cast<int>(a.dtype));
  bool reduces = a.kind == coll::Kind::AllReduce || a.kind == coll::Kind::Reduce || a.kind == coll::Kind::ReduceScatter;
  if (reduces && !validRedOp(a.op))
    return makeError(loomInvalidArgument, "{}: op {} is not a loomRedOp_t", name, static_cast<int>(a.op));
  size_t elem = dataTypeSize(a.dtype);
  // Elements each buffer holds, as a multiple of count.
  size_t sendMul = a.kind == coll::Kind::ReduceScatter ? static_cast<size_t>(size) : 1;
  size_t recvMul = a.kind == coll::Kind::AllGather ? static_cast<size_t>(size) : 1;
  size_t mul = std::max(sendMul, recvMul);
  if (a.count > SIZE_MAX / elem / mul)
    return makeError(loomInvalidArgument, "{}: count {} of {} overflows the address space", name, a.count,
                     dataTypeName(a.dtype));
  if (a.count > (size_t(1) << 62) / elem / mul)
    return makeError(loomInvalidArgument, "{}: count {} of {} is larger than any buffer can be", name, a.count,
                     dataTypeName(a.dtype));
  bool rooted = a.kind == coll::Kind::Broadcast || a.kind == coll::Kind::Reduce;
  bool p2p = a.kind == coll::Kind::Send || a.kind == coll::Kind::Recv;
  if (rooted && (a.root < 0 || a.root >= size))
    return makeError(loomInvalidArgument, "{}: root {} is out of range [0, {})", name, a.root, size);
  if (p2p && (a.root < 0 || a.root >= size))
    return makeError(loomInvalidArgument, "{}: peer {} is out of range [0, {})", name, a.root, size);
  if (p2p && a.root == rank)
    return makeError(loomInvalidArgument, "{}: peer {} is this rank itself", name, a.root);
  if (a.count > 0) {
    bool needSend = a.kind != coll::Kind::Recv && !(a.kind == coll::Kind::Broadcast && rank != a.root);
    bool needRecv = a.kind != coll::Kind::Send && !(a.kind == coll::Kind::Reduce && rank != a.root);
    if (needSend && !a.send) return makeError(loomInvalidArgument, "{}: sendbuff is NULL with count {}", name, a.count);
    if (needRecv && !a.recv) return makeError(loomInvalidArgument, "{}: recvbuff is NULL with count {}", name, a.count);
  }
  return Status::ok();
}

namespace {

// The first variable of a (rank, size) pair that is set, as launchers set them.
struct Source {
  const char* rank;
  const char* size;
};
constexpr Source kSources[] = {{"LOOM_RANK", "LOOM_WORLD_SIZE"},
                               {"RANK", "WORLD_SIZE"},
                               {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                               {"SLURM_PROCID", "SLURM_NTASKS"}};

}  // namespace

Expected<LaunchEnvironment> readLaunchEnvironment() {
  LaunchEnvironment env;
  bool found = false;
  for (const auto& src : kSources) {
    std::string r = envOrEmpty(src.rank), s = envOrEmpty(src.size);
    if (r.empty() && s.empty()) continue;
    if (r.empty() || s.empty())
      return makeError(loomInvalidUsage, "{} is set but {} is not", r.empty() ? src.size : src.rank,
                       r.empty() ? src.rank : src.size);
    auto rank = parseInt(r, src.rank);
    if (!rank) return rank.error();
    auto size = parseInt(s, src.size);
    if (!size) return size.error();
    if (*size < 1 || *size > INT32_MAX) return makeError(loomInvalidArgument, "{}={} must be at least 1", src.size, *size);
    if (*rank < 0 || *rank >= *size)
      return makeError(loomInvalidArgument, "{}={} is out of range [0, {})", src.rank, *rank, *size);
    env.rank = static_cast<int>(*rank);
    env.size = static_cast<int>(*size);
    found = true;
    break;
  }
  if (!found)
    return makeError(loomInvalidUsage,
                     "no rank and world size in the environment: set LOOM_RANK and LOOM_WORLD_SIZE (or start the "
                     "program with loomrun, torchrun, mpirun or srun)");
  env.coordinator = envOrEmpty("LOOM_COORDINATOR");
  if (env.coordinator.empty()) {
    std::string addr = envOrEmpty("MASTER_ADDR"), port = envOrEmpty("MASTER_PORT");
    if (addr.empty() || port.empty())
      return makeError(loomInvalidUsage,
                       "no coordinator address: set LOOM_COORDINATOR=host:port (or MASTER_ADDR and MASTER_PORT, as "
                       "torchrun does; Loom then uses MASTER_PORT+1)");
    auto p = parseInt(port, "MASTER_PORT");
    if (!p) return p.error();
    if (*p < 1 || *p > 65534) return makeError(loomInvalidArgument, "MASTER_PORT={} is out of range", *p);
    env.coordinator = (addr.find(':') != std::string::npos ? "[" + addr + "]" : addr) + ":" + std::to_string(*p + 1);
    env.coordinatorFromMaster = true;
  }
  return env;
}

}  // namespace loom::capi
