// The extern "C" shim: validate arguments, translate handles, catch everything. Nothing throws
// across this boundary; every failure becomes a loomResult_t plus a message in loomGetLastError.
#include "capi/handles.h"
#include "capi/validate.h"
#include "coordinator/client.h"
#include "coordinator/server.h"
#include "core/config.h"
#include "core/hash.h"
#include "core/reduce.h"
#include "core/shared_state.h"

#include <loom/loom.h>

#include <algorithm>
#include <cstring>
#include <new>

using loom::Status;
using loom::coll::Args;
using loom::coll::Kind;

namespace {

thread_local std::string tlsLastError;

loomResult_t record(loomComm* comm, const Status& s) {
  if (s.isOk()) return loomSuccess;
  if (comm && comm->magic == loomComm::kLive) {
    std::lock_guard<std::mutex> lock(comm->errorMu);
    comm->lastError = s.toString();
  }
  tlsLastError = s.toString();
  return s.code();
}

template <typename F>
loomResult_t guarded(loomComm* comm, F&& body) noexcept {
  try {
    return record(comm, body());
  } catch (const std::bad_alloc&) {
    return record(comm, loom::makeError(loomOutOfMemory, "out of memory"));
  } catch (const std::exception& e) {
    return record(comm, loom::makeError(loomInternalError, "unexpected exception: {}", e.what()));
  } catch (...) {
    return record(comm, loom::makeError(loomInternalError, "unexpected exception"));
  }
}

loomResult_t initCommon(loomComm_t* out, int nranks, int rank, const char* coordinator, const loomConfig_t* config,
                        bool fromEnv, bool joinRunning = false) {
  return guarded(nullptr, [&]() -> Status {
    if (!out) return loom::makeError(loomInvalidArgument, "comm (output pointer) is NULL");
    *out = nullptr;
    auto settings = loom::resolveSettings(config);
    if (!settings) return settings.error();
    std::string coordinatorAddress;
    bool embed = settings->embeddedCoordinator == "1";
    if (fromEnv && settings->join) {  // an elastic launcher's added or replacement rank
      fromEnv = false;
      joinRunning = true;
      nranks = 1;
      rank = -1;
    }
    if (fromEnv) {
      auto env = loom::capi::readLaunchEnvironment();
      if (!env) return env.error();
      nranks = env->size;
      rank = env->rank;
      coordinatorAddress = env->coordinator;
      embed = embed || (settings->embeddedCoordinator == "auto" && env->coordinatorFromMaster);
    } else if (joinRunning) {
      coordinatorAddress = coordinator ? coordinator : loom::envOrEmpty("LOOM_COORDINATOR");
      if (coordinatorAddress.empty())
        return loom::makeError(loomInvalidArgument, "coordinator is NULL and LOOM_COORDINATOR is not set (want host:port)");
      embed = false;  // a joiner finds the coordinator running
    } else {
      if (!coordinator) return loom::makeError(loomInvalidArgument, "coordinator address is NULL (want host:port)");
      coordinatorAddress = coordinator;
    }
    if (nranks < 1) return loom::makeError(loomInvalidArgument, "nranks is {}: must be at least 1", nranks);
    if (rank < -1 || rank >= nranks)
      return loom::makeError(loomInvalidArgument, "rank {} is out of range [0, {}) (or -1 for any)", rank, nranks);
    auto hostPort = loom::coord::parseHostPort(coordinatorAddress);
    if (!hostPort) return hostPort.error();
    std::unique_ptr<loom::coord::Server> server;
    if (embed && rank == 0) {
      loom::coord::ServerOptions opts;
      opts.host = hostPort->first;
      opts.port = hostPort->second;
      opts.heartbeatMs = settings->heartbeatMs;
      auto started = loom::coord::Server::start(opts);
      if (!started) return started.error();
      server = std::move(*started);
    }
    auto impl =
        loom::Communicator::create(nranks, rank, coordinatorAddress, *settings, std::move(server), joinRunning);
    if (!impl) return impl.error();
    auto* handle = new loomComm;
    handle->impl = std::move(*impl);
    *out = handle;
    return Status::ok();
  });
}

// A live handle (not NULL, not destroyed, really a communicator); it may be aborted.
Status checkHandle(loomComm* comm) {
  if (!comm) return loom::makeError(loomInvalidArgument, "comm is NULL");
  if (comm->magic == loomComm::kDestroyed)
    return loom::makeError(loomInvalidUsage, "communicator was destroyed; create a new one");
  if (comm->magic != loomComm::kLive) return loom::makeError(loomInvalidArgument, "comm is not a communicator");
  return Status::ok();
}

// A handle that can still run operations.
Status checkComm(loomComm* comm) {
  LOOM_RETURN_IF_ERROR(checkHandle(comm));
  if (comm->impl->aborted())
    return loom::makeError(loomAborted, "communicator was aborted; destroy it and create a new one");
  return Status::ok();
}

// Blocking (tag empty) or asynchronous (request non-null) start of any operation.
loomResult_t submit(loomComm* comm, const Args& args, const uint64_t* tag, loomRequest_t* request) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    if (tag && !request) return loom::makeError(loomInvalidArgument, "request (output pointer) is NULL");
    if (request) *request = nullptr;
    LOOM_RETURN_IF_ERROR(loom::capi::validateArgs(args, comm->impl->rank(), comm->impl->size()));
    if (!tag) return comm->impl->run(args);
    auto op = comm->impl->start(args, *tag);
    if (!op) return op.error();
    auto* r = new loomRequest;
    r->comm = comm;
    r->op = std::move(*op);
    *request = r;
    return Status::ok();
  });
}

