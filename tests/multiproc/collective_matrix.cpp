// One rank of the multi-process collective matrix. Started by loomrun as N real processes, it runs
// one collective over every datatype x op x {out of place, in place} x count, and compares every
// result bit for bit against a closed form (inputs are small integers, exact in any order).
// Usage: collective_matrix --coll allreduce|broadcast|reduce|allgather|reducescatter|sendrecv|async
//        [--segment BYTES]   (config.segmentBytes: force multi-segment pipelining)
// Exits 0 when every check passed; prints each failure.
#include "core/reduce.h"

#include <loom/loom.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int rank = 0, nranks = 1, failures = 0;
loomComm_t comm = nullptr;
const loomDataType_t kTypes[] = {loomInt8,    loomUint8,    loomInt32,   loomUint32,  loomInt64,
                                 loomUint64,  loomFloat16,  loomBfloat16, loomFloat32, loomFloat64};
const loomRedOp_t kOps[] = {loomSum, loomProd, loomMin, loomMax, loomAvg};

bool isFloat(loomDataType_t t) { return t == loomFloat16 || t == loomBfloat16 || t == loomFloat32 || t == loomFloat64; }
bool isUnsigned(loomDataType_t t) { return t == loomUint8 || t == loomUint32 || t == loomUint64; }

// Rank r's element i: small integers chosen so every reduction is exact in every type.
int64_t value(loomDataType_t t, loomRedOp_t op, int r, size_t i) {
  switch (op) {
    case loomProd: return (i % (nranks + 1)) == size_t(r) && r < 6 ? 2 : 1;
    case loomMin:
    case loomMax: return int64_t((r * 7 + i) % 11) - (isUnsigned(t) ? 0 : 5);
    default: return int64_t((r + i) % 5) + 1;
  }
}

// The exact reduction over ranks of element i (avg: the sum; divided in store()).
int64_t fold(loomDataType_t t, loomRedOp_t op, size_t i) {
  int64_t acc = value(t, op, 0, i);
  for (int r = 1; r < nranks; ++r) {
    int64_t v = value(t, op, r, i);
    if (op == loomProd) acc *= v;
    else if (op == loomMin) acc = std::min(acc, v);
    else if (op == loomMax) acc = std::max(acc, v);
    else acc += v;
  }
  return acc;
}

// Writes integer v (divided by `divisor` for avg) into element i of buf as the kernels would.
void store(void* buf, size_t i, loomDataType_t t, int64_t v, int divisor = 1) {
  auto* b = static_cast<uint8_t*>(buf);
  float f = divisor == 1 ? float(v) : float(v) / float(divisor);
  switch (t) {
    case loomInt8: b[i] = uint8_t(int8_t(v / divisor)); break;
    case loomUint8: b[i] = uint8_t(v / divisor); break;
    case loomInt32: { int32_t x = int32_t(v / divisor); std::memcpy(b + 4 * i, &x, 4); break; }
    case loomUint32: { uint32_t x = uint32_t(v / divisor); std::memcpy(b + 4 * i, &x, 4); break; }
    case loomInt64: { int64_t x = v / divisor; std::memcpy(b + 8 * i, &x, 8); break; }
    case loomUint64: { uint64_t x = uint64_t(v / divisor); std::memcpy(b + 8 * i, &x, 8); break; }
    case loomFloat16: { uint16_t x = loom::floatToHalf(f); std::memcpy(b + 2 * i, &x, 2); break; }
    case loomBfloat16: { uint16_t x = loom::floatToBfloat16(f); std::memcpy(b + 2 * i, &x, 2); break; }
    case loomFloat32: std::memcpy(b + 4 * i, &f, 4); break;
    case loomFloat64: { double d = divisor == 1 ? double(v) : double(v) / divisor; std::memcpy(b + 8 * i, &d, 8); break; }
    default: break;
  }
}

double load(const void* buf, size_t i, loomDataType_t t) {
  const auto* b = static_cast<const uint8_t*>(buf);
  switch (t) {
    case loomFloat16: { uint16_t x; std::memcpy(&x, b + 2 * i, 2); return loom::halfToFloat(x); }
    case loomBfloat16: { uint16_t x; std::memcpy(&x, b + 2 * i, 2); return loom::bfloat16ToFloat(x); }
    case loomFloat32: { float x; std::memcpy(&x, b + 4 * i, 4); return x; }
    case loomFloat64: { double x; std::memcpy(&x, b + 8 * i, 8); return x; }
    default: return 0;
  }
}

void fail(const char* what, loomDataType_t t, loomRedOp_t op, size_t count, bool inPlace, const std::string& detail) {
  if (++failures <= 20)
    std::fprintf(stderr, "rank %d: %s %s %s count=%zu %s: %s\n", rank, what, loom::dataTypeName(t),
                 loom::redOpName(op), count, inPlace ? "in-place" : "out-of-place", detail.c_str());
}

