/*
 * Loom: fault-tolerant collective communication. The one public C header.
 *
 * NCCL-shaped: output handle first in constructors, `comm` last in operations.
 * Every function returns loomResult_t; loomGetLastError(comm) explains the most
 * recent failure on that communicator. C99-compatible (tested with -std=c99 -pedantic).
 */
#ifndef LOOM_LOOM_H
#define LOOM_LOOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LOOM_API __attribute__((visibility("default")))
#else
#define LOOM_API
#endif

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH, as NCCL_VERSION_CODE. */
#define LOOM_VERSION_CODE (LOOM_VERSION_MAJOR * 10000 + LOOM_VERSION_MINOR * 100 + LOOM_VERSION_PATCH)

/* Result codes: one list, each a thing the caller can act on (X-macro: code, value, message). */
#define LOOM_RESULT_MAP(X)                                                                   \
  X(loomSuccess, 0, "success")                                                             \
  X(loomInvalidArgument, 1, "invalid argument")                                            \
  X(loomInvalidUsage, 2, "invalid usage")                                                  \
  X(loomSystemError, 3, "system error")                                                    \
  X(loomTimeout, 4, "timed out")                                                           \
  X(loomPeerLost, 5, "peer lost")                                                          \
  X(loomAborted, 6, "communicator aborted")                                                \
  X(loomRemoteError, 7, "remote error")                                                    \
  X(loomVersionMismatch, 8, "version mismatch")                                            \
  X(loomBelowQuorum, 9, "below quorum")                                                    \
  X(loomUnsupported, 10, "unsupported")                                                    \
  X(loomOutOfMemory, 11, "out of memory")                                                  \
  X(loomInternalError, 12, "internal error")                                               \
  X(loomInProgress, 13, "operation in progress")

typedef enum {
#define LOOM_RESULT_ENUM_(name, value, msg) name = value,
  LOOM_RESULT_MAP(LOOM_RESULT_ENUM_)
#undef LOOM_RESULT_ENUM_
  loomNumResults
} loomResult_t;

typedef enum {
  loomInt8 = 0,
  loomUint8 = 1,
  loomInt32 = 2,
  loomUint32 = 3,
  loomInt64 = 4,
  loomUint64 = 5,
  loomFloat16 = 6,
  loomBfloat16 = 7,
  loomFloat32 = 8,
  loomFloat64 = 9,
  loomNumTypes = 10,
  /* NCCL-style aliases */
  loomChar = loomInt8,
  loomInt = loomInt32,
  loomHalf = loomFloat16,
  loomFloat = loomFloat32,
  loomDouble = loomFloat64
} loomDataType_t;

typedef enum {
  loomSum = 0,
  loomProd = 1,
  loomMin = 2,
  loomMax = 3,
  loomAvg = 4,
  loomNumOps = 5
} loomRedOp_t;

/* Algorithm choice for all-reduce and broadcast; Auto picks by message size. */
typedef enum {
  loomAlgoAuto = 0,
  loomAlgoRing = 1,             /* all-reduce: pipelined ring (reduce-scatter + all-gather) */
  loomAlgoRecursiveDoubling = 2,/* all-reduce: latency-optimal, with non-power-of-two fix-up */
  loomAlgoChain = 3,            /* broadcast: pipelined chain */
  loomAlgoTree = 4,             /* broadcast: binomial tree */
  loomAlgoHalvingDoubling = 5   /* all-reduce: Rabenseifner (power-of-two worlds; the ring otherwise) */
} loomAlgorithm_t;

typedef struct loomComm* loomComm_t;
typedef struct loomRequest* loomRequest_t;

/* Wait forever (still bounded by the communicator's operation timeout). */
#define LOOM_WAIT_FOREVER (-1)

/*
 * Communicator configuration. Begins with size and version so the ABI can grow:
 * always start from LOOM_CONFIG_INITIALIZER. A field left at 0 (or NULL) means
 * "use the LOOM_* environment variable, else the built-in default" (see loom_info).
 */
