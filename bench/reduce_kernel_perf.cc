// reduce_kernel_perf: throughput of the reduction kernels (reduceInPlace) for every datatype x op,
// next to the machine's memory bandwidth measured in the same run with the same traffic shape.
//
//   reduce_kernel_perf [-s BYTES] [-n ITERS] [-w WARMUP]
//     -s BYTES   size of each of the two buffers (default 64M); suffixes K, M, G are binary (2^10...)
//     -n ITERS   timed iterations per measurement (default 10)
//     -w WARMUP  untimed iterations before them (default 2)
//
// Output: '#' lines are comments; every other line is `type op bytes time_us GBps pct_of_membw`.
// time_us is the best (minimum) of the timed iterations, as STREAM reports. GB/s counts bytes read
// plus bytes written (in-place reduce reads both buffers and writes one: 3 x bytes), 1 GB = 1e9 B.
#include "core/reduce.h"

#include <loom/loom.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void usage(std::FILE* to, const char* argv0) {
  fmt::print(to,
             "usage: {} [-s BYTES] [-n ITERS] [-w WARMUP]\n"
             "  -s BYTES   size of each buffer (default 64M; K/M/G suffixes are powers of 1024)\n"
             "  -n ITERS   timed iterations (default 10)\n"
             "  -w WARMUP  warm-up iterations (default 2)\n",
             argv0);
}

bool parseSize(const char* s, size_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || s[0] == '-') return false;
  unsigned shift = 0;
  switch (*end) {
    case 'k': case 'K': shift = 10; ++end; break;
    case 'm': case 'M': shift = 20; ++end; break;
    case 'g': case 'G': shift = 30; ++end; break;
    default: break;
  }
  if (shift != 0 && (*end == 'i' || *end == 'I')) ++end;  // KiB, MiB, GiB
  if (*end == 'b' || *end == 'B') ++end;
  if (*end != '\0' || v > (std::numeric_limits<unsigned long long>::max() >> shift)) return false;
  *out = size_t(v << shift);
  return true;
}

bool parseInt(const char* s, int lo, int* out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > 1000000) return false;
  *out = int(v);
  return true;
}