// The communicator a live request belongs to (for its last-error message), or NULL.
loomComm* commOf(loomRequest* request) {
  return request && request->magic == loomRequest::kLive ? request->comm : nullptr;
}

Status checkRequest(loomRequest* request) {
  if (!request) return loom::makeError(loomInvalidArgument, "request is NULL");
  if (request->magic != loomRequest::kLive) return loom::makeError(loomInvalidArgument, "request is not a request");
  return Status::ok();
}

Args makeArgs(Kind kind, const void* send, void* recv, size_t count, loomDataType_t dtype, loomRedOp_t op, int root) {
  Args a;
  a.kind = kind;
  a.send = send;
  a.recv = recv;
  a.count = count;
  a.dtype = dtype;
  a.op = op;
  a.root = root;
  return a;
}

}  // namespace

extern "C" {

loomResult_t loomGetVersion(int* version) {
  if (!version) return record(nullptr, loom::makeError(loomInvalidArgument, "version (output pointer) is NULL"));
  *version = LOOM_VERSION_CODE;
  return loomSuccess;
}

const char* loomGetErrorString(loomResult_t result) { return loom::resultString(result); }

const char* loomGetLastError(loomComm_t comm) {
  if (comm && comm->magic == loomComm::kLive) {
    std::lock_guard<std::mutex> lock(comm->errorMu);
    return comm->lastError.c_str();  // stable until the next failure on comm
  }
  return tlsLastError.c_str();
}

size_t loomDataTypeSize(loomDataType_t datatype) { return loom::dataTypeSize(datatype); }

loomResult_t loomCommInitRank(loomComm_t* comm, int nranks, int rank, const char* coordinator,
                              const loomConfig_t* config) {
  return initCommon(comm, nranks, rank, coordinator, config, false);
}

loomResult_t loomCommInitFromEnv(loomComm_t* comm, const loomConfig_t* config) {
  return initCommon(comm, 0, 0, nullptr, config, true);
}

loomResult_t loomCommJoin(loomComm_t* comm, const char* coordinator, const loomConfig_t* config) {
  return initCommon(comm, 1, -1, coordinator, config, false, true);
}

loomResult_t loomCommUpdate(loomComm_t comm) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    return comm->impl->update();
  });
}

loomResult_t loomCommPendingPeers(loomComm_t comm, int* count) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    if (!count) return loom::makeError(loomInvalidArgument, "count (output pointer) is NULL");
    *count = comm->impl->pendingPeers();
    return Status::ok();
  });
}

loomResult_t loomCommLeave(loomComm_t comm) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    return comm->impl->leave();
  });
}

loomResult_t loomCommEpoch(loomComm_t comm, uint64_t* epoch) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkHandle(comm));
    if (!epoch) return loom::makeError(loomInvalidArgument, "epoch (output pointer) is NULL");
    *epoch = comm->impl->epoch();
    return Status::ok();
  });
}

loomResult_t loomSharedStateSync(loomComm_t comm, const loomSharedEntry_t* entries, int count, uint64_t revision,
                                 loomSyncInfo_t* info) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    if (count < 0) return loom::makeError(loomInvalidArgument, "count {} is negative", count);
    if (count > 0 && !entries) return loom::makeError(loomInvalidArgument, "entries is NULL but count is {}", count);
    std::vector<loom::SharedEntry> list;
    list.reserve(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      const loomSharedEntry_t& e = entries[i];
      if (!e.name || !*e.name) return loom::makeError(loomInvalidArgument, "entries[{}].name is empty", i);
      if (!e.data && e.bytes > 0)
        return loom::makeError(loomInvalidArgument, "entries[{}] ('{}') has NULL data but {} bytes", i, e.name,
                               e.bytes);
      for (const auto& earlier : list)
        if (earlier.name == e.name)
          return loom::makeError(loomInvalidArgument, "entries[{}]: the name '{}' is used twice", i, e.name);
      list.push_back({e.name, e.data, e.bytes});
    }
    auto r = loom::syncSharedState(*comm->impl, list, revision, comm->sharedRevision);
    if (!r) return r.error();
    if (info) {
      info->revision = r->revision;
      info->bytesSent = r->bytesSent;
      info->bytesReceived = r->bytesReceived;
      info->entriesSent = r->entriesSent;
      info->entriesReceived = r->entriesReceived;
      info->transferSeconds = r->transferSeconds;
    }
    return Status::ok();
  });
}

