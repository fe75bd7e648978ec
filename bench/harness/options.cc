#include "options.h"

#include "data.h"

#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace loombench {
namespace {

const char* program_ = "perf";

[[noreturn]] void usageError(const char* fmt, const char* arg) {
  std::fprintf(stderr, "%s: ", program_);
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n%s: run with -h for the list of flags\n", program_);
  std::exit(2);
}

void printUsage() {
  std::printf(
      "usage: %s [flags]   (start the ranks with a launcher: loomrun -n N -- %s [flags])\n"
      "  -b,--minbytes <size>         smallest size in bytes, K/M/G suffixes (default 32M)\n"
      "  -e,--maxbytes <size>         largest size in bytes (default 32M)\n"
      "  -i,--stepbytes <size>        add this between sizes (default 1M)\n"
      "  -f,--stepfactor <n>          multiply by this between sizes (overrides -i when > 1)\n"
      "  -n,--iters <n>               timed iterations (default 20)\n"
      "  -w,--warmup_iters <n>        untimed iterations before each measurement (default 1)\n"
      "  -c,--check <0/1>             check results bit for bit (default 1)\n"
      "  -o,--op <sum/prod/min/max/avg/all>        reduction op (default sum)\n"
      "  -d,--datatype <type/all>     int8 uint8 int32 uint32 int64 uint64 half float double bfloat16\n"
      "                               (default float)\n"
      "  -r,--root <rank>             root of broadcast and reduce (default 0)\n"
      "  -z,--blocking <0/1>          1: blocking calls; 0: asynchronous call + wait (default 0)\n"
      "  -a,--average <0/1/2/3/4>     time across ranks: 0=rank 0, 1=avg, 2=min, 3=max, 4=sum\n"
      "                               (or rank0/avg/min/max/sum; default 1=avg)\n"
      "  -T,--timeout <seconds>       fail an operation that takes longer (default: none)\n"
      "  -J,--output_file <file>      also write the results as JSON to <file>\n"
      "  -h,--help                    this text\n"
      "size is the total buffer in bytes; time in microseconds; GB/s = 1e9 bytes/s.\n",
      program_, program_);
}

// "64", "1.5K", "32M", "2G" (powers of 1024, as nccl-tests).
size_t parseSize(const char* text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (end == text || errno != 0 || !(v >= 0)) usageError("bad size '%s'", text);
  double unit = 1;
  if (*end != '\0') {
    switch (*end) {
      case 'K': case 'k': unit = 1024.0; break;
      case 'M': case 'm': unit = 1024.0 * 1024; break;
      case 'G': case 'g': unit = 1024.0 * 1024 * 1024; break;
      default: usageError("bad size '%s' (suffixes: K, M, G)", text);
    }
    if (end[1] != '\0') usageError("bad size '%s' (suffixes: K, M, G)", text);
  }
  const double bytes = v * unit;
  if (bytes > 9.0e18) usageError("size '%s' is too large", text);
  return static_cast<size_t>(bytes);
}

long parseInt(const char* text, long lo, long hi, const char* what) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || v < lo || v > hi) {
    std::fprintf(stderr, "%s: %s must be an integer in [%ld, %ld], got '%s'\n", program_, what, lo, hi, text);
    std::exit(2);
  }
  return v;
}

Aggregation parseAggregation(const char* text) {
  static const char* names[] = {"rank0", "avg", "min", "max", "sum"};
  for (int i = 0; i < 5; ++i)
    if (std::strcmp(text, names[i]) == 0) return static_cast<Aggregation>(i);
  return static_cast<Aggregation>(parseInt(text, 0, 4, "-a"));
}

}  // namespace

const char* aggregationName(Aggregation a) {
  switch (a) {
    case Aggregation::Rank0: return "rank0";
    case Aggregation::Avg: return "avg";
    case Aggregation::Min: return "min";
    case Aggregation::Max: return "max";
    case Aggregation::Sum: return "sum";
  }
  return "?";
}

std::vector<size_t> Options::sizes() const {
  std::vector<size_t> out;
  for (size_t s = minBytes; s <= maxBytes;) {
    out.push_back(s);
    size_t next;
    if (stepFactor > 1) {
      if (s > SIZE_MAX / stepFactor) break;
      next = s == 0 ? 1 : s * stepFactor;  // 0 * f would never grow
    } else {
      if (s > SIZE_MAX - stepBytes) break;
      next = s + stepBytes;
    }
    if (next <= s) break;
    s = next;
  }
  return out;
}

