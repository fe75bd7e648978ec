// Loom: a thin, header-only C++17 layer over the C API in loom.h.
//
// It adds only what C cannot say: ownership (RAII for communicators and requests), errors as
// exceptions carrying the communicator's own message, and element types deduced from pointers.
// Everything else is the C API one-to-one, so its documentation in loom.h applies unchanged.
//
//   loom::Comm comm = loom::Comm::fromEnv();
//   comm.allReduce(grad.data(), grad.data(), grad.size(), loomSum);     // float -> loomFloat32
//   loom::Request r = comm.broadcastAsync(w.data(), w.data(), w.size(), /*root=*/0, /*tag=*/7);
//   r.wait();
#ifndef LOOM_LOOM_HPP
#define LOOM_LOOM_HPP

#include <loom/loom.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace loom {

// A failed Loom call. what() is "<result string>: <loomGetLastError message>".
class Error : public std::runtime_error {
 public:
  Error(loomResult_t code, const std::string& message) : std::runtime_error(message), code_(code) {}
  loomResult_t code() const noexcept { return code_; }

 private:
  loomResult_t code_;
};

namespace detail {
// comm may be null: loomGetLastError(NULL) holds the last failed init on this thread.
[[noreturn]] inline void throwError(loomResult_t code, loomComm_t comm) {
  std::string message = loomGetErrorString(code);
  const char* detail = loomGetLastError(comm);
  if (detail != nullptr && detail[0] != '\0') {
    // The detail usually starts with the result's own string already; say it once.
    const std::string d = detail;
    message = d.compare(0, message.size(), message) == 0 ? d : message + ": " + d;
  }
  throw Error(code, message);
}
inline void check(loomResult_t code, loomComm_t comm) {
  if (code != loomSuccess) throwError(code, comm);
}
}  // namespace detail

// 16-bit floating-point storage types; Loom reduces them, C++17 has no type for them.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// DataTypeOf<T>::value is the loomDataType_t for element type T.
template <typename T, typename = void>
struct DataTypeOf {
  static_assert(sizeof(T) == 0,
                "loom: no loomDataType_t for this element type (use int8_t, uint8_t, int32_t, uint32_t, "
                "int64_t, uint64_t, float, double, loom::Half or loom::BFloat16)");
};
#define LOOM_DATATYPE_OF_(T, V) \
  template <>                   \
  struct DataTypeOf<T> : std::integral_constant<loomDataType_t, V> {}
LOOM_DATATYPE_OF_(int8_t, loomInt8);
LOOM_DATATYPE_OF_(uint8_t, loomUint8);
LOOM_DATATYPE_OF_(int32_t, loomInt32);
LOOM_DATATYPE_OF_(uint32_t, loomUint32);
LOOM_DATATYPE_OF_(int64_t, loomInt64);
LOOM_DATATYPE_OF_(uint64_t, loomUint64);
LOOM_DATATYPE_OF_(float, loomFloat32);
LOOM_DATATYPE_OF_(double, loomFloat64);
LOOM_DATATYPE_OF_(Half, loomFloat16);
LOOM_DATATYPE_OF_(BFloat16, loomBfloat16);
#undef LOOM_DATATYPE_OF_
// `char` is distinct from int8_t/uint8_t; its signedness decides which it means.
template <>
struct DataTypeOf<char> : std::integral_constant<loomDataType_t, std::is_signed<char>::value ? loomInt8 : loomUint8> {};
// `long long` and `long` are distinct types of the same size on LP64; map whichever int64_t is not.
template <typename T>
struct DataTypeOf<T, std::enable_if_t<std::is_integral<T>::value && sizeof(T) == 8 && !std::is_same<T, int64_t>::value &&
                                      !std::is_same<T, uint64_t>::value>>
    : std::integral_constant<loomDataType_t, std::is_signed<T>::value ? loomInt64 : loomUint64> {};

template <typename T>
constexpr loomDataType_t dataTypeOf() {
  return DataTypeOf<std::remove_cv_t<T>>::value;
}

// A configuration initialised as LOOM_CONFIG_INITIALIZER (every setting from the environment).
inline loomConfig_t defaultConfig() {
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  return config;
}

// An asynchronous operation. Destroying a pending Request cancels it (loomRequestFree), so keep it
// - and the buffers it uses - alive until wait() or test() reports completion.
class Request {
 public:
  Request() = default;
  Request(loomRequest_t request, loomComm_t comm) noexcept : request_(request), comm_(comm) {}
  Request(Request&& other) noexcept
      : request_(std::exchange(other.request_, nullptr)), comm_(std::exchange(other.comm_, nullptr)) {}
  Request& operator=(Request&& other) noexcept {
    if (this != &other) {
      reset();
      request_ = std::exchange(other.request_, nullptr);
      comm_ = std::exchange(other.comm_, nullptr);
    }
    return *this;
  }
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request() { reset(); }

