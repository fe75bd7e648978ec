// The one registry of settings. Each setting is read once, typed, with its documentation
// (NCCL_PARAM / UCC config tables). Precedence: a non-zero loomConfig_t field, else the LOOM_*
// environment variable, else the default. `loom_info` prints the table.
#pragma once

#include "core/status.h"

#include <loom/loom.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom {

struct SettingInfo {
  const char* env;           // LOOM_...
  const char* defaultValue;  // as text
  const char* doc;
};
const std::vector<SettingInfo>& settingRegistry();

struct Settings {
  int timeoutMs = 0;
  int connectTimeoutMs = 0;
  int streamsPerPeer = 0;       // pairs on different hosts
  int localStreamsPerPeer = 0;  // pairs on one host
  size_t segmentBytes = 0;
  size_t allreduceSmallBytes = 0;
  size_t broadcastSmallBytes = 0;
  int allreduceAlgorithm = 0;
  int broadcastAlgorithm = 0;
  int spinUs = 0;
  std::string spinYield;  // "auto", "0", "1"
  int outcomeVote = 0;
  int restoreInput = 1;
  int heartbeatMs = 0;
  int peerTimeoutMs = 0;  // 0: no liveness checks
  int minWorld = 1;
  int maxWorld = 0;  // 0: no limit
  int updateTimeoutMs = 0;
  int coordinatorWaitMs = 0;
  std::string tcpCongestion;  // "auto", "system" or an algorithm (LOOM_TCP_CONGESTION)
  int tcpNearRttUs = 0;       // LOOM_TCP_NEAR_RTT_US: a shorter handshake makes a peer near
  std::string tcpCoalesce;    // "auto", "0" or "1" (LOOM_TCP_COALESCE)
  std::string transport;
  std::string listenHost;
  uint64_t commId = 0;
  std::string embeddedCoordinator;  // "auto", "0", "1"
  int join = 0;                     // LOOM_JOIN: loomCommInitFromEnv joins a running communicator
};

// Validates the config struct (size/version) and every value; errors name the field or variable.
Expected<Settings> resolveSettings(const loomConfig_t* config);

// Current value of a LOOM_* variable as the registry would read it ("" if unset).
std::string envOrEmpty(const char* name);

// "64K" / "1M" / "123" -> bytes (1024-based); loomInvalidArgument naming `what` on bad text.
Expected<uint64_t> parseSize(const std::string& text, const char* what);
Expected<int64_t> parseInt(const std::string& text, const char* what);

}  // namespace loom
