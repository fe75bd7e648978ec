// Reduction kernels (src/core/reduce.h): every datatype x op against a scalar reference, aliasing,
// wraparound, avg finalisation, float16/bfloat16 conversions, and the datatype/op metadata.
#include <catch2/catch.hpp>

#include "core/reduce.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace loom;

namespace {

constexpr loomDataType_t kTypes[] = {loomInt8,    loomUint8,    loomInt32,   loomUint32, loomInt64,
                                     loomUint64,  loomFloat16,  loomBfloat16, loomFloat32, loomFloat64};
constexpr loomRedOp_t kOps[] = {loomSum, loomProd, loomMin, loomMax, loomAvg};
constexpr size_t kCounts[] = {0, 1, 7, 1000, 4099};

bool isSigned(loomDataType_t t) { return t != loomUint8 && t != loomUint32 && t != loomUint64; }

uint32_t bitsOf(float f) { return std::bit_cast<uint32_t>(f); }
float floatOf(uint32_t u) { return std::bit_cast<float>(u); }

// Store v, a small integer (or -0), exactly representable in every type, as element i.
void store(loomDataType_t t, void* buf, size_t i, double v) {
  switch (t) {
    case loomInt8: static_cast<int8_t*>(buf)[i] = int8_t(v); break;
    case loomUint8: static_cast<uint8_t*>(buf)[i] = uint8_t(v); break;
    case loomInt32: static_cast<int32_t*>(buf)[i] = int32_t(v); break;
    case loomUint32: static_cast<uint32_t*>(buf)[i] = uint32_t(v); break;
    case loomInt64: static_cast<int64_t*>(buf)[i] = int64_t(v); break;
    case loomUint64: static_cast<uint64_t*>(buf)[i] = uint64_t(v); break;
    case loomFloat16: static_cast<uint16_t*>(buf)[i] = floatToHalf(float(v)); break;
    case loomBfloat16: static_cast<uint16_t*>(buf)[i] = floatToBfloat16(float(v)); break;
    case loomFloat32: static_cast<float*>(buf)[i] = float(v); break;
    case loomFloat64: static_cast<double*>(buf)[i] = v; break;
    default: FAIL("bad type");
  }
}

// Reference: exact for small integers (no wrap, no rounding in any type); in double so that a
// float product like -3 * 0 is -0, as IEEE arithmetic gives (integers store -0 as 0).
double refOp(loomRedOp_t op, double a, double b) {
  switch (op) {
    case loomSum:
    case loomAvg: return a + b;
    case loomProd: return a * b;
    case loomMin: return a < b ? a : b;
    case loomMax: return a < b ? b : a;
    default: return 0;
  }
}

// Deterministic small values: signed types a in [-8, 8], b in [-6, 6] (periods 17 and 13, so
// every pairing occurs, zero times negative included); unsigned in [0, 15]. Products stay within
// 225 and sums within 30, exact in every type (bfloat16 holds integers up to 256 exactly).
double valueA(loomDataType_t t, size_t i) {
  return isSigned(t) ? double((i * 7 + 3) % 17) - 8 : double((i * 5 + 1) % 16);
}
double valueB(loomDataType_t t, size_t i) {
  return isSigned(t) ? double((i * 5 + 2) % 13) - 6 : double((i * 3 + 7) % 16);
}

struct Case {
  std::vector<unsigned char> a, b, expect;  // count + 1 elements each: the last is a guard
};

constexpr unsigned char kGuard = 0xA5;

Case makeCase(loomDataType_t t, loomRedOp_t op, size_t count) {
  const size_t es = dataTypeSize(t);
  Case c{std::vector<unsigned char>((count + 1) * es, kGuard), std::vector<unsigned char>((count + 1) * es, kGuard),
         std::vector<unsigned char>((count + 1) * es, kGuard)};
  for (size_t i = 0; i < count; ++i) {
    store(t, c.a.data(), i, valueA(t, i));
    store(t, c.b.data(), i, valueB(t, i));
    store(t, c.expect.data(), i, refOp(op, valueA(t, i), valueB(t, i)));
  }
  return c;
}

// Index of the first differing element (index count is the guard), or -1 if identical.
long firstMismatch(const std::vector<unsigned char>& got, const std::vector<unsigned char>& want, size_t es) {
  for (size_t i = 0; i * es < got.size(); ++i)
    if (std::memcmp(got.data() + i * es, want.data() + i * es, es) != 0) return long(i);
  return -1;
}

enum class Shape { InPlace, Into, IntoOutIsA, IntoOutIsB };

void checkAll(Shape shape) {
  for (auto t : kTypes)
    for (auto op : kOps)
      for (size_t count : kCounts) {
        INFO("type " << dataTypeName(t) << " op " << redOpName(op) << " count " << count);
        Case c = makeCase(t, op, count);
        std::vector<unsigned char> got;
        switch (shape) {
          case Shape::InPlace:
            got = c.a;
            reduceInPlace(got.data(), c.b.data(), count, t, op);
            break;
          case Shape::Into:
            got.assign(c.a.size(), kGuard);
            reduceInto(got.data(), c.a.data(), c.b.data(), count, t, op);
            break;
          case Shape::IntoOutIsA:
            got = c.a;
            reduceInto(got.data(), got.data(), c.b.data(), count, t, op);
            break;
          case Shape::IntoOutIsB:
            got = c.b;
            reduceInto(got.data(), c.a.data(), got.data(), count, t, op);
            break;
        }
        CHECK(firstMismatch(got, c.expect, dataTypeSize(t)) == -1);
      }
}

}  // namespace