  // Waits up to timeoutMs (LOOM_WAIT_FOREVER: until the operation's own deadline). Returns true
  // when the operation finished, false when timeoutMs passed first; throws if the operation failed.
  bool wait(int timeoutMs = LOOM_WAIT_FOREVER) {
    loomResult_t r = loomWait(request_, timeoutMs);
    if (r == loomSuccess) return true;
    if (r == loomTimeout && timeoutMs != LOOM_WAIT_FOREVER) {
      // loomTimeout means either "still pending" or "the operation itself timed out": ask.
      int done = 0;
      loomResult_t t = loomTest(request_, &done);
      detail::check(t, comm_);  // finished in the meantime and failed
      return done != 0;
    }
    detail::throwError(r, comm_);
  }
  // Non-blocking: true once finished; throws if the operation failed.
  bool test() {
    int done = 0;
    detail::check(loomTest(request_, &done), comm_);
    return done != 0;
  }
  bool valid() const noexcept { return request_ != nullptr; }
  loomRequest_t get() const noexcept { return request_; }
  // Frees the request now (cancelling it if pending).
  void reset() noexcept {
    if (request_ != nullptr) loomRequestFree(request_);
    request_ = nullptr;
    comm_ = nullptr;
  }

 private:
  loomRequest_t request_ = nullptr;
  loomComm_t comm_ = nullptr;
};

// A communicator. Move-only; the destructor calls loomCommDestroy.
class Comm {
 public:
  // Joins a communicator of nranks as `rank` (-1: assigned) by rendezvous at coordinator
  // ("host:port"). config may be null.
  Comm(int nranks, int rank, const std::string& coordinator, const loomConfig_t* config = nullptr) {
    detail::check(loomCommInitRank(&comm_, nranks, rank, coordinator.c_str(), config), nullptr);
  }
  // Rank, size and coordinator from the environment (LOOM_*, torchrun, Open MPI, Slurm).
  static Comm fromEnv(const loomConfig_t* config = nullptr) {
    loomComm_t comm = nullptr;
    detail::check(loomCommInitFromEnv(&comm, config), nullptr);
    return Comm(comm);
  }
  // Joins a communicator that is already running (loomCommJoin): blocks until its members admit
  // this process at their next update(). An empty coordinator means LOOM_COORDINATOR; the
  // communicator id is config->commId / LOOM_COMM_ID. config may be null.
  static Comm join(const std::string& coordinator = std::string(), const loomConfig_t* config = nullptr) {
    loomComm_t comm = nullptr;
    detail::check(loomCommJoin(&comm, coordinator.empty() ? nullptr : coordinator.c_str(), config), nullptr);
    return Comm(comm);
  }
  // Takes ownership of a handle made with the C API.
  explicit Comm(loomComm_t comm) noexcept : comm_(comm) {}
  Comm(Comm&& other) noexcept : comm_(std::exchange(other.comm_, nullptr)) {}
  Comm& operator=(Comm&& other) noexcept {
    if (this != &other) {
      destroy();
      comm_ = std::exchange(other.comm_, nullptr);
    }
    return *this;
  }
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ~Comm() { destroy(); }

  int rank() const {
    int r = -1;
    detail::check(loomCommRank(comm_, &r), comm_);
    return r;
  }
  int size() const {
    int s = 0;
    detail::check(loomCommSize(comm_, &s), comm_);
    return s;
  }
  // ---- elastic membership (see loom.h) ----
  // The safe point every member calls together (loomCommUpdate): failed and leaving members are
  // dropped, waiting joiners admitted, ranks renumbered. Throws on failure; an Error with code()
  // loomBelowQuorum means the new epoch is installed but has fewer than LOOM_MIN_WORLD members.
  void update() { check(loomCommUpdate(comm_)); }
  // Joiners waiting for the next update, as the coordinator last told this rank (no round trip).
  int pendingPeers() const {
    int count = 0;
    detail::check(loomCommPendingPeers(comm_, &count), comm_);
    return count;
  }
  // Leaves at a safe point where the other members call update(); then destroy() (or let the
  // destructor do it).
  void leave() { check(loomCommLeave(comm_)); }
  // The membership epoch: 1 after the founding rendezvous, one more per update.
  uint64_t epoch() const {
    uint64_t e = 0;
    detail::check(loomCommEpoch(comm_, &e), comm_);
    return e;
  }

