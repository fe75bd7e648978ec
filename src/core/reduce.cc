// Reduction kernels (see reduce.h). Built with -O3 and the target's SIMD flags (CMakeLists.txt):
// every kernel is a tight element-wise loop over __restrict pointers that GCC auto-vectorises.
//
// Layout: element types (storage + load/store conversions) x op functors (Sum/Prod/Min/Max) ->
// loop templates per aliasing shape -> a switch over (dtype, op) that picks the instantiation.
// float16/bfloat16 sum/prod widen to float32, combine, and narrow back with round-to-nearest-even
// in the same pass (branch-free conversions, so those loops vectorise too); with F16C (float16)
// and AVX2 (bfloat16) hand-written 8/16-lane loops do the conversions instead. Their min/max
// compare the 16-bit patterns directly. Every path gives the same bytes (tests check them all).
// Check vectorisation with: g++ -std=c++20 -O3 -march=x86-64-v3 -Iinclude -Isrc -fopt-info-vec.
//
// Semantics, identical on every rank (determinism):
//  - integers: sum/prod wrap modulo 2^bits (computed in unsigned arithmetic, no UB);
//  - floats: IEEE sum/prod in the element type (float32 for float16/bfloat16); a NaN in either
//    input gives NaN (always the canonical quiet NaN); every op is commutative bit for bit;
//  - loomAvg reduces as sum; reduceFinalizeAvg divides.
//  - out may alias a and/or b exactly (same pointer); partial overlap is not supported.
//  - an invalid dtype or op is a no-op (callers validate with validDataType/validRedOp).
#include "core/reduce.h"

#include <bit>
#include <cmath>
#include <iterator>
#include <limits>
#include <type_traits>

#ifdef __AVX__
#include <immintrin.h>
#endif

namespace loom {
namespace {

// ---- half / bfloat16 conversions (portable, branch-free so they vectorise) ------------------
// Portable forms are always compiled (tests/tools can cross-check them against F16C).

inline uint32_t bitsOf(float f) { return std::bit_cast<uint32_t>(f); }
inline float floatOf(uint32_t u) { return std::bit_cast<float>(u); }

inline float halfToFloatPortable(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t twoW = w + w;  // exponent+mantissa at the top, sign dropped
  // Normal/Inf/NaN: move exponent+mantissa into float position, rebias by 2^-112 (exact; a
  // signalling NaN comes out quiet, as with F16C).
  const float normalized = floatOf((twoW >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  // Subnormal: 0.5 + m*2^-24 is exact in float32; subtract 0.5 -> m*2^-24.
  const float denormalized = floatOf((twoW >> 17) | (126u << 23)) - 0.5f;
  // Select with a mask, not ?:, so GCC if-converts (and vectorises) despite -ftrapping-math.
  const uint32_t isSub = 0u - uint32_t(twoW < (1u << 27));
  return floatOf(sign | (bitsOf(denormalized) & isSub) | (bitsOf(normalized) & ~isSub));
}

inline uint16_t floatToHalfPortable(float f) {
  // The float unit does the rounding: scaling pushes the value's 11 significant bits (fewer for
  // half subnormals) to the bottom of a float32 whose exponent is fixed by `bias`, so the add
  // rounds to nearest even in the current (default) rounding mode. Overflow saturates to Inf.
  float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = bitsOf(f);
  const uint32_t shl1W = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1W & 0xFF000000u;
  bias = bias < 0x71000000u ? 0x71000000u : bias;
  base = floatOf((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = bitsOf(base);
  const uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
  // NaN: quiet it and keep the top mantissa bits (what F16C does).
  const uint32_t nan = 0x7E00u | ((w >> 13) & 0x03FFu);
  const uint32_t isNan = 0u - uint32_t(shl1W > 0xFF000000u);
  return uint16_t((sign >> 16) | (nan & isNan) | (nonsign & ~isNan));
}

// float16 <-> float32 through F16C, 8 lanes at a time: fn is applied to __m256 lanes (GCC vector
// extensions give the op functors below their element-wise meaning) and to float for the tail.
// Each chunk is read completely before it is written, so o may alias a and/or b exactly.
#ifdef __F16C__
constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
template <typename Fn>
void f16cMap(uint16_t* o, const uint16_t* a, const uint16_t* b, size_t n, Fn fn) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 y = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + i), _mm256_cvtps_ph(fn(x, y), kRne));
  }
  for (; i < n; ++i) o[i] = _cvtss_sh(fn(_cvtsh_ss(a[i]), _cvtsh_ss(b[i])), kRne);
}
#endif

// ---- element types: storage, the type ops compute in, and the conversions ------------------

template <typename T>
struct Native {
  using Storage = T;
  static T load(T x) { return x; }
  static T store(T x) { return x; }
};

struct Bf16 {
  using Storage = uint16_t;
  static float load(uint16_t b) { return floatOf(uint32_t(b) << 16); }
  static uint16_t store(float f) {
    uint32_t w = bitsOf(f);
    // NaN: set the quiet bit and clear the low half, so the rounding below cannot carry into
    // the exponent (the payload's top bits survive). Everything stays in 32-bit lanes.
    const uint32_t isNan = 0u - uint32_t(int32_t(w & 0x7FFFFFFFu) > 0x7F800000);
    w = (w & ~isNan) | ((w | 0x00400000u) & 0xFFFF0000u & isNan);
    return uint16_t((w + 0x7FFFu + ((w >> 16) & 1u)) >> 16);  // RNE; overflow -> Inf
  }
};

struct F16 {  // portable form; kernel() and divideFloat() use f16cMap instead where F16C exists
  using Storage = uint16_t;
  static float load(uint16_t h) { return halfToFloatPortable(h); }
  static uint16_t store(float f) { return floatToHalfPortable(f); }
};

#ifdef __AVX2__
// bfloat16 with AVX2, 16 lanes at a time. GCC's own vectorisation of Bf16 widens and narrows with
// lane-crossing shuffles; interleaving with zeros (in-lane) and packing back (in-lane) are exact
// inverses, so none are needed. fn must return only the canonical NaN (every op functor and the
// avg divide do): 0x7FC00000 rounds to 0x7FC0 without a carry, so unlike Bf16::store the
// narrowing needs no NaN case; otherwise the same rounding.
inline __m256i bf16Narrow(__m256 f) {
  const __m256i w = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(w, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(w, _mm256_set1_epi32(0x7FFF)), lsb), 16);
}
template <typename Fn>
void bf16Map(uint16_t* o, const uint16_t* a, const uint16_t* b, size_t n, Fn fn) {
  const __m256i zero = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i));
    const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i));
    const __m256 lo = fn(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, va)),
                         _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, vb)));
    const __m256 hi = fn(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, va)),
                         _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, vb)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + i), _mm256_packus_epi32(bf16Narrow(lo), bf16Narrow(hi)));
  }
  for (; i < n; ++i) o[i] = Bf16::store(fn(Bf16::load(a[i]), Bf16::load(b[i])));
}
#endif

