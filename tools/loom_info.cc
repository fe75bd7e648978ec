// loom_info: the library version, optional backends, and every LOOM_* setting with its current
// value, default and meaning (the one registry in src/core/config.cc).
#include "core/config.h"

#include <loom/loom.h>

#include <fmt/format.h>

#include <cstring>

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    fmt::print("usage: loom_info\nPrints Loom's version, backends and every LOOM_* setting.\n");
    return 0;
  }
  int version = 0;
  loomGetVersion(&version);
  fmt::print("Loom {}.{}.{} (version code {})\n", version / 10000, version / 100 % 100, version % 100, version);
  fmt::print("transports: tcp, local (in-process)\n");
  fmt::print("NCCL backend: {} (coming)\n", LOOM_HAVE_NCCL ? "toolkit found at build time" : "not available");
  fmt::print("RDMA (ibverbs): {} (coming)\n\n", LOOM_HAVE_IBVERBS ? "found at build time" : "not available");
  fmt::print("{:<28} {:<12} {:<10} {}\n", "variable", "value", "default", "meaning");
  for (const auto& s : loom::settingRegistry()) {
    std::string value = loom::envOrEmpty(s.env);
    fmt::print("{:<28} {:<12} {:<10} {}\n", s.env, value.empty() ? "-" : value, *s.defaultValue ? s.defaultValue : "-",
               s.doc);
  }
  auto resolved = loom::resolveSettings(nullptr);
  if (!resolved) {
    fmt::print(stderr, "\nloom_info: invalid setting: {}\n", resolved.error().message());
    return 1;
  }
  return 0;
}