TEST_CASE("reduceInPlace matches the scalar reference for every datatype and op", "[reduce]") {
  checkAll(Shape::InPlace);
}

TEST_CASE("reduceInto into a separate buffer matches the scalar reference", "[reduce]") {
  checkAll(Shape::Into);
}

TEST_CASE("reduceInto with out == a matches the scalar reference", "[reduce]") {
  checkAll(Shape::IntoOutIsA);
}

TEST_CASE("reduceInto with out == b matches the scalar reference", "[reduce]") {
  checkAll(Shape::IntoOutIsB);
}

namespace {

// Special values per floating-point type (bit patterns): +-0, NaNs with different payloads and
// signs, +-Inf, +-1, the smallest subnormal, the largest finite value.
std::vector<uint64_t> specialBits(loomDataType_t t) {
  switch (t) {
    case loomFloat16:
      return {0x0000, 0x8000, 0x7E00, 0x7E01, 0xFE23, 0x7C01, 0x7C00, 0xFC00, 0x3C00, 0xBC00, 0x0001, 0x7BFF};
    case loomBfloat16:
      return {0x0000, 0x8000, 0x7FC0, 0x7FC1, 0xFFD3, 0x7F81, 0x7F80, 0xFF80, 0x3F80, 0xBF80, 0x0001, 0x7F7F};
    case loomFloat32:
      return {0x00000000, 0x80000000, 0x7FC00000, 0x7FC00001, 0xFFD00123, 0x7F800001, 0x7F800000, 0xFF800000,
              0x3F800000, 0xBF800000, 0x00000001, 0x7F7FFFFF};
    default:
      return {0, 0x8000000000000000, 0x7FF8000000000000, 0x7FF8000000000001, 0xFFF8000000012345,
              0x7FF0000000000001, 0x7FF0000000000000, 0xFFF0000000000000, 0x3FF0000000000000,
              0xBFF0000000000000, 1, 0x7FEFFFFFFFFFFFFF};
  }
}

}  // namespace

TEST_CASE("float ops are commutative bit for bit and aliasing does not change the bytes", "[reduce]") {
  // min/max of +0 and -0 and any op on NaNs with different payloads could depend on operand
  // order (or on how the compiler ordered them in one aliasing path but not another).
  for (auto t : {loomFloat16, loomBfloat16, loomFloat32, loomFloat64}) {
    const auto sp = specialBits(t);
    const size_t es = dataTypeSize(t), n = sp.size() * sp.size();  // every pair
    std::vector<unsigned char> a(n * es), b(n * es);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(&a[i * es], &sp[i / sp.size()], es);  // little-endian: low bytes first
      std::memcpy(&b[i * es], &sp[i % sp.size()], es);
    }
    for (auto op : kOps) {
      INFO(dataTypeName(t) << " " << redOpName(op));
      std::vector<unsigned char> want(n * es), swapped(n * es), outA = a, outB = b;
      reduceInto(want.data(), a.data(), b.data(), n, t, op);
      reduceInto(swapped.data(), b.data(), a.data(), n, t, op);
      reduceInto(outA.data(), outA.data(), b.data(), n, t, op);
      reduceInto(outB.data(), a.data(), outB.data(), n, t, op);
      CHECK(firstMismatch(swapped, want, es) == -1);
      CHECK(firstMismatch(outA, want, es) == -1);
      CHECK(firstMismatch(outB, want, es) == -1);
    }
  }
}