// Element types with a hand-vectorised path (o may alias a and/or b exactly: each chunk is read
// completely before it is written).
template <typename E>
constexpr bool kHasMap = false;
#ifdef __F16C__
template <>
constexpr bool kHasMap<F16> = true;
#endif
#ifdef __AVX2__
template <>
constexpr bool kHasMap<Bf16> = true;
#endif

template <typename E, typename Fn>
void simdMap(uint16_t* o, const uint16_t* a, const uint16_t* b, size_t n, Fn fn) {
#ifdef __F16C__
  if constexpr (std::is_same_v<E, F16>) f16cMap(o, a, b, n, fn);
#endif
#ifdef __AVX2__
  if constexpr (std::is_same_v<E, Bf16>) bf16Map(o, a, b, n, fn);
#endif
}

// ---- ops -------------------------------------------------------------------------------------
// Integers wrap. Floating-point ops are commutative bit for bit, so a result never depends on
// operand order or on which aliasing path ran (the compiler may swap the operands of a + b,
// which changes which NaN payload x86 propagates): any NaN result becomes the canonical quiet
// NaN, and min/max order -0 below +0. Sum/Prod also take __m256 (GCC vector extensions).

template <typename T>
using Wide = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

template <typename T>
T qnanLike(T) { return std::numeric_limits<T>::quiet_NaN(); }
inline float orBits(float a, float b) { return floatOf(bitsOf(a) | bitsOf(b)); }
inline float andBits(float a, float b) { return floatOf(bitsOf(a) & bitsOf(b)); }
inline double orBits(double a, double b) {
  return std::bit_cast<double>(std::bit_cast<uint64_t>(a) | std::bit_cast<uint64_t>(b));
}
inline double andBits(double a, double b) {
  return std::bit_cast<double>(std::bit_cast<uint64_t>(a) & std::bit_cast<uint64_t>(b));
}
#ifdef __AVX__
inline __m256 qnanLike(__m256) { return _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()); }
#endif

template <typename T>
T canonical(T r) {  // any NaN -> the canonical quiet NaN
  return r == r ? r : qnanLike(r);
}

