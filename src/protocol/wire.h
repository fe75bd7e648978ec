// The wire codec shared by peers and the coordinator: pure functions over byte spans, no I/O,
// so it can be fuzzed. All integers little-endian. Every frame starts with the same header:
//
//   u32 magic 'LOOM' | u16 wireVersion | u16 type | u32 payloadBytes | u32 flags
//   u64 commId | u64 epoch | u64 seq                                  (40 bytes)
//
// followed by payloadBytes of type-specific payload. Decoders reject a bad magic, another wire
// version, an unknown type, a payload over the type's limit, truncation and trailing bytes,
// each with a Status naming what was wrong.
#pragma once

#include "core/status.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loom::wire {

inline constexpr uint32_t kMagic = 0x4D4F4F4C;  // "LOOM" little-endian
inline constexpr uint16_t kWireVersion = 3;  // 2: OpError names the lost rank; 3: epochs change at run time
inline constexpr size_t kHeaderBytes = 40;
inline constexpr size_t kMaxControlPayload = 1 << 20;  // control messages; data payload is separate
inline constexpr size_t kMaxAddressBytes = 256;
inline constexpr size_t kMaxMessageBytes = 4096;
inline constexpr uint32_t kMaxWorldSize = 1 << 16;

enum class Type : uint16_t {
  // peer <-> coordinator
  JoinRequest = 1,   // peer asks to join communicator commId (rendezvous)
  JoinAccept = 2,    // coordinator: your rank, world, epoch, every peer's address
  Reject = 3,        // either side: code + message, then close
  Heartbeat = 4,     // peer -> coordinator, periodic
  HeartbeatAck = 5,  // coordinator -> peer
  Leave = 6,         // peer -> coordinator: graceful leave
  UpdateRequest = 7, // member -> coordinator: at a safe point, ready for the next epoch
  EpochStart = 8,    // coordinator -> member: the next epoch's membership (JoinAccept payload)
  PendingNotice = 9, // coordinator -> member: how many joiners wait for the next update
  // peer <-> peer (data connections)
  PeerHello = 16,    // first frame on every data stream, from the connecting side
  PeerHelloAck = 17, // acceptor agrees
  Data = 18,         // a fragment of a message; payload = DataHeader + bytes
  OpError = 19,      // operation `tag` failed on the sender
};
const char* typeName(Type t);

struct Header {
  uint16_t wireVersion = kWireVersion;
  Type type = Type::Reject;
  uint32_t payloadBytes = 0;
  uint32_t flags = 0;
  uint64_t commId = 0;
  uint64_t epoch = 0;
  uint64_t seq = 0;
};

// Header flag of a JoinRequest: join a communicator that is already running (admitted at its
// members' next update) instead of forming it.
inline constexpr uint32_t kJoinRunning = 1;
// With kJoinRunning: a member reconnecting to a restarted coordinator. Header epoch: its epoch;
// requestedRank and worldSize: its rank and the epoch's size. The coordinator rebuilds the
// communicator's membership from the members that come back this way.
inline constexpr uint32_t kRejoin = 2;

struct JoinRequest {
  uint32_t libraryVersion = 0;  // LOOM_VERSION_CODE of the sender
  uint32_t worldSize = 0;       // founding size; a kJoinRunning joiner sends 1 (ignored)
  int32_t requestedRank = -1;   // -1: any
  std::string address;          // transport address blob of this peer (<= kMaxAddressBytes)
  uint32_t maxWorld = 0;        // founders: the most members the communicator may grow to (0: no limit)
};

// Also the payload of EpochStart.
struct JoinAccept {
  int32_t rank = 0;
  uint32_t worldSize = 0;
  uint32_t heartbeatMs = 0;
  std::vector<std::string> addresses;  // index = rank
  // index = rank: its rank in the previous epoch, -1 if new; empty at the founding rendezvous
  std::vector<int32_t> previousRanks;
};