TEST_CASE("min of +0 and -0 is -0, max is +0", "[reduce]") {
  std::vector<float> a = {0.f, -0.f, -0.f, 0.f}, b = {-0.f, 0.f, -0.f, 0.f}, mn = a, mx = a;
  reduceInPlace(mn.data(), b.data(), 4, loomFloat32, loomMin);
  reduceInPlace(mx.data(), b.data(), 4, loomFloat32, loomMax);
  for (size_t i = 0; i < 4; ++i) {
    INFO(i);
    CHECK(std::signbit(mn[i]) == (std::signbit(a[i]) || std::signbit(b[i])));
    CHECK(std::signbit(mx[i]) == (std::signbit(a[i]) && std::signbit(b[i])));
  }
}

TEST_CASE("reduceInto with out == a == b combines each element with itself", "[reduce]") {
  std::vector<int32_t> v = {1, -2, 3, 100};
  reduceInto(v.data(), v.data(), v.data(), v.size(), loomInt32, loomSum);
  CHECK(v == std::vector<int32_t>{2, -4, 6, 200});
  std::vector<float> f = {1.5f, -2.f, 3.f};
  reduceInto(f.data(), f.data(), f.data(), f.size(), loomFloat32, loomProd);
  CHECK(f == std::vector<float>{2.25f, 4.f, 9.f});
}

TEST_CASE("kernels are correct at unaligned start addresses", "[reduce]") {
  for (auto t : kTypes) {
    INFO("type " << dataTypeName(t));
    const size_t es = dataTypeSize(t), count = 1000;
    Case c = makeCase(t, loomSum, count + 1);
    // Drop element 0: the buffers now start one element past their allocation's alignment.
    std::vector<unsigned char> got(c.a.begin() + long(es), c.a.end());
    std::vector<unsigned char> want(c.expect.begin() + long(es), c.expect.end());
    reduceInPlace(got.data(), c.b.data() + es, count, t, loomSum);
    CHECK(firstMismatch(got, want, es) == -1);
  }
}

TEST_CASE("min and max order negative values correctly for signed types", "[reduce]") {
  int8_t a8[] = {-128, -1, 5, 127, -7}, b8[] = {127, 0, -5, -128, -8};
  int8_t mn8[5], mx8[5];
  reduceInto(mn8, a8, b8, 5, loomInt8, loomMin);
  reduceInto(mx8, a8, b8, 5, loomInt8, loomMax);
  CHECK(std::vector<int8_t>(mn8, mn8 + 5) == std::vector<int8_t>{-128, -1, -5, -128, -8});
  CHECK(std::vector<int8_t>(mx8, mx8 + 5) == std::vector<int8_t>{127, 0, 5, 127, -7});

  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> a64 = {lo, -1, 3, hi, -9}, b64 = {hi, 0, -3, lo, -10};
  std::vector<int64_t> mn64 = a64, mx64 = a64;
  reduceInPlace(mn64.data(), b64.data(), 5, loomInt64, loomMin);
  reduceInPlace(mx64.data(), b64.data(), 5, loomInt64, loomMax);
  CHECK(mn64 == std::vector<int64_t>{lo, -1, -3, lo, -10});
  CHECK(mx64 == std::vector<int64_t>{hi, 0, 3, hi, -9});

  std::vector<float> af = {-1.5f, -0.25f, 2.f}, bf = {-2.5f, 0.25f, -3.f}, mnf = af;
  reduceInPlace(mnf.data(), bf.data(), 3, loomFloat32, loomMin);
  CHECK(mnf == std::vector<float>{-2.5f, -0.25f, -3.f});
}

TEST_CASE("unsigned min and max use unsigned order", "[reduce]") {
  std::vector<uint64_t> a = {~0ull, 1, 0x8000000000000000ull}, b = {0, 2, 0x7FFFFFFFFFFFFFFFull}, mx = a;
  reduceInPlace(mx.data(), b.data(), 3, loomUint64, loomMax);
  CHECK(mx == std::vector<uint64_t>{~0ull, 2, 0x8000000000000000ull});
  std::vector<uint32_t> a32 = {0xFFFFFFFFu, 5}, b32 = {1, 0x80000000u}, mn32 = a32;
  reduceInPlace(mn32.data(), b32.data(), 2, loomUint32, loomMin);
  CHECK(mn32 == std::vector<uint32_t>{1, 5});
}