typedef struct {
  size_t size;                   /* sizeof(loomConfig_t) */
  unsigned int version;          /* LOOM_VERSION_CODE */
  int timeoutMs;                 /* LOOM_TIMEOUT_MS: per-operation deadline */
  int connectTimeoutMs;          /* LOOM_CONNECT_TIMEOUT_MS: rendezvous + connection set-up */
  int streamsPerPeer;            /* LOOM_STREAMS: TCP streams per pair of ranks on different hosts */
  size_t segmentBytes;           /* LOOM_SEGMENT_BYTES: pipelining segment */
  size_t allreduceSmallBytes;    /* LOOM_ALLREDUCE_SMALL_BYTES: below, recursive doubling */
  size_t broadcastSmallBytes;    /* LOOM_BROADCAST_SMALL_BYTES: below, tree */
  int allreduceAlgorithm;        /* loomAlgorithm_t, LOOM_ALLREDUCE_ALGO */
  int broadcastAlgorithm;        /* loomAlgorithm_t, LOOM_BROADCAST_ALGO */
  int spinUs;                    /* LOOM_SPIN_US: busy-poll before yielding */
  int heartbeatMs;               /* LOOM_HEARTBEAT_MS: coordinator heartbeat period */
  const char* transport;         /* LOOM_TRANSPORT: "tcp" (default) or "local" (in-process) */
  const char* listenHost;        /* LOOM_LISTEN_HOST: address peers reach this rank at */
  uint64_t commId;               /* LOOM_COMM_ID: identifies the communicator at the coordinator */
  int peerTimeoutMs;             /* LOOM_PEER_TIMEOUT_MS: a peer silent this long is lost; -1: never */
  int minWorld;                  /* LOOM_MIN_WORLD: fewer members after an update is loomBelowQuorum */
  int maxWorld;                  /* LOOM_MAX_WORLD: joiners beyond this are refused (founders set it) */
  int updateTimeoutMs;           /* LOOM_UPDATE_TIMEOUT_MS: an update waits this long for every member */
  int localStreamsPerPeer;       /* LOOM_LOCAL_STREAMS: TCP streams per pair of ranks on one host */
} loomConfig_t;

#define LOOM_CONFIG_INITIALIZER \
  { sizeof(loomConfig_t), LOOM_VERSION_CODE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0 }

/* ---- library ---------------------------------------------------------------------- */
LOOM_API loomResult_t loomGetVersion(int* version);
LOOM_API const char* loomGetErrorString(loomResult_t result);
/* Message of the last failure on comm (or of the last failed init on this thread if comm is NULL). */
LOOM_API const char* loomGetLastError(loomComm_t comm);

/* ---- communicators ---------------------------------------------------------------- */
/*
 * Join communicator of nranks, as `rank`, by rendezvous at `coordinator` ("host:port").
 * config may be NULL. rank may be -1 to let the coordinator assign one.
 */
LOOM_API loomResult_t loomCommInitRank(loomComm_t* comm, int nranks, int rank, const char* coordinator,
                                        const loomConfig_t* config);
/*
 * Same, reading rank, size and coordinator from the environment:
 * LOOM_RANK/LOOM_WORLD_SIZE, else RANK/WORLD_SIZE (torchrun), OMPI_COMM_WORLD_RANK/_SIZE (Open MPI),
 * SLURM_PROCID/SLURM_NTASKS (Slurm); LOOM_COORDINATOR, else MASTER_ADDR:(MASTER_PORT+1).
 */
LOOM_API loomResult_t loomCommInitFromEnv(loomComm_t* comm, const loomConfig_t* config);
/* Waits for in-flight operations (bounded), then frees everything. */
LOOM_API loomResult_t loomCommDestroy(loomComm_t comm);

/* ---- elastic membership (docs/DESIGN.md, "Membership") ----------------------------- */
/*
 * Joins a communicator that is already running (coordinator NULL: LOOM_COORDINATOR; the
 * communicator id is config.commId / LOOM_COMM_ID). Blocks until its members admit this process
 * at their next loomCommUpdate, or LOOM_CONNECT_TIMEOUT_MS passes (loomTimeout). Refused with
 * loomInvalidUsage when the id names no running communicator or it already has LOOM_MAX_WORLD
 * members. Rank and size are then those of the new epoch; fetch the state with loomSharedStateSync.
 */
LOOM_API loomResult_t loomCommJoin(loomComm_t* comm, const char* coordinator, const loomConfig_t* config);
/*
 * A safe point that every member calls at the same place (no operation in flight): members that
 * failed or left are dropped, waiting joiners are admitted, ranks are renumbered densely (survivors
 * keep their order, joiners follow) and a new epoch starts. After a collective failed with
 * loomPeerLost/loomRemoteError, call this, then retry the same call: its input is intact (an
 * in-place reduction's input is restored), and loomAvg divides by the new size. A member that does
 * not come within LOOM_UPDATE_TIMEOUT_MS is dropped. Returns loomBelowQuorum (the epoch is still
 * installed) when fewer than LOOM_MIN_WORLD members remain; collectives fail with it until joiners
 * restore the quorum at a later update.
 */
