// Test cases for collectives with closed-form results: inputs of every rank, the exact expected
// output, and the set-up and checks of one operation on one rank (buffers, in place or not, guard
// zones, "the input is never written"). Used by test_collectives_local.cc.
#pragma once

#include "collectives/local_world.h"
#include "core/reduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace loom::test {

using coll::Kind;


using namespace loom;
using loom::coll::Kind;
using loom::test::LocalWorld;
using loom::test::RankDriver;

inline constexpr uint8_t kSentinel = 0xCD;
inline constexpr size_t kGuard = 32;  // sentinel bytes after every output buffer, to catch overruns
inline constexpr size_t kTinySegment = 64;
inline constexpr size_t kNoLimit = ~size_t{0};

inline bool isSigned(loomDataType_t dt) { return dt != loomUint8 && dt != loomUint32 && dt != loomUint64; }

// Input of rank r, element i, for an op: exact in every datatype, and no partial result of any
// order overflows (sums <= 8*5 = 40, products <= 2^4, min/max within [-6, 11]).
inline double inputValue(loomRedOp_t op, loomDataType_t dt, int r, size_t i) {
  switch (op) {
    case loomProd: return (r < 4 && (i + static_cast<size_t>(r)) % 3 == 0) ? 2.0 : 1.0;
    case loomMin:
    case loomMax: return double((static_cast<size_t>(r) * 3 + i * 5) % 11) + (isSigned(dt) ? -6.0 : 1.0);
    default: return double(((r + 1) * static_cast<int>(i % 7 + 1)) % 5 + 1);
  }
}

inline void store(loomDataType_t dt, uint8_t* p, double v) {
  auto put = [p](auto x) { std::memcpy(p, &x, sizeof(x)); };
  switch (dt) {
    case loomInt8: return put(static_cast<int8_t>(v));
    case loomUint8: return put(static_cast<uint8_t>(v));
    case loomInt32: return put(static_cast<int32_t>(v));
    case loomUint32: return put(static_cast<uint32_t>(v));
    case loomInt64: return put(static_cast<int64_t>(v));
    case loomUint64: return put(static_cast<uint64_t>(v));
    case loomFloat16: return put(floatToHalf(static_cast<float>(v)));
    case loomBfloat16: return put(floatToBfloat16(static_cast<float>(v)));
    case loomFloat32: return put(static_cast<float>(v));
    default: return put(v);
  }
}

// avg of an exact sum over n ranks, the way the kernels define it: truncating integer division,
// float division in the accumulation type (float32 for the 16-bit types), then rounding.
inline void storeAverage(loomDataType_t dt, uint8_t* p, double sum, int n) {
  switch (dt) {
    case loomFloat64: return store(dt, p, sum / n);
    case loomFloat32:
    case loomFloat16:
    case loomBfloat16: return store(dt, p, static_cast<double>(static_cast<float>(sum) / static_cast<float>(n)));
    default: return store(dt, p, static_cast<double>(static_cast<int64_t>(sum) / n));
  }
}

inline std::vector<uint8_t> reductionInput(loomRedOp_t op, loomDataType_t dt, int rank, size_t elems) {
  const size_t es = dataTypeSize(dt);
  std::vector<uint8_t> v(elems * es);
  for (size_t i = 0; i < elems; ++i) store(dt, v.data() + i * es, inputValue(op, dt, rank, i));
  return v;
}

// Elements [first, first + elems) of the reduction over all n ranks.
inline std::vector<uint8_t> reductionResult(loomRedOp_t op, loomDataType_t dt, int n, size_t first, size_t elems) {
  const size_t es = dataTypeSize(dt);
  std::vector<uint8_t> v(elems * es);
  for (size_t i = 0; i < elems; ++i) {
    double acc = inputValue(op, dt, 0, first + i);
    for (int r = 1; r < n; ++r) {
      const double x = inputValue(op, dt, r, first + i);
      acc = op == loomProd ? acc * x : op == loomMin ? std::min(acc, x) : op == loomMax ? std::max(acc, x) : acc + x;
    }
    if (op == loomAvg) {
      storeAverage(dt, v.data() + i * es, acc, n);
    } else {
      store(dt, v.data() + i * es, acc);
    }
  }
  return v;
}

// Raw bytes for the collectives that only move data (any byte is fine, NaN patterns included).
inline std::vector<uint8_t> bytePattern(int rank, size_t bytes) {
  std::vector<uint8_t> v(bytes);
  for (size_t j = 0; j < bytes; ++j) v[j] = static_cast<uint8_t>(((j * 2654435761u) >> 11) + rank * 29 + 1);
  return v;
}

struct Case {
  Kind kind = Kind::AllReduce;
  const char* algorithm = "";  // label; the tuning below is what selects it
  loomDataType_t dtype = loomFloat32;
  loomRedOp_t op = loomSum;
  size_t count = 0;
  int root = 0;
  bool inPlace = false;
  coll::Tuning tuning;
  std::string describe(int n) const {
    return fmt::format("{} {} {} count={} root={} {} segment={} world={}", algorithm, dataTypeName(dtype),
                       redOpName(op), count, root, inPlace ? "in-place" : "out-of-place", tuning.segmentBytes, n);
  }
};