TEST_CASE("integer sums and products wrap modulo 2^bits", "[reduce]") {
  // Long enough (> any vector width) that the vector body, not just the tail, is exercised.
  const size_t n = 67;
  std::vector<int8_t> i8(n, 127), one8(n, 1);
  reduceInPlace(i8.data(), one8.data(), n, loomInt8, loomSum);
  CHECK(i8 == std::vector<int8_t>(n, -128));
  std::vector<uint8_t> u8(n, 250), ten8(n, 10);
  reduceInPlace(u8.data(), ten8.data(), n, loomUint8, loomSum);
  CHECK(u8 == std::vector<uint8_t>(n, 4));
  std::vector<int32_t> i32(n, std::numeric_limits<int32_t>::max()), one32(n, 1);
  reduceInPlace(i32.data(), one32.data(), n, loomInt32, loomSum);
  CHECK(i32 == std::vector<int32_t>(n, std::numeric_limits<int32_t>::min()));
  std::vector<uint32_t> u32(n, 0xFFFFFFFFu), two32(n, 2);
  reduceInPlace(u32.data(), two32.data(), n, loomUint32, loomSum);
  CHECK(u32 == std::vector<uint32_t>(n, 1));
  std::vector<int64_t> i64(n, std::numeric_limits<int64_t>::min()), m1(n, -1);
  reduceInPlace(i64.data(), m1.data(), n, loomInt64, loomSum);
  CHECK(i64 == std::vector<int64_t>(n, std::numeric_limits<int64_t>::max()));
  std::vector<uint64_t> u64(n, ~0ull), one64(n, 1);
  reduceInPlace(u64.data(), one64.data(), n, loomUint64, loomSum);
  CHECK(u64 == std::vector<uint64_t>(n, 0));
  // Products: 16 * 16 = 256 -> 0 in 8 bits; 2^31 * 2 -> 0 in int32; (2^32+1)^2 mod 2^64.
  std::vector<int8_t> p8(n, 16);
  reduceInPlace(p8.data(), p8.data(), n, loomInt8, loomProd);
  CHECK(p8 == std::vector<int8_t>(n, 0));
  std::vector<int32_t> p32(n, std::numeric_limits<int32_t>::min()), two(n, 2);
  reduceInPlace(p32.data(), two.data(), n, loomInt32, loomProd);
  CHECK(p32 == std::vector<int32_t>(n, 0));
  std::vector<uint64_t> p64(n, (1ull << 32) + 1), q64 = p64;
  reduceInPlace(p64.data(), q64.data(), n, loomUint64, loomProd);
  CHECK(p64 == std::vector<uint64_t>(n, (1ull << 33) + 1));
}

TEST_CASE("avg reduces as a sum and finalize truncates for integers", "[reduce]") {
  std::vector<int32_t> a = {7, -7, 10, 0, 100}, b = {0, 0, 1, 2, 3};
  reduceInPlace(a.data(), b.data(), a.size(), loomInt32, loomAvg);
  CHECK(a == std::vector<int32_t>{7, -7, 11, 2, 103});
  reduceFinalizeAvg(a.data(), a.size(), loomInt32, 2);
  CHECK(a == std::vector<int32_t>{3, -3, 5, 1, 51});  // truncation toward zero

  std::vector<int8_t> i8 = {-128, 127, -3};
  reduceFinalizeAvg(i8.data(), i8.size(), loomInt8, 200);  // divisor wider than the type
  CHECK(i8 == std::vector<int8_t>{0, 0, 0});
  reduceFinalizeAvg(i8.data(), 0, loomInt8, 3);
  std::vector<uint8_t> u8 = {255, 9, 2};
  reduceFinalizeAvg(u8.data(), u8.size(), loomUint8, 3);
  CHECK(u8 == std::vector<uint8_t>{85, 3, 0});
  std::vector<uint64_t> u64 = {~0ull, 10};
  reduceFinalizeAvg(u64.data(), u64.size(), loomUint64, 2);
  CHECK(u64 == std::vector<uint64_t>{0x7FFFFFFFFFFFFFFFull, 5});
  std::vector<int64_t> i64 = {-9, std::numeric_limits<int64_t>::min()};
  reduceFinalizeAvg(i64.data(), i64.size(), loomInt64, 4);
  CHECK(i64 == std::vector<int64_t>{-2, std::numeric_limits<int64_t>::min() / 4});
  std::vector<uint32_t> u32 = {7};
  reduceFinalizeAvg(u32.data(), 1, loomUint32, 1);  // /1 is the identity
  CHECK(u32 == std::vector<uint32_t>{7});
}

