#include "data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace loombench {
namespace {

// limit: the largest magnitude the type holds exactly (integers: without overflow; floats: every
// integer up to it is representable), which bounds every partial result of a reduction. The 8-bit
// limits stop short of 127 so that the poison byte 0x7F is never an expected value.
struct TypeRow {
  TypeInfo info;
  bool isSigned;
  int64_t limit;
};

const std::vector<TypeRow>& typeRows() {
  static const std::vector<TypeRow> rows = {
      {{loomInt8, "int8", 1}, true, 126},
      {{loomUint8, "uint8", 1}, false, 126},
      {{loomInt32, "int32", 4}, true, INT32_MAX},
      {{loomUint32, "uint32", 4}, false, UINT32_MAX},
      {{loomInt64, "int64", 8}, true, int64_t{1} << 62},
      {{loomUint64, "uint64", 8}, false, int64_t{1} << 62},
      {{loomFloat16, "half", 2}, true, 2048},
      {{loomFloat32, "float", 4}, true, int64_t{1} << 24},
      {{loomFloat64, "double", 8}, true, int64_t{1} << 53},
      {{loomBfloat16, "bfloat16", 2}, true, 256},
  };
  return rows;
}

const TypeRow& typeRow(loomDataType_t type) {
  for (const TypeRow& r : typeRows())
    if (r.info.type == type) return r;
  throw std::invalid_argument("unknown datatype");
}

// ---- 16-bit floats (round to nearest even), written here so the benchmark depends only on loom.h

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return static_cast<uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {                                                 // below 2^-14: subnormal
    float mag;
    std::memcpy(&mag, &a, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(mag * 16777216.0f)));
  }
  uint32_t h = (a - 0x38000000u) >> 13;  // rebias the exponent by 127 - 15 = 112
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) / 16777216.0f;  // m * 2^-24
    return sign ? -v : v;
  }
  const uint32_t bits = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToBfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN stays NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float bfloat16ToFloat(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---- per-datatype encoding: S is the storage type; enc takes an exact integer, dec reads one back.
// avgTol: two units in the last place at magnitude 1, for float avg (x / n rounds, and the library
// may divide in its accumulation precision rather than in double).

template <typename T>
struct IntTr {
  using S = T;
  static constexpr bool isFloat = false;
  static constexpr double avgTol = 0;
  static S enc(int64_t v) { return static_cast<S>(v); }
  static double dec(S s) { return static_cast<double>(s); }
};
template <typename T>
struct FloatTr {
  using S = T;
  static constexpr bool isFloat = true;
  static constexpr double avgTol = sizeof(T) == 8 ? 0x1p-50 : 0x1p-21;
  static S enc(int64_t v) { return static_cast<S>(v); }
  static double dec(S s) { return s; }
};
struct HalfTr {
  using S = uint16_t;
  static constexpr bool isFloat = true;
  static constexpr double avgTol = 0x1p-9;
  static S enc(int64_t v) { return floatToHalf(static_cast<float>(v)); }
  static double dec(S s) { return halfToFloat(s); }
};
struct BF16Tr {
  using S = uint16_t;
  static constexpr bool isFloat = true;
  static constexpr double avgTol = 0x1p-6;
  static S enc(int64_t v) { return floatToBfloat16(static_cast<float>(v)); }
  static double dec(S s) { return bfloat16ToFloat(s); }
};

template <typename F>
void dispatch(loomDataType_t type, F&& f) {
  switch (type) {
    case loomInt8: return f(IntTr<int8_t>{});
    case loomUint8: return f(IntTr<uint8_t>{});
    case loomInt32: return f(IntTr<int32_t>{});
    case loomUint32: return f(IntTr<uint32_t>{});
    case loomInt64: return f(IntTr<int64_t>{});
    case loomUint64: return f(IntTr<uint64_t>{});
    case loomFloat16: return f(HalfTr{});
    case loomBfloat16: return f(BF16Tr{});
    case loomFloat32: return f(FloatTr<float>{});
    case loomFloat64: return f(FloatTr<double>{});
    default: throw std::invalid_argument("unknown datatype");
  }
}

uint64_t mix64(uint64_t z) {  // splitmix64's finaliser: cheap, and every input bit moves every output bit
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rankSeed(uint64_t seed, int rank) { return mix64(seed * 0x100000001b3ull ^ mix64(rank + 1ull)); }

// The input generator for one pattern: input(rank, j) is an integer, exact in the datatype.
struct Gen {
  int64_t lo = 0;
  uint64_t span = 1;
  bool prod = false;
  int nranks = 1;
  uint64_t seed = 0;

  explicit Gen(const Pattern& p) : nranks(p.nranks), seed(p.seed) {
    const TypeRow& row = typeRow(p.type);
    if (p.reduces && p.op == loomProd) {
      prod = true;
      return;
    }
    int64_t m;
    if (p.reduces && (p.op == loomSum || p.op == loomAvg)) {
      m = std::min<int64_t>(8, row.limit / std::max(1, p.nranks));  // |any partial sum| <= n*m <= limit
    } else {
      m = std::min<int64_t>(row.limit, int64_t{1} << 20);  // copies, min, max: no arithmetic
    }
    lo = row.isSigned ? -m : 0;
    span = static_cast<uint64_t>(row.isSigned ? 2 * m + 1 : m + 1);
  }

  int64_t value(uint64_t rs, int rank, size_t j) const {
    const uint64_t h = mix64(rs ^ (j * 0xd1b54a32d192ed03ull));
    if (prod) {
      // Only ranks k and k+1 may contribute a 2 to element j, so every product is 1, 2 or 4:
      // exact in int8 and in every float, whatever the order.
      const int k = static_cast<int>((j + seed) % static_cast<uint64_t>(nranks));
      const bool candidate = rank == k || rank == (k + 1) % nranks;
      return candidate && (h & 1) ? 2 : 1;
    }
    return lo + static_cast<int64_t>(h % span);
  }
};

}  // namespace

const std::vector<TypeInfo>& allTypes() {
  static const std::vector<TypeInfo> types = [] {
    std::vector<TypeInfo> t;
    for (const TypeRow& r : typeRows()) t.push_back(r.info);
    return t;
  }();
  return types;
}

const TypeInfo& typeInfo(loomDataType_t type) { return typeRow(type).info; }

const std::vector<loomRedOp_t>& allOps() {
  static const std::vector<loomRedOp_t> ops = {loomSum, loomProd, loomMax, loomMin, loomAvg};
  return ops;
}

const char* opName(loomRedOp_t op) {
  switch (op) {
    case loomSum: return "sum";
    case loomProd: return "prod";
    case loomMin: return "min";
    case loomMax: return "max";
    case loomAvg: return "avg";
    default: return "unknown";
  }
}

bool parseTypes(const std::string& text, std::vector<loomDataType_t>* out) {
  struct Alias {
    const char* name;
    loomDataType_t type;
  };
  static const Alias aliases[] = {
      {"char", loomInt8},       {"int", loomInt32},       {"uint", loomUint32},      {"float16", loomFloat16},
      {"fp16", loomFloat16},    {"bf16", loomBfloat16},   {"float32", loomFloat32},  {"fp32", loomFloat32},
      {"float64", loomFloat64}, {"fp64", loomFloat64},
  };
  out->clear();
  if (text == "all") {
    for (const TypeInfo& t : allTypes()) out->push_back(t.type);
    return true;
  }
  for (const TypeInfo& t : allTypes())
    if (text == t.name) out->push_back(t.type);
  for (const Alias& a : aliases)
    if (text == a.name) out->push_back(a.type);
  return !out->empty();
}

bool parseOps(const std::string& text, std::vector<loomRedOp_t>* out) {
  out->clear();
  if (text == "all") {
    *out = allOps();
    return true;
  }
  for (loomRedOp_t op : allOps())
    if (text == opName(op)) out->push_back(op);
  return !out->empty();
}

void fillInput(const Pattern& pattern, void* buf, size_t count, int rank, size_t offset) {
  const Gen gen(pattern);
  const uint64_t rs = rankSeed(pattern.seed, rank);
  dispatch(pattern.type, [&](auto tr) {
    using Tr = decltype(tr);
    auto* out = static_cast<typename Tr::S*>(buf);
    for (size_t i = 0; i < count; ++i) out[i] = Tr::enc(gen.value(rs, rank, offset + i));
  });
}

void poison(void* buf, size_t bytes) {
  // 0x7F.. is above every expected integer (see typeRows), NaN in float16 and about 3e38 or 1e306
  // in the other floats: far outside any tolerance too.
  if (bytes > 0) std::memset(buf, 0x7F, bytes);
}

Checker::Checker(const Pattern& pattern) : pattern_(pattern), elemSize_(typeInfo(pattern.type).size) {
  for (int r = 0; r < pattern.nranks; ++r) rankSeeds_.push_back(rankSeed(pattern.seed, r));
}

void Checker::reduced(const void* got, size_t count, size_t offset) {
  dispatch(pattern_.type, [&](auto tr) { compare<decltype(tr)>(got, count, offset, -1); });
}

void Checker::copied(const void* got, size_t count, int srcRank, size_t offset) {
  dispatch(pattern_.type, [&](auto tr) { compare<decltype(tr)>(got, count, offset, srcRank); });
}

template <typename Tr>
void Checker::compare(const void* gotv, size_t count, size_t base, int srcRank) {
  using S = typename Tr::S;
  const S* got = static_cast<const S*>(gotv);
  const Gen gen(pattern_);
  const int n = pattern_.nranks;
  const loomRedOp_t op = pattern_.reduces ? pattern_.op : loomSum;
  const bool tolerant = Tr::isFloat && srcRank < 0 && op == loomAvg;
  const double tol = Tr::avgTol;
  for (size_t i = 0; i < count; ++i) {
    const size_t j = base + i;
    double want;
    bool ok;
    if (srcRank >= 0) {
      const int64_t v = gen.value(rankSeeds_[srcRank], srcRank, j);
      const S e = Tr::enc(v);
      ok = std::memcmp(&e, &got[i], sizeof(S)) == 0;
      want = static_cast<double>(v);
    } else {
      int64_t acc = gen.value(rankSeeds_[0], 0, j);
      for (int r = 1; r < n; ++r) {
        const int64_t v = gen.value(rankSeeds_[r], r, j);
        switch (op) {
          case loomProd: acc *= v; break;
          case loomMin: acc = std::min(acc, v); break;
          case loomMax: acc = std::max(acc, v); break;
          default: acc += v; break;  // sum, avg
        }
      }
      if (tolerant) {
        want = static_cast<double>(acc) / n;
        const double g = Tr::dec(got[i]);
        ok = std::fabs(g - want) <= tol * std::max(1.0, std::fabs(want));  // false for NaN
      } else {
        if (op == loomAvg) acc /= n;  // integers: truncating division, as loom.h's avg
        const S e = Tr::enc(acc);
        ok = std::memcmp(&e, &got[i], sizeof(S)) == 0;
        want = static_cast<double>(acc);
      }
    }
    if (!ok) {
      if (wrong_ == 0) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "element %zu of %zu: expected %.10g, got %.10g", i, count, want,
                      Tr::dec(got[i]));
        first_ = msg;
      }
      ++wrong_;
    }
  }
  checked_ += static_cast<int64_t>(count);
}

}  // namespace loombench
