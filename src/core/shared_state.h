// Shared state: named buffers with a revision, kept bit-identical across a communicator's members
// (loomSharedStateSync). Built only on the communicator's collectives and point-to-point
// transfers, so it runs over whatever transport the epoch has.
#pragma once

#include "core/status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom {

class Communicator;

struct SharedEntry {
  std::string name;
  void* data = nullptr;
  size_t bytes = 0;
};

struct SyncResult {
  uint64_t revision = 0;
  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;
  int entriesReceived = 0;
  int entriesSent = 0;
  double transferSeconds = 0;  // moving the state bytes (from the first receive posted to the last done)
};

// Every member calls it with the same entry names, in the same order. `revision` is the one this
// member's state has now; a member that synced before must come with exactly one more than last
// time (lastRevision == 0: never synced, e.g. a joiner, which takes the majority's). The
// majority's state (the largest group of members with the same revision and entry hashes; ties go
// to the group holding the lowest rank) wins; every other member fetches only the entries whose
// hash differs, each from one of the majority (spread over them), and checks what arrived against
// the majority's hash. On success lastRevision becomes the agreed revision.
Expected<SyncResult> syncSharedState(Communicator& comm, const std::vector<SharedEntry>& entries, uint64_t revision,
                                     uint64_t& lastRevision);

}  // namespace loom