TEST_CASE("avg finalize divides floats in the accumulation type", "[reduce]") {
  std::vector<float> f = {3.f, -1.f, 10.f};
  reduceFinalizeAvg(f.data(), f.size(), loomFloat32, 4);
  CHECK(f == std::vector<float>{0.75f, -0.25f, 2.5f});
  std::vector<double> d = {1.0, 6.0};
  reduceFinalizeAvg(d.data(), d.size(), loomFloat64, 3);
  CHECK(d == std::vector<double>{1.0 / 3.0, 2.0});
  for (auto t : {loomFloat16, loomBfloat16}) {
    INFO(dataTypeName(t));
    auto enc = t == loomFloat16 ? floatToHalf : floatToBfloat16;
    // 1000 elements: the vector body plus a tail.
    std::vector<uint16_t> h(1000), want(1000);
    for (size_t i = 0; i < h.size(); ++i) {
      h[i] = enc(float(int(i % 64) - 32));
      want[i] = enc(float(int(i % 64) - 32) / 8.f);  // exact: small integers / 8
    }
    reduceFinalizeAvg(h.data(), h.size(), t, 8);
    CHECK(h == want);
    std::vector<uint16_t> third = {enc(1.f)};
    reduceFinalizeAvg(third.data(), 1, t, 3);
    CHECK(third[0] == enc(1.f / 3.f));  // rounded once from the float32 quotient
  }
}

namespace {

// The quiet NaN every NaN result is canonicalised to, as bytes.
std::vector<unsigned char> canonicalNaN(loomDataType_t t) {
  const uint64_t bits = t == loomFloat16    ? 0x7E00
                        : t == loomBfloat16 ? 0x7FC0
                        : t == loomFloat32  ? 0x7FC00000
                                            : 0x7FF8000000000000;
  std::vector<unsigned char> v(dataTypeSize(t));
  std::memcpy(v.data(), &bits, v.size());
  return v;
}

}  // namespace

TEST_CASE("float ops turn a NaN in either input into the canonical NaN; sums propagate Inf", "[reduce]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const size_t n = 37;  // vector body and tail
  for (auto t : {loomFloat16, loomBfloat16, loomFloat32, loomFloat64}) {
    INFO(dataTypeName(t));
    const size_t es = dataTypeSize(t);
    auto put = [&](std::vector<unsigned char>& v, size_t i, float f) {
      if (t == loomFloat16) { uint16_t h = floatToHalf(f); std::memcpy(&v[i * es], &h, 2); }
      else if (t == loomBfloat16) { uint16_t h = floatToBfloat16(f); std::memcpy(&v[i * es], &h, 2); }
      else if (t == loomFloat32) std::memcpy(&v[i * es], &f, 4);
      else { double d = f; std::memcpy(&v[i * es], &d, 8); }
    };
    auto get = [&](const std::vector<unsigned char>& v, size_t i) -> double {
      if (t == loomFloat16 || t == loomBfloat16) {
        uint16_t h;
        std::memcpy(&h, &v[i * es], 2);
        return t == loomFloat16 ? halfToFloat(h) : bfloat16ToFloat(h);
      }
      if (t == loomFloat32) { float f; std::memcpy(&f, &v[i * es], 4); return f; }
      double d;
      std::memcpy(&d, &v[i * es], 8);
      return d;
    };
    std::vector<unsigned char> a(n * es), b(n * es);
    for (size_t i = 0; i < n; ++i) {
      // i % 4: 0 NaN in a, 1 NaN in b, 2 Inf in a, 3 plain numbers.
      put(a, i, i % 4 == 0 ? nan : i % 4 == 2 ? inf : float(i));
      put(b, i, i % 4 == 1 ? nan : -float(i));
    }
    for (auto op : {loomMin, loomMax, loomSum, loomProd}) {
      INFO(redOpName(op));
      std::vector<unsigned char> r = a;
      reduceInPlace(r.data(), b.data(), n, t, op);
      for (size_t i = 0; i < n; ++i) {
        INFO("element " << i);
        const double got = get(r, i);
        if (i % 4 < 2) {
          CHECK(std::memcmp(&r[i * es], canonicalNaN(t).data(), es) == 0);
        } else if (i % 4 == 2) {
          CHECK(got == (op == loomMin ? -double(i) : op == loomProd ? -double(inf) : double(inf)));
        } else if (op != loomProd) {
          CHECK(got == (op == loomMin ? -double(i) : op == loomMax ? double(i) : 0.0));
        } else {
          std::vector<unsigned char> rounded(es);  // -i*i, rounded to the type (bfloat16 has 8 bits)
          put(rounded, 0, -float(i * i));
          CHECK(got == get(rounded, 0));
        }
      }
    }
  }
}