struct Sum {
  template <typename T>
  static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return T(Wide<T>(a) + Wide<T>(b));
    else return canonical(a + b);
  }
};
struct Prod {
  template <typename T>
  static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return T(Wide<T>(a) * Wide<T>(b));
    else return canonical(a * b);
  }
};
// Equal operands have equal bits except +0/-0: OR of the bits gives -0 (min), AND gives +0 (max).
struct Min {
  template <typename T>
  static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return b < a ? b : a;
    else return (a != a || b != b) ? qnanLike(a) : a < b ? a : b < a ? b : orBits(a, b);
  }
};
struct Max {
  template <typename T>
  static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return a < b ? b : a;
    else return (a != a || b != b) ? qnanLike(a) : a > b ? a : b > a ? b : andBits(a, b);
  }
};
// float16/bfloat16 min/max on the 16-bit patterns, without widening (same results as Min/Max
// in float32: the result is an input, -0 < +0, NaN -> canonical). Flipping the magnitude bits of
// negative values makes the patterns order like signed integers, with -0 just below +0.
template <uint16_t kInf, uint16_t kQNaN, bool kMax>
struct HalfMinMax {
  static int16_t key(uint16_t h) { return int16_t(h ^ ((h & 0x8000u) ? 0x7FFFu : 0u)); }
  template <typename T>
  static T f(T a, T b) {
    static_assert(std::is_same_v<T, uint16_t>);
    const bool takeA = kMax ? key(a) > key(b) : key(a) < key(b);  // equal keys: equal bits
    const bool nan = (a & 0x7FFFu) > kInf || (b & 0x7FFFu) > kInf;
    return nan ? kQNaN : takeA ? a : b;
  }
};

// ---- loops, one per aliasing shape -----------------------------------------------------------
// Each element is widened (E::load), combined, and narrowed (E::store) in one pass; for native
// types load/store are the identity.

template <typename E, typename Op, typename S = typename E::Storage>
void loopOut(S* __restrict out, const S* __restrict a, const S* __restrict b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = E::store(Op::f(E::load(a[i]), E::load(b[i])));
}
template <typename E, typename Op, typename S = typename E::Storage>
void loopInA(S* __restrict io, const S* __restrict b, size_t n) {  // io = io OP b
  for (size_t i = 0; i < n; ++i) io[i] = E::store(Op::f(E::load(io[i]), E::load(b[i])));
}
template <typename E, typename Op, typename S = typename E::Storage>
void loopInB(S* __restrict io, const S* __restrict a, size_t n) {  // io = a OP io
  for (size_t i = 0; i < n; ++i) io[i] = E::store(Op::f(E::load(a[i]), E::load(io[i])));
}
template <typename E, typename Op, typename S = typename E::Storage>
void loopSelf(S* io, size_t n) {  // io = io OP io
  for (size_t i = 0; i < n; ++i) io[i] = E::store(Op::f(E::load(io[i]), E::load(io[i])));
}

// out = a OP b with out possibly equal to a and/or b.
template <typename E, typename Op>
void kernel(void* out, const void* a, const void* b, size_t n) {
  using S = typename E::Storage;
  S* o = static_cast<S*>(out);
  const S* pa = static_cast<const S*>(a);
  const S* pb = static_cast<const S*>(b);
  if constexpr (kHasMap<E>) simdMap<E>(o, pa, pb, n, [](auto x, auto y) { return Op::f(x, y); });
  else if (o == pa && o == pb) loopSelf<E, Op>(o, n);
  else if (o == pa) loopInA<E, Op>(o, pb, n);
  else if (o == pb) loopInB<E, Op>(o, pa, n);
  else loopOut<E, Op>(o, pa, pb, n);
}

using Kernel = void (*)(void*, const void*, const void*, size_t);

template <typename E, bool kMax>
Kernel minMaxKernel() {
  using Bits = Native<uint16_t>;
  if constexpr (std::is_same_v<E, Bf16>) return &kernel<Bits, HalfMinMax<0x7F80, 0x7FC0, kMax>>;
  else if constexpr (std::is_same_v<E, F16>) return &kernel<Bits, HalfMinMax<0x7C00, 0x7E00, kMax>>;
  else return &kernel<E, std::conditional_t<kMax, Max, Min>>;
}

template <typename E>
Kernel pickOp(loomRedOp_t op) {
  switch (op) {
    case loomSum:
    case loomAvg: return &kernel<E, Sum>;
    case loomProd: return &kernel<E, Prod>;
    case loomMin: return minMaxKernel<E, false>();
    case loomMax: return minMaxKernel<E, true>();
    default: return nullptr;
  }
}