// Output buffer with a guard zone of sentinels behind it.
inline std::vector<uint8_t> outputBuffer(size_t bytes) { return std::vector<uint8_t>(bytes + kGuard, kSentinel); }
inline bool guardIntact(const std::vector<uint8_t>& buf, size_t bytes) {
  for (size_t j = bytes; j < buf.size(); ++j) {
    if (buf[j] != kSentinel) return false;
  }
  return true;
}
inline bool sameBytes(const uint8_t* got, const std::vector<uint8_t>& want) {
  return want.empty() || std::memcmp(got, want.data(), want.size()) == 0;
}

// One operation on one rank with its buffers and what they must hold afterwards.
struct PreparedCase {
  Case c;
  int rank = 0;
  int n = 1;
  std::vector<uint8_t> in, out;  // out-of-place input; output (or the one in-place buffer) + guard
  std::vector<uint8_t> input;    // what this rank contributes, to check it is never written
  std::vector<uint8_t> want;     // expected bytes at out + outOffset
  size_t outOffset = 0;
  size_t outBytes = 0;
  std::unique_ptr<coll::Operation> op;
  transport::Tag tag;

  // "" when the buffers hold what they must, else what is wrong.
  std::string check() const {
    const size_t bytes = c.count * dataTypeSize(c.dtype);
    if (!sameBytes(out.data() + outOffset, want)) return "wrong result";
    if (!guardIntact(out, std::max(outBytes, c.inPlace ? input.size() : 0))) return "wrote past the output buffer";
    if (!c.inPlace && in != input) return "input buffer was written";
    if (c.inPlace && c.kind == Kind::ReduceScatter) {
      for (int r = 0; r < n; ++r) {  // blocks other than this rank's are input only
        if (r != rank && bytes && std::memcmp(out.data() + bytes * r, input.data() + bytes * r, bytes) != 0) {
          return "reduce-scatter wrote another rank's input block";
        }
      }
    }
    return {};
  }
};

inline std::unique_ptr<PreparedCase> prepareCase(const Case& c, LocalWorld& world, int rank, uint64_t tagOp) {
  auto p = std::make_unique<PreparedCase>();
  p->c = c;
  p->rank = rank;
  p->n = world.size();
  const int n = world.size();
  const size_t bytes = c.count * dataTypeSize(c.dtype);
  p->outBytes = bytes;
  coll::Args args;
  args.kind = c.kind;
  args.count = c.count;
  args.dtype = c.dtype;
  args.op = c.op;
  args.root = c.root;
  auto& input = p->input;
  auto& want = p->want;
  switch (c.kind) {
    case Kind::AllReduce:
    case Kind::Reduce: {
      input = reductionInput(c.op, c.dtype, rank, c.count);
      const bool gets = c.kind == Kind::AllReduce || rank == c.root;
      want = gets ? reductionResult(c.op, c.dtype, n, 0, c.count)
                  : (c.inPlace ? input : std::vector<uint8_t>(bytes, kSentinel));  // non-root: untouched
      break;
    }
    case Kind::ReduceScatter:
      input = reductionInput(c.op, c.dtype, rank, c.count * n);
      want = reductionResult(c.op, c.dtype, n, c.count * rank, c.count);
      if (c.inPlace) p->outOffset = bytes * rank;
      break;
    case Kind::Broadcast:
      if (rank == c.root) input = bytePattern(rank, bytes);
      want = bytePattern(c.root, bytes);
      break;
    case Kind::AllGather:
      input = bytePattern(rank, bytes);
      for (int r = 0; r < n; ++r) {
        auto part = bytePattern(r, bytes);
        want.insert(want.end(), part.begin(), part.end());
      }
      p->outBytes = bytes * n;
      break;
    default: break;
  }

  if (c.inPlace) {
    // One buffer (NCCL convention): send == recv, all-gather's input at recv + rank * bytes,
    // reduce-scatter's output at send + rank * bytes.
    p->out = outputBuffer(std::max(p->outBytes, input.size()));
    const size_t inputAt = c.kind == Kind::AllGather ? bytes * rank : 0;
    if (!input.empty()) std::memcpy(p->out.data() + inputAt, input.data(), input.size());
    args.send = p->out.data() + inputAt;
    args.recv = p->out.data() + p->outOffset;
  } else {
    p->in = input;
    p->out = outputBuffer(p->outBytes);
    args.send = (c.kind == Kind::Broadcast && rank != c.root) ? nullptr : p->in.data();
    args.recv = p->out.data();
  }

  p->tag.op = tagOp;
  p->tag.space = 1;
  p->op = coll::makeOperation(args, contextFor(world, rank, args, tagOp, c.tuning));
  return p;
}

}  // namespace loom::test
