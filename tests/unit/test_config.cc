// The settings registry: precedence (config field > LOOM_* variable > default), parsing, ranges,
// and errors that name the variable or field.
#include "core/config.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

using loom::resolveSettings;

namespace {
struct EnvGuard {  // sets a variable for one test case, restores it after
  std::string name;
  EnvGuard(const char* n, const char* v) : name(n) { setenv(n, v, 1); }
  ~EnvGuard() { unsetenv(name.c_str()); }
};
bool mentions(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }
}  // namespace

TEST_CASE("defaults apply when neither field nor variable is set", "[config]") {
  auto s = resolveSettings(nullptr);
  REQUIRE(s);
  CHECK(s->streamsPerPeer == 2);
  CHECK(s->localStreamsPerPeer == 1);
  CHECK(s->segmentBytes == 512 * 1024);
  CHECK(s->timeoutMs == 600000);
  CHECK(s->transport == "tcp");
  CHECK(s->allreduceAlgorithm == loomAlgoAuto);
}

TEST_CASE("a LOOM_* variable overrides the default, a config field overrides the variable", "[config]") {
  EnvGuard streams("LOOM_STREAMS", "4");
  EnvGuard segment("LOOM_SEGMENT_BYTES", "64K");
  auto fromEnv = resolveSettings(nullptr);
  REQUIRE(fromEnv);
  CHECK(fromEnv->streamsPerPeer == 4);
  CHECK(fromEnv->segmentBytes == 64 * 1024);
  loomConfig_t c = LOOM_CONFIG_INITIALIZER;
  c.streamsPerPeer = 3;
  auto fromField = resolveSettings(&c);
  REQUIRE(fromField);
  CHECK(fromField->streamsPerPeer == 3);
  CHECK(fromField->segmentBytes == 64 * 1024);
}

TEST_CASE("streams to a peer on this host and on another host are set apart", "[config]") {
  EnvGuard local("LOOM_LOCAL_STREAMS", "3");
  auto fromEnv = resolveSettings(nullptr);
  REQUIRE(fromEnv);
  CHECK(fromEnv->localStreamsPerPeer == 3);
  CHECK(fromEnv->streamsPerPeer == 2);
  loomConfig_t c = LOOM_CONFIG_INITIALIZER;
  c.localStreamsPerPeer = 5;
  auto fromField = resolveSettings(&c);
  REQUIRE(fromField);
  CHECK(fromField->localStreamsPerPeer == 5);
  c.localStreamsPerPeer = 17;
  auto bad = resolveSettings(&c);
  REQUIRE_FALSE(bad);
  CHECK(mentions(bad.error().message(), "config.localStreamsPerPeer"));
  // A config from before the field existed is shorter: the field reads as unset (environment).
  c.size = offsetof(loomConfig_t, localStreamsPerPeer);
  auto old = resolveSettings(&c);
  REQUIRE(old);
  CHECK(old->localStreamsPerPeer == 3);
}

TEST_CASE("TCP congestion control: auto by default, system or a name; anything else is an error", "[config]") {
  auto d = resolveSettings(nullptr);
  REQUIRE(d);
  CHECK(d->tcpCongestion == "auto");
  for (const char* ok : {"system", "cubic", "bbr", "reno", "dctcp"}) {
    EnvGuard g("LOOM_TCP_CONGESTION", ok);
    auto s = resolveSettings(nullptr);
    REQUIRE(s);
    CHECK(s->tcpCongestion == ok);
  }
  // Whether the kernel offers a name is checked where the transport listens (transport tests).
  for (const char* bad : {"a b", "reno;rm", "much-too-long-a-name"}) {
    CAPTURE(bad);
    EnvGuard g("LOOM_TCP_CONGESTION", bad);
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == loomInvalidArgument);
    CHECK(mentions(s.error().message(), "LOOM_TCP_CONGESTION"));
  }
}

TEST_CASE("LOOM_TCP_NEAR_RTT_US: 2000 by default, 0 allowed, negative or text is an error", "[config]") {
  auto d = resolveSettings(nullptr);
  REQUIRE(d);
  CHECK(d->tcpNearRttUs == 2000);
  {
    EnvGuard g("LOOM_TCP_NEAR_RTT_US", "0");
    auto s = resolveSettings(nullptr);
    REQUIRE(s);
    CHECK(s->tcpNearRttUs == 0);
  }
  for (const char* bad : {"-1", "fast", "99999999999"}) {
    CAPTURE(bad);
    EnvGuard g("LOOM_TCP_NEAR_RTT_US", bad);
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == loomInvalidArgument);
    CHECK(mentions(s.error().message(), "LOOM_TCP_NEAR_RTT_US"));
  }
}