Options parseOptions(int argc, char** argv, const char* program) {
  program_ = program;
  static const option longOpts[] = {
      {"minbytes", required_argument, nullptr, 'b'},   {"maxbytes", required_argument, nullptr, 'e'},
      {"stepbytes", required_argument, nullptr, 'i'},  {"stepfactor", required_argument, nullptr, 'f'},
      {"iters", required_argument, nullptr, 'n'},      {"warmup_iters", required_argument, nullptr, 'w'},
      {"check", required_argument, nullptr, 'c'},      {"op", required_argument, nullptr, 'o'},
      {"datatype", required_argument, nullptr, 'd'},   {"root", required_argument, nullptr, 'r'},
      {"blocking", required_argument, nullptr, 'z'},   {"average", required_argument, nullptr, 'a'},
      {"timeout", required_argument, nullptr, 'T'},    {"output_file", required_argument, nullptr, 'J'},
      {"nthreads", required_argument, nullptr, 't'},   {"ngpus", required_argument, nullptr, 'g'},
      {"agg_iters", required_argument, nullptr, 'm'},  {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  Options o;
  opterr = 0;  // we word the errors ourselves
  int c;
  while ((c = getopt_long(argc, argv, ":b:e:i:f:n:w:c:o:d:r:z:a:T:J:t:g:m:h", longOpts, nullptr)) != -1) {
    switch (c) {
      case 'b': o.minBytes = parseSize(optarg); break;
      case 'e': o.maxBytes = parseSize(optarg); break;
      case 'i': o.stepBytes = parseSize(optarg); break;
      case 'f': o.stepFactor = static_cast<size_t>(parseInt(optarg, 1, 1 << 20, "-f")); break;
      case 'n': o.iters = static_cast<int>(parseInt(optarg, 1, 1 << 30, "-n")); break;
      case 'w': o.warmupIters = static_cast<int>(parseInt(optarg, 0, 1 << 30, "-w")); break;
      case 'c': o.check = static_cast<int>(parseInt(optarg, 0, 1 << 30, "-c")); break;
      case 'o':
        if (!parseOps(optarg, &o.ops)) usageError("unknown op '%s' (sum, prod, min, max, avg, all)", optarg);
        break;
      case 'd':
        if (!parseTypes(optarg, &o.types))
          usageError("unknown datatype '%s' (int8 uint8 int32 uint32 int64 uint64 half float double bfloat16 all)",
                     optarg);
        break;
      case 'r': o.root = static_cast<int>(parseInt(optarg, 0, INT32_MAX, "-r")); break;
      case 'z': o.blocking = static_cast<int>(parseInt(optarg, 0, 1, "-z")); break;
      case 'a': o.aggregation = parseAggregation(optarg); break;
      case 'T': o.timeoutSec = static_cast<int>(parseInt(optarg, 0, 1 << 20, "-T")); break;
      case 'J': o.jsonPath = optarg; break;
      // nccl-tests habits: one rank per process here, so only the value 1 makes sense.
      case 't': parseInt(optarg, 1, 1, "-t (threads per process; Loom runs one rank per process)"); break;
      case 'g': parseInt(optarg, 1, 1, "-g (GPUs per thread; Loom runs one rank per process)"); break;
      case 'm': parseInt(optarg, 1, 1, "-m (aggregated iterations)"); break;
      case 'h': printUsage(); std::exit(0);
      case ':': usageError("flag %s needs a value", argv[optind - 1]);
      default: {
        char flag[3] = {'-', static_cast<char>(optopt), '\0'};
        usageError("unknown flag '%s'", optopt != 0 ? flag : argv[optind - 1]);
      }
    }
  }
  if (optind < argc) usageError("unexpected argument '%s'", argv[optind]);
  if (o.minBytes > o.maxBytes) usageError("-b is larger than -e%s", "");
  if (o.stepFactor <= 1 && o.stepBytes == 0 && o.minBytes < o.maxBytes)
    usageError("-i 0 without -f would never reach -e%s", "");
  return o;
}

}  // namespace loombench