// The memory-bandwidth reference: the same traffic as reduceInPlace (read x and y, write x back
// to the lines just read), over 64-bit words with a trivial integer add.
__attribute__((noinline)) void streamAdd(uint64_t* __restrict x, const uint64_t* __restrict y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

// Runs fn warmup + iters times; returns the best timed iteration in seconds.
template <typename Fn>
double bestOf(int warmup, int iters, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Fills count elements with the value 1 in the type's encoding (sum grows slowly, prod stays 1:
// no Inf, NaN or subnormals to slow the float paths down).
void fillOnes(void* buf, size_t count, loomDataType_t t) {
  switch (loom::dataTypeSize(t)) {
    case 1: std::memset(buf, 1, count); break;
    case 2: {
      const uint16_t one = t == loomFloat16 ? loom::floatToHalf(1.f) : loom::floatToBfloat16(1.f);
      std::fill_n(static_cast<uint16_t*>(buf), count, one);
      break;
    }
    case 4:
      if (t == loomFloat32) std::fill_n(static_cast<float*>(buf), count, 1.f);
      else std::fill_n(static_cast<uint32_t*>(buf), count, 1u);
      break;
    case 8:
      if (t == loomFloat64) std::fill_n(static_cast<double*>(buf), count, 1.0);
      else std::fill_n(static_cast<uint64_t*>(buf), count, uint64_t{1});
      break;
    default: break;
  }
}

}  // namespace

int main(int argc, char** argv) {
  size_t bytes = size_t{64} << 20;
  int iters = 10, warmup = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool hasValue = i + 1 < argc;
    if (a == "-h" || a == "--help") {
      usage(stdout, argv[0]);
      return 0;
    } else if (a == "-s" && hasValue && parseSize(argv[i + 1], &bytes) && bytes >= 8) {
      ++i;
    } else if (a == "-n" && hasValue && parseInt(argv[i + 1], 1, &iters)) {
      ++i;
    } else if (a == "-w" && hasValue && parseInt(argv[i + 1], 0, &warmup)) {
      ++i;
    } else {
      fmt::print(stderr, "{}: bad argument '{}'\n", argv[0], a);
      usage(stderr, argv[0]);
      return 2;
    }
  }

  const size_t alloc = (bytes + 63) / 64 * 64;
  auto* x = static_cast<unsigned char*>(std::aligned_alloc(64, alloc));
  auto* y = static_cast<unsigned char*>(std::aligned_alloc(64, alloc));
  if (x == nullptr || y == nullptr) {
    fmt::print(stderr, "{}: cannot allocate 2 x {} bytes\n", argv[0], alloc);
    return 1;
  }
  std::memset(x, 1, alloc);  // fault every page in before timing
  std::memset(y, 2, alloc);

  // Memory bandwidth: same run, same buffers, same traffic as the in-place kernels. Measured first,
  // again before each datatype's kernels and once at the end (the machine may be shared and its
  // bandwidth drift); membw is the best of these, the ceiling the kernels are compared with.
  const size_t words = bytes / 8;
  auto measureStream = [&] {
    const double sec = bestOf(warmup, iters, [&] {
      streamAdd(reinterpret_cast<uint64_t*>(x), reinterpret_cast<const uint64_t*>(y), words);
    });
    return 3.0 * double(words * 8) / sec / 1e9;
  };
  double memBw = measureStream(), memBwLow = memBw;
  auto remeasure = [&] {
    const double bw = measureStream();
    memBw = std::max(memBw, bw);
    memBwLow = std::min(memBwLow, bw);
  };
  const double tCopy = bestOf(warmup, iters, [&] { std::memcpy(x, y, bytes); });
  const double copyBw = 2.0 * double(bytes) / tCopy / 1e9;

  struct Row {
    loomDataType_t t;
    loomRedOp_t op;
    size_t bytes;
    double sec;
  };
  std::vector<Row> rows;
  for (int ti = 0; ti < loomNumTypes; ++ti) {
    const auto t = static_cast<loomDataType_t>(ti);
    const size_t count = bytes / loom::dataTypeSize(t);
    remeasure();
    for (int oi = 0; oi < loomNumOps; ++oi) {
      const auto op = static_cast<loomRedOp_t>(oi);
      fillOnes(x, count, t);
      fillOnes(y, count, t);
      const double sec = bestOf(warmup, iters, [&] { loom::reduceInPlace(x, y, count, t, op); });
      rows.push_back({t, op, count * loom::dataTypeSize(t), sec});
    }
  }
  remeasure();

  fmt::print("# reduce_kernel_perf: loom::reduceInPlace(inout, in, count, type, op), 2 buffers of {} bytes\n",
             bytes);
  fmt::print("# iterations: {} timed after {} warm-up; time_us = best (minimum) timed iteration\n", iters,
             warmup);
  fmt::print("# GBps = (2 buffers read + 1 written) = 3 x bytes / time; 1 GB = 1e9 bytes\n");
  fmt::print("# membw = STREAM-style in-place add x[i] += y[i] over uint64 words of the same two buffers:\n");
  fmt::print("#   reads x and y, writes x = 3 x {} bytes per pass (the traffic of reduceInPlace) / best time;\n",
             words * 8);
  fmt::print("#   measured {} times (first, before each datatype, last); membw = the best of them\n",
             loomNumTypes + 2);
  fmt::print("# membw: {:.2f} GB/s (lowest measurement {:.2f} GB/s)\n", memBw, memBwLow);
  fmt::print("# memcpy for reference (1 read + 1 write = 2 x bytes per pass): {:.2f} GB/s\n", copyBw);
  fmt::print("# pct_of_membw = 100 x GBps / membw (buffers that fit in cache measure cache, not memory)\n");
  fmt::print("# type op bytes time_us GBps pct_of_membw\n");
  double f32SumPct = 0;
  for (const Row& r : rows) {
    const double gbps = 3.0 * double(r.bytes) / r.sec / 1e9;
    const double pct = 100.0 * gbps / memBw;
    if (r.t == loomFloat32 && r.op == loomSum) f32SumPct = pct;
    fmt::print("{} {} {} {:.3f} {:.2f} {:.1f}\n", loom::dataTypeName(r.t), loom::redOpName(r.op), r.bytes,
               r.sec * 1e6, gbps, pct);
  }
  fmt::print("# float32 sum: {:.1f}% of membw\n", f32SumPct);
  std::free(x);
  std::free(y);
  return 0;
}