TEST_CASE("LOOM_TCP_COALESCE: auto by default, 0 or 1 allowed, anything else is an error", "[config]") {
  auto d = resolveSettings(nullptr);
  REQUIRE(d);
  CHECK(d->tcpCoalesce == "auto");
  for (const char* good : {"0", "1", "auto"}) {
    EnvGuard g("LOOM_TCP_COALESCE", good);
    auto s = resolveSettings(nullptr);
    REQUIRE(s);
    CHECK(s->tcpCoalesce == good);
  }
  for (const char* bad : {"yes", "2", "on"}) {
    CAPTURE(bad);
    EnvGuard g("LOOM_TCP_COALESCE", bad);
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == loomInvalidArgument);
    CHECK(mentions(s.error().message(), "LOOM_TCP_COALESCE"));
  }
}

TEST_CASE("sizes take K, M and G suffixes (powers of 1024)", "[config]") {
  CHECK(*loom::parseSize("7", "X") == 7);
  CHECK(*loom::parseSize("2K", "X") == 2048);
  CHECK(*loom::parseSize("3M", "X") == 3ull << 20);
  CHECK(*loom::parseSize("1G", "X") == 1ull << 30);
  auto bad = loom::parseSize("12Q", "LOOM_SEGMENT_BYTES");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == loomInvalidArgument);
  CHECK(mentions(bad.error().message(), "LOOM_SEGMENT_BYTES"));
  CHECK_FALSE(loom::parseSize("-1", "X"));
  CHECK_FALSE(loom::parseSize("99999999999999999999", "X"));
}

TEST_CASE("an unparsable or out-of-range variable is an error naming it", "[config]") {
  {
    EnvGuard g("LOOM_TIMEOUT_MS", "soon");
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(mentions(s.error().message(), "LOOM_TIMEOUT_MS"));
  }
  {
    EnvGuard g("LOOM_STREAMS", "0");
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(mentions(s.error().message(), "LOOM_STREAMS"));
  }
  {
    EnvGuard g("LOOM_ALLREDUCE_ALGO", "bogus");
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(mentions(s.error().message(), "auto, ring, rd"));
  }
  {
    EnvGuard g("LOOM_TRANSPORT", "carrier-pigeon");
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(mentions(s.error().message(), "carrier-pigeon"));
  }
}

TEST_CASE("peer timeout: 2000 ms by default, 0 or -1 turns it off, below 100 ms is an error", "[config]") {
  auto d = resolveSettings(nullptr);
  REQUIRE(d);
  CHECK(d->peerTimeoutMs == 2000);
  {
    EnvGuard g("LOOM_PEER_TIMEOUT_MS", "0");
    CHECK(resolveSettings(nullptr)->peerTimeoutMs == 0);
  }
  {
    EnvGuard g("LOOM_PEER_TIMEOUT_MS", "50");
    auto s = resolveSettings(nullptr);
    REQUIRE_FALSE(s);
    CHECK(mentions(s.error().message(), "LOOM_PEER_TIMEOUT_MS"));
    CHECK(mentions(s.error().message(), "100"));
  }
  loomConfig_t c = LOOM_CONFIG_INITIALIZER;
  c.peerTimeoutMs = -1;
  CHECK(resolveSettings(&c)->peerTimeoutMs == 0);
  c.peerTimeoutMs = 150;
  CHECK(resolveSettings(&c)->peerTimeoutMs == 150);
  c.peerTimeoutMs = 99;
  auto bad = resolveSettings(&c);
  REQUIRE_FALSE(bad);
  CHECK(mentions(bad.error().message(), "config.peerTimeoutMs"));
}

TEST_CASE("algorithm overrides parse by name or by config field", "[config]") {
  EnvGuard a("LOOM_ALLREDUCE_ALGO", "ring");
  EnvGuard b("LOOM_BROADCAST_ALGO", "tree");
  auto s = resolveSettings(nullptr);
  REQUIRE(s);
  CHECK(s->allreduceAlgorithm == loomAlgoRing);
  CHECK(s->broadcastAlgorithm == loomAlgoTree);
  loomConfig_t c = LOOM_CONFIG_INITIALIZER;
  c.allreduceAlgorithm = loomAlgoTree;  // a broadcast algorithm is not an all-reduce algorithm
  auto bad = resolveSettings(&c);
  REQUIRE_FALSE(bad);
  CHECK(mentions(bad.error().message(), "config.allreduceAlgorithm"));
}

TEST_CASE("a config struct not made with LOOM_CONFIG_INITIALIZER is rejected", "[config]") {
  loomConfig_t c = LOOM_CONFIG_INITIALIZER;
  c.size = 8;
  auto s = resolveSettings(&c);
  REQUIRE_FALSE(s);
  CHECK(s.error().code() == loomInvalidArgument);
  c = LOOM_CONFIG_INITIALIZER;
  c.version = 990000;
  auto v = resolveSettings(&c);
  REQUIRE_FALSE(v);
  CHECK(v.error().code() == loomVersionMismatch);
}

TEST_CASE("every registry entry is a documented LOOM_ variable", "[config]") {
  for (const auto& s : loom::settingRegistry()) {
    CHECK(std::string(s.env).rfind("LOOM_", 0) == 0);
    CHECK(std::string(s.doc).size() > 10);
  }
}