TEST_CASE("avg finalize turns NaN into the canonical NaN and keeps Inf", "[reduce]") {
  for (auto t : {loomFloat16, loomBfloat16, loomFloat32, loomFloat64}) {
    INFO(dataTypeName(t));
    const auto sp = specialBits(t);  // sp[4]: a negative NaN with a payload; sp[6]: +Inf
    const size_t es = dataTypeSize(t), n = 37;
    std::vector<unsigned char> buf(n * es);
    for (size_t i = 0; i < n; ++i) std::memcpy(&buf[i * es], &sp[i % 2 ? 4 : 6], es);
    reduceFinalizeAvg(buf.data(), n, t, 3);
    for (size_t i = 0; i < n; ++i) {
      INFO("element " << i);
      if (i % 2) CHECK(std::memcmp(&buf[i * es], canonicalNaN(t).data(), es) == 0);
      else CHECK(std::memcmp(&buf[i * es], &sp[6], es) == 0);
    }
  }
}

TEST_CASE("float16/bfloat16 ops on arbitrary bit patterns round like the scalar conversions",
          "[reduce]") {
  // Vector paths (F16C, AVX2 or the compiler's) against float32 arithmetic and the scalar
  // conversions, on pseudo-random patterns: inexact sums and products, overflow to Inf,
  // subnormals, NaNs.
  uint32_t state = 12345;
  auto next = [&] { return uint16_t((state = state * 1103515245u + 12345u) >> 16); };
  const size_t n = 100003;
  std::vector<uint16_t> a(n), b(n);
  for (size_t i = 0; i < n; ++i) a[i] = next(), b[i] = next();
  for (auto t : {loomFloat16, loomBfloat16}) {
    auto dec = t == loomFloat16 ? halfToFloat : bfloat16ToFloat;
    auto enc = t == loomFloat16 ? floatToHalf : floatToBfloat16;
    const uint16_t qnan = t == loomFloat16 ? 0x7E00 : 0x7FC0;
    for (auto op : kOps) {
      INFO(dataTypeName(t) << " " << redOpName(op));
      std::vector<uint16_t> got = a;
      reduceInPlace(got.data(), b.data(), n, t, op);
      size_t bad = 0, firstBad = 0;
      for (size_t i = 0; i < n; ++i) {
        const float x = dec(a[i]), y = dec(b[i]);
        const float r = op == loomProd  ? x * y
                        : op == loomMin ? std::fmin(x, y)
                        : op == loomMax ? std::fmax(x, y)
                                        : x + y;
        uint16_t want = (std::isnan(x) || std::isnan(y) || std::isnan(r)) ? qnan : enc(r);
        if ((op == loomMin || op == loomMax) && x == 0 && y == 0)  // -0 below +0
          want = op == loomMin ? uint16_t(a[i] | b[i]) : uint16_t(a[i] & b[i]);
        if (got[i] != want && bad++ == 0) firstBad = i;
      }
      INFO("first mismatch at " << firstBad << ": a " << a[firstBad] << " b " << b[firstBad] << " got "
                                << got[firstBad]);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("float16 round-trips all 65536 bit patterns; NaN stays NaN", "[half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = halfToFloat(uint16_t(h));
    const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0;
    if (nan) {
      if (!std::isnan(f) || (floatToHalf(f) & 0x7FFF) <= 0x7C00) FAIL_CHECK("NaN lost at " << h);
    } else if (floatToHalf(f) != h) {
      FAIL_CHECK("round trip of " << h << " gave " << floatToHalf(f));
    }
  }
}

TEST_CASE("bfloat16 round-trips all 65536 bit patterns; NaN stays NaN", "[half]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bfloat16ToFloat(uint16_t(h));
    REQUIRE(bitsOf(f) == h << 16);
    const bool nan = (h & 0x7F80) == 0x7F80 && (h & 0x007F) != 0;
    if (nan) {
      if (!std::isnan(f) || (floatToBfloat16(f) & 0x7FFF) <= 0x7F80) FAIL_CHECK("NaN lost at " << h);
    } else if (floatToBfloat16(f) != h) {
      FAIL_CHECK("round trip of " << h << " gave " << floatToBfloat16(f));
    }
  }
}

TEST_CASE("float16 conversion of known values", "[half]") {
  CHECK(floatToHalf(1.f) == 0x3C00);
  CHECK(floatToHalf(-2.f) == 0xC000);
  CHECK(floatToHalf(65504.f) == 0x7BFF);  // largest finite
  CHECK(floatToHalf(0.f) == 0x0000);
  CHECK(floatToHalf(-0.f) == 0x8000);
  CHECK(floatToHalf(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(floatToHalf(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(floatToHalf(1e10f) == 0x7C00);  // overflow saturates to Inf
  CHECK(halfToFloat(0x3555) == 0x1.554p-2f);
  CHECK(halfToFloat(0xFBFF) == -65504.f);
}

TEST_CASE("float16 rounds to nearest, ties to even", "[half]") {
  // 1 + 2^-11 is halfway between 1 (even mantissa) and 1 + 2^-10 (odd): goes down.
  CHECK(floatToHalf(1.f + 0x1p-11f) == 0x3C00);
  // 1 + 3*2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even): goes up.
  CHECK(floatToHalf(1.f + 3 * 0x1p-11f) == 0x3C02);
  CHECK(floatToHalf(std::nextafter(1.f + 0x1p-11f, 2.f)) == 0x3C01);  // just above half: up
  CHECK(floatToHalf(-(1.f + 3 * 0x1p-11f)) == 0xBC02);
  CHECK(floatToHalf(65519.f) == 0x7BFF);  // below the midpoint to 65536
  CHECK(floatToHalf(65520.f) == 0x7C00);  // the midpoint rounds to even, i.e. up to Inf
  // Every midpoint between consecutive positive finite halves, and its float neighbours.
  for (uint16_t h = 0; h < 0x7BFF; ++h) {
    const float lo = halfToFloat(h), hi = halfToFloat(uint16_t(h + 1));
    const float mid = lo + (hi - lo) / 2;  // exact: needs at most 12 significant bits
    const uint16_t even = (h & 1) ? uint16_t(h + 1) : h;
    if (floatToHalf(mid) != even || floatToHalf(std::nextafter(mid, 0.f)) != h ||
        floatToHalf(std::nextafter(mid, 1e9f)) != h + 1 || floatToHalf(-mid) != (even | 0x8000))
      FAIL_CHECK("rounding between " << h << " and " << h + 1);
  }
}

TEST_CASE("float16 subnormals convert exactly and round to nearest even", "[half]") {
  CHECK(halfToFloat(0x0001) == 0x1p-24f);  // smallest subnormal
  CHECK(halfToFloat(0x03FF) == 1023 * 0x1p-24f);  // largest subnormal
  CHECK(halfToFloat(0x0400) == 0x1p-14f);  // smallest normal
  CHECK(halfToFloat(0x8001) == -0x1p-24f);
  CHECK(floatToHalf(0x1p-24f) == 0x0001);
  CHECK(floatToHalf(1023 * 0x1p-24f) == 0x03FF);
  CHECK(floatToHalf(0x1p-25f) == 0x0000);  // tie between 0 and 1: even
  CHECK(floatToHalf(std::nextafter(0x1p-25f, 1.f)) == 0x0001);
  CHECK(floatToHalf(3 * 0x1p-25f) == 0x0002);  // tie between 1 and 2: even
  CHECK(floatToHalf(-3 * 0x1p-25f) == 0x8002);
  CHECK(floatToHalf(1e-30f) == 0x0000);  // underflow to zero keeps the sign
  CHECK(floatToHalf(-1e-30f) == 0x8000);
  CHECK(floatToHalf(0x1p-14f - 0x1p-26f) == 0x0400);  // rounds up into the normal range
  CHECK(floatToHalf(floatOf(0x00000001)) == 0x0000);   // float32 subnormal input
}

TEST_CASE("bfloat16 rounds to nearest even, including subnormals and overflow", "[half]") {
  CHECK(floatToBfloat16(1.f) == 0x3F80);
  CHECK(bfloat16ToFloat(0x3F80) == 1.f);
  CHECK(floatToBfloat16(floatOf(0x3F808000)) == 0x3F80);  // tie, even stays
  CHECK(floatToBfloat16(floatOf(0x3F818000)) == 0x3F82);  // tie, odd rounds up
  CHECK(floatToBfloat16(floatOf(0x3F808001)) == 0x3F81);  // above the tie
  CHECK(floatToBfloat16(floatOf(0x3F807FFF)) == 0x3F80);  // below the tie
  CHECK(floatToBfloat16(floatOf(0x00008000)) == 0x0000);  // subnormal tie to even (0)
  CHECK(floatToBfloat16(floatOf(0x00018000)) == 0x0002);  // subnormal tie to even (2)
  CHECK(floatToBfloat16(floatOf(0x80018000)) == 0x8002);
  CHECK(bfloat16ToFloat(0x0001) == floatOf(0x00010000));  // subnormal widens exactly
  CHECK(floatToBfloat16(floatOf(0x7F7FFFFF)) == 0x7F80);  // FLT_MAX rounds to Inf
  CHECK(floatToBfloat16(floatOf(0x7F7F7FFF)) == 0x7F7F);
  CHECK(floatToBfloat16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(floatToBfloat16(-std::numeric_limits<float>::infinity()) == 0xFF80);
  CHECK((floatToBfloat16(floatOf(0x7F800001)) & 0x7FFF) > 0x7F80);  // NaN with a low payload
  CHECK((floatToBfloat16(floatOf(0xFFC00000)) & 0xFFC0) == 0xFFC0);
  for (uint16_t h = 0; h < 0x7F7F; ++h) {  // every midpoint between positive finite values
    const float mid = floatOf((uint32_t(h) << 16) + 0x8000);
    const uint16_t even = (h & 1) ? uint16_t(h + 1) : h;
    if (floatToBfloat16(mid) != even || floatToBfloat16(std::nextafter(mid, 0.f)) != h ||
        floatToBfloat16(std::nextafter(mid, std::numeric_limits<float>::infinity())) != h + 1)
      FAIL_CHECK("rounding between " << h << " and " << h + 1);
  }
}

TEST_CASE("datatype and op metadata, including invalid values", "[reduce]") {
  CHECK(dataTypeSize(loomInt8) == 1);
  CHECK(dataTypeSize(loomUint8) == 1);
  CHECK(dataTypeSize(loomFloat16) == 2);
  CHECK(dataTypeSize(loomBfloat16) == 2);
  CHECK(dataTypeSize(loomInt32) == 4);
  CHECK(dataTypeSize(loomUint32) == 4);
  CHECK(dataTypeSize(loomFloat32) == 4);
  CHECK(dataTypeSize(loomInt64) == 8);
  CHECK(dataTypeSize(loomUint64) == 8);
  CHECK(dataTypeSize(loomFloat64) == 8);
  CHECK(dataTypeSize(loomNumTypes) == 0);
  CHECK(dataTypeSize(static_cast<loomDataType_t>(-1)) == 0);

  const char* names[] = {"int8",    "uint8",    "int32",   "uint32", "int64",
                         "uint64",  "float16", "bfloat16", "float32", "float64"};
  for (int t = 0; t < loomNumTypes; ++t) CHECK(std::string(dataTypeName(loomDataType_t(t))) == names[t]);
  CHECK(std::string(dataTypeName(loomNumTypes)) == "unknown");
  CHECK(std::string(dataTypeName(static_cast<loomDataType_t>(-3))) == "unknown");
  CHECK(std::string(dataTypeName(loomFloat)) == "float32");  // NCCL-style alias

  const char* ops[] = {"sum", "prod", "min", "max", "avg"};
  for (int o = 0; o < loomNumOps; ++o) CHECK(std::string(redOpName(loomRedOp_t(o))) == ops[o]);
  CHECK(std::string(redOpName(loomNumOps)) == "unknown");
  CHECK(std::string(redOpName(static_cast<loomRedOp_t>(-1))) == "unknown");

  for (int t = 0; t < loomNumTypes; ++t) CHECK(validDataType(t));
  CHECK_FALSE(validDataType(-1));
  CHECK_FALSE(validDataType(loomNumTypes));
  CHECK_FALSE(validDataType(1000));
  for (int o = 0; o < loomNumOps; ++o) CHECK(validRedOp(o));
  CHECK_FALSE(validRedOp(-1));
  CHECK_FALSE(validRedOp(loomNumOps));
  CHECK_FALSE(validRedOp(1 << 30));
}

TEST_CASE("an invalid datatype or op leaves the output untouched", "[reduce]") {
  std::vector<int32_t> a = {1, 2}, b = {3, 4};
  reduceInPlace(a.data(), b.data(), 2, static_cast<loomDataType_t>(99), loomSum);
  reduceInPlace(a.data(), b.data(), 2, loomInt32, static_cast<loomRedOp_t>(99));
  reduceFinalizeAvg(a.data(), 2, static_cast<loomDataType_t>(99), 2);
  CHECK(a == std::vector<int32_t>{1, 2});
}