// A member at its safe point. Header epoch: the epoch it is leaving.
inline constexpr uint32_t kUpdateLeaving = 1;  // flags: this member leaves instead of going on
struct UpdateRequest {
  uint32_t flags = 0;
  uint32_t timeoutMs = 0;        // how long the coordinator waits for members that have not asked
  std::string address;           // this member's transport address for the next epoch
  std::vector<int32_t> suspects; // ranks of this epoch it saw fail
};

struct PendingNotice {
  uint32_t joiners = 0;
};

struct Reject {
  int32_t code = 0;  // loomResult_t
  std::string message;  // <= kMaxMessageBytes
};

struct PeerHello {
  uint32_t libraryVersion = 0;
  int32_t rank = 0;       // sender's rank
  uint32_t worldSize = 0;
  uint32_t stream = 0;    // stream index within the pair
};

// Payload of Data frames: 40 bytes then fragmentBytes of data (payloadBytes = 40 + fragmentBytes).
struct DataHeader {
  uint64_t tagOp = 0;
  uint32_t tagSpace = 0;
  uint32_t tagStep = 0;
  uint64_t signature = 0;
  uint64_t totalBytes = 0;  // of the whole message
  uint64_t offset = 0;      // of this fragment within it
};
inline constexpr size_t kDataHeaderBytes = 40;
inline constexpr uint64_t kMaxDataFragment = uint64_t(1) << 31;

struct OpError {
  uint64_t tagOp = 0;
  uint32_t tagSpace = 0;
  int32_t code = 0;
  int32_t lostRank = -1;  // with loomPeerLost: the rank the sender lost (-1: none or unknown)
  std::string message;
};

// Header: encode appends kHeaderBytes; decode needs at least kHeaderBytes and validates magic,
// version, type and the payload limit for that type.
void encodeHeader(const Header& h, std::vector<uint8_t>& out);
Expected<Header> decodeHeader(std::span<const uint8_t> bytes);
// Largest payload allowed for a frame type (data: kDataHeaderBytes + kMaxDataFragment).
size_t maxPayload(Type t);

// Whole control frames: header + payload. encode* returns the complete frame.
std::vector<uint8_t> encode(const Header& h, const JoinRequest& m);
std::vector<uint8_t> encode(const Header& h, const JoinAccept& m);
std::vector<uint8_t> encode(const Header& h, const Reject& m);
std::vector<uint8_t> encode(const Header& h, const PeerHello& m);
std::vector<uint8_t> encode(const Header& h, const OpError& m);
std::vector<uint8_t> encode(const Header& h, const UpdateRequest& m);
std::vector<uint8_t> encode(const Header& h, const PendingNotice& m);
// JoinAccept payload under another frame type (EpochStart).
std::vector<uint8_t> encodeAs(Type type, const Header& h, const JoinAccept& m);
std::vector<uint8_t> encodeEmpty(const Header& h);  // Heartbeat, HeartbeatAck, Leave, PeerHelloAck

// Payload decoders (span = exactly the payload). Reject trailing bytes and over-long fields.
Expected<JoinRequest> decodeJoinRequest(std::span<const uint8_t> payload);
Expected<JoinAccept> decodeJoinAccept(std::span<const uint8_t> payload);
Expected<Reject> decodeReject(std::span<const uint8_t> payload);
Expected<PeerHello> decodePeerHello(std::span<const uint8_t> payload);
Expected<OpError> decodeOpError(std::span<const uint8_t> payload);
Expected<UpdateRequest> decodeUpdateRequest(std::span<const uint8_t> payload);
Expected<PendingNotice> decodePendingNotice(std::span<const uint8_t> payload);

// Data frames: the frame header and DataHeader are written into `out` (kHeaderBytes +
// kDataHeaderBytes); the fragment bytes follow on the wire without copying.
inline constexpr size_t kDataPrefixBytes = kHeaderBytes + kDataHeaderBytes;
void encodeDataPrefix(const Header& h, const DataHeader& d, uint8_t* out);
Expected<DataHeader> decodeDataHeader(std::span<const uint8_t> bytes);  // exactly kDataHeaderBytes

// Decode any complete frame (header + payload) fully; used by the fuzzer and tests.
Status decodeFrame(std::span<const uint8_t> frame);

}  // namespace loom::wire