// Compares got with want element by element: bytes must match, except avg on floats (tolerance).
void compare(const char* what, const void* got, const void* want, size_t n, loomDataType_t t, loomRedOp_t op,
             size_t count, bool inPlace) {
  size_t es = loom::dataTypeSize(t);
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(static_cast<const uint8_t*>(got) + i * es, static_cast<const uint8_t*>(want) + i * es, es) == 0)
      continue;
    if (op == loomAvg && isFloat(t)) {
      double g = load(got, i, t), w = load(want, i, t);
      if (std::fabs(g - w) <= 1e-2 * std::fabs(w) + 1e-3) continue;
    }
    fail(what, t, op, count, inPlace, "element " + std::to_string(i) + " differs");
    return;
  }
}

void check(loomResult_t rc, const char* what) {
  if (rc != loomSuccess) {
    std::fprintf(stderr, "rank %d: %s failed (%s): %s\n", rank, what, loomGetErrorString(rc), loomGetLastError(comm));
    std::exit(2);
  }
}

std::vector<size_t> counts() {
  size_t notDivisible = size_t(nranks) * 37 + 1;
  return {0, 1, 1031, notDivisible, 20000};
}

void runAllReduce() {
  for (auto t : kTypes)
    for (auto op : kOps)
      for (size_t count : counts())
        for (bool inPlace : {false, true}) {
          size_t es = loom::dataTypeSize(t);
          std::vector<uint8_t> send(count * es + 1), recv(count * es + 1, 0xAB), want(count * es + 1);
          for (size_t i = 0; i < count; ++i) store(send.data(), i, t, value(t, op, rank, i));
          for (size_t i = 0; i < count; ++i) store(want.data(), i, t, fold(t, op, i), op == loomAvg ? nranks : 1);
          void* out = inPlace ? send.data() : recv.data();
          check(loomAllReduce(send.data(), out, count, t, op, comm), "allreduce");
          compare("allreduce", out, want.data(), count, t, op, count, inPlace);
        }
}

void runReduceScatter() {
  for (auto t : kTypes)
    for (auto op : kOps)
      for (size_t count : counts())
        for (bool inPlace : {false, true}) {
          size_t es = loom::dataTypeSize(t), total = count * nranks;
          std::vector<uint8_t> send(total * es + 1), recv(count * es + 1), want(count * es + 1);
          for (size_t i = 0; i < total; ++i) store(send.data(), i, t, value(t, op, rank, i));
          for (size_t i = 0; i < count; ++i)
            store(want.data(), i, t, fold(t, op, rank * count + i), op == loomAvg ? nranks : 1);
          void* out = inPlace ? send.data() + rank * count * es : recv.data();
          check(loomReduceScatter(send.data(), out, count, t, op, comm), "reducescatter");
          compare("reducescatter", out, want.data(), count, t, op, count, inPlace);
        }
}

void runReduce() {
  for (auto t : kTypes)
    for (auto op : kOps)
      for (size_t count : counts())
        for (bool inPlace : {false, true}) {
          int root = int(count % nranks);
          size_t es = loom::dataTypeSize(t);
          std::vector<uint8_t> send(count * es + 1), recv(count * es + 1, 0xCD), want(count * es + 1);
          for (size_t i = 0; i < count; ++i) store(send.data(), i, t, value(t, op, rank, i));
          std::vector<uint8_t> original = send;
          for (size_t i = 0; i < count; ++i) store(want.data(), i, t, fold(t, op, i), op == loomAvg ? nranks : 1);
          void* out = inPlace ? send.data() : recv.data();
          check(loomReduce(send.data(), out, count, t, op, root, comm), "reduce");
          if (rank == root) compare("reduce", out, want.data(), count, t, op, count, inPlace);
          else if (!inPlace && std::vector<uint8_t>(recv.begin(), recv.end() - 1) != std::vector<uint8_t>(count * es, 0xCD))
            fail("reduce", t, op, count, inPlace, "non-root receive buffer was written");
          if (!inPlace && send != original) fail("reduce", t, op, count, inPlace, "send buffer was written");
        }
}

void runBroadcast() {
  for (auto t : kTypes)
    for (size_t count : counts())
      for (bool inPlace : {false, true})
        for (int root = 0; root < nranks; root += (count > 1031 ? nranks : 1)) {
          size_t es = loom::dataTypeSize(t);
          std::vector<uint8_t> send(count * es + 1), recv(count * es + 1, 0xEE), want(count * es + 1);
          for (size_t i = 0; i < count; ++i) store(send.data(), i, t, value(t, loomSum, rank, i));
          for (size_t i = 0; i < count; ++i) store(want.data(), i, t, value(t, loomSum, root, i));
          void* out = inPlace ? send.data() : recv.data();
          check(loomBroadcast(send.data(), out, count, t, root, comm), "broadcast");
          compare("broadcast", out, want.data(), count, t, loomSum, count, inPlace);
        }
}

void runAllGather() {
  for (auto t : kTypes)
    for (size_t count : counts())
      for (bool inPlace : {false, true}) {
        size_t es = loom::dataTypeSize(t), total = count * nranks;
        std::vector<uint8_t> send(count * es + 1), recv(total * es + 1), want(total * es + 1);
        for (size_t i = 0; i < count; ++i) store(send.data(), i, t, value(t, loomSum, rank, i));
        for (int r = 0; r < nranks; ++r)
          for (size_t i = 0; i < count; ++i) store(want.data(), r * count + i, t, value(t, loomSum, r, i));
        const void* in = send.data();
        if (inPlace) {
          std::memcpy(recv.data() + rank * count * es, send.data(), count * es);
          in = recv.data() + rank * count * es;
        }
        check(loomAllGather(in, recv.data(), count, t, comm), "allgather");
        compare("allgather", recv.data(), want.data(), total, t, loomSum, count, inPlace);
      }
}