Kernel pick(loomDataType_t dtype, loomRedOp_t op) {
  switch (dtype) {
    case loomInt8: return pickOp<Native<int8_t>>(op);
    case loomUint8: return pickOp<Native<uint8_t>>(op);
    case loomInt32: return pickOp<Native<int32_t>>(op);
    case loomUint32: return pickOp<Native<uint32_t>>(op);
    case loomInt64: return pickOp<Native<int64_t>>(op);
    case loomUint64: return pickOp<Native<uint64_t>>(op);
    case loomFloat16: return pickOp<F16>(op);
    case loomBfloat16: return pickOp<Bf16>(op);
    case loomFloat32: return pickOp<Native<float>>(op);
    case loomFloat64: return pickOp<Native<double>>(op);
    default: return nullptr;
  }
}

// ---- average finalisation --------------------------------------------------------------------

template <typename T>
void divideInt(void* buf, size_t n, int c) {
  using W = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
  T* __restrict p = static_cast<T*>(buf);
  const W d = W(c);
  for (size_t i = 0; i < n; ++i) p[i] = T(W(p[i]) / d);  // truncating
}

// x / n in the compute type (float32 for float16/bfloat16), then rounded to the element type.
template <typename E>
void divideFloat(void* buf, size_t n, int c) {
  using S = typename E::Storage;
  S* p = static_cast<S*>(buf);
  using C = decltype(E::load(S{}));
  const C d = C(c);
  if constexpr (kHasMap<E>) {
    simdMap<E>(p, p, p, n, [d](auto x, auto) { return canonical(x / d); });
  } else {
    S* __restrict q = p;
    for (size_t i = 0; i < n; ++i) q[i] = E::store(canonical(E::load(q[i]) / d));
  }
}

}  // namespace

// ---- public ----------------------------------------------------------------------------------

// Indexed by loomDataType_t / loomRedOp_t.
constexpr size_t kTypeSizes[] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
constexpr const char* kTypeNames[] = {"int8",   "uint8",   "int32",    "uint32",  "int64",
                                      "uint64", "float16", "bfloat16", "float32", "float64"};
constexpr const char* kOpNames[] = {"sum", "prod", "min", "max", "avg"};
static_assert(std::size(kTypeSizes) == loomNumTypes && std::size(kTypeNames) == loomNumTypes);
static_assert(std::size(kOpNames) == loomNumOps);

size_t dataTypeSize(loomDataType_t dtype) { return validDataType(dtype) ? kTypeSizes[dtype] : 0; }
const char* dataTypeName(loomDataType_t dtype) { return validDataType(dtype) ? kTypeNames[dtype] : "unknown"; }
const char* redOpName(loomRedOp_t op) { return validRedOp(op) ? kOpNames[op] : "unknown"; }
bool validDataType(int dtype) { return dtype >= 0 && dtype < loomNumTypes; }
bool validRedOp(int op) { return op >= 0 && op < loomNumOps; }

void reduceInPlace(void* inout, const void* in, size_t count, loomDataType_t dtype, loomRedOp_t op) {
  if (count == 0) return;
  if (Kernel k = pick(dtype, op)) k(inout, inout, in, count);
}

void reduceInto(void* out, const void* a, const void* b, size_t count, loomDataType_t dtype, loomRedOp_t op) {
  if (count == 0) return;
  if (Kernel k = pick(dtype, op)) k(out, a, b, count);
}

void reduceFinalizeAvg(void* buf, size_t count, loomDataType_t dtype, int contributors) {
  if (count == 0 || contributors <= 1) return;  // /1 is the identity; <= 0 is meaningless
  switch (dtype) {
    case loomInt8: return divideInt<int8_t>(buf, count, contributors);
    case loomUint8: return divideInt<uint8_t>(buf, count, contributors);
    case loomInt32: return divideInt<int32_t>(buf, count, contributors);
    case loomUint32: return divideInt<uint32_t>(buf, count, contributors);
    case loomInt64: return divideInt<int64_t>(buf, count, contributors);
    case loomUint64: return divideInt<uint64_t>(buf, count, contributors);
    case loomFloat16: return divideFloat<F16>(buf, count, contributors);
    case loomBfloat16: return divideFloat<Bf16>(buf, count, contributors);
    case loomFloat32: return divideFloat<Native<float>>(buf, count, contributors);
    case loomFloat64: return divideFloat<Native<double>>(buf, count, contributors);
    default: return;
  }
}

float halfToFloat(uint16_t h) {
#ifdef __F16C__
  return _cvtsh_ss(h);
#else
  return halfToFloatPortable(h);
#endif
}

uint16_t floatToHalf(float f) {
#ifdef __F16C__
  return _cvtss_sh(f, kRne);
#else
  return floatToHalfPortable(f);
#endif
}

float bfloat16ToFloat(uint16_t b) { return Bf16::load(b); }
uint16_t floatToBfloat16(float f) { return Bf16::store(f); }

}  // namespace loom
