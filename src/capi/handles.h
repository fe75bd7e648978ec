// What the opaque C handles point at. A communicator handle is never freed, only emptied on
// destroy, so a call through a destroyed handle gets a clear error instead of a use-after-free.
#pragma once

#include "core/communicator.h"

#include <loom/loom.h>

#include <memory>
#include <mutex>
#include <string>

struct loomComm {
  static constexpr uint64_t kLive = 0x4c4f4f4d434f4d4dull;  // "LOOMCOMM"
  static constexpr uint64_t kDestroyed = 0x4445414444454144ull;
  uint64_t magic = kLive;
  std::unique_ptr<loom::Communicator> impl;
  std::mutex errorMu;
  std::string lastError;
  uint64_t sharedRevision = 0;  // last revision loomSharedStateSync agreed on (0: never synced)
};

struct loomRequest {
  static constexpr uint64_t kLive = 0x4c4f4f4d52455153ull;  // "LOOMREQS"
  uint64_t magic = kLive;
  loomComm* comm = nullptr;
  loom::OpPtr op;
};