void runSendRecv() {
  if (nranks == 1) return;  // a rank cannot send to itself
  int next = (rank + 1) % nranks, prev = (rank + nranks - 1) % nranks;
  for (auto t : kTypes)
    for (size_t count : counts()) {
      size_t es = loom::dataTypeSize(t);
      std::vector<uint8_t> send(count * es + 1), recv(count * es + 1), want(count * es + 1);
      for (size_t i = 0; i < count; ++i) store(send.data(), i, t, value(t, loomSum, rank, i));
      for (size_t i = 0; i < count; ++i) store(want.data(), i, t, value(t, loomSum, prev, i));
      if (count % 2 == 0) {  // tagged asynchronous pair
        loomRequest_t sreq, rreq;
        check(loomSendAsync(send.data(), count, t, next, 1, comm, &sreq), "send async");
        check(loomRecvAsync(recv.data(), count, t, prev, 1, comm, &rreq), "recv async");
        check(loomWait(sreq, LOOM_WAIT_FOREVER), "wait send");
        check(loomWait(rreq, LOOM_WAIT_FOREVER), "wait recv");
        loomRequestFree(sreq);
        loomRequestFree(rreq);
      } else if (rank % 2 == 0) {  // blocking: even ranks send first, odd ranks receive first
        check(loomSend(send.data(), count, t, next, comm), "send");
        check(loomRecv(recv.data(), count, t, prev, comm), "recv");
      } else {
        check(loomRecv(recv.data(), count, t, prev, comm), "recv");
        check(loomSend(send.data(), count, t, next, comm), "send");
      }
      compare("sendrecv", recv.data(), want.data(), count, t, loomSum, count, false);
    }
}

// Several tagged operations in flight at once, issued in a different order on every rank.
void runAsync() {
  const int kOpsInFlight = 8;
  const size_t count = 5000;
  std::vector<std::vector<int32_t>> bufs(kOpsInFlight, std::vector<int32_t>(count));
  std::vector<loomRequest_t> reqs(kOpsInFlight);
  for (int k = 0; k < kOpsInFlight; ++k) {
    int op = (k + rank * 3) % kOpsInFlight;  // rotated issue order
    for (size_t i = 0; i < count; ++i) bufs[op][i] = int32_t(op * 100 + rank + i % 7);
    if (op % 2 == 0)
      check(loomAllReduceAsync(bufs[op].data(), bufs[op].data(), count, loomInt32, loomSum, 100 + op, comm, &reqs[op]),
            "allreduce async");
    else
      check(loomBroadcastAsync(bufs[op].data(), bufs[op].data(), count, loomInt32, op % nranks, 100 + op, comm,
                               &reqs[op]),
            "broadcast async");
  }
  for (int k = kOpsInFlight - 1; k >= 0; --k) {
    int op = (k + rank) % kOpsInFlight;
    check(loomWait(reqs[op], 60000), "wait");
    check(loomRequestFree(reqs[op]), "free");
  }
  for (int op = 0; op < kOpsInFlight; ++op)
    for (size_t i = 0; i < count; ++i) {
      int64_t want = 0;
      if (op % 2 == 0)
        for (int r = 0; r < nranks; ++r) want += op * 100 + r + int64_t(i % 7);
      else
        want = op * 100 + (op % nranks) + int64_t(i % 7);
      if (bufs[op][i] != want) {
        fail("async", loomInt32, loomSum, count, true, "op " + std::to_string(op) + " element " + std::to_string(i));
        break;
      }
    }
}

}  // namespace

int main(int argc, char** argv) {
  std::string coll;
  loomConfig_t config = LOOM_CONFIG_INITIALIZER;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--coll" && i + 1 < argc) coll = argv[++i];
    else if (a == "--segment" && i + 1 < argc) config.segmentBytes = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: collective_matrix --coll NAME [--segment BYTES]\n");
      return 2;
    }
  }
  check(loomCommInitFromEnv(&comm, &config), "init");
  check(loomCommRank(comm, &rank), "rank");
  check(loomCommSize(comm, &nranks), "size");
  if (coll == "allreduce") runAllReduce();
  else if (coll == "reducescatter") runReduceScatter();
  else if (coll == "reduce") runReduce();
  else if (coll == "broadcast") runBroadcast();
  else if (coll == "allgather") runAllGather();
  else if (coll == "sendrecv") runSendRecv();
  else if (coll == "async") runAsync();
  else {
    std::fprintf(stderr, "unknown collective '%s'\n", coll.c_str());
    return 2;
  }
  check(loomCommDestroy(comm), "destroy");
  if (rank == 0) std::printf("%s on %d ranks: %s\n", coll.c_str(), nranks, failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