LOOM_API loomResult_t loomCommUpdate(loomComm_t comm);
/*
 * Without a round trip: how many joiners wait for the next update, as the coordinator last told
 * this rank. Ranks learn it at slightly different moments: agree on it (e.g. all-reduce it with the
 * step's data) before deciding to call loomCommUpdate.
 */
LOOM_API loomResult_t loomCommPendingPeers(loomComm_t comm, int* count);
/* Leaves at a safe point where the other members call loomCommUpdate; then loomCommDestroy. */
LOOM_API loomResult_t loomCommLeave(loomComm_t comm);
/* The membership epoch: 1 after the founding rendezvous, one more per update. */
LOOM_API loomResult_t loomCommEpoch(loomComm_t comm, uint64_t* epoch);

/* ---- shared state ------------------------------------------------------------------ */
/* A named buffer kept bit-identical across members. */
typedef struct {
  const char* name; /* unique within one call; every member passes the same names and sizes, same order */
  void* data;
  size_t bytes;
} loomSharedEntry_t;

typedef struct {
  uint64_t revision;      /* the revision every member now holds */
  uint64_t bytesSent;     /* state bytes this rank sent to out-of-date members */
  uint64_t bytesReceived; /* state bytes this rank fetched (0 in steady state) */
  int entriesSent;
  int entriesReceived;
  double transferSeconds; /* time this rank spent moving state bytes (0 in steady state) */
} loomSyncInfo_t;

/*
 * Collective over the members: makes every member's entries equal to the majority's. Each member
 * hashes its entries; the largest group with equal revision and hashes wins (ties: the group with
 * the lowest rank); a member that differs fetches only the entries that differ, each from one
 * member of the majority (spread across them), over the data transport, and checks the hash.
 * `revision` is this member's revision; after a first sync it must be exactly one more than the
 * last synchronized one (else loomInvalidUsage, nothing changed). A member that never synced (a
 * joiner) takes the majority's revision, reported in info->revision. info may be NULL.
 */
LOOM_API loomResult_t loomSharedStateSync(loomComm_t comm, const loomSharedEntry_t* entries, int count,
                                          uint64_t revision, loomSyncInfo_t* info);
/*
 * From any thread: fails every in-flight operation with loomAborted, closes connections.
 * Bounded and local. Later calls on comm fail with loomAborted; call loomCommDestroy to free it.
 */
LOOM_API loomResult_t loomCommAbort(loomComm_t comm);
/*
 * Without blocking: the error every later operation on comm would fail with (loomPeerLost when a
 * peer was lost, loomAborted after loomCommAbort), or loomSuccess in *asyncError if healthy.
 * The message is in loomGetLastError(comm) when *asyncError is not loomSuccess.
 */
LOOM_API loomResult_t loomCommGetAsyncError(loomComm_t comm, loomResult_t* asyncError);

/* A peer that failed, as loomCommGetFailures reports it. */
typedef struct {
  int rank;                /* its rank */
  int reportedBy;          /* -1: this rank saw it fail; else the rank that reported it lost */
  loomResult_t reason;     /* loomPeerLost, ... */
  uint64_t lastSeq;        /* messages completed from it before it failed (0 when reported) */
  char address[64];        /* host:port of its data connection ("" when reported) */
  char detail[256];        /* why, in words (truncated) */
} loomPeerFailure_t;

/*
 * Peers known to have failed, first seen first: up to `capacity` entries are written to failures
 * (which may be NULL when capacity is 0); *count is set to how many there are in all.
 */
LOOM_API loomResult_t loomCommGetFailures(loomComm_t comm, loomPeerFailure_t* failures, int capacity, int* count);

LOOM_API loomResult_t loomCommRank(loomComm_t comm, int* rank);
LOOM_API loomResult_t loomCommSize(loomComm_t comm, int* size);

/* ---- blocking collectives ------------------------------------------------------------ */
LOOM_API loomResult_t loomAllReduce(const void* sendbuff, void* recvbuff, size_t count, loomDataType_t datatype,
                                     loomRedOp_t op, loomComm_t comm);