loomResult_t loomCommDestroy(loomComm_t comm) {
  return guarded(nullptr, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkHandle(comm));
    Status s = comm->impl->shutdown();
    comm->impl.reset();
    comm->magic = loomComm::kDestroyed;  // the husk stays: later calls get a clear error
    return s;
  });
}

loomResult_t loomCommAbort(loomComm_t comm) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkHandle(comm));
    comm->impl->abort();
    return Status::ok();
  });
}

loomResult_t loomCommGetAsyncError(loomComm_t comm, loomResult_t* asyncError) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkHandle(comm));
    if (!asyncError) return loom::makeError(loomInvalidArgument, "asyncError (output pointer) is NULL");
    Status s = comm->impl->asyncError();
    *asyncError = s.code();
    if (!s.isOk()) {  // the why, for loomGetLastError, without making this call itself fail
      std::lock_guard<std::mutex> lock(comm->errorMu);
      comm->lastError = s.toString();
    }
    return Status::ok();
  });
}

loomResult_t loomCommGetFailures(loomComm_t comm, loomPeerFailure_t* failures, int capacity, int* count) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkHandle(comm));
    if (!count) return loom::makeError(loomInvalidArgument, "count (output pointer) is NULL");
    if (capacity < 0) return loom::makeError(loomInvalidArgument, "capacity {} is negative", capacity);
    if (capacity > 0 && !failures)
      return loom::makeError(loomInvalidArgument, "failures is NULL but capacity is {}", capacity);
    const auto all = comm->impl->failures();
    *count = static_cast<int>(all.size());
    for (int i = 0; i < std::min(capacity, *count); ++i) {
      const auto& f = all[i];
      loomPeerFailure_t& out = failures[i];
      std::memset(&out, 0, sizeof out);
      out.rank = f.rank;
      out.reportedBy = f.reportedBy;
      out.reason = f.why.code();
      out.lastSeq = f.lastSeq;
      std::snprintf(out.address, sizeof out.address, "%s", f.address.c_str());
      std::snprintf(out.detail, sizeof out.detail, "%s", f.why.message().c_str());
    }
    return Status::ok();
  });
}

loomResult_t loomHash(const void* const* buffers, const size_t* bytes, int count, uint64_t* hash) {
  return guarded(nullptr, [&]() -> Status {
    if (!hash) return loom::makeError(loomInvalidArgument, "hash (output pointer) is NULL");
    if (count < 0) return loom::makeError(loomInvalidArgument, "count {} is negative", count);
    if (count > 0 && (!buffers || !bytes))
      return loom::makeError(loomInvalidArgument, "{} is NULL but count is {}", buffers ? "bytes" : "buffers", count);
    for (int i = 0; i < count; ++i)
      if (!buffers[i] && bytes[i] > 0)
        return loom::makeError(loomInvalidArgument, "buffers[{}] is NULL but bytes[{}] is {}", i, i, bytes[i]);
    *hash = loom::hashBuffers(buffers, bytes, count);
    return Status::ok();
  });
}

loomResult_t loomCommRank(loomComm_t comm, int* rank) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    if (!rank) return loom::makeError(loomInvalidArgument, "rank (output pointer) is NULL");
    *rank = comm->impl->rank();
    return Status::ok();
  });
}

loomResult_t loomCommSize(loomComm_t comm, int* size) {
  return guarded(comm, [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkComm(comm));
    if (!size) return loom::makeError(loomInvalidArgument, "size (output pointer) is NULL");
    *size = comm->impl->size();
    return Status::ok();
  });
}

