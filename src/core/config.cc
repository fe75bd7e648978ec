#include "core/config.h"

#include <cerrno>
#include <cstdlib>

namespace loom {

const std::vector<SettingInfo>& settingRegistry() {
  static const std::vector<SettingInfo> registry = {
      {"LOOM_COORDINATOR", "", "coordinator address host:port (loomCommInitFromEnv); else MASTER_ADDR:MASTER_PORT+1"},
      {"LOOM_RANK", "", "this process's rank (else RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID)"},
      {"LOOM_WORLD_SIZE", "", "number of ranks (else WORLD_SIZE, OMPI_COMM_WORLD_SIZE, SLURM_NTASKS)"},
      {"LOOM_COMM_ID", "0", "communicator id, so several jobs can share one coordinator"},
      {"LOOM_EMBEDDED_COORDINATOR", "auto",
       "rank 0 hosts the coordinator: 1 always, 0 never, auto when the address came from MASTER_ADDR"},
      {"LOOM_TIMEOUT_MS", "600000", "deadline of every operation (ms)"},
      {"LOOM_CONNECT_TIMEOUT_MS", "60000", "deadline of rendezvous and connection set-up (ms)"},
      {"LOOM_COORDINATOR_WAIT_MS", "10000",
       "a refused connection to the coordinator is retried this long (ranks may start before it)"},
      {"LOOM_STREAMS", "2",
       "TCP streams per pair of ranks on different hosts; a large message is striped across them (1..16)"},
      {"LOOM_LOCAL_STREAMS", "1",
       "TCP streams per pair of ranks on the same host (loopback: more streams add syscalls and wake-ups, not "
       "bandwidth) (1..16)"},
      {"LOOM_TCP_CONGESTION", "auto",
       "TCP congestion control of data connections: auto = reno to near ranks (on this host, or within "
       "LOOM_TCP_NEAR_RTT_US: a pacing algorithm such as BBR holds back a collective's bursts, and at such round "
       "trips cubic behaves as reno) and the system's to far ones; system = the system's everywhere; or a name "
       "(cubic, bbr, ...) for every connection"},
      {"LOOM_TCP_NEAR_RTT_US", "2000",
       "a rank on another host is near (see LOOM_TCP_CONGESTION) when the connection's handshake took less than "
       "this many microseconds; 0 = only ranks on this host are near"},
      {"LOOM_TCP_COALESCE", "auto",
       "a small message (under 32K) sent right after another on the same connection may wait in the kernel until "
       "the earlier one is acknowledged, and leave with those after it as one segment: auto = to ranks on this "
       "host (where each segment costs both ends a trip through TCP), 0 = never, 1 = to every rank (across hosts "
       "it can add a round trip to such a message); set it alike on every rank"},
      {"LOOM_SEGMENT_BYTES", "512K",
       "pipelining segment of ring and chain algorithms (a 2-rank broadcast's chain uses at least 4M)"},
      {"LOOM_ALLREDUCE_SMALL_BYTES", "64K",
       "all-reduce up to this size uses recursive doubling, above it the ring (halving-doubling above 512K up to 4M in "
       "worlds of 4, 8, 16, ... ranks)"},
      {"LOOM_BROADCAST_SMALL_BYTES", "64K", "broadcast up to this size uses a binomial tree, above it a chain"},
      {"LOOM_ALLREDUCE_ALGO", "auto",
       "force all-reduce algorithm: auto, ring, rd (recursive doubling), hd (halving-doubling; power-of-two worlds, "
       "the ring otherwise)"},
      {"LOOM_BROADCAST_ALGO", "auto", "force broadcast algorithm: auto, chain, tree"},
      {"LOOM_SPIN_US", "50", "a waiting caller drives progress itself this long before yielding, then blocks"},
      {"LOOM_SPIN_YIELD", "auto",
       "spin politely (yield the core between polls): 1, 0, or auto = when this host's ranks have more threads "
       "(2 each) than it has CPUs"},
      {"LOOM_OUTCOME_VOTE", "0",
       "1: with 3+ ranks every collective ends with an empty vote, so the survivors of a failure agree on each "
       "call's outcome (one more hop per call); 0: they agree at the next loomSharedStateSync instead"},
      {"LOOM_RESTORE_INPUT", "1",
       "1: an in-place reduction keeps a copy of its input and puts it back if the call fails, so it can be "
       "retried; 0: no copy (the buffer is undefined after a failure)"},
      {"LOOM_HEARTBEAT_MS", "1000", "heartbeat period to the coordinator (ms)"},
      {"LOOM_PEER_TIMEOUT_MS", "2000",
       "a peer heard nothing from this long is lost (frozen, or link down); heartbeats every quarter; 0: off; "
       "at least 100"},
      {"LOOM_JOIN", "0",
       "1: loomCommInitFromEnv joins the running communicator (loomCommJoin) instead of founding it; set by an "
       "elastic loomrun for the ranks it adds or replaces"},
      {"LOOM_MIN_WORLD", "1", "quorum: an update that leaves fewer members fails with loomBelowQuorum"},
      {"LOOM_MAX_WORLD", "0", "the most members a communicator may grow to by joins (0: no limit; founders set it)"},
      {"LOOM_UPDATE_TIMEOUT_MS", "10000",
       "an update (loomCommUpdate) waits this long for members that have not come to it, then goes on without them"},
      {"LOOM_TRANSPORT", "tcp", "transport: tcp, or local (in-process, for threads in one process)"},
      {"LOOM_LISTEN_HOST", "127.0.0.1", "address this rank listens on and publishes to peers"},
      {"LOOM_DEBUG", "WARN", "log level: NONE, WARN, INFO, TRACE"},
      {"LOOM_DEBUG_SUBSYS", "ALL", "comma-separated subsystems to log: INIT, COLL, NET, COORD, ALL"},
  };
  return registry;
}

std::string envOrEmpty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

Expected<int64_t> parseInt(const std::string& text, const char* what) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || errno != 0 || end == nullptr || *end != '\0')
    return makeError(loomInvalidArgument, "{}='{}' is not an integer", what, text);
  return static_cast<int64_t>(v);
}