  // Fails every in-flight operation with loomAborted; safe from any thread. The object must still
  // be destroyed (or destroy() called) to free it.
  void abort() { detail::check(loomCommAbort(comm_), comm_); }
  // loomSuccess while healthy; else what every later operation would fail with.
  loomResult_t asyncError() const {
    loomResult_t e = loomSuccess;
    detail::check(loomCommGetAsyncError(comm_, &e), comm_);
    return e;
  }
  // Peers known to have failed, first seen first.
  std::vector<loomPeerFailure_t> failures() const {
    int count = 0;
    detail::check(loomCommGetFailures(comm_, nullptr, 0, &count), comm_);
    std::vector<loomPeerFailure_t> out(static_cast<size_t>(count));
    detail::check(loomCommGetFailures(comm_, out.data(), count, &count), comm_);
    out.resize(std::min(out.size(), static_cast<size_t>(count)));
    return out;
  }
  // Waits for in-flight operations (bounded) and frees the communicator; idempotent.
  void destroy() noexcept {
    if (comm_ != nullptr) loomCommDestroy(comm_);
    comm_ = nullptr;
  }
  loomComm_t get() const noexcept { return comm_; }
  // The last failure's message on this communicator.
  std::string lastError() const {
    const char* m = loomGetLastError(comm_);
    return m != nullptr ? m : "";
  }

  // ---- blocking collectives (send and recv may be the same buffer: in place) ----
  template <typename T>
  void allReduce(const T* send, T* recv, size_t count, loomRedOp_t op) {
    check(loomAllReduce(send, recv, count, dataTypeOf<T>(), op, comm_));
  }
  template <typename T>
  void broadcast(const T* send, T* recv, size_t count, int root) {
    check(loomBroadcast(send, recv, count, dataTypeOf<T>(), root, comm_));
  }
  template <typename T>
  void broadcast(T* buffer, size_t count, int root) {
    broadcast(buffer, buffer, count, root);
  }
  template <typename T>
  void reduce(const T* send, T* recv, size_t count, loomRedOp_t op, int root) {
    check(loomReduce(send, recv, count, dataTypeOf<T>(), op, root, comm_));
  }
  // recv holds size() * sendcount elements.
  template <typename T>
  void allGather(const T* send, T* recv, size_t sendcount) {
    check(loomAllGather(send, recv, sendcount, dataTypeOf<T>(), comm_));
  }
  // send holds size() * recvcount elements.
  template <typename T>
  void reduceScatter(const T* send, T* recv, size_t recvcount, loomRedOp_t op) {
    check(loomReduceScatter(send, recv, recvcount, dataTypeOf<T>(), op, comm_));
  }
  template <typename T>
  void send(const T* buffer, size_t count, int peer) {
    check(loomSend(buffer, count, dataTypeOf<T>(), peer, comm_));
  }
  template <typename T>
  void recv(T* buffer, size_t count, int peer) {
    check(loomRecv(buffer, count, dataTypeOf<T>(), peer, comm_));
  }

  // ---- asynchronous: every rank uses the same tag for the same operation (see loom.h) ----
  template <typename T>
  Request allReduceAsync(const T* send, T* recv, size_t count, loomRedOp_t op, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomAllReduceAsync(send, recv, count, dataTypeOf<T>(), op, tag, comm_, &r));
    return Request(r, comm_);
  }
  template <typename T>
  Request broadcastAsync(const T* send, T* recv, size_t count, int root, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomBroadcastAsync(send, recv, count, dataTypeOf<T>(), root, tag, comm_, &r));
    return Request(r, comm_);
  }
  template <typename T>
  Request reduceAsync(const T* send, T* recv, size_t count, loomRedOp_t op, int root, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomReduceAsync(send, recv, count, dataTypeOf<T>(), op, root, tag, comm_, &r));
    return Request(r, comm_);
  }
  template <typename T>
  Request allGatherAsync(const T* send, T* recv, size_t sendcount, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomAllGatherAsync(send, recv, sendcount, dataTypeOf<T>(), tag, comm_, &r));
    return Request(r, comm_);
  }
  template <typename T>
  Request reduceScatterAsync(const T* send, T* recv, size_t recvcount, loomRedOp_t op, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomReduceScatterAsync(send, recv, recvcount, dataTypeOf<T>(), op, tag, comm_, &r));
    return Request(r, comm_);
  }
  template <typename T>
  Request sendAsync(const T* buffer, size_t count, int peer, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomSendAsync(buffer, count, dataTypeOf<T>(), peer, tag, comm_, &r));
    return Request(r, comm_);
  }
  template <typename T>
  Request recvAsync(T* buffer, size_t count, int peer, uint64_t tag) {
    loomRequest_t r = nullptr;
    check(loomRecvAsync(buffer, count, dataTypeOf<T>(), peer, tag, comm_, &r));
    return Request(r, comm_);
  }

 private:
  void check(loomResult_t code) const { detail::check(code, comm_); }

  loomComm_t comm_ = nullptr;
};

// loomHash of the given buffers.
inline uint64_t hash(const std::vector<std::pair<const void*, size_t>>& buffers) {
  std::vector<const void*> ptrs;
  std::vector<size_t> bytes;
  for (const auto& b : buffers) {
    ptrs.push_back(b.first);
    bytes.push_back(b.second);
  }
  uint64_t h = 0;
  detail::check(loomHash(ptrs.data(), bytes.data(), static_cast<int>(buffers.size()), &h), nullptr);
  return h;
}

}  // namespace loom

#endif  // LOOM_LOOM_HPP