loomResult_t loomAllReduce(const void* s, void* r, size_t n, loomDataType_t t, loomRedOp_t op, loomComm_t c) {
  return submit(c, makeArgs(Kind::AllReduce, s, r, n, t, op, 0), nullptr, nullptr);
}
loomResult_t loomBroadcast(const void* s, void* r, size_t n, loomDataType_t t, int root, loomComm_t c) {
  return submit(c, makeArgs(Kind::Broadcast, s, r, n, t, loomSum, root), nullptr, nullptr);
}
loomResult_t loomReduce(const void* s, void* r, size_t n, loomDataType_t t, loomRedOp_t op, int root, loomComm_t c) {
  return submit(c, makeArgs(Kind::Reduce, s, r, n, t, op, root), nullptr, nullptr);
}
loomResult_t loomAllGather(const void* s, void* r, size_t n, loomDataType_t t, loomComm_t c) {
  return submit(c, makeArgs(Kind::AllGather, s, r, n, t, loomSum, 0), nullptr, nullptr);
}
loomResult_t loomReduceScatter(const void* s, void* r, size_t n, loomDataType_t t, loomRedOp_t op, loomComm_t c) {
  return submit(c, makeArgs(Kind::ReduceScatter, s, r, n, t, op, 0), nullptr, nullptr);
}
loomResult_t loomSend(const void* s, size_t n, loomDataType_t t, int peer, loomComm_t c) {
  return submit(c, makeArgs(Kind::Send, s, nullptr, n, t, loomSum, peer), nullptr, nullptr);
}
loomResult_t loomRecv(void* r, size_t n, loomDataType_t t, int peer, loomComm_t c) {
  return submit(c, makeArgs(Kind::Recv, nullptr, r, n, t, loomSum, peer), nullptr, nullptr);
}

loomResult_t loomAllReduceAsync(const void* s, void* r, size_t n, loomDataType_t t, loomRedOp_t op, uint64_t tag,
                                loomComm_t c, loomRequest_t* q) {
  return submit(c, makeArgs(Kind::AllReduce, s, r, n, t, op, 0), &tag, q);
}
loomResult_t loomBroadcastAsync(const void* s, void* r, size_t n, loomDataType_t t, int root, uint64_t tag,
                                loomComm_t c, loomRequest_t* q) {
  return submit(c, makeArgs(Kind::Broadcast, s, r, n, t, loomSum, root), &tag, q);
}
loomResult_t loomReduceAsync(const void* s, void* r, size_t n, loomDataType_t t, loomRedOp_t op, int root,
                             uint64_t tag, loomComm_t c, loomRequest_t* q) {
  return submit(c, makeArgs(Kind::Reduce, s, r, n, t, op, root), &tag, q);
}
loomResult_t loomAllGatherAsync(const void* s, void* r, size_t n, loomDataType_t t, uint64_t tag, loomComm_t c,
                                loomRequest_t* q) {
  return submit(c, makeArgs(Kind::AllGather, s, r, n, t, loomSum, 0), &tag, q);
}
loomResult_t loomReduceScatterAsync(const void* s, void* r, size_t n, loomDataType_t t, loomRedOp_t op, uint64_t tag,
                                    loomComm_t c, loomRequest_t* q) {
  return submit(c, makeArgs(Kind::ReduceScatter, s, r, n, t, op, 0), &tag, q);
}
loomResult_t loomSendAsync(const void* s, size_t n, loomDataType_t t, int peer, uint64_t tag, loomComm_t c,
                           loomRequest_t* q) {
  return submit(c, makeArgs(Kind::Send, s, nullptr, n, t, loomSum, peer), &tag, q);
}
loomResult_t loomRecvAsync(void* r, size_t n, loomDataType_t t, int peer, uint64_t tag, loomComm_t c,
                           loomRequest_t* q) {
  return submit(c, makeArgs(Kind::Recv, nullptr, r, n, t, loomSum, peer), &tag, q);
}

loomResult_t loomTest(loomRequest_t request, int* done) {
  return guarded(commOf(request), [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkRequest(request));
    if (!done) return loom::makeError(loomInvalidArgument, "done (output pointer) is NULL");
    if (!request->comm->impl) return loom::makeError(loomInvalidUsage, "the request's communicator was destroyed");
    *done = request->comm->impl->test(request->op) ? 1 : 0;
    return *done ? request->op->status : Status::ok();
  });
}

loomResult_t loomWait(loomRequest_t request, int timeoutMs) {
  return guarded(commOf(request), [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkRequest(request));
    if (!request->comm->impl) return loom::makeError(loomInvalidUsage, "the request's communicator was destroyed");
    if (timeoutMs < LOOM_WAIT_FOREVER)
      return loom::makeError(loomInvalidArgument, "timeoutMs is {}: use >= 0 or LOOM_WAIT_FOREVER", timeoutMs);
    loom::Deadline d = timeoutMs < 0 ? request->op->deadline : loom::Deadline::afterMs(timeoutMs);
    return request->comm->impl->wait(request->op, d);
  });
}

loomResult_t loomRequestFree(loomRequest_t request) {
  return guarded(commOf(request), [&]() -> Status {
    LOOM_RETURN_IF_ERROR(checkRequest(request));
    if (request->comm->impl && !request->op->finished.load())
      request->comm->impl->cancel(request->op, loom::makeError(loomAborted, "request freed while in flight"));
    request->magic = 0;
    delete request;
    return Status::ok();
  });
}

}  // extern "C"