LOOM_API loomResult_t loomBroadcast(const void* sendbuff, void* recvbuff, size_t count, loomDataType_t datatype,
                                     int root, loomComm_t comm);
LOOM_API loomResult_t loomReduce(const void* sendbuff, void* recvbuff, size_t count, loomDataType_t datatype,
                                  loomRedOp_t op, int root, loomComm_t comm);
/* sendcount elements from each rank; recvbuff holds nranks*sendcount. */
LOOM_API loomResult_t loomAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                                     loomDataType_t datatype, loomComm_t comm);
/* sendbuff holds nranks*recvcount; each rank receives its reduced recvcount block. */
LOOM_API loomResult_t loomReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                         loomDataType_t datatype, loomRedOp_t op, loomComm_t comm);
LOOM_API loomResult_t loomSend(const void* sendbuff, size_t count, loomDataType_t datatype, int peer,
                                loomComm_t comm);
LOOM_API loomResult_t loomRecv(void* recvbuff, size_t count, loomDataType_t datatype, int peer, loomComm_t comm);

/* ---- asynchronous operations ----------------------------------------------------------
 * Matched across ranks by `tag`, not by issue order: every rank must use the same tag for
 * the same operation, and tags of operations in flight at once must differ. A tag may be
 * reused once its operation is done. The communicator remembers how often each tag value was
 * used (a few dozen bytes per distinct value, until the next membership change), so a
 * long-running job should cycle through a bounded set of tags (like Gloo's slots) rather
 * than take a new value for every call.
 */
LOOM_API loomResult_t loomAllReduceAsync(const void* sendbuff, void* recvbuff, size_t count,
                                          loomDataType_t datatype, loomRedOp_t op, uint64_t tag, loomComm_t comm,
                                          loomRequest_t* request);
LOOM_API loomResult_t loomBroadcastAsync(const void* sendbuff, void* recvbuff, size_t count,
                                          loomDataType_t datatype, int root, uint64_t tag, loomComm_t comm,
                                          loomRequest_t* request);
LOOM_API loomResult_t loomReduceAsync(const void* sendbuff, void* recvbuff, size_t count, loomDataType_t datatype,
                                       loomRedOp_t op, int root, uint64_t tag, loomComm_t comm,
                                       loomRequest_t* request);
LOOM_API loomResult_t loomAllGatherAsync(const void* sendbuff, void* recvbuff, size_t sendcount,
                                          loomDataType_t datatype, uint64_t tag, loomComm_t comm,
                                          loomRequest_t* request);
LOOM_API loomResult_t loomReduceScatterAsync(const void* sendbuff, void* recvbuff, size_t recvcount,
                                              loomDataType_t datatype, loomRedOp_t op, uint64_t tag,
                                              loomComm_t comm, loomRequest_t* request);
LOOM_API loomResult_t loomSendAsync(const void* sendbuff, size_t count, loomDataType_t datatype, int peer,
                                     uint64_t tag, loomComm_t comm, loomRequest_t* request);
LOOM_API loomResult_t loomRecvAsync(void* recvbuff, size_t count, loomDataType_t datatype, int peer,
                                     uint64_t tag, loomComm_t comm, loomRequest_t* request);

/* *done = 1 when finished; returns the operation's result once done (loomSuccess while pending). */
LOOM_API loomResult_t loomTest(loomRequest_t request, int* done);
/* Waits up to timeoutMs (LOOM_WAIT_FOREVER: until the operation's own deadline). loomTimeout if still pending. */
LOOM_API loomResult_t loomWait(loomRequest_t request, int timeoutMs);
/* Frees a finished request; a pending one is first cancelled (its operation fails on this rank). */
LOOM_API loomResult_t loomRequestFree(loomRequest_t request);

/* ---- introspection ------------------------------------------------------------------- */
LOOM_API size_t loomDataTypeSize(loomDataType_t datatype);

/*
 * A 64-bit hash of `count` buffers (buffers[i] holds bytes[i] bytes; a buffer of 0 bytes may be
 * NULL), the same on every rank and platform for the same bytes: ranks compare it to assert that
 * their state is bit-identical. Order and buffer boundaries count. Runs at memory speed (XXH64).
 */
LOOM_API loomResult_t loomHash(const void* const* buffers, const size_t* bytes, int count, uint64_t* hash);

#ifdef __cplusplus
}
#endif

#endif /* LOOM_LOOM_H */