Expected<uint64_t> parseSize(const std::string& text, const char* what) {
  if (text.empty() || text[0] == '-') return makeError(loomInvalidArgument, "{}='{}' is not a size", what, text);
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str()) return makeError(loomInvalidArgument, "{}='{}' is not a size", what, text);
  uint64_t mult = 1;
  std::string suffix(end);
  if (suffix == "K" || suffix == "k") mult = 1ull << 10;
  else if (suffix == "M" || suffix == "m") mult = 1ull << 20;
  else if (suffix == "G" || suffix == "g") mult = 1ull << 30;
  else if (!suffix.empty())
    return makeError(loomInvalidArgument, "{}='{}': unknown suffix '{}' (use K, M or G)", what, text, suffix);
  if (v > UINT64_MAX / mult) return makeError(loomInvalidArgument, "{}='{}' overflows", what, text);
  return static_cast<uint64_t>(v * mult);
}

namespace {

const char* defaultOf(const char* env) {
  for (const auto& s : settingRegistry())
    if (std::string(s.env) == env) return s.defaultValue;
  return "";
}

// The field if set, else the variable, else the default; checked against [lo, hi].
Status pickInt(int field, const char* fieldName, const char* env, int64_t lo, int64_t hi, int& out) {
  int64_t v = field;
  if (field == 0) {
    std::string text = envOrEmpty(env);
    if (text.empty()) text = defaultOf(env);
    auto parsed = parseInt(text, env);
    if (!parsed) return parsed.error();
    v = *parsed;
  }
  if (v < lo || v > hi)
    return makeError(loomInvalidArgument, "{} = {} is out of range [{}, {}]", field ? fieldName : env, v, lo, hi);
  out = static_cast<int>(v);
  return Status::ok();
}

Status pickSize(size_t field, const char* fieldName, const char* env, uint64_t lo, uint64_t hi, size_t& out) {
  uint64_t v = field;
  if (field == 0) {
    std::string text = envOrEmpty(env);
    if (text.empty()) text = defaultOf(env);
    auto parsed = parseSize(text, env);
    if (!parsed) return parsed.error();
    v = *parsed;
  }
  if (v < lo || v > hi)
    return makeError(loomInvalidArgument, "{} = {} is out of range [{}, {}]", field ? fieldName : env, v, lo, hi);
  out = static_cast<size_t>(v);
  return Status::ok();
}

Status pickAlgorithm(int field, const char* fieldName, const char* env, bool allreduce, int& out) {
  if (field != 0) {
    bool ok = allreduce ? (field == loomAlgoRing || field == loomAlgoRecursiveDoubling ||
                           field == loomAlgoHalvingDoubling)
                        : (field == loomAlgoChain || field == loomAlgoTree);
    if (!ok) return makeError(loomInvalidArgument, "{} = {} is not a valid {} algorithm", fieldName, field,
                              allreduce ? "all-reduce" : "broadcast");
    out = field;
    return Status::ok();
  }
  std::string text = envOrEmpty(env);
  if (text.empty() || text == "auto") out = loomAlgoAuto;
  else if (allreduce && text == "ring") out = loomAlgoRing;
  else if (allreduce && (text == "rd" || text == "recursive_doubling")) out = loomAlgoRecursiveDoubling;
  else if (allreduce && (text == "hd" || text == "halving_doubling")) out = loomAlgoHalvingDoubling;
  else if (!allreduce && text == "chain") out = loomAlgoChain;
  else if (!allreduce && text == "tree") out = loomAlgoTree;
  else
    return makeError(loomInvalidArgument, "{}='{}' is not one of {}", env, text,
                     allreduce ? "auto, ring, rd, hd" : "auto, chain, tree");
  return Status::ok();
}

std::string pickString(const char* field, const char* env) {
  if (field && *field) return field;
  std::string text = envOrEmpty(env);
  return text.empty() ? defaultOf(env) : text;
}

// A setting that is auto, 0 or 1 (LOOM_SPIN_YIELD, LOOM_TCP_COALESCE).
Status pickAutoSwitch(const char* env, std::string& out) {
  out = pickString(nullptr, env);
  if (out != "auto" && out != "0" && out != "1")
    return makeError(loomInvalidArgument, "{}='{}' must be auto, 0 or 1", env, out);
  return Status::ok();
}

}  // namespace

