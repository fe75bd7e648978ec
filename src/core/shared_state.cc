// Shared-state sync in three steps, each the same on every member:
//   1. all-gather a fixed summary (revision, entry count, hash of the names and sizes), so a
//      member with other entries is named before anything else moves;
//   2. all-gather every entry's hash, pick the majority, and derive one transfer plan from the
//      gathered table (identical everywhere, so sends and receives pair up without negotiation);
//   3. run the plan as point-to-point transfers: every out-of-date member receives each differing
//      entry from the majority members, a large one cut into parts that several of them send at
//      once, spread round-robin so no single peer sends everything.
// In steady state (everyone equal) only the two small all-gathers run: no state bytes move.
#include "core/shared_state.h"

#include "core/communicator.h"
#include "core/hash.h"

#include <algorithm>
#include <chrono>
#include <map>

namespace loom {
namespace {

// Entries are sent in parts of at least this much (smaller parts would cost more in messages than
// they gain in parallel senders).
constexpr size_t kMinPart = 256 << 10;

struct Summary {
  uint64_t revision = 0;
  uint64_t count = 0;
  uint64_t layout = 0;  // hash of every entry's name and size, in order
};

Status gather(Communicator& comm, const void* mine, void* all, size_t bytes) {
  return comm.run({.kind = coll::Kind::AllGather, .send = mine, .recv = all, .count = bytes, .dtype = loomUint8});
}

uint64_t layoutHash(const std::vector<SharedEntry>& entries) {
  uint64_t h = 0x5348415245445354ull;  // "SHAREDST"
  for (const auto& e : entries) {
    h = xxh64(e.name.data(), e.name.size(), h);
    h = xxh64(&e.bytes, sizeof e.bytes, h);
  }
  return h;
}

}  // namespace

Expected<SyncResult> syncSharedState(Communicator& comm, const std::vector<SharedEntry>& entries, uint64_t revision,
                                     uint64_t& lastRevision) {
  if (lastRevision != 0 && revision != lastRevision + 1)
    return makeError(loomInvalidUsage,
                     "shared state revision {} does not follow the last synchronized revision {}: it must advance by "
                     "exactly one per sync",
                     revision, lastRevision);
  const int size = comm.size(), rank = comm.rank();
  const size_t n = entries.size();

  // 1. Same entries everywhere?
  Summary mine{revision, n, layoutHash(entries)};
  std::vector<Summary> summaries(size);
  LOOM_RETURN_IF_ERROR(gather(comm, &mine, summaries.data(), sizeof(Summary)));
  for (int r = 0; r < size; ++r)
    if (summaries[r].count != n || summaries[r].layout != mine.layout)
      return makeError(loomInvalidUsage,
                       "shared state differs in shape: rank {} has {} entries, rank {} has {} (or their names or sizes "
                       "differ); every member must pass the same names and sizes in the same order",
                       rank, n, r, summaries[r].count);
  if (n == 0) {
    lastRevision = revision;
    return SyncResult{revision, 0, 0, 0, 0, 0};
  }

  // 2. Every entry's hash everywhere; the majority state wins.
  std::vector<uint64_t> hashes(n), table(n * size);
  for (size_t e = 0; e < n; ++e) hashes[e] = xxh64(entries[e].data, entries[e].bytes, revision);
  LOOM_RETURN_IF_ERROR(gather(comm, hashes.data(), table.data(), n * sizeof(uint64_t)));
  auto stateOf = [&](int r) {
    std::vector<uint64_t> s(table.begin() + r * n, table.begin() + (r + 1) * n);
    s.push_back(summaries[r].revision);
    return s;
  };
  std::map<std::vector<uint64_t>, std::vector<int>> groups;
  for (int r = 0; r < size; ++r) groups[stateOf(r)].push_back(r);
  const std::vector<int>* winners = nullptr;
  for (const auto& [state, members] : groups)
    if (!winners || members.size() > winners->size() ||
        (members.size() == winners->size() && members.front() < winners->front()))
      winners = &members;
  const int winner = winners->front();
  const uint64_t agreed = summaries[winner].revision;
  // Hashes are seeded with the revision: a member at another revision differs in every entry.
  const uint64_t* good = table.data() + size_t(winner) * n;

  // 3. The plan, in one order on every rank: for each out-of-date member, each differing entry. A
  // large entry is cut into parts that different majority members send at once, so a joiner
  // receives from all of them in parallel. A receiver first posts every receive, then tells each of
  // its senders it is ready; a sender sends once told: parts that arrived before their receive
  // would be stashed and copied twice.
  struct Part {
    int from, to;
    uint8_t* where;
    size_t len;
  };
  std::vector<Part> plan;
  std::vector<size_t> received;
  SyncResult result{agreed, 0, 0, 0, 0, 0};
  size_t turn = 0;
  for (int r = 0; r < size; ++r) {
    if (std::find(winners->begin(), winners->end(), r) != winners->end()) continue;
    for (size_t e = 0; e < n; ++e) {
      if (table[size_t(r) * n + e] == good[e]) continue;
      const size_t bytes = entries[e].bytes;
      size_t part = (bytes + winners->size() - 1) / winners->size();
      part = std::max(kMinPart, (part + 4095) / 4096 * 4096);
      bool sentSome = false;
      for (size_t at = 0; at == 0 || at < bytes; at += part) {
        const size_t len = std::min(part, bytes - at);
        const int from = (*winners)[turn++ % winners->size()];
        plan.push_back({from, r, static_cast<uint8_t*>(entries[e].data) + at, len});
        sentSome |= from == rank;
        if (from == rank) result.bytesSent += len;
        if (r == rank) result.bytesReceived += len;
        if (bytes == 0) break;
      }
      result.entriesSent += sentSome;
      if (r == rank) {
        ++result.entriesReceived;
        received.push_back(e);
      }
    }
  }
  std::vector<OpPtr> ops;
  auto transfer = [&](coll::Kind kind, int peer, void* data, size_t bytes) -> Status {
    const coll::Args a{.kind = kind, .send = data, .recv = data, .count = bytes, .dtype = loomUint8, .root = peer};
    auto op = comm.start(a, std::nullopt);
    if (!op) return op.error();
    ops.push_back(*op);
    return Status::ok();
  };
  auto waitAll = [&]() -> Status {
    Status failed;
    for (auto& op : ops) {
      Status s = comm.wait(op, op->deadline);
      if (!s.isOk() && failed.isOk()) failed = s;
    }
    ops.clear();
    return failed;
  };
  uint8_t token = 0;
  std::vector<int> mySenders, myReceivers;
  for (const Part& p : plan) {
    if (p.to == rank && std::find(mySenders.begin(), mySenders.end(), p.from) == mySenders.end())
      mySenders.push_back(p.from);
    if (p.from == rank && std::find(myReceivers.begin(), myReceivers.end(), p.to) == myReceivers.end())
      myReceivers.push_back(p.to);
  }
  const auto transferStart = std::chrono::steady_clock::now();
  // Receivers: every receive posted, then "ready" to each sender.
  for (const Part& p : plan)
    if (p.to == rank) LOOM_RETURN_IF_ERROR(transfer(coll::Kind::Recv, p.from, p.where, p.len));
  for (int from : mySenders) LOOM_RETURN_IF_ERROR(transfer(coll::Kind::Send, from, &token, 1));
  // Senders: wait for every receiver's "ready", then send.
  if (!myReceivers.empty()) {
    std::vector<uint8_t> ready(myReceivers.size());
    for (size_t i = 0; i < myReceivers.size(); ++i)
      LOOM_RETURN_IF_ERROR(transfer(coll::Kind::Recv, myReceivers[i], &ready[i], 1));
    LOOM_RETURN_IF_ERROR(waitAll());
    for (const Part& p : plan)
      if (p.from == rank) LOOM_RETURN_IF_ERROR(transfer(coll::Kind::Send, p.to, p.where, p.len));
  }
  LOOM_RETURN_IF_ERROR(waitAll());
  if (!plan.empty())
    result.transferSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - transferStart).count();
  for (size_t e : received)
    if (xxh64(entries[e].data, entries[e].bytes, agreed) != good[e])
      return makeError(loomInternalError, "shared state entry '{}' arrived with another hash than rank {} announced",
                       entries[e].name, winner);
  lastRevision = agreed;
  return result;
}

}  // namespace loom