Expected<Settings> resolveSettings(const loomConfig_t* c) {
  loomConfig_t defaults = LOOM_CONFIG_INITIALIZER;
  if (c == nullptr) c = &defaults;
  if (c->size < offsetof(loomConfig_t, commId) + sizeof(uint64_t) || c->size > 4096)
    return makeError(loomInvalidArgument, "config->size is {}: initialise the config with LOOM_CONFIG_INITIALIZER",
                     c->size);
  if (c->version / 100 != LOOM_VERSION_CODE / 100)
    return makeError(loomVersionMismatch, "config->version {} does not match library version {}", c->version,
                     LOOM_VERSION_CODE);
  Settings s;
  LOOM_RETURN_IF_ERROR(pickInt(c->timeoutMs, "config.timeoutMs", "LOOM_TIMEOUT_MS", 1, INT32_MAX, s.timeoutMs));
  LOOM_RETURN_IF_ERROR(pickInt(c->connectTimeoutMs, "config.connectTimeoutMs", "LOOM_CONNECT_TIMEOUT_MS", 1,
                               INT32_MAX, s.connectTimeoutMs));
  LOOM_RETURN_IF_ERROR(pickInt(c->streamsPerPeer, "config.streamsPerPeer", "LOOM_STREAMS", 1, 16, s.streamsPerPeer));
  LOOM_RETURN_IF_ERROR(
      pickSize(c->segmentBytes, "config.segmentBytes", "LOOM_SEGMENT_BYTES", 1, 1ull << 30, s.segmentBytes));
  LOOM_RETURN_IF_ERROR(pickSize(c->allreduceSmallBytes, "config.allreduceSmallBytes", "LOOM_ALLREDUCE_SMALL_BYTES",
                                0, UINT64_MAX, s.allreduceSmallBytes));
  LOOM_RETURN_IF_ERROR(pickSize(c->broadcastSmallBytes, "config.broadcastSmallBytes", "LOOM_BROADCAST_SMALL_BYTES",
                                0, UINT64_MAX, s.broadcastSmallBytes));
  LOOM_RETURN_IF_ERROR(pickAlgorithm(c->allreduceAlgorithm, "config.allreduceAlgorithm", "LOOM_ALLREDUCE_ALGO", true,
                                     s.allreduceAlgorithm));
  LOOM_RETURN_IF_ERROR(pickAlgorithm(c->broadcastAlgorithm, "config.broadcastAlgorithm", "LOOM_BROADCAST_ALGO",
                                     false, s.broadcastAlgorithm));
  LOOM_RETURN_IF_ERROR(pickInt(c->spinUs, "config.spinUs", "LOOM_SPIN_US", 0, 10'000'000, s.spinUs));
  s.tcpCongestion = pickString(nullptr, "LOOM_TCP_CONGESTION");
  if (s.tcpCongestion.empty() || s.tcpCongestion.size() > 15 ||
      s.tcpCongestion.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos)
    return makeError(loomInvalidArgument,
                     "LOOM_TCP_CONGESTION='{}' must be auto, system or an algorithm's name (letters, digits, _ or -; "
                     "at most 15)",
                     s.tcpCongestion);
  LOOM_RETURN_IF_ERROR(pickInt(0, "", "LOOM_TCP_NEAR_RTT_US", 0, 60'000'000, s.tcpNearRttUs));
  LOOM_RETURN_IF_ERROR(pickAutoSwitch("LOOM_TCP_COALESCE", s.tcpCoalesce));
  LOOM_RETURN_IF_ERROR(pickAutoSwitch("LOOM_SPIN_YIELD", s.spinYield));
  LOOM_RETURN_IF_ERROR(pickInt(0, "", "LOOM_OUTCOME_VOTE", 0, 1, s.outcomeVote));
  LOOM_RETURN_IF_ERROR(pickInt(0, "", "LOOM_RESTORE_INPUT", 0, 1, s.restoreInput));
  LOOM_RETURN_IF_ERROR(
      pickInt(c->heartbeatMs, "config.heartbeatMs", "LOOM_HEARTBEAT_MS", 10, 3'600'000, s.heartbeatMs));
  LOOM_RETURN_IF_ERROR(
      pickInt(0, "", "LOOM_COORDINATOR_WAIT_MS", 0, INT32_MAX, s.coordinatorWaitMs));
  // Configs from before the field existed are shorter: for them it reads as 0 (environment).
  const int peerTimeoutField =
      c->size >= offsetof(loomConfig_t, peerTimeoutMs) + sizeof(c->peerTimeoutMs) ? c->peerTimeoutMs : 0;
  if (peerTimeoutField < 0) {
    s.peerTimeoutMs = 0;  // never
  } else {
    LOOM_RETURN_IF_ERROR(
        pickInt(peerTimeoutField, "config.peerTimeoutMs", "LOOM_PEER_TIMEOUT_MS", 0, 3'600'000, s.peerTimeoutMs));
    if (s.peerTimeoutMs > 0 && s.peerTimeoutMs < 100)
      return makeError(loomInvalidArgument, "{} = {} is below the minimum of 100 ms (0 turns liveness checks off)",
                       peerTimeoutField ? "config.peerTimeoutMs" : "LOOM_PEER_TIMEOUT_MS", s.peerTimeoutMs);
  }
  // Fields appended after the first release: a shorter (older) config reads them as 0.
  auto appended = [&](const int& field) {
    const size_t end = static_cast<size_t>(reinterpret_cast<const char*>(&field) - reinterpret_cast<const char*>(c)) +
                       sizeof(int);
    return c->size >= end ? field : 0;
  };
  LOOM_RETURN_IF_ERROR(pickInt(appended(c->minWorld), "config.minWorld", "LOOM_MIN_WORLD", 1, 65536, s.minWorld));
  LOOM_RETURN_IF_ERROR(pickInt(appended(c->maxWorld), "config.maxWorld", "LOOM_MAX_WORLD", 0, 65536, s.maxWorld));
  LOOM_RETURN_IF_ERROR(pickInt(appended(c->updateTimeoutMs), "config.updateTimeoutMs", "LOOM_UPDATE_TIMEOUT_MS", 1,
                               INT32_MAX, s.updateTimeoutMs));
  LOOM_RETURN_IF_ERROR(pickInt(appended(c->localStreamsPerPeer), "config.localStreamsPerPeer", "LOOM_LOCAL_STREAMS",
                               1, 16, s.localStreamsPerPeer));
  if (s.maxWorld > 0 && s.maxWorld < s.minWorld)
    return makeError(loomInvalidArgument, "maxWorld {} is below minWorld {} (LOOM_MAX_WORLD / LOOM_MIN_WORLD)",
                     s.maxWorld, s.minWorld);
  s.transport = pickString(c->transport, "LOOM_TRANSPORT");
  if (s.transport != "tcp" && s.transport != "local")
    return makeError(loomInvalidArgument, "transport '{}' is unknown (LOOM_TRANSPORT / config.transport): use tcp or local",
                     s.transport);
  s.listenHost = pickString(c->listenHost, "LOOM_LISTEN_HOST");
  if (c->commId != 0) {
    s.commId = c->commId;
  } else {
    auto id = parseSize(pickString(nullptr, "LOOM_COMM_ID"), "LOOM_COMM_ID");
    if (!id) return id.error();
    s.commId = *id;
  }
  LOOM_RETURN_IF_ERROR(pickInt(0, "", "LOOM_JOIN", 0, 1, s.join));
  s.embeddedCoordinator = pickString(nullptr, "LOOM_EMBEDDED_COORDINATOR");
  if (s.embeddedCoordinator != "auto" && s.embeddedCoordinator != "0" && s.embeddedCoordinator != "1")
    return makeError(loomInvalidArgument, "LOOM_EMBEDDED_COORDINATOR='{}' must be auto, 0 or 1", s.embeddedCoordinator);
  return s;
}

}  // namespace loom
